/* VMDK on-disk layout, from VMware's "Virtual Disk Format 5.0" technical
 * note (section "Hosted Sparse Extent Header", "Stream-Optimized
 * Compressed Sparse Extents") and open-vmdk's vmware_vmdk.h: byte offsets
 * of the sparse extent header and of the stream markers. All fields are
 * little-endian; read and write them with common/byteswap.h. No packed
 * structs. */
#ifndef VIMG_VMDK_ONDISK_H
#define VIMG_VMDK_ONDISK_H

#include <stdint.h>

#include "../../../common/byteswap.h"

#define VMDK_SECTOR 512u

/* "KDMV" little-endian: the file starts with the bytes 'K' 'D' 'M' 'V'. */
#define VMDK4_MAGIC 0x564d444bu
/* ESX "COWD" sparse extents (vmfsSparse redo logs). */
#define VMDK3_MAGIC 0x44574f43u

/* ---- Sparse extent header (one sector) ------------------------------ */

#define VMDK_HDR_MAGIC          0  /* u32 */
#define VMDK_HDR_VERSION        4  /* u32: 1, 2 (zeroed grains), 3 */
#define VMDK_HDR_FLAGS          8  /* u32 */
#define VMDK_HDR_CAPACITY      12  /* u64: sectors */
#define VMDK_HDR_GRAIN_SIZE    20  /* u64: sectors per grain */
#define VMDK_HDR_DESC_OFFSET   28  /* u64: sectors, 0 when none */
#define VMDK_HDR_DESC_SIZE     36  /* u64: sectors */
#define VMDK_HDR_NUM_GTES      44  /* u32: entries per grain table */
#define VMDK_HDR_RGD_OFFSET    48  /* u64: redundant grain directory */
#define VMDK_HDR_GD_OFFSET     56  /* u64: grain directory, or GD_AT_END */
#define VMDK_HDR_OVERHEAD      64  /* u64: sectors before the first grain */
#define VMDK_HDR_UNCLEAN       72  /* u8 */
#define VMDK_HDR_NL_SINGLE     73  /* '\n' */
#define VMDK_HDR_NL_NON        74  /* ' ' */
#define VMDK_HDR_NL_DOUBLE1    75  /* '\r' */
#define VMDK_HDR_NL_DOUBLE2    76  /* '\n' */
#define VMDK_HDR_COMPRESS_ALGO 77  /* u16 */
#define VMDK_HDR_PAD           79  /* 433 bytes of zeros */
#define VMDK_HDR_SIZE         512

_Static_assert(VMDK_HDR_VERSION == VMDK_HDR_MAGIC + 4, "layout");
_Static_assert(VMDK_HDR_FLAGS == VMDK_HDR_VERSION + 4, "layout");
_Static_assert(VMDK_HDR_CAPACITY == VMDK_HDR_FLAGS + 4, "layout");
_Static_assert(VMDK_HDR_GRAIN_SIZE == VMDK_HDR_CAPACITY + 8, "layout");
_Static_assert(VMDK_HDR_DESC_OFFSET == VMDK_HDR_GRAIN_SIZE + 8, "layout");
_Static_assert(VMDK_HDR_DESC_SIZE == VMDK_HDR_DESC_OFFSET + 8, "layout");
_Static_assert(VMDK_HDR_NUM_GTES == VMDK_HDR_DESC_SIZE + 8, "layout");
_Static_assert(VMDK_HDR_RGD_OFFSET == VMDK_HDR_NUM_GTES + 4, "layout");
_Static_assert(VMDK_HDR_GD_OFFSET == VMDK_HDR_RGD_OFFSET + 8, "layout");
_Static_assert(VMDK_HDR_OVERHEAD == VMDK_HDR_GD_OFFSET + 8, "layout");
_Static_assert(VMDK_HDR_UNCLEAN == VMDK_HDR_OVERHEAD + 8, "layout");
_Static_assert(VMDK_HDR_COMPRESS_ALGO == VMDK_HDR_NL_DOUBLE2 + 1, "layout");
_Static_assert(VMDK_HDR_PAD + 433 == VMDK_HDR_SIZE, "layout");

/* flags: the low 16 bits are compatible, the high 16 incompatible. */
#define VMDK_FLAG_NL_DETECT   (1u << 0)  /* newline check bytes are valid */
#define VMDK_FLAG_RGD         (1u << 1)  /* redundant grain directory */
#define VMDK_FLAG_ZERO_GRAIN  (1u << 2)  /* GTE 1 means a zeroed grain */
#define VMDK_FLAG_COMPRESSED  (1u << 16) /* grains are compressed */
#define VMDK_FLAG_MARKERS     (1u << 17) /* stream markers (embedded LBA) */
#define VMDK_FLAG_INCOMPAT    0xffff0000u

#define VMDK_COMPRESS_NONE    0
#define VMDK_COMPRESS_DEFLATE 1

/* gd_offset of a stream whose grain directory follows the grains: the
 * footer (a copy of the header) near the end of the file says where. */
#define VMDK_GD_AT_END        0xffffffffffffffffull

/* Grain table entries: a sector number, or these. */
#define VMDK_GTE_EMPTY        0u
#define VMDK_GTE_ZEROED       1u

/* ---- Stream markers ------------------------------------------------- */
/* A grain marker: u64 LBA of the grain, u32 compressed size, then the
 * compressed bytes, padded to a sector. A metadata marker fills a whole
 * sector: u64 sectors of metadata that follow, u32 size 0, u32 type. */
#define VMDK_MARKER_VAL   0  /* u64: LBA, or sectors of metadata */
#define VMDK_MARKER_SIZE  8  /* u32: compressed size; 0 for metadata */
#define VMDK_MARKER_TYPE 12  /* u32: metadata markers only */
#define VMDK_GRAIN_MARKER_SIZE 12 /* compressed bytes start here */
_Static_assert(VMDK_MARKER_TYPE == VMDK_GRAIN_MARKER_SIZE, "layout");

#define VMDK_MARKER_EOS    0
#define VMDK_MARKER_GT     1
#define VMDK_MARKER_GD     2
#define VMDK_MARKER_FOOTER 3

/* ---- ESX COWD sparse extent header (VMware's COWDisk_Header, as QEMU's
 * vmdk_open_vmfs_sparse and libyal's libvmdk read it) ------------------
 * Four sectors; all fields u32, little-endian, sizes in sectors. Grain
 * tables hold a fixed 4096 entries, each a grain's sector or 0. */
#define VMDK3_HDR_MAGIC       0
#define VMDK3_HDR_VERSION     4
#define VMDK3_HDR_FLAGS       8
#define VMDK3_HDR_CAPACITY   12  /* disk sectors */
#define VMDK3_HDR_GRAIN      16  /* sectors per grain */
#define VMDK3_HDR_GD_OFFSET  20  /* sector of the grain directory */
#define VMDK3_HDR_GD_ENTRIES 24
#define VMDK3_HDR_FREE       28  /* next free sector */
#define VMDK3_HDR_SIZE     2048
#define VMDK3_GTES         4096
_Static_assert(VMDK3_HDR_GRAIN == VMDK3_HDR_CAPACITY + 4, "layout");
_Static_assert(VMDK3_HDR_FREE == VMDK3_HDR_GD_ENTRIES + 4, "layout");

/* ---- ESXi seSparse extents (not published by VMware; the layout QEMU's
 * vmdk_open_se_sparse reads). A constant header (one sector) of u64
 * fields, sizes and offsets in sectors; a volatile header. ------------ */
#define SE_MAGIC             0x00000000cafebabeull
#define SE_VOLATILE_MAGIC    0x00000000cafecafeull
#define SE_VERSION           0x0000000200000001ull
#define SE_HDR_MAGIC           0
#define SE_HDR_VERSION         8
#define SE_HDR_CAPACITY       16
#define SE_HDR_GRAIN_SIZE     24  /* sectors: 8 */
#define SE_HDR_GT_SIZE        32  /* sectors per grain table: 64 */
#define SE_HDR_FLAGS          40
#define SE_HDR_RESERVED       48  /* four u64, zero */
#define SE_HDR_VOLATILE       80  /* offset, size */
#define SE_HDR_JOURNAL_HDR    96  /* offset, size */
#define SE_HDR_JOURNAL       112  /* offset, size */
#define SE_HDR_GD            128  /* offset, size */
#define SE_HDR_GT            144  /* offset, size: the grain table area */
#define SE_HDR_FREE_BITMAP   160  /* offset, size */
#define SE_HDR_BACKMAP       176  /* offset, size */
#define SE_HDR_GRAINS        192  /* offset, size: the grain area */
#define SE_HDR_PAD           208  /* 304 bytes of zeros */
_Static_assert(SE_HDR_PAD + 304 == VMDK_SECTOR, "layout");
_Static_assert(SE_HDR_GRAINS == SE_HDR_VOLATILE + 7 * 16, "layout");
#define SE_VOL_MAGIC           0
#define SE_VOL_FREE_GT         8
#define SE_VOL_NEXT_TXN       16
#define SE_VOL_REPLAY_JOURNAL 24
#define SE_VOL_PAD            32  /* 480 bytes of zeros */
_Static_assert(SE_VOL_PAD + 480 == VMDK_SECTOR, "layout");
#define SE_GRAIN_SECTORS       8
#define SE_GT_SECTORS         64
/* Grain directory entries: 0, or this in the top 32 bits and the grain
 * table's index below. Grain table entries: the top nibble says what the
 * grain is; an allocated grain's index is scattered over the rest. */
#define SE_GDE_ALLOCATED  0x10000000u
#define SE_GTE_TYPE(v)    ((v) >> 60)
#define SE_GTE_UNALLOC    0u
#define SE_GTE_UNMAPPED   1u  /* SCSI-unmapped: reads as zeros */
#define SE_GTE_ZERO       2u
#define SE_GTE_ALLOCATED  3u
#define SE_GTE_INDEX(v) \
    ((((v) & 0x0fff000000000000ull) >> 48) | \
     (((v) & 0x0000ffffffffffffull) << 12))

#endif
