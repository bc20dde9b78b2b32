/* Private interface of the ISO 9660 reader: the volume handle, directory
 * nodes and the iterator, shared by iso-read.c (volume, directories, file
 * data), iso-susp.c (System Use entries, Rock Ridge), iso-describe.c (info)
 * and iso-extract.c. */
#ifndef VIMG_ISO_READ_H
#define VIMG_ISO_READ_H

#include <stdbool.h>
#include <stdint.h>

#include "../internal.h"
#include "iso-ondisk.h"

/* Caps, each with its reason. Real images stay far below all of them. */
/* Descriptors scanned before giving up on a terminator (real sets have 2-5
 * descriptors; a hostile set without terminator must not scan the disk). */
#define ISO_MAX_DESCRIPTORS 64
/* Records one listing or extraction visits, at most: each directory is
 * read once, so a real volume has at most one record per 34 bytes of
 * image; this hard cap also bounds huge images. */
#define ISO_MAX_ENTRIES (4u << 20)
/* File bytes one extraction copies, at most max(4 x the image size, 1 GiB):
 * a real volume stores each copied byte once (hard links are linked, not
 * copied), so only files sharing data without being links reach it. */
#define ISO_COPY_BUDGET_FACTOR 4
#define ISO_COPY_BUDGET_MIN (UINT64_C(1) << 30)
/* Bytes of one directory's extent (64 MiB ~ a million records). */
#define ISO_MAX_DIR_BYTES (64u << 20)
/* Continuation areas per record, and their total bytes: stops CE loops. */
#define ISO_MAX_CE_AREAS 32
#define ISO_MAX_SUSP_BYTES (64u << 10)
/* Best-name and symlink-target lengths (bytes of UTF-8). */
#define ISO_MAX_NAME 1023
#define ISO_MAX_TARGET 4095
/* Extents of one multi-extent file (4 GiB each: 256 TiB). */
#define ISO_MAX_EXTENTS 65536
/* El Torito catalog sectors read (64 entries each). */
#define ISO_MAX_CATALOG_SECTORS 4

struct iso_extent {
    uint64_t offset;  /* byte offset in the image */
    uint64_t length;  /* bytes */
};

/* One directory entry, decoded and validated. */
struct iso_node {
    char name[ISO_MAX_NAME + 1];
    char target[ISO_MAX_TARGET + 1];
    struct vimg_iso_stat st;
    bool has_target;
    bool has_serial;         /* Rock Ridge PX carried a serial number */
    uint32_t serial;         /* ... which hard links share (RRIP 1.12) */
    uint64_t lba;            /* first extent's LBA (boot image lookup) */
    struct iso_extent *extents; /* owned; n_extents long */
    size_t n_extents;
};

struct vimg_iso {
    struct vimg_image *img;
    uint64_t image_size;
    uint8_t pvd[ISO_SECTOR_SIZE];
    uint64_t volume_blocks;
    int joliet_level;        /* 0 none, else 1..3 */
    uint8_t joliet_root[ISO_DR_MIN_LENGTH];
    bool rock_ridge;         /* SP in the root and RR entries */
    unsigned susp_skip;      /* SP LEN_SKP */
    bool use_joliet;         /* names come from the Joliet tree */
    uint64_t catalog_lba;    /* El Torito catalog, 0 = none */
    bool el_torito;
    struct iso_node root;
    struct iso_node cur;     /* vimg_iso_stat/read results */
    char *cur_path;          /* path of cur, or NULL */
    uint64_t entries;        /* visited by the current walk */
    uint64_t max_entries;    /* records one walk may visit */
};

/* The directory extents one walk or extraction has entered (a tsearch
 * tree of disjoint extents), so that it enters each at most once. */
struct iso_visited {
    void *tree;
};
/* One entered directory extent; OPEN while the walk is inside it. */
struct iso_entered {
    uint64_t start, end;
    bool open;
};

/* A directory being read, sector by sector. */
struct iso_dir {
    struct vimg_iso *iso;
    const char *path;        /* for messages */
    uint64_t offset, length; /* extent in the image */
    uint64_t pos;            /* bytes consumed */
    uint8_t sector[ISO_SECTOR_SIZE];
    uint64_t loaded;         /* pos of the sector in `sector`, or -1 */
};

/* iso-read.c */
/* vimg_iso_open without clearing the thread's error slot (for info). */
struct vimg_iso *iso_volume_open(struct vimg_image *img);
int iso_error(struct vimg_iso *iso, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Validate an extent (LBA, LENGTH bytes) against the image; WHAT names the
 * entry. The one place extents read from disk are checked. */
int iso_check_extent(struct vimg_iso *iso, uint64_t lba, uint64_t length,
                     const char *what, struct iso_extent *out);
int iso_read_at(struct vimg_iso *iso, void *buf, size_t count,
                uint64_t offset);
void iso_node_reset(struct iso_node *n);
int iso_dir_open(struct vimg_iso *iso, const struct iso_node *dir,
                 const char *path, struct iso_dir *d);
/* Next entry of D ("." and ".." skipped, multi-extent files merged,
 * relocated directories resolved): 1 and *OUT filled, 0 at the end. */
int iso_dir_next(struct iso_dir *d, struct iso_node *out);
/* Enter the directory D (just opened), DEPTH levels below where the walk
 * started: refuses nesting beyond ISO_MAX_DEPTH, an extent overlapping a
 * directory the walk is inside (a loop), and one overlapping any other
 * directory already entered (siblings sharing extents: without this, a
 * small image lists as an exponential tree). *OUT (NULL for an empty
 * extent) goes to iso_visit_leave when the walk leaves D. */
int iso_visit_enter(struct iso_visited *v, const struct iso_dir *d,
                    int depth, struct iso_entered **out);
static inline void iso_visit_leave(struct iso_entered *e)
{
    if (e) {
        e->open = false;
    }
}
void iso_visit_free(struct iso_visited *v);
/* Find PATH; *OUT owns its extents afterwards. */
int iso_lookup(struct vimg_iso *iso, const char *path, struct iso_node *out);
/* Walk the tree below DIR depth-first calling FN for every entry; PATH is
 * DIR's path ("" for the root). */
typedef int (*iso_walk_fn)(void *opaque, const char *path,
                           struct iso_node *node);
int iso_walk(struct vimg_iso *iso, const struct iso_node *dir,
             const char *path, bool recursive, iso_walk_fn fn, void *opaque);
/* Seconds since the epoch of a 7-byte directory date / 17-byte volume
 * date; false when unset or invalid. */
bool iso_dir_date(const uint8_t *p, int64_t *out);
bool iso_vol_date(const uint8_t *p, int64_t *out, int *gmtoff_minutes);

/* iso-susp.c */
/* Apply the System Use area SU (LEN bytes) of a record to N: Rock Ridge
 * name, attributes, times, symlink target, CE continuations. *RELOCATED is
 * set for RE, *CHILD_LBA for CL (else 0). */
int iso_susp_apply(struct vimg_iso *iso, const uint8_t *su, size_t len,
                   const char *what, struct iso_node *n, bool *relocated,
                   uint64_t *child_lba);
/* Look at the root's "." record system use area: SP, then ER/RR/PX. */
int iso_susp_detect(struct vimg_iso *iso, const uint8_t *su, size_t len);
/* UCS-2BE/UTF-16BE (Joliet) to UTF-8 in OUT (OUTLEN bytes with NUL). */
int iso_joliet_name(const uint8_t *in, size_t len, char *out,
                    size_t outlen);
/* The public facts of N with its string pointers set. */
static inline const struct vimg_iso_stat *iso_node_stat(struct iso_node *n)
{
    n->st.name = n->name;
    n->st.target = n->has_target ? n->target : NULL;
    return &n->st;
}

#endif
