/* QED on-disk layout, from QEMU's docs/interop/qed_spec.txt ("Header",
 * "Tables"): byte offsets of the header fields and the special table
 * entries. All fields are little-endian; read and write them with
 * common/byteswap.h. No packed structs. */
#ifndef VIMG_QED_ONDISK_H
#define VIMG_QED_ONDISK_H

#include <stdint.h>

#include "../../common/byteswap.h"

#define QED_MAGIC 0x00444551u /* "QED\0" read little-endian */

#define QED_HDR_MAGIC                    0  /* u32 */
#define QED_HDR_CLUSTER_SIZE             4  /* u32: bytes */
#define QED_HDR_TABLE_SIZE               8  /* u32: clusters per table */
#define QED_HDR_HEADER_SIZE             12  /* u32: clusters */
#define QED_HDR_FEATURES                16  /* u64 */
#define QED_HDR_COMPAT_FEATURES         24  /* u64 */
#define QED_HDR_AUTOCLEAR_FEATURES      32  /* u64 */
#define QED_HDR_L1_TABLE_OFFSET         40  /* u64: bytes */
#define QED_HDR_IMAGE_SIZE              48  /* u64: guest bytes */
#define QED_HDR_BACKING_FILENAME_OFFSET 56  /* u32: bytes from the start */
#define QED_HDR_BACKING_FILENAME_SIZE   60  /* u32: bytes, no NUL */
#define QED_HDR_LENGTH                  64

_Static_assert(QED_HDR_CLUSTER_SIZE == QED_HDR_MAGIC + 4, "layout");
_Static_assert(QED_HDR_TABLE_SIZE == QED_HDR_CLUSTER_SIZE + 4, "layout");
_Static_assert(QED_HDR_HEADER_SIZE == QED_HDR_TABLE_SIZE + 4, "layout");
_Static_assert(QED_HDR_FEATURES == QED_HDR_HEADER_SIZE + 4, "layout");
_Static_assert(QED_HDR_COMPAT_FEATURES == QED_HDR_FEATURES + 8, "layout");
_Static_assert(QED_HDR_AUTOCLEAR_FEATURES == QED_HDR_COMPAT_FEATURES + 8,
               "layout");
_Static_assert(QED_HDR_L1_TABLE_OFFSET == QED_HDR_AUTOCLEAR_FEATURES + 8,
               "layout");
_Static_assert(QED_HDR_IMAGE_SIZE == QED_HDR_L1_TABLE_OFFSET + 8, "layout");
_Static_assert(QED_HDR_BACKING_FILENAME_OFFSET == QED_HDR_IMAGE_SIZE + 8,
               "layout");
_Static_assert(QED_HDR_BACKING_FILENAME_SIZE ==
               QED_HDR_BACKING_FILENAME_OFFSET + 4, "layout");
_Static_assert(QED_HDR_LENGTH == QED_HDR_BACKING_FILENAME_SIZE + 4,
               "layout");

/* Feature bits ("features"): an image with any other bit set must not be
 * opened. There are no compat or autoclear bits yet. */
#define QED_F_BACKING_FILE            0x01u
#define QED_F_NEED_CHECK              0x02u
#define QED_F_BACKING_FORMAT_NO_PROBE 0x04u
#define QED_FEATURE_MASK \
    (QED_F_BACKING_FILE | QED_F_NEED_CHECK | QED_F_BACKING_FORMAT_NO_PROBE)

#define QED_MIN_CLUSTER_SIZE (4u << 10)
#define QED_MAX_CLUSTER_SIZE (64u << 20)
#define QED_DEFAULT_CLUSTER_SIZE (64u << 10)
#define QED_MIN_TABLE_SIZE 1u
#define QED_MAX_TABLE_SIZE 16u
#define QED_DEFAULT_TABLE_SIZE 4u

/* Table entries: the byte offset of an L2 table or a data cluster, aligned
 * to the cluster size; 0 is unallocated, and in L2 tables 1 is a zero
 * cluster (reads as zeros, hides the backing file). */
#define QED_ENTRY_SIZE 8
#define QED_ZERO_CLUSTER 1u

#endif
