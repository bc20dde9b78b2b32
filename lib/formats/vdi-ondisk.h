/* VDI (VirtualBox Disk Image) on-disk layout, version 1.1, as VirtualBox's
 * VBox/vd-ifs.h and src/VBox/Storage/VDICore.h define it ("VDIHEADER1") and
 * QEMU's block/vdi.c reads it: a 64-byte text, the pre-header (signature,
 * version), the header, then the block map (one 32-bit entry per block)
 * and the blocks. Every field is little-endian; read and write them with
 * common/byteswap.h. No packed structs. */
#ifndef VIMG_VDI_ONDISK_H
#define VIMG_VDI_ONDISK_H

#include <stdint.h>

#include "../../common/byteswap.h"

#define VDI_HEADER_SIZE       512u /* what QEMU reads and rewrites */
#define VDI_TEXT                0  /* char[64], free text */
#define VDI_SIGNATURE          64  /* u32: VDI_MAGIC */
#define VDI_VERSION            68  /* u32: major << 16 | minor */
#define VDI_HDR_SIZE           72  /* u32: bytes of header from here on */
#define VDI_IMAGE_TYPE         76  /* u32: VDI_TYPE_* */
#define VDI_IMAGE_FLAGS        80  /* u32 */
#define VDI_DESCRIPTION        84  /* char[256] */
#define VDI_OFFSET_BMAP       340  /* u32: file offset of the block map */
#define VDI_OFFSET_DATA       344  /* u32: file offset of block 0 */
#define VDI_CYLINDERS         348  /* u32: legacy geometry */
#define VDI_HEADS             352  /* u32 */
#define VDI_SECTORS           356  /* u32 */
#define VDI_SECTOR_SIZE       360  /* u32: 512 */
#define VDI_UNUSED1           364  /* u32 */
#define VDI_DISK_SIZE         368  /* u64: bytes */
#define VDI_BLOCK_SIZE        376  /* u32: bytes of data per block */
#define VDI_BLOCK_EXTRA       380  /* u32: bytes before each block's data */
#define VDI_BLOCKS_IN_IMAGE   384  /* u32: block map entries */
#define VDI_BLOCKS_ALLOCATED  388  /* u32 */
#define VDI_UUID_IMAGE        392  /* 16 bytes each, GUID (little-endian */
#define VDI_UUID_LAST_SNAP    408  /*  first three fields) */
#define VDI_UUID_LINK         424  /* parent link: differencing images */
#define VDI_UUID_PARENT       440
#define VDI_HEADER_END        456  /* LCHS geometry and padding follow */

_Static_assert(VDI_VERSION == VDI_SIGNATURE + 4, "layout");
_Static_assert(VDI_HDR_SIZE == VDI_VERSION + 4, "layout");
_Static_assert(VDI_IMAGE_TYPE == VDI_HDR_SIZE + 4, "layout");
_Static_assert(VDI_IMAGE_FLAGS == VDI_IMAGE_TYPE + 4, "layout");
_Static_assert(VDI_DESCRIPTION == VDI_IMAGE_FLAGS + 4, "layout");
_Static_assert(VDI_OFFSET_BMAP == VDI_DESCRIPTION + 256, "layout");
_Static_assert(VDI_OFFSET_DATA == VDI_OFFSET_BMAP + 4, "layout");
_Static_assert(VDI_SECTOR_SIZE == VDI_CYLINDERS + 12, "layout");
_Static_assert(VDI_DISK_SIZE == VDI_UNUSED1 + 4, "layout");
_Static_assert(VDI_BLOCK_SIZE == VDI_DISK_SIZE + 8, "layout");
_Static_assert(VDI_BLOCKS_ALLOCATED == VDI_BLOCKS_IN_IMAGE + 4, "layout");
_Static_assert(VDI_UUID_IMAGE == VDI_BLOCKS_ALLOCATED + 4, "layout");
_Static_assert(VDI_HEADER_END == VDI_UUID_PARENT + 16, "layout");
/* The header size field counts from itself to the end of the UUIDs
 * (0x180, as QEMU writes it; VirtualBox adds 16 bytes of LCHS geometry). */
_Static_assert(VDI_HEADER_END - VDI_HDR_SIZE == 0x180, "layout");

#define VDI_MAGIC 0xbeda107fu
#define VDI_VERSION_1_1 0x00010001u
#define VDI_HDR_SIZE_1_1 0x180u

enum {
    VDI_TYPE_DYNAMIC = 1, /* blocks allocated as written */
    VDI_TYPE_STATIC = 2,  /* every block allocated at creation */
};

/* Block map entries at or above this are not allocated: */
#define VDI_UNALLOCATED 0xffffffffu /* never written (reads as zeros) */
#define VDI_DISCARDED   0xfffffffeu /* freed: reads as zeros */

#endif
