/* qcow (version 1) on-disk layout, from QEMU's block/qcow.c (the format
 * has no other specification): byte offsets of the header fields and the
 * table entry bits. All fields are big-endian; read and write them with
 * common/byteswap.h. No packed structs. */
#ifndef VIMG_QCOW1_ONDISK_H
#define VIMG_QCOW1_ONDISK_H

#include <stdint.h>

#include "../../common/byteswap.h"

#define QCOW1_MAGIC 0x514649fbu /* "QFI\xfb", as qcow2 */
#define QCOW1_VERSION 1

#define QCOW1_HDR_MAGIC               0  /* u32 */
#define QCOW1_HDR_VERSION             4  /* u32: 1 */
#define QCOW1_HDR_BACKING_FILE_OFFSET 8  /* u64, 0: none */
#define QCOW1_HDR_BACKING_FILE_SIZE  16  /* u32 */
#define QCOW1_HDR_MTIME              20  /* u32, written as 0 */
#define QCOW1_HDR_SIZE               24  /* u64: virtual size in bytes */
#define QCOW1_HDR_CLUSTER_BITS       32  /* u8: 9..16 */
#define QCOW1_HDR_L2_BITS            33  /* u8: 6..13 (entries per table) */
#define QCOW1_HDR_PADDING            34  /* u16 */
#define QCOW1_HDR_CRYPT_METHOD       36  /* u32: 0 none, 1 AES */
#define QCOW1_HDR_L1_TABLE_OFFSET    40  /* u64 */
#define QCOW1_HDR_LENGTH             48

_Static_assert(QCOW1_HDR_VERSION == QCOW1_HDR_MAGIC + 4, "layout");
_Static_assert(QCOW1_HDR_BACKING_FILE_SIZE ==
               QCOW1_HDR_BACKING_FILE_OFFSET + 8, "layout");
_Static_assert(QCOW1_HDR_MTIME == QCOW1_HDR_BACKING_FILE_SIZE + 4, "layout");
_Static_assert(QCOW1_HDR_SIZE == QCOW1_HDR_MTIME + 4, "layout");
_Static_assert(QCOW1_HDR_CLUSTER_BITS == QCOW1_HDR_SIZE + 8, "layout");
_Static_assert(QCOW1_HDR_PADDING == QCOW1_HDR_L2_BITS + 1, "layout");
_Static_assert(QCOW1_HDR_CRYPT_METHOD == QCOW1_HDR_PADDING + 2, "layout");
_Static_assert(QCOW1_HDR_L1_TABLE_OFFSET == QCOW1_HDR_CRYPT_METHOD + 4,
               "layout");
_Static_assert(QCOW1_HDR_LENGTH == QCOW1_HDR_L1_TABLE_OFFSET + 8, "layout");

#define QCOW1_CRYPT_NONE 0
#define QCOW1_CRYPT_AES  1

#define QCOW1_MIN_CLUSTER_BITS 9
#define QCOW1_MAX_CLUSTER_BITS 16
#define QCOW1_MIN_L2_BITS 6   /* 512-byte tables */
#define QCOW1_MAX_L2_BITS 13  /* 64 KiB tables */
#define QCOW1_MAX_BACKING_NAME 1023

/* L1 entries: the byte offset of an L2 table, 0 when none. L2 entries: the
 * byte offset of a cluster, 0 when unallocated; with bit 63 a compressed
 * cluster: bits 0..(62 - cluster_bits) the byte offset, the bits above
 * (below bit 63) the compressed length in bytes. */
#define QCOW1_OFLAG_COMPRESSED (1ull << 63)
#define QCOW1_ENTRY_SIZE 8

#endif
