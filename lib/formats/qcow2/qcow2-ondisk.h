/* qcow2 on-disk layout, from QEMU docs/interop/qcow2.txt: byte offsets of
 * every field we use, entry bit masks and extension magics. All multi-byte
 * fields are big-endian; read and write them with common/byteswap.h
 * (load_be32(buf + QCOW2_HDR_VERSION), ...). No packed structs. */
#ifndef VIMG_QCOW2_ONDISK_H
#define VIMG_QCOW2_ONDISK_H

#include <stdint.h>

#include "../../../common/byteswap.h"

#define QCOW2_MAGIC 0x514649fbu /* "QFI\xfb" */

/* ---- Header ---------------------------------------------------------- */

#define QCOW2_HDR_MAGIC                   0  /* u32 */
#define QCOW2_HDR_VERSION                 4  /* u32: 2 or 3 */
#define QCOW2_HDR_BACKING_FILE_OFFSET     8  /* u64 */
#define QCOW2_HDR_BACKING_FILE_SIZE      16  /* u32 */
#define QCOW2_HDR_CLUSTER_BITS           20  /* u32 */
#define QCOW2_HDR_SIZE                   24  /* u64: virtual size */
#define QCOW2_HDR_CRYPT_METHOD           32  /* u32 */
#define QCOW2_HDR_L1_SIZE                36  /* u32: entries */
#define QCOW2_HDR_L1_TABLE_OFFSET        40  /* u64 */
#define QCOW2_HDR_REFCOUNT_TABLE_OFFSET  48  /* u64 */
#define QCOW2_HDR_REFCOUNT_TABLE_CLUSTERS 56 /* u32 */
#define QCOW2_HDR_NB_SNAPSHOTS           60  /* u32 */
#define QCOW2_HDR_SNAPSHOTS_OFFSET       64  /* u64 */
#define QCOW2_HDR_V2_LENGTH              72  /* version 2 header ends here */
/* Version 3 only: */
#define QCOW2_HDR_INCOMPATIBLE_FEATURES  72  /* u64 */
#define QCOW2_HDR_COMPATIBLE_FEATURES    80  /* u64 */
#define QCOW2_HDR_AUTOCLEAR_FEATURES     88  /* u64 */
#define QCOW2_HDR_REFCOUNT_ORDER         96  /* u32 */
#define QCOW2_HDR_HEADER_LENGTH         100  /* u32 */
#define QCOW2_HDR_V3_MIN_LENGTH         104  /* smallest valid v3 header */
#define QCOW2_HDR_COMPRESSION_TYPE      104  /* u8, if header_length > 104 */
/* QEMU writes v3 headers of 112 bytes: compression type + 7 bytes padding
 * to keep extensions 8-byte aligned. */
#define QCOW2_HDR_V3_LENGTH             112

_Static_assert(QCOW2_HDR_VERSION == QCOW2_HDR_MAGIC + 4, "layout");
_Static_assert(QCOW2_HDR_BACKING_FILE_SIZE ==
               QCOW2_HDR_BACKING_FILE_OFFSET + 8, "layout");
_Static_assert(QCOW2_HDR_CLUSTER_BITS == QCOW2_HDR_BACKING_FILE_SIZE + 4,
               "layout");
_Static_assert(QCOW2_HDR_SIZE == QCOW2_HDR_CLUSTER_BITS + 4, "layout");
_Static_assert(QCOW2_HDR_CRYPT_METHOD == QCOW2_HDR_SIZE + 8, "layout");
_Static_assert(QCOW2_HDR_L1_SIZE == QCOW2_HDR_CRYPT_METHOD + 4, "layout");
_Static_assert(QCOW2_HDR_L1_TABLE_OFFSET == QCOW2_HDR_L1_SIZE + 4, "layout");
_Static_assert(QCOW2_HDR_REFCOUNT_TABLE_OFFSET ==
               QCOW2_HDR_L1_TABLE_OFFSET + 8, "layout");
_Static_assert(QCOW2_HDR_REFCOUNT_TABLE_CLUSTERS ==
               QCOW2_HDR_REFCOUNT_TABLE_OFFSET + 8, "layout");
_Static_assert(QCOW2_HDR_NB_SNAPSHOTS ==
               QCOW2_HDR_REFCOUNT_TABLE_CLUSTERS + 4, "layout");
_Static_assert(QCOW2_HDR_SNAPSHOTS_OFFSET == QCOW2_HDR_NB_SNAPSHOTS + 4,
               "layout");
_Static_assert(QCOW2_HDR_INCOMPATIBLE_FEATURES ==
               QCOW2_HDR_SNAPSHOTS_OFFSET + 8, "layout");
_Static_assert(QCOW2_HDR_COMPATIBLE_FEATURES ==
               QCOW2_HDR_INCOMPATIBLE_FEATURES + 8, "layout");
_Static_assert(QCOW2_HDR_AUTOCLEAR_FEATURES ==
               QCOW2_HDR_COMPATIBLE_FEATURES + 8, "layout");
_Static_assert(QCOW2_HDR_REFCOUNT_ORDER == QCOW2_HDR_AUTOCLEAR_FEATURES + 8,
               "layout");
_Static_assert(QCOW2_HDR_HEADER_LENGTH == QCOW2_HDR_REFCOUNT_ORDER + 4,
               "layout");
_Static_assert(QCOW2_HDR_V3_MIN_LENGTH == QCOW2_HDR_HEADER_LENGTH + 4,
               "layout");

/* crypt_method */
#define QCOW2_CRYPT_NONE 0
#define QCOW2_CRYPT_AES  1
#define QCOW2_CRYPT_LUKS 2

/* Incompatible feature bits. */
#define QCOW2_INCOMPAT_DIRTY       (1ull << 0)
#define QCOW2_INCOMPAT_CORRUPT     (1ull << 1)
#define QCOW2_INCOMPAT_DATA_FILE   (1ull << 2)
#define QCOW2_INCOMPAT_COMPRESSION (1ull << 3)
#define QCOW2_INCOMPAT_EXTL2       (1ull << 4)
#define QCOW2_INCOMPAT_MASK        0x1full
/* Compatible feature bits. */
#define QCOW2_COMPAT_LAZY_REFCOUNTS (1ull << 0)
/* Autoclear feature bits. */
#define QCOW2_AUTOCLEAR_BITMAPS       (1ull << 0)
#define QCOW2_AUTOCLEAR_DATA_FILE_RAW (1ull << 1)
#define QCOW2_AUTOCLEAR_MASK          0x3ull

/* compression_type */
#define QCOW2_COMPRESSION_ZLIB 0
#define QCOW2_COMPRESSION_ZSTD 1

/* Limits of the format itself. */
#define QCOW2_MIN_CLUSTER_BITS 9
#define QCOW2_MAX_CLUSTER_BITS 21
#define QCOW2_MAX_REFCOUNT_ORDER 6
#define QCOW2_MAX_BACKING_NAME 1023

/* ---- Header extensions ------------------------------------------------ */
/* Each: u32 type, u32 length, data, padding to 8 bytes. */

#define QCOW2_EXT_TYPE   0 /* u32 */
#define QCOW2_EXT_LENGTH 4 /* u32 */
#define QCOW2_EXT_DATA   8

#define QCOW2_EXT_END            0x00000000u
#define QCOW2_EXT_BACKING_FORMAT 0xe2792acau
#define QCOW2_EXT_FEATURE_TABLE  0x6803f857u
#define QCOW2_EXT_CRYPTO_HEADER  0x0537be77u
#define QCOW2_EXT_BITMAPS        0x23852875u
#define QCOW2_EXT_DATA_FILE      0x44415441u

/* Feature name table entry (48 bytes). */
#define QCOW2_FEAT_TYPE  0 /* u8: 0 incompatible, 1 compatible, 2 autoclear */
#define QCOW2_FEAT_BIT   1 /* u8 */
#define QCOW2_FEAT_NAME  2 /* 46 bytes, NUL-padded (not terminated if 46) */
#define QCOW2_FEAT_NAME_LEN 46
#define QCOW2_FEAT_ENTRY_SIZE 48
_Static_assert(QCOW2_FEAT_NAME + QCOW2_FEAT_NAME_LEN == QCOW2_FEAT_ENTRY_SIZE,
               "layout");

#define QCOW2_FEAT_TYPE_INCOMPATIBLE 0
#define QCOW2_FEAT_TYPE_COMPATIBLE   1
#define QCOW2_FEAT_TYPE_AUTOCLEAR    2

/* Full disk encryption header pointer extension (16 bytes). */
#define QCOW2_CRYPTO_EXT_OFFSET 0 /* u64 */
#define QCOW2_CRYPTO_EXT_LENGTH 8 /* u64 */
#define QCOW2_CRYPTO_EXT_SIZE   16

/* Bitmaps extension (24 bytes). */
#define QCOW2_BITMAPS_EXT_NB_BITMAPS 0  /* u32 */
#define QCOW2_BITMAPS_EXT_RESERVED   4  /* u32, zero */
#define QCOW2_BITMAPS_EXT_DIR_SIZE   8  /* u64 */
#define QCOW2_BITMAPS_EXT_DIR_OFFSET 16 /* u64 */
#define QCOW2_BITMAPS_EXT_SIZE       24
_Static_assert(QCOW2_BITMAPS_EXT_DIR_OFFSET + 8 == QCOW2_BITMAPS_EXT_SIZE,
               "layout");

/* Bitmap directory entry: fixed part, then extra data, name, padding. */
#define QCOW2_BMDIR_TABLE_OFFSET     0  /* u64 */
#define QCOW2_BMDIR_TABLE_SIZE       8  /* u32: entries */
#define QCOW2_BMDIR_FLAGS           12  /* u32 */
#define QCOW2_BMDIR_TYPE            16  /* u8 */
#define QCOW2_BMDIR_GRANULARITY     17  /* u8: bits */
#define QCOW2_BMDIR_NAME_SIZE       18  /* u16 */
#define QCOW2_BMDIR_EXTRA_DATA_SIZE 20  /* u32 */
#define QCOW2_BMDIR_FIXED_SIZE      24
_Static_assert(QCOW2_BMDIR_EXTRA_DATA_SIZE + 4 == QCOW2_BMDIR_FIXED_SIZE,
               "layout");
#define QCOW2_BMDIR_FLAG_IN_USE (1u << 0)
#define QCOW2_BMDIR_FLAG_AUTO   (1u << 1)
#define QCOW2_BMDIR_FLAGS_RESERVED 0xfffffffcu
#define QCOW2_BMDIR_TYPE_DIRTY  1 /* the only type: dirty tracking */
/* Bitmap table entry: bits 9-55 cluster offset; bit 0 "all ones" when the
 * offset is 0; bits 1-8 and 56-63 reserved. A data cluster holds bit K of
 * its part of the bitmap in byte K / 8, bit K % 8 (QEMU serialises
 * little-endian words). */
#define QCOW2_BMT_OFFSET_MASK 0x00fffffffffffe00ull
#define QCOW2_BMT_ALL_ONES    1ull
#define QCOW2_BMT_RESERVED    0xff000000000001feull

/* ---- L1, L2 and refcount table entries ------------------------------- */

/* L1 entry: bits 9-55 L2 table offset, bit 63 "copied" (refcount 1). */
#define QCOW2_L1E_OFFSET_MASK 0x00fffffffffffe00ull
#define QCOW2_L1E_COPIED      (1ull << 63)
#define QCOW2_L1E_RESERVED    0x7f000000000001ffull
/* L2 entry (standard cluster): bit 0 reads as zeros (v3), bits 9-55 host
 * cluster offset, bit 62 compressed, bit 63 copied. */
#define QCOW2_L2E_ZERO        1ull
#define QCOW2_L2E_OFFSET_MASK 0x00fffffffffffe00ull
#define QCOW2_L2E_COMPRESSED  (1ull << 62)
#define QCOW2_L2E_COPIED      (1ull << 63)
#define QCOW2_L2E_RESERVED    0x3f000000000001feull
/* Compressed cluster descriptor (bits 0-61): with x = 62 - (cluster_bits -
 * 8), bits 0..x-1 are the host byte offset and bits x..61 the number of
 * additional 512-byte sectors. */
#define QCOW2_COMPRESSED_SECTOR_SIZE 512
static inline unsigned qcow2_compressed_offset_bits(unsigned cluster_bits)
{
    return 62 - (cluster_bits - 8);
}
/* Refcount table entry: bits 9-63 refcount block offset. */
#define QCOW2_RTE_OFFSET_MASK 0xfffffffffffffe00ull
#define QCOW2_RTE_RESERVED    0x1ffull

/* L1 and L2 entries and refcount table entries are 8 bytes. */
#define QCOW2_ENTRY_SIZE 8

/* Extended L2 entries (incompatible bit 4): the standard entry, whose bit
 * 0 is then reserved, then a 64-bit subcluster bitmap splitting the
 * cluster into 32 subclusters: bit n (0-31) "subcluster n is allocated",
 * bit 32+n "subcluster n reads as zeros". Both set is invalid, and a
 * compressed cluster's bitmap must be 0. */
#define QCOW2_EXTL2_ENTRY_SIZE   16
#define QCOW2_EXTL2_SUBCLUSTERS  32
#define QCOW2_EXTL2_ALL_ALLOC    0x00000000ffffffffull
#define QCOW2_EXTL2_ALL_ZERO     0xffffffff00000000ull
/* Subclusters are at least 512 bytes: clusters of at least 16 KiB. */
#define QCOW2_EXTL2_MIN_CLUSTER_BITS 14

/* ---- Snapshot table --------------------------------------------------- */
/* Each entry: fixed part, extra data, id string, name string, padding to
 * a multiple of 8 bytes. */

#define QCOW2_SN_L1_TABLE_OFFSET  0  /* u64 */
#define QCOW2_SN_L1_SIZE          8  /* u32 */
#define QCOW2_SN_ID_STR_SIZE     12  /* u16 */
#define QCOW2_SN_NAME_SIZE       14  /* u16 */
#define QCOW2_SN_DATE_SEC        16  /* u32 */
#define QCOW2_SN_DATE_NSEC       20  /* u32 */
#define QCOW2_SN_VM_CLOCK_NSEC   24  /* u64 */
#define QCOW2_SN_VM_STATE_SIZE   32  /* u32 */
#define QCOW2_SN_EXTRA_DATA_SIZE 36  /* u32 */
#define QCOW2_SN_FIXED_SIZE      40
_Static_assert(QCOW2_SN_EXTRA_DATA_SIZE + 4 == QCOW2_SN_FIXED_SIZE,
               "layout");
/* Extra data, each field present only if extra_data_size covers it. */
#define QCOW2_SN_EXTRA_VM_STATE_SIZE_LARGE 0  /* u64 */
#define QCOW2_SN_EXTRA_DISK_SIZE           8  /* u64 */
#define QCOW2_SN_EXTRA_ICOUNT             16  /* u64, -1 when unknown */
#define QCOW2_SN_EXTRA_SIZE_V3            16  /* required in version 3 */
#define QCOW2_SN_EXTRA_SIZE_MAX           24  /* the fields known */
/* Extra data QEMU accepts per entry (QCOW_MAX_SNAPSHOT_EXTRA_DATA). */
#define QCOW2_SN_EXTRA_MAX              1024

#endif
