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
/* ESX "COWD" sparse extents (vmfsSparse), recognised to be refused. */
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

#endif
