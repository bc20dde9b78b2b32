/* VHD (QEMU's "vpc") on-disk layout, from Microsoft's "Virtual Hard Disk
 * Image Format Specification" version 1.0 (2006): the hard disk footer
 * (section "Hard Disk Footer Format") and the dynamic disk header
 * ("Dynamic Disk Header Format"). Every field is big-endian; read and
 * write them with common/byteswap.h. No packed structs. */
#ifndef VIMG_VPC_ONDISK_H
#define VIMG_VPC_ONDISK_H

#include <stdint.h>

#include "../../common/byteswap.h"

#define VPC_SECTOR 512u

/* ---- Hard disk footer (512 bytes; at the end of every VHD, and a copy at
 * offset 0 of dynamic and differencing disks) ---------------------------- */

#define VPC_FOOTER_SIZE          512u
#define VPC_FTR_COOKIE             0  /* char[8] "conectix" */
#define VPC_FTR_FEATURES           8  /* u32: 2 = reserved bit, always set */
#define VPC_FTR_VERSION           12  /* u32: 0x00010000 */
#define VPC_FTR_DATA_OFFSET       16  /* u64: dynamic header, or all ones */
#define VPC_FTR_TIMESTAMP         24  /* u32: seconds since 2000-01-01 UTC */
#define VPC_FTR_CREATOR_APP       28  /* char[4] */
#define VPC_FTR_CREATOR_VERSION   32  /* u32 */
#define VPC_FTR_CREATOR_OS        36  /* char[4] */
#define VPC_FTR_ORIGINAL_SIZE     40  /* u64: bytes at creation */
#define VPC_FTR_CURRENT_SIZE      48  /* u64: bytes */
#define VPC_FTR_CYLINDERS         56  /* u16 */
#define VPC_FTR_HEADS             58  /* u8 */
#define VPC_FTR_SECTORS           59  /* u8: sectors per track */
#define VPC_FTR_DISK_TYPE         60  /* u32: VPC_TYPE_* */
#define VPC_FTR_CHECKSUM          64  /* u32: one's complement of the byte
                                         sum with this field zero */
#define VPC_FTR_UNIQUE_ID         68  /* u8[16] */
#define VPC_FTR_SAVED_STATE       84  /* u8 */
#define VPC_FTR_RESERVED          85  /* 427 zero bytes */

_Static_assert(VPC_FTR_FEATURES == VPC_FTR_COOKIE + 8, "layout");
_Static_assert(VPC_FTR_VERSION == VPC_FTR_FEATURES + 4, "layout");
_Static_assert(VPC_FTR_DATA_OFFSET == VPC_FTR_VERSION + 4, "layout");
_Static_assert(VPC_FTR_TIMESTAMP == VPC_FTR_DATA_OFFSET + 8, "layout");
_Static_assert(VPC_FTR_CREATOR_APP == VPC_FTR_TIMESTAMP + 4, "layout");
_Static_assert(VPC_FTR_CREATOR_VERSION == VPC_FTR_CREATOR_APP + 4, "layout");
_Static_assert(VPC_FTR_CREATOR_OS == VPC_FTR_CREATOR_VERSION + 4, "layout");
_Static_assert(VPC_FTR_ORIGINAL_SIZE == VPC_FTR_CREATOR_OS + 4, "layout");
_Static_assert(VPC_FTR_CURRENT_SIZE == VPC_FTR_ORIGINAL_SIZE + 8, "layout");
_Static_assert(VPC_FTR_CYLINDERS == VPC_FTR_CURRENT_SIZE + 8, "layout");
_Static_assert(VPC_FTR_DISK_TYPE == VPC_FTR_CYLINDERS + 4, "layout");
_Static_assert(VPC_FTR_CHECKSUM == VPC_FTR_DISK_TYPE + 4, "layout");
_Static_assert(VPC_FTR_UNIQUE_ID == VPC_FTR_CHECKSUM + 4, "layout");
_Static_assert(VPC_FTR_SAVED_STATE == VPC_FTR_UNIQUE_ID + 16, "layout");
_Static_assert(VPC_FTR_RESERVED + 427 == VPC_FOOTER_SIZE, "layout");

#define VPC_COOKIE "conectix"
#define VPC_FEATURES_RESERVED 0x00000002u
#define VPC_VERSION_1_0 0x00010000u
#define VPC_NO_DATA_OFFSET UINT64_MAX

enum {
    VPC_TYPE_FIXED = 2,
    VPC_TYPE_DYNAMIC = 3,
    VPC_TYPE_DIFFERENCING = 4,
};

/* The footer's timestamp counts from 2000-01-01 00:00:00 UTC. */
#define VPC_TIMESTAMP_BASE 946684800

/* ---- Dynamic disk header (1024 bytes at the footer's data offset) ----- */

#define VPC_DYN_SIZE            1024u
#define VPC_DYN_COOKIE             0  /* char[8] "cxsparse" */
#define VPC_DYN_DATA_OFFSET        8  /* u64: unused, all ones */
#define VPC_DYN_TABLE_OFFSET      16  /* u64: the block allocation table */
#define VPC_DYN_VERSION           24  /* u32: 0x00010000 */
#define VPC_DYN_MAX_TABLE_ENTRIES 28  /* u32 */
#define VPC_DYN_BLOCK_SIZE        32  /* u32: data bytes per block */
#define VPC_DYN_CHECKSUM          36  /* u32, as the footer's */
#define VPC_DYN_PARENT_UUID       40  /* u8[16] */
#define VPC_DYN_PARENT_TIMESTAMP  56  /* u32 */
#define VPC_DYN_RESERVED1         60  /* u32 */
#define VPC_DYN_PARENT_NAME       64  /* UTF-16BE[256] */
#define VPC_DYN_PARENT_LOCATORS  576  /* 8 entries of 24 bytes */
#define VPC_DYN_RESERVED2        768  /* 256 zero bytes */

_Static_assert(VPC_DYN_TABLE_OFFSET == VPC_DYN_DATA_OFFSET + 8, "layout");
_Static_assert(VPC_DYN_VERSION == VPC_DYN_TABLE_OFFSET + 8, "layout");
_Static_assert(VPC_DYN_MAX_TABLE_ENTRIES == VPC_DYN_VERSION + 4, "layout");
_Static_assert(VPC_DYN_BLOCK_SIZE == VPC_DYN_MAX_TABLE_ENTRIES + 4,
               "layout");
_Static_assert(VPC_DYN_CHECKSUM == VPC_DYN_BLOCK_SIZE + 4, "layout");
_Static_assert(VPC_DYN_PARENT_UUID == VPC_DYN_CHECKSUM + 4, "layout");
_Static_assert(VPC_DYN_PARENT_TIMESTAMP == VPC_DYN_PARENT_UUID + 16,
               "layout");
_Static_assert(VPC_DYN_PARENT_NAME == VPC_DYN_RESERVED1 + 4, "layout");
_Static_assert(VPC_DYN_PARENT_LOCATORS == VPC_DYN_PARENT_NAME + 512,
               "layout");
_Static_assert(VPC_DYN_RESERVED2 == VPC_DYN_PARENT_LOCATORS + 8 * 24,
               "layout");
_Static_assert(VPC_DYN_RESERVED2 + 256 == VPC_DYN_SIZE, "layout");

#define VPC_DYN_COOKIE_STR "cxsparse"

/* A parent locator entry (8 of them from VPC_DYN_PARENT_LOCATORS), for
 * differencing disks: where the platform-specific parent path lies. */
#define VPC_PL_SIZE             24
#define VPC_PL_PLATFORM_CODE     0  /* u32: VPC_PLATFORM_* */
#define VPC_PL_DATA_SPACE        4  /* u32: room reserved (sectors or bytes,
                                       as the creator had it) */
#define VPC_PL_DATA_LENGTH       8  /* u32: bytes of the path */
#define VPC_PL_RESERVED         12  /* u32 */
#define VPC_PL_DATA_OFFSET      16  /* u64: absolute file offset */
#define VPC_PL_COUNT             8

_Static_assert(VPC_PL_DATA_OFFSET + 8 == VPC_PL_SIZE, "layout");
_Static_assert(VPC_DYN_PARENT_LOCATORS + VPC_PL_COUNT * VPC_PL_SIZE ==
               VPC_DYN_RESERVED2, "layout");

enum {
    VPC_PLATFORM_NONE = 0,
    VPC_PLATFORM_W2RU = 0x57327275, /* "W2ru": relative, UTF-16LE */
    VPC_PLATFORM_W2KU = 0x57326b75, /* "W2ku": absolute, UTF-16LE */
    VPC_PLATFORM_MACX = 0x4d616358, /* "MacX": file:// URL, UTF-8 */
};

/* A block allocation table entry: the sector where the block's bitmap
 * starts (its data follows the bitmap), or this for "not allocated". In a
 * differencing disk a set bitmap bit (most significant bit first) means
 * the sector is in this file, a clear one that it is the parent's. */
#define VPC_BAT_UNUSED 0xffffffffu

/* ---- CHS geometry (appendix "CHS Calculation") ----------------------- */

#define VPC_CHS_MAX_C 65535u
#define VPC_CHS_MAX_H 16u
#define VPC_CHS_MAX_S 255u
/* The largest geometry: readers take it to mean "use the current size". */
#define VPC_MAX_GEOMETRY                                                    \
    ((uint64_t)VPC_CHS_MAX_C * VPC_CHS_MAX_H * VPC_CHS_MAX_S)

#endif
