/* VHDX on-disk layout, from Microsoft's "[MS-VHDX]: Virtual Hard Disk v2
 * (VHDX) File Format" (v1.0 specification of 2012 and the open
 * specification that replaced it): section 2.1 (file type identifier and
 * headers), 2.2 (region table), 2.3 (log), 2.4 (BAT), 2.6 (metadata
 * region and its known items). All fields are little-endian; read and
 * write them with common/byteswap.h. GUIDs are the 16 bytes as stored
 * (the first three fields little-endian). No packed structs. */
#ifndef VIMG_VHDX_ONDISK_H
#define VIMG_VHDX_ONDISK_H

#include <stdint.h>

#include "../../../common/byteswap.h"

#define VHDX_KIB 1024u
#define VHDX_MIB (1024u * 1024u)

/* ---- File layout (2.1) ------------------------------------------------ */

#define VHDX_FILE_ID_OFFSET        0
#define VHDX_FILE_SIGNATURE        "vhdxfile"  /* 8 bytes at 0 */
#define VHDX_FILE_CREATOR          8           /* UTF-16LE, 512 bytes */
#define VHDX_HEADER1_OFFSET        (64 * VHDX_KIB)
#define VHDX_HEADER2_OFFSET        (128 * VHDX_KIB)
#define VHDX_REGION_TABLE1_OFFSET  (192 * VHDX_KIB)
#define VHDX_REGION_TABLE2_OFFSET  (256 * VHDX_KIB)
#define VHDX_HEADER_SECTION_END    VHDX_MIB        /* first byte of anything else */

/* ---- Header (2.2.2), 4 KiB; checksum over all of it ------------------ */

#define VHDX_HEADER_SIZE           (4 * VHDX_KIB)
#define VHDX_HDR_SIGNATURE         0   /* "head" */
#define VHDX_HDR_CHECKSUM          4   /* u32 CRC-32C */
#define VHDX_HDR_SEQUENCE          8   /* u64 */
#define VHDX_HDR_FILE_WRITE_GUID   16
#define VHDX_HDR_DATA_WRITE_GUID   32
#define VHDX_HDR_LOG_GUID          48
#define VHDX_HDR_LOG_VERSION       64  /* u16: 0 */
#define VHDX_HDR_VERSION           66  /* u16: 1 */
#define VHDX_HDR_LOG_LENGTH        68  /* u32: multiple of 1 MiB */
#define VHDX_HDR_LOG_OFFSET        72  /* u64: multiple of 1 MiB */
#define VHDX_HDR_RESERVED          80

_Static_assert(VHDX_HDR_CHECKSUM == VHDX_HDR_SIGNATURE + 4, "layout");
_Static_assert(VHDX_HDR_SEQUENCE == VHDX_HDR_CHECKSUM + 4, "layout");
_Static_assert(VHDX_HDR_FILE_WRITE_GUID == VHDX_HDR_SEQUENCE + 8, "layout");
_Static_assert(VHDX_HDR_LOG_GUID == VHDX_HDR_DATA_WRITE_GUID + 16, "layout");
_Static_assert(VHDX_HDR_LOG_VERSION == VHDX_HDR_LOG_GUID + 16, "layout");
_Static_assert(VHDX_HDR_LOG_LENGTH == VHDX_HDR_VERSION + 2, "layout");
_Static_assert(VHDX_HDR_RESERVED == VHDX_HDR_LOG_OFFSET + 8, "layout");

/* ---- Region table (2.2.3), 64 KiB; checksum over all of it ----------- */

#define VHDX_REGION_TABLE_SIZE     (64 * VHDX_KIB)
#define VHDX_RT_SIGNATURE          0   /* "regi" */
#define VHDX_RT_CHECKSUM           4
#define VHDX_RT_ENTRY_COUNT        8   /* u32, at most 2047 */
#define VHDX_RT_ENTRIES            16
#define VHDX_RT_MAX_ENTRIES        2047u
/* An entry: */
#define VHDX_RTE_SIZE              32
#define VHDX_RTE_GUID              0
#define VHDX_RTE_FILE_OFFSET       16  /* u64: multiple of 1 MiB */
#define VHDX_RTE_LENGTH            24  /* u32: multiple of 1 MiB */
#define VHDX_RTE_REQUIRED          28  /* u32: bit 0 */

_Static_assert(VHDX_RT_ENTRIES + VHDX_RT_MAX_ENTRIES * VHDX_RTE_SIZE <=
               VHDX_REGION_TABLE_SIZE, "layout");

/* ---- Log (2.3) -------------------------------------------------------- */

#define VHDX_LOG_SECTOR            (4 * VHDX_KIB)
/* Entry header, at the start of an entry's first sector: */
#define VHDX_LOG_HDR_SIZE          64
#define VHDX_LOGE_SIGNATURE        0   /* "loge" */
#define VHDX_LOGE_CHECKSUM         4   /* over the whole entry */
#define VHDX_LOGE_ENTRY_LENGTH     8   /* u32: multiple of 4 KiB */
#define VHDX_LOGE_TAIL             12  /* u32: offset of the oldest entry */
#define VHDX_LOGE_SEQUENCE         16  /* u64, > 0 */
#define VHDX_LOGE_DESC_COUNT       24  /* u32 */
#define VHDX_LOGE_LOG_GUID         32
#define VHDX_LOGE_FLUSHED_OFFSET   48  /* u64 */
#define VHDX_LOGE_LAST_OFFSET      56  /* u64 */
/* Descriptors, 32 bytes each, after the entry header (several sectors
 * when there are more than 126): */
#define VHDX_LOG_DESC_SIZE         32
#define VHDX_DESC_SIGNATURE        0   /* "zero" or "desc" */
#define VHDX_DESC_TRAILING         4   /* desc: last 4 bytes of the sector */
#define VHDX_DESC_ZERO_LENGTH      8   /* zero: u64, multiple of 4 KiB */
#define VHDX_DESC_LEADING          8   /* desc: first 8 bytes of the sector */
#define VHDX_DESC_FILE_OFFSET      16  /* u64: multiple of 4 KiB */
#define VHDX_DESC_SEQUENCE         24  /* u64: the entry's */
/* Data sectors, one per data descriptor, after the descriptor sectors: */
#define VHDX_DATA_SIGNATURE        0   /* "data" */
#define VHDX_DATA_SEQUENCE_HIGH    4   /* u32 */
#define VHDX_DATA_BYTES            8   /* 4084 bytes of the sector */
#define VHDX_DATA_SEQUENCE_LOW     4092

_Static_assert(VHDX_LOGE_LAST_OFFSET + 8 == VHDX_LOG_HDR_SIZE, "layout");
_Static_assert(VHDX_DESC_SEQUENCE + 8 == VHDX_LOG_DESC_SIZE, "layout");
_Static_assert(VHDX_DATA_SEQUENCE_LOW + 4 == VHDX_LOG_SECTOR, "layout");
_Static_assert(8 + (VHDX_DATA_SEQUENCE_LOW - VHDX_DATA_BYTES) + 4 ==
               VHDX_LOG_SECTOR, "a sector is leading + data + trailing");

/* ---- BAT (2.5) -------------------------------------------------------- */

#define VHDX_BAT_STATE_MASK        7u
#define VHDX_BAT_OFFSET_MASK       0xfffffffffff00000ull /* bits 20..63, MB */
/* Sector bitmap entries: */
#define VHDX_SB_BLOCK_PRESENT      6u
#define VHDX_SB_BLOCK_SIZE         VHDX_MIB
enum {
    VHDX_PAYLOAD_NOT_PRESENT = 0,
    VHDX_PAYLOAD_UNDEFINED = 1,
    VHDX_PAYLOAD_ZERO = 2,
    VHDX_PAYLOAD_UNMAPPED = 3,
    VHDX_PAYLOAD_UNMAPPED_V095 = 5, /* an early draft's "unmapped" */
    VHDX_PAYLOAD_FULLY_PRESENT = 6,
    VHDX_PAYLOAD_PARTIALLY_PRESENT = 7,
};
/* Sectors one sector bitmap block covers: one bitmap entry follows every
 * chunk ratio = 2^23 * logical sector size / block size payload entries. */
#define VHDX_SECTORS_PER_BITMAP    (1ull << 23)

/* ---- Metadata region (2.6) -------------------------------------------- */

#define VHDX_METADATA_TABLE_SIZE   (64 * VHDX_KIB)
#define VHDX_MD_SIGNATURE          0   /* "metadata" */
#define VHDX_MD_ENTRY_COUNT        10  /* u16, at most 2047 */
#define VHDX_MD_ENTRIES            32
#define VHDX_MD_MAX_ENTRIES        2047u
#define VHDX_MDE_SIZE              32
#define VHDX_MDE_ITEM_ID           0
#define VHDX_MDE_OFFSET            16  /* u32: from the region's start */
#define VHDX_MDE_LENGTH            20  /* u32 */
#define VHDX_MDE_FLAGS             24  /* u32 */
#define VHDX_MDE_IS_USER           1u
#define VHDX_MDE_IS_VIRTUAL_DISK   2u
#define VHDX_MDE_IS_REQUIRED       4u

_Static_assert(VHDX_MD_ENTRIES + VHDX_MD_MAX_ENTRIES * VHDX_MDE_SIZE <=
               VHDX_METADATA_TABLE_SIZE, "layout");

/* File parameters item: */
#define VHDX_PARAM_BLOCK_SIZE      0   /* u32 */
#define VHDX_PARAM_FLAGS           4   /* u32 */
#define VHDX_PARAM_LEAVE_ALLOCATED 1u  /* fixed disk */
#define VHDX_PARAM_HAS_PARENT      2u  /* differencing disk */
#define VHDX_BLOCK_SIZE_MIN        VHDX_MIB
#define VHDX_BLOCK_SIZE_MAX        (256u * VHDX_MIB)
#define VHDX_MAX_IMAGE_SIZE        (64ull << 40)   /* 64 TiB */

/* Parent locator item (2.6.2.6): a header, then entries whose keys and
 * values (UTF-16LE, no NUL) lie at offsets from the item's start. */
#define VHDX_PL_TYPE               0   /* GUID: the locator type */
#define VHDX_PL_RESERVED           16  /* u16 */
#define VHDX_PL_KEY_VALUE_COUNT    18  /* u16 */
#define VHDX_PL_HEADER_SIZE        20
#define VHDX_PLE_KEY_OFFSET        0   /* u32, > 0 */
#define VHDX_PLE_VALUE_OFFSET      4   /* u32, > 0 */
#define VHDX_PLE_KEY_LENGTH        8   /* u16 bytes, > 0 */
#define VHDX_PLE_VALUE_LENGTH      10  /* u16 bytes, > 0 */
#define VHDX_PLE_SIZE              12

_Static_assert(VHDX_PL_KEY_VALUE_COUNT + 2 == VHDX_PL_HEADER_SIZE, "layout");
_Static_assert(VHDX_PLE_VALUE_LENGTH + 2 == VHDX_PLE_SIZE, "layout");

/* ---- GUIDs, as stored ------------------------------------------------- */

#define VHDX_GUID_BAT                                                     \
    { 0x66, 0x77, 0xc2, 0x2d, 0x23, 0xf6, 0x00, 0x42,                    \
      0x9d, 0x64, 0x11, 0x5e, 0x9b, 0xfd, 0x4a, 0x08 }
#define VHDX_GUID_METADATA                                                \
    { 0x06, 0xa2, 0x7c, 0x8b, 0x90, 0x47, 0x9a, 0x4b,                    \
      0xb8, 0xfe, 0x57, 0x5f, 0x05, 0x0f, 0x88, 0x6e }
#define VHDX_GUID_FILE_PARAMETERS                                         \
    { 0x37, 0x67, 0xa1, 0xca, 0x36, 0xfa, 0x43, 0x4d,                    \
      0xb3, 0xb6, 0x33, 0xf0, 0xaa, 0x44, 0xe7, 0x6b }
#define VHDX_GUID_VIRTUAL_DISK_SIZE                                       \
    { 0x24, 0x42, 0xa5, 0x2f, 0x1b, 0xcd, 0x76, 0x48,                    \
      0xb2, 0x11, 0x5d, 0xbe, 0xd8, 0x3b, 0xf4, 0xb8 }
#define VHDX_GUID_PAGE83                                                  \
    { 0xab, 0x12, 0xca, 0xbe, 0xe6, 0xb2, 0x23, 0x45,                    \
      0x93, 0xef, 0xc3, 0x09, 0xe0, 0x00, 0xc7, 0x46 }
#define VHDX_GUID_LOGICAL_SECTOR                                          \
    { 0x1d, 0xbf, 0x41, 0x81, 0x6f, 0xa9, 0x09, 0x47,                    \
      0xba, 0x47, 0xf2, 0x33, 0xa8, 0xfa, 0xab, 0x5f }
#define VHDX_GUID_PHYSICAL_SECTOR                                         \
    { 0xc7, 0x48, 0xa3, 0xcd, 0x5d, 0x44, 0x71, 0x44,                    \
      0x9c, 0xc9, 0xe9, 0x88, 0x52, 0x51, 0xc5, 0x56 }
#define VHDX_GUID_PARENT_LOCATOR                                          \
    { 0x2d, 0x5f, 0xd3, 0xa8, 0x0b, 0xb3, 0x4d, 0x45,                    \
      0xab, 0xf7, 0xd3, 0xd8, 0x48, 0x34, 0xab, 0x0c }
/* The only locator type defined (2.6.2.6.3), a VHDX parent:
 * B04AEFB7-D19E-4A81-B789-25B8E9445913. */
#define VHDX_GUID_VHDX_LOCATOR_TYPE                                       \
    { 0xb7, 0xef, 0x4a, 0xb0, 0x9e, 0xd1, 0x81, 0x4a,                    \
      0xb7, 0x89, 0x25, 0xb8, 0xe9, 0x44, 0x59, 0x13 }

#endif
