/* Parallels expandable image on-disk layout, as QEMU's
 * docs/interop/parallels.txt ("Header", "BAT") defines it: a 64-byte
 * header, the BAT (one 32-bit entry per cluster) right after it, then the
 * data area. Every field is little-endian; read and write them with
 * common/byteswap.h. No packed structs. */
#ifndef VIMG_PARALLELS_ONDISK_H
#define VIMG_PARALLELS_ONDISK_H

#include <stdint.h>

#include "../../common/byteswap.h"

#define PRL_HEADER_SIZE     64u
#define PRL_MAGIC            0  /* char[16]: PRL_MAGIC_OLD or _EXT */
#define PRL_VERSION         16  /* u32: PRL_VERSION_2 */
#define PRL_HEADS           20  /* u32: guest geometry, unused here */
#define PRL_CYLINDERS       24  /* u32: guest geometry, unused here */
#define PRL_TRACKS          28  /* u32: cluster size in sectors */
#define PRL_BAT_ENTRIES     32  /* u32: BAT entries (clusters of disk) */
#define PRL_NB_SECTORS      36  /* u64: disk size in sectors (old magic:
                                   the low 32 bits only) */
#define PRL_INUSE           44  /* u32: PRL_INUSE_* */
#define PRL_DATA_OFF        48  /* u32: data area offset in sectors, 0:
                                   right after the BAT (old magic only) */
#define PRL_FLAGS           52  /* u32: bit 0 "empty image" */
#define PRL_EXT_OFF         56  /* u64: format extension cluster, sectors */
#define PRL_BAT             64  /* u32[bat_entries] */

_Static_assert(PRL_VERSION == PRL_MAGIC + 16, "layout");
_Static_assert(PRL_HEADS == PRL_VERSION + 4, "layout");
_Static_assert(PRL_CYLINDERS == PRL_HEADS + 4, "layout");
_Static_assert(PRL_TRACKS == PRL_CYLINDERS + 4, "layout");
_Static_assert(PRL_BAT_ENTRIES == PRL_TRACKS + 4, "layout");
_Static_assert(PRL_NB_SECTORS == PRL_BAT_ENTRIES + 4, "layout");
_Static_assert(PRL_INUSE == PRL_NB_SECTORS + 8, "layout");
_Static_assert(PRL_DATA_OFF == PRL_INUSE + 4, "layout");
_Static_assert(PRL_FLAGS == PRL_DATA_OFF + 4, "layout");
_Static_assert(PRL_EXT_OFF == PRL_FLAGS + 4, "layout");
_Static_assert(PRL_BAT == PRL_EXT_OFF + 8, "layout");
_Static_assert(PRL_BAT == PRL_HEADER_SIZE, "layout");

/* BAT entries count sectors with the old magic, clusters with the new. */
#define PRL_MAGIC_OLD "WithoutFreeSpace"
#define PRL_MAGIC_EXT "WithouFreSpacExt"
#define PRL_MAGIC_LEN 16u
#define PRL_VERSION_2 2u

enum {
    PRL_INUSE_CLOSED_OLD = 0,        /* closed (or by old software) */
    PRL_INUSE_OPEN = 0x746f6e59u,    /* opened read-write, not closed */
    PRL_INUSE_CLOSED = 0x312e3276u,  /* closed */
};

#endif
