/* Bochs "Growing" redolog images, as Bochs's iodev/hdimage/hdimage.h
 * (redolog_header_t) defines them and QEMU's block/bochs.c reads them: a
 * 512-byte header, the catalog (one 32-bit entry per extent), then the
 * extents, each a sector bitmap (one bit per sector) followed by the
 * sectors. Every field is little-endian; read them with common/byteswap.h.
 * No packed structs. */
#ifndef VIMG_BOCHS_ONDISK_H
#define VIMG_BOCHS_ONDISK_H

#include "../../common/byteswap.h"

#define BOCHS_HEADER_SIZE    512u
#define BOCHS_MAGIC            0  /* char[32], NUL-terminated */
#define BOCHS_TYPE            32  /* char[16]: "Redolog" */
#define BOCHS_SUBTYPE         48  /* char[16]: "Growing", "Undoable", ... */
#define BOCHS_VERSION         64  /* u32: BOCHS_VERSION_1 or _2 */
#define BOCHS_HEADER          68  /* u32: bytes of header (catalog follows) */
#define BOCHS_CATALOG         72  /* u32: catalog entries */
#define BOCHS_BITMAP          76  /* u32: bytes of each extent's bitmap */
#define BOCHS_EXTENT          80  /* u32: bytes of data per extent */
/* Version 2 has a timestamp before the disk size; version 1 does not. */
#define BOCHS_V2_TIMESTAMP    84  /* u32 */
#define BOCHS_V2_DISK         88  /* u64: virtual size in bytes */
#define BOCHS_V1_DISK         84  /* u64 */

_Static_assert(BOCHS_TYPE == BOCHS_MAGIC + 32, "layout");
_Static_assert(BOCHS_SUBTYPE == BOCHS_TYPE + 16, "layout");
_Static_assert(BOCHS_VERSION == BOCHS_SUBTYPE + 16, "layout");
_Static_assert(BOCHS_HEADER == BOCHS_VERSION + 4, "layout");
_Static_assert(BOCHS_CATALOG == BOCHS_HEADER + 4, "layout");
_Static_assert(BOCHS_BITMAP == BOCHS_CATALOG + 4, "layout");
_Static_assert(BOCHS_EXTENT == BOCHS_BITMAP + 4, "layout");
_Static_assert(BOCHS_V2_TIMESTAMP == BOCHS_EXTENT + 4, "layout");
_Static_assert(BOCHS_V2_DISK == BOCHS_V2_TIMESTAMP + 4, "layout");
_Static_assert(BOCHS_V1_DISK == BOCHS_EXTENT + 4, "layout");

#define BOCHS_MAGIC_TEXT "Bochs Virtual HD Image"
#define BOCHS_TYPE_REDOLOG "Redolog"
#define BOCHS_SUBTYPE_GROWING "Growing"
#define BOCHS_VERSION_1 0x00010000u
#define BOCHS_VERSION_2 0x00020000u

/* A catalog entry that names no extent: its sectors read as zeros. */
#define BOCHS_UNALLOCATED 0xffffffffu

#endif
