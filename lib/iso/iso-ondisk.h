/* ISO 9660 (ECMA-119), Joliet, El Torito, SUSP (IEEE P1281) and Rock Ridge
 * (IEEE P1282, RRIP) on-disk layouts as byte offsets, shared by the reader
 * and the writer. Every field is named by its offset from the start of its
 * structure and its size; _Static_asserts tie each layout to the spec's
 * tables so that a typo cannot shift a field. No packed structs. */
#ifndef VIMG_ISO_ONDISK_H
#define VIMG_ISO_ONDISK_H

#include <stdbool.h>
#include <stdint.h>

#include "../../common/byteswap.h"

/* ---- Limits the reader and the writer share ------------------------- */

/* Folder levels below the root: vimg writes no deeper tree than it reads
 * back. ECMA-119 6.8.2.1 allows 8 levels; Rock Ridge lifts that (RRIP
 * 4.1.5 relocation, or in place as vimg writes), and xorriso, genisoimage
 * and Linux read trees thousands of levels deep. 255 is far beyond real
 * trees and keeps extraction, which holds one open folder per level, well
 * inside the usual limit of 1024 descriptors. */
#define ISO_MAX_DEPTH 255

/* ---- Sectors and volume descriptors (ECMA-119 8) --------------------- */

/* Logical sector size; every ISO 9660 image in practice also uses it as
 * the logical block size (the PVD states the block size; 2048 is the only
 * value vimg reads or writes). */
#define ISO_SECTOR_SIZE 2048u
/* The system area (16 sectors) precedes the descriptor set. */
#define ISO_SYSTEM_AREA_SECTORS 16u
#define ISO_VD_FIRST_LBA ISO_SYSTEM_AREA_SECTORS
#define ISO_VD_FIRST_OFFSET (ISO_VD_FIRST_LBA * ISO_SECTOR_SIZE) /* 32768 */

/* Volume descriptor header (ECMA-119 8.1), common to every descriptor. */
#define ISO_VD_TYPE_OFFSET 0      /* 1 byte */
#define ISO_VD_ID_OFFSET 1        /* 5 bytes "CD001" */
#define ISO_VD_ID_SIZE 5
#define ISO_VD_VERSION_OFFSET 6   /* 1 byte, 1 */
#define ISO_VD_ID "CD001"
#define ISO_VD_VERSION 1
_Static_assert(ISO_VD_ID_OFFSET + ISO_VD_ID_SIZE == ISO_VD_VERSION_OFFSET,
               "VD header");

enum iso_vd_type {
    ISO_VD_BOOT_RECORD = 0,
    ISO_VD_PRIMARY = 1,
    ISO_VD_SUPPLEMENTARY = 2,  /* Joliet uses this with escape sequences */
    ISO_VD_PARTITION = 3,
    ISO_VD_TERMINATOR = 255,
};

/* Primary volume descriptor (ECMA-119 8.4). The supplementary descriptor
 * (8.5) has the same layout plus the volume flags and escape sequences. */
#define ISO_PVD_SYSTEM_ID_OFFSET 8            /* a-chars, 32 */
#define ISO_PVD_SYSTEM_ID_SIZE 32
#define ISO_PVD_VOLUME_ID_OFFSET 40           /* d-chars, 32 */
#define ISO_PVD_VOLUME_ID_SIZE 32
#define ISO_PVD_VOLUME_SPACE_SIZE_OFFSET 80   /* both-endian 32 (8 bytes) */
#define ISO_PVD_VOLUME_SET_SIZE_OFFSET 120    /* both-endian 16 (4 bytes) */
#define ISO_PVD_VOLUME_SEQ_OFFSET 124         /* both-endian 16 */
#define ISO_PVD_BLOCK_SIZE_OFFSET 128         /* both-endian 16 */
#define ISO_PVD_PATH_TABLE_SIZE_OFFSET 132    /* both-endian 32 */
#define ISO_PVD_L_PATH_TABLE_OFFSET 140       /* le32 LBA */
#define ISO_PVD_OPT_L_PATH_TABLE_OFFSET 144   /* le32 LBA, 0 = none */
#define ISO_PVD_M_PATH_TABLE_OFFSET 148       /* be32 LBA */
#define ISO_PVD_OPT_M_PATH_TABLE_OFFSET 152   /* be32 LBA, 0 = none */
#define ISO_PVD_ROOT_DIR_RECORD_OFFSET 156    /* 34-byte directory record */
#define ISO_PVD_VOLUME_SET_ID_OFFSET 190      /* 128 */
#define ISO_PVD_PUBLISHER_ID_OFFSET 318       /* 128 */
#define ISO_PVD_PREPARER_ID_OFFSET 446        /* 128 */
#define ISO_PVD_APPLICATION_ID_OFFSET 574     /* 128 */
#define ISO_PVD_LONG_ID_SIZE 128
#define ISO_PVD_COPYRIGHT_FILE_ID_OFFSET 702  /* 37 */
#define ISO_PVD_ABSTRACT_FILE_ID_OFFSET 739   /* 37 */
#define ISO_PVD_BIBLIO_FILE_ID_OFFSET 776     /* 37 */
#define ISO_PVD_FILE_ID_SIZE 37
#define ISO_PVD_CREATION_DATE_OFFSET 813      /* 17-byte volume date */
#define ISO_PVD_MODIFICATION_DATE_OFFSET 830
#define ISO_PVD_EXPIRATION_DATE_OFFSET 847
#define ISO_PVD_EFFECTIVE_DATE_OFFSET 864
#define ISO_PVD_FILE_STRUCTURE_VERSION_OFFSET 881 /* 1 */
#define ISO_PVD_APPLICATION_USE_OFFSET 883    /* 512 */
#define ISO_PVD_APPLICATION_USE_SIZE 512
#define ISO_PVD_RESERVED_OFFSET 1395          /* 653, zero */
_Static_assert(ISO_PVD_SYSTEM_ID_OFFSET + ISO_PVD_SYSTEM_ID_SIZE ==
               ISO_PVD_VOLUME_ID_OFFSET, "PVD system id");
_Static_assert(ISO_PVD_VOLUME_ID_OFFSET + ISO_PVD_VOLUME_ID_SIZE + 8 ==
               ISO_PVD_VOLUME_SPACE_SIZE_OFFSET, "PVD volume id");
_Static_assert(ISO_PVD_ROOT_DIR_RECORD_OFFSET + 34 ==
               ISO_PVD_VOLUME_SET_ID_OFFSET, "PVD root record");
_Static_assert(ISO_PVD_APPLICATION_ID_OFFSET + ISO_PVD_LONG_ID_SIZE ==
               ISO_PVD_COPYRIGHT_FILE_ID_OFFSET, "PVD application id");
_Static_assert(ISO_PVD_BIBLIO_FILE_ID_OFFSET + ISO_PVD_FILE_ID_SIZE ==
               ISO_PVD_CREATION_DATE_OFFSET, "PVD file ids");
_Static_assert(ISO_PVD_EFFECTIVE_DATE_OFFSET + 17 ==
               ISO_PVD_FILE_STRUCTURE_VERSION_OFFSET, "PVD dates");
_Static_assert(ISO_PVD_APPLICATION_USE_OFFSET + ISO_PVD_APPLICATION_USE_SIZE
               == ISO_PVD_RESERVED_OFFSET, "PVD application use");
_Static_assert(ISO_PVD_RESERVED_OFFSET + 653 == ISO_SECTOR_SIZE, "PVD size");

/* Supplementary volume descriptor (ECMA-119 8.5): fields of the PVD plus */
#define ISO_SVD_VOLUME_FLAGS_OFFSET 7         /* 1, bit 0: non-ISO 2375 esc */
#define ISO_SVD_ESCAPE_SEQUENCES_OFFSET 88    /* 32 */
#define ISO_SVD_ESCAPE_SEQUENCES_SIZE 32
_Static_assert(ISO_SVD_ESCAPE_SEQUENCES_OFFSET +
               ISO_SVD_ESCAPE_SEQUENCES_SIZE == ISO_PVD_VOLUME_SET_SIZE_OFFSET,
               "SVD escape sequences");
/* Joliet: the escape sequence names UCS-2 level 1, 2 or 3; identifiers in
 * the SVD and its directory tree are then UCS-2 big-endian. */
#define ISO_JOLIET_ESCAPE_LEVEL1 "%/@"
#define ISO_JOLIET_ESCAPE_LEVEL2 "%/C"
#define ISO_JOLIET_ESCAPE_LEVEL3 "%/E"
#define ISO_JOLIET_ESCAPE_SIZE 3
/* Joliet allows names of up to 64 UCS-2 characters (mkisofs -joliet-long
 * stretches this to 103); a directory record bounds it anyway. */
#define ISO_JOLIET_MAX_NAME_CHARS 64

/* Boot record volume descriptor (ECMA-119 8.2, El Torito 2.0). */
#define ISO_BR_SYSTEM_ID_OFFSET 7             /* 32 */
#define ISO_BR_SYSTEM_ID_SIZE 32
#define ISO_BR_BOOT_ID_OFFSET 39              /* 32 */
#define ISO_BR_CATALOG_LBA_OFFSET 71          /* le32, El Torito only */
#define ISO_ELTORITO_SYSTEM_ID "EL TORITO SPECIFICATION"
_Static_assert(ISO_BR_SYSTEM_ID_OFFSET + ISO_BR_SYSTEM_ID_SIZE ==
               ISO_BR_BOOT_ID_OFFSET, "boot record");
_Static_assert(ISO_BR_BOOT_ID_OFFSET + 32 == ISO_BR_CATALOG_LBA_OFFSET,
               "boot record catalog pointer");

/* ---- Both-endian numbers (ECMA-119 7.2.3, 7.3.3) ---------------------- */

/* The little-endian half is authoritative for readers (Linux and
 * libarchive do the same; many writers get the big half wrong). */
static inline uint16_t iso_load_both16(const void *p)
{
    return load_le16(p);
}
static inline uint32_t iso_load_both32(const void *p)
{
    return load_le32(p);
}
static inline bool iso_both16_consistent(const void *p)
{
    return load_le16(p) == load_be16((const uint8_t *)p + 2);
}
static inline bool iso_both32_consistent(const void *p)
{
    return load_le32(p) == load_be32((const uint8_t *)p + 4);
}
static inline void iso_store_both16(void *p, uint16_t v)
{
    store_le16(p, v);
    store_be16((uint8_t *)p + 2, v);
}
static inline void iso_store_both32(void *p, uint32_t v)
{
    store_le32(p, v);
    store_be32((uint8_t *)p + 4, v);
}

/* ---- Dates (ECMA-119 9.1.5 and 8.4.26.1) ------------------------------ */

/* 7-byte directory record date: binary fields. */
#define ISO_DIR_DATE_YEAR 0       /* years since 1900 */
#define ISO_DIR_DATE_MONTH 1      /* 1..12 */
#define ISO_DIR_DATE_DAY 2        /* 1..31 */
#define ISO_DIR_DATE_HOUR 3
#define ISO_DIR_DATE_MINUTE 4
#define ISO_DIR_DATE_SECOND 5
#define ISO_DIR_DATE_GMTOFF 6     /* signed, 15-minute units, -48..52 */
#define ISO_DIR_DATE_SIZE 7

/* 17-byte volume date: "YYYYMMDDHHMMSScc" as ASCII digits (all '0' or all
 * zero bytes with offset 0 means "not specified"), then the signed GMT
 * offset byte in 15-minute units. */
#define ISO_VOL_DATE_YEAR 0       /* 4 digits */
#define ISO_VOL_DATE_MONTH 4      /* 2 digits each from here */
#define ISO_VOL_DATE_DAY 6
#define ISO_VOL_DATE_HOUR 8
#define ISO_VOL_DATE_MINUTE 10
#define ISO_VOL_DATE_SECOND 12
#define ISO_VOL_DATE_HUNDREDTHS 14
#define ISO_VOL_DATE_GMTOFF 16
#define ISO_VOL_DATE_SIZE 17
_Static_assert(ISO_VOL_DATE_GMTOFF + 1 == ISO_VOL_DATE_SIZE, "volume date");

/* ---- Directory records (ECMA-119 9.1) --------------------------------- */

#define ISO_DR_LENGTH_OFFSET 0            /* 1: whole record, even */
#define ISO_DR_EXT_ATTR_LENGTH_OFFSET 1   /* 1: sectors of extended attrs */
#define ISO_DR_EXTENT_OFFSET 2            /* both-endian 32: LBA */
#define ISO_DR_DATA_LENGTH_OFFSET 10      /* both-endian 32: bytes */
#define ISO_DR_DATE_OFFSET 18             /* 7-byte date */
#define ISO_DR_FLAGS_OFFSET 25            /* 1 */
#define ISO_DR_UNIT_SIZE_OFFSET 26        /* 1: interleave, 0 = none */
#define ISO_DR_GAP_SIZE_OFFSET 27         /* 1 */
#define ISO_DR_VOLUME_SEQ_OFFSET 28       /* both-endian 16 */
#define ISO_DR_NAME_LENGTH_OFFSET 32      /* 1 */
#define ISO_DR_NAME_OFFSET 33             /* name, then one pad byte when
                                             the name length is even, then
                                             the system use area (SUSP) */
#define ISO_DR_MIN_LENGTH 34              /* header + 1-byte name */
#define ISO_DR_MAX_LENGTH 255
_Static_assert(ISO_DR_EXTENT_OFFSET + 8 == ISO_DR_DATA_LENGTH_OFFSET, "DR");
_Static_assert(ISO_DR_DATA_LENGTH_OFFSET + 8 == ISO_DR_DATE_OFFSET, "DR");
_Static_assert(ISO_DR_DATE_OFFSET + ISO_DIR_DATE_SIZE == ISO_DR_FLAGS_OFFSET,
               "DR date");
_Static_assert(ISO_DR_VOLUME_SEQ_OFFSET + 4 == ISO_DR_NAME_LENGTH_OFFSET,
               "DR volume sequence");
_Static_assert(ISO_DR_NAME_OFFSET + 1 == ISO_DR_MIN_LENGTH, "DR minimum");

/* Offset of the system use area in a record whose name is NAME_LEN bytes. */
static inline unsigned iso_dr_system_use_offset(unsigned name_len)
{
    return ISO_DR_NAME_OFFSET + name_len + (name_len % 2 == 0 ? 1 : 0);
}

enum {
    ISO_DR_FLAG_HIDDEN = 0x01,      /* "existence" */
    ISO_DR_FLAG_DIRECTORY = 0x02,
    ISO_DR_FLAG_ASSOCIATED = 0x04,
    ISO_DR_FLAG_RECORD = 0x08,      /* extended attributes give a format */
    ISO_DR_FLAG_PROTECTION = 0x10,
    ISO_DR_FLAG_MULTI_EXTENT = 0x80, /* more records of this file follow */
};
/* The first two records of a directory are "." (name byte 0x00) and ".."
 * (name byte 0x01). */
#define ISO_DR_NAME_SELF 0x00
#define ISO_DR_NAME_PARENT 0x01
/* ISO 9660 level 1-3 file names end in ";VERSION" (";1"). */
#define ISO_FILE_VERSION_SEPARATOR ';'
/* A single extent holds at most 4 GiB - 1 bytes; writers cap extents at a
 * sector-aligned size below that and chain multi-extent records. */
#define ISO_MAX_EXTENT_BYTES 0xFFFFF800u

/* ---- Path tables (ECMA-119 9.4) --------------------------------------- */

#define ISO_PT_NAME_LENGTH_OFFSET 0       /* 1 */
#define ISO_PT_EXT_ATTR_LENGTH_OFFSET 1   /* 1 */
#define ISO_PT_EXTENT_OFFSET 2            /* 4: le32 in L, be32 in M table */
#define ISO_PT_PARENT_OFFSET 6            /* 2: 1-based directory number */
#define ISO_PT_NAME_OFFSET 8              /* name, padded to even length */
_Static_assert(ISO_PT_EXTENT_OFFSET + 4 == ISO_PT_PARENT_OFFSET, "PT");
_Static_assert(ISO_PT_PARENT_OFFSET + 2 == ISO_PT_NAME_OFFSET, "PT");

/* ---- El Torito boot catalog (El Torito 1.0, 2.x) ---------------------- */

#define ISO_ELTORITO_ENTRY_SIZE 32
/* Catalogs are one sector in practice, but the spec allows more; readers
 * stop at the first entry that is neither a section header nor a boot
 * entry. */

/* Validation entry (El Torito 2.1): the first entry of the catalog. */
#define ISO_ET_VAL_HEADER_ID_OFFSET 0     /* 1: 0x01 */
#define ISO_ET_VAL_PLATFORM_OFFSET 1      /* 1: platform id */
#define ISO_ET_VAL_ID_STRING_OFFSET 4     /* 24: manufacturer */
#define ISO_ET_VAL_ID_STRING_SIZE 24
#define ISO_ET_VAL_CHECKSUM_OFFSET 28     /* le16: the le16 words of the
                                             entry sum to 0 */
#define ISO_ET_VAL_KEY55_OFFSET 30        /* 0x55 */
#define ISO_ET_VAL_KEYAA_OFFSET 31        /* 0xAA */
#define ISO_ET_VAL_HEADER_ID 0x01
_Static_assert(ISO_ET_VAL_ID_STRING_OFFSET + ISO_ET_VAL_ID_STRING_SIZE ==
               ISO_ET_VAL_CHECKSUM_OFFSET, "El Torito validation entry");
_Static_assert(ISO_ET_VAL_KEYAA_OFFSET + 1 == ISO_ELTORITO_ENTRY_SIZE,
               "El Torito validation entry size");

enum iso_et_platform {
    ISO_ET_PLATFORM_X86 = 0x00,
    ISO_ET_PLATFORM_PPC = 0x01,
    ISO_ET_PLATFORM_MAC = 0x02,
    ISO_ET_PLATFORM_EFI = 0xEF,
};

/* Initial/default entry (2.2) and section entry (2.4) share this start. */
#define ISO_ET_ENTRY_BOOT_INDICATOR_OFFSET 0 /* 0x88 bootable, 0x00 not */
#define ISO_ET_ENTRY_MEDIA_OFFSET 1       /* low 4 bits: enum iso_et_media;
                                             section entries also use bit 5
                                             (extension follows), bit 6
                                             (ATAPI), bit 7 (SCSI) */
#define ISO_ET_ENTRY_LOAD_SEGMENT_OFFSET 2 /* le16, 0 means 0x7C0 */
#define ISO_ET_ENTRY_SYSTEM_TYPE_OFFSET 4 /* 1: partition type (hard disk) */
#define ISO_ET_ENTRY_SECTOR_COUNT_OFFSET 6 /* le16: 512-byte virtual
                                              sectors to load */
#define ISO_ET_ENTRY_LOAD_RBA_OFFSET 8    /* le32: image LBA (2048-byte) */
#define ISO_ET_ENTRY_SEL_TYPE_OFFSET 12   /* section entry: criteria type */
#define ISO_ET_ENTRY_SEL_CRITERIA_OFFSET 13 /* section entry: 19 bytes */
#define ISO_ET_BOOTABLE 0x88
#define ISO_ET_NOT_BOOTABLE 0x00
#define ISO_ET_MEDIA_TYPE_MASK 0x0F
#define ISO_ET_MEDIA_CONTINUATION 0x20
#define ISO_ET_DEFAULT_LOAD_SEGMENT 0x07C0
/* Virtual sectors of the sector count are 512 bytes. */
#define ISO_ET_VIRTUAL_SECTOR_SIZE 512
_Static_assert(ISO_ET_ENTRY_LOAD_RBA_OFFSET + 4 ==
               ISO_ET_ENTRY_SEL_TYPE_OFFSET, "El Torito entry");
_Static_assert(ISO_ET_ENTRY_SEL_CRITERIA_OFFSET + 19 ==
               ISO_ELTORITO_ENTRY_SIZE, "El Torito section entry");

enum iso_et_media {
    ISO_ET_MEDIA_NO_EMULATION = 0,
    ISO_ET_MEDIA_FLOPPY_1_2M = 1,
    ISO_ET_MEDIA_FLOPPY_1_44M = 2,
    ISO_ET_MEDIA_FLOPPY_2_88M = 3,
    ISO_ET_MEDIA_HARD_DISK = 4,
};

/* Section header entry (2.3). */
#define ISO_ET_SEC_HEADER_ID_OFFSET 0     /* 0x90 more follow, 0x91 last */
#define ISO_ET_SEC_PLATFORM_OFFSET 1      /* 1: platform id */
#define ISO_ET_SEC_ENTRY_COUNT_OFFSET 2   /* le16: section entries */
#define ISO_ET_SEC_ID_STRING_OFFSET 4     /* 28 */
#define ISO_ET_SEC_HEADER_MORE 0x90
#define ISO_ET_SEC_HEADER_LAST 0x91
/* Section entry extension (2.5): follows an entry with the continuation
 * bit set. */
#define ISO_ET_EXTENSION_ID 0x44
#define ISO_ET_EXTENSION_FLAGS_OFFSET 1   /* bit 5: another extension */
_Static_assert(ISO_ET_SEC_ID_STRING_OFFSET + 28 == ISO_ELTORITO_ENTRY_SIZE,
               "El Torito section header");

/* Boot information table (mkisofs -boot-info-table, used by isolinux and
 * GRUB): written into the no-emulation boot image at byte 8. */
#define ISO_BOOT_INFO_OFFSET 8
#define ISO_BOOT_INFO_PVD_LBA_OFFSET 8    /* le32: LBA of the PVD (16) */
#define ISO_BOOT_INFO_FILE_LBA_OFFSET 12  /* le32: LBA of the boot file */
#define ISO_BOOT_INFO_FILE_LENGTH_OFFSET 16 /* le32: boot file bytes */
#define ISO_BOOT_INFO_CHECKSUM_OFFSET 20  /* le32: sum of the le32 words of
                                             the boot file from byte 64 to
                                             its end */
#define ISO_BOOT_INFO_RESERVED_OFFSET 24  /* 40 bytes, zero */
#define ISO_BOOT_INFO_CHECKSUM_START 64
_Static_assert(ISO_BOOT_INFO_RESERVED_OFFSET + 40 ==
               ISO_BOOT_INFO_CHECKSUM_START, "boot info table");

/* ---- Hybrid images (MBR / GPT in the system area) --------------------- */

#define ISO_MBR_PARTITION_TABLE_OFFSET 446 /* 4 entries of 16 bytes */
#define ISO_MBR_PARTITION_ENTRY_SIZE 16
#define ISO_MBR_PART_TYPE_OFFSET 4        /* within an entry; 0 = unused */
#define ISO_MBR_SIGNATURE_OFFSET 510      /* 0x55 0xAA */
#define ISO_GPT_HEADER_OFFSET 512         /* LBA 1 of 512-byte sectors */
#define ISO_GPT_SIGNATURE "EFI PART"
#define ISO_GPT_SIGNATURE_SIZE 8
_Static_assert(ISO_MBR_PARTITION_TABLE_OFFSET +
               4 * ISO_MBR_PARTITION_ENTRY_SIZE == ISO_MBR_SIGNATURE_OFFSET,
               "MBR");

/* ---- SUSP (IEEE P1281) ------------------------------------------------ */

/* Every system use entry starts with this header. */
#define ISO_SUSP_SIG_OFFSET 0             /* 2 ASCII bytes */
#define ISO_SUSP_LENGTH_OFFSET 2          /* 1: whole entry, >= 4 */
#define ISO_SUSP_VERSION_OFFSET 3         /* 1 */
#define ISO_SUSP_HEADER_SIZE 4

/* SP: "SUSP in use", first entry of the root's "." record. */
#define ISO_SUSP_SP_CHECK_OFFSET 4        /* 0xBE 0xEF */
#define ISO_SUSP_SP_LEN_SKP_OFFSET 6      /* 1: bytes to skip in every
                                             system use area after this */
#define ISO_SUSP_SP_LENGTH 7
#define ISO_SUSP_SP_CHECK0 0xBE
#define ISO_SUSP_SP_CHECK1 0xEF
/* CE: continuation area. */
#define ISO_SUSP_CE_BLOCK_OFFSET 4        /* both-endian 32: LBA */
#define ISO_SUSP_CE_OFFSET_OFFSET 12      /* both-endian 32: byte offset */
#define ISO_SUSP_CE_LENGTH_OFFSET 20      /* both-endian 32: bytes */
#define ISO_SUSP_CE_LENGTH 28
_Static_assert(ISO_SUSP_CE_LENGTH_OFFSET + 8 == ISO_SUSP_CE_LENGTH, "CE");
/* ST: terminator; PD: padding (content ignored). */
#define ISO_SUSP_ST_LENGTH 4
/* ER: extensions reference. */
#define ISO_SUSP_ER_LEN_ID_OFFSET 4       /* 1 */
#define ISO_SUSP_ER_LEN_DES_OFFSET 5      /* 1 */
#define ISO_SUSP_ER_LEN_SRC_OFFSET 6      /* 1 */
#define ISO_SUSP_ER_EXT_VER_OFFSET 7      /* 1 */
#define ISO_SUSP_ER_ID_OFFSET 8           /* id, then descriptor, source */
/* Extension identifiers naming Rock Ridge in ER. */
#define ISO_RRIP_ER_ID_1991A "RRIP_1991A"
#define ISO_RRIP_ER_ID_IEEE_1_09 "IEEE_P1282"
#define ISO_RRIP_ER_ID_IEEE_1_12 "IEEE_1282"

/* ---- Rock Ridge (IEEE P1282, RRIP 1.09/1.10/1.12) --------------------- */

/* PX: POSIX attributes, each a both-endian 32. The serial number exists
 * from RRIP 1.12 (entry length 44); 1.09/1.10 entries are 36 bytes. */
#define ISO_RR_PX_MODE_OFFSET 4
#define ISO_RR_PX_NLINK_OFFSET 12
#define ISO_RR_PX_UID_OFFSET 20
#define ISO_RR_PX_GID_OFFSET 28
#define ISO_RR_PX_INO_OFFSET 36
#define ISO_RR_PX_LENGTH_OLD 36
#define ISO_RR_PX_LENGTH 44
_Static_assert(ISO_RR_PX_INO_OFFSET == ISO_RR_PX_LENGTH_OLD, "PX");
_Static_assert(ISO_RR_PX_INO_OFFSET + 8 == ISO_RR_PX_LENGTH, "PX");
/* PN: device numbers, both-endian 32 each. */
#define ISO_RR_PN_DEV_HIGH_OFFSET 4
#define ISO_RR_PN_DEV_LOW_OFFSET 12
#define ISO_RR_PN_LENGTH 20
/* SL: symbolic link, a list of components; an SL with the CONTINUE flag is
 * followed by another SL entry (possibly in a CE area). */
#define ISO_RR_SL_FLAGS_OFFSET 4          /* 1: bit 0 continues */
#define ISO_RR_SL_COMPONENTS_OFFSET 5
#define ISO_RR_SL_COMP_FLAGS_OFFSET 0     /* 1: enum iso_rr_sl_comp_flags */
#define ISO_RR_SL_COMP_LENGTH_OFFSET 1    /* 1 */
#define ISO_RR_SL_COMP_CONTENT_OFFSET 2
enum iso_rr_sl_comp_flags {
    ISO_RR_SL_CONTINUE = 0x01,   /* component continues in the next one */
    ISO_RR_SL_CURRENT = 0x02,    /* "." */
    ISO_RR_SL_PARENT = 0x04,     /* ".." */
    ISO_RR_SL_ROOT = 0x08,       /* "/" */
    ISO_RR_SL_VOLROOT = 0x10,    /* mount point of the volume (obsolete) */
    ISO_RR_SL_HOST = 0x20,       /* host name (obsolete) */
};
/* NM: alternate name, may be split across NM entries with CONTINUE. */
#define ISO_RR_NM_FLAGS_OFFSET 4          /* 1: enum iso_rr_nm_flags */
#define ISO_RR_NM_NAME_OFFSET 5
enum iso_rr_nm_flags {
    ISO_RR_NM_CONTINUE = 0x01,
    ISO_RR_NM_CURRENT = 0x02,
    ISO_RR_NM_PARENT = 0x04,
    ISO_RR_NM_HOST = 0x20,
};
/* CL: child link (relocated directory), PL: parent link, both-endian 32. */
#define ISO_RR_CL_LOCATION_OFFSET 4
#define ISO_RR_CL_LENGTH 12
#define ISO_RR_PL_LOCATION_OFFSET 4
#define ISO_RR_PL_LENGTH 12
/* RE: this directory record is a relocated directory (hide it). */
#define ISO_RR_RE_LENGTH 4
/* TF: time stamps, present in the order of the flag bits; each is a
 * 7-byte directory date, or a 17-byte volume date with TF_LONG_FORM. */
#define ISO_RR_TF_FLAGS_OFFSET 4
#define ISO_RR_TF_STAMPS_OFFSET 5
enum iso_rr_tf_flags {
    ISO_RR_TF_CREATION = 0x01,
    ISO_RR_TF_MODIFY = 0x02,
    ISO_RR_TF_ACCESS = 0x04,
    ISO_RR_TF_ATTRIBUTES = 0x08,
    ISO_RR_TF_BACKUP = 0x10,
    ISO_RR_TF_EXPIRATION = 0x20,
    ISO_RR_TF_EFFECTIVE = 0x40,
    ISO_RR_TF_LONG_FORM = 0x80,
};
/* SF: sparse file (RRIP 1.12). */
#define ISO_RR_SF_SIZE_HIGH_OFFSET 4      /* both-endian 32 */
#define ISO_RR_SF_SIZE_LOW_OFFSET 12      /* both-endian 32 */
#define ISO_RR_SF_TABLE_DEPTH_OFFSET 20   /* 1 */
#define ISO_RR_SF_LENGTH 21
/* RR: RRIP 1.09 flags saying which RR entries are present. */
#define ISO_RR_RR_FLAGS_OFFSET 4
#define ISO_RR_RR_LENGTH 5

#endif
