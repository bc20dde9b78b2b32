/* The Parallels expandable image format (QEMU's docs/interop/parallels.txt):
 * a header, a BAT of one 32-bit entry per cluster, and clusters appended
 * as they are first written. Both magics are read and written: the old
 * "WithoutFreeSpace" (BAT entries in sectors) and "WithouFreSpacExt"
 * (entries in clusters, what qemu-img creates). The format extension
 * (dirty bitmaps) is not read; a read-write open drops it, since writes
 * would make its bitmaps wrong (QEMU 7.2 ignores it but keeps ext_off,
 * and may then put a data cluster where it points). */
#define _GNU_SOURCE /* qsort_r */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/checked-overflow.h"
#include "../../common/rounding.h"
#include "../internal.h"
#include "parallels-ondisk.h"

#define PRL_SECTOR 512u
/* QEMU 7.2 refuses clusters of more sectors (about 2 GiB): its own
 * arithmetic on them stays in an int. */
#define PRL_MAX_CLUSTER_SECTORS (INT32_MAX / 513)
/* Most BAT entries read: 16 Mi (a 64 MiB table, a 16 TiB disk with the
 * default 1 MiB clusters). A larger count could only make a hostile
 * header allocate GiBs; QEMU allows 512 Mi. */
#define PRL_MAX_BAT_ENTRIES (16u << 20)
#define PRL_DEFAULT_CLUSTER (1u << 20)
/* The guest geometry qemu-img writes; nothing addresses the disk by it. */
#define PRL_GEOM_HEADS 16u
#define PRL_GEOM_SECTORS 32u
/* Bytes per piece when copying or writing tables. */
#define PRL_CHUNK 65536u

/* A BAT entry kept out of the data path: its cluster lies outside the
 * data area or the file. Only opens for check, info or map keep them. */
struct prl_bad {
    uint32_t idx, entry;
};

struct prl_state {
    uint8_t header[PRL_HEADER_SIZE]; /* as on disk */
    bool ext;                 /* new magic: entries count clusters */
    bool unclean;             /* found in use: a writer did not close it */
    uint32_t tracks;          /* sectors per cluster */
    uint64_t cluster;         /* bytes per cluster */
    uint32_t bat_entries;
    uint32_t *bat;            /* host order; 0 is unallocated */
    uint64_t data_off;        /* bytes */
    uint64_t data_end;        /* bytes: where the next cluster goes */
    struct prl_bad *bad;      /* in index order; 0 in bat, I/O fails */
    uint32_t n_bad;
    uint32_t dirty_lo, dirty_hi; /* BAT entries not yet written: [lo, hi) */
};

static struct prl_state *prl_state(struct vimg_image *img)
{
    return img->opaque;
}

/* The file offset of the cluster ENTRY names (not 0). */
static uint64_t entry_offset(const struct prl_state *s, uint32_t entry)
{
    return (uint64_t)entry * (s->ext ? s->tracks : 1) * PRL_SECTOR;
}

static int prl_probe(const uint8_t *buf, size_t len, const char *filename)
{
    (void)filename;
    if (len < PRL_HEADER_SIZE ||
        load_le32(buf + PRL_VERSION) != PRL_VERSION_2) {
        return 0;
    }
    return memcmp(buf + PRL_MAGIC, PRL_MAGIC_OLD, PRL_MAGIC_LEN) == 0 ||
           memcmp(buf + PRL_MAGIC, PRL_MAGIC_EXT, PRL_MAGIC_LEN) == 0
           ? 100 : 0;
}

/* ---- Validation -------------------------------------------------------- */

/* Every header field at H that addressing depends on, for a file of
 * FILE_SIZE bytes; sets the state's geometry and IMG's size. Nothing is
 * allocated here. The guest geometry (heads, cylinders) is not used and
 * the "empty image" flag is ignored, as in QEMU. */
static int validate_header(struct vimg_image *img, const uint8_t *h,
                           uint64_t file_size)
{
    struct prl_state *s = prl_state(img);
    uint32_t inuse = load_le32(h + PRL_INUSE);
    uint64_t nb_sectors = load_le64(h + PRL_NB_SECTORS);
    uint64_t bat_end;

    if (memcmp(h + PRL_MAGIC, PRL_MAGIC_EXT, PRL_MAGIC_LEN) == 0) {
        s->ext = true;
    } else if (memcmp(h + PRL_MAGIC, PRL_MAGIC_OLD, PRL_MAGIC_LEN) == 0) {
        /* The old header has a 32-bit size; the high half is padding. */
        nb_sectors &= UINT32_MAX;
    } else {
        return vimg_internal_img_error(img, EINVAL, "not a Parallels image "
                                       "(bad magic)");
    }
    if (load_le32(h + PRL_VERSION) != PRL_VERSION_2) {
        return vimg_internal_img_error(img, ENOTSUP, "unsupported Parallels "
                                       "version %u (only 2)",
                                       load_le32(h + PRL_VERSION));
    }
    s->tracks = load_le32(h + PRL_TRACKS);
    if (s->tracks == 0 || s->tracks > PRL_MAX_CLUSTER_SECTORS) {
        return vimg_internal_img_error(img, s->tracks ? EFBIG : EINVAL,
                                       "cluster size of %u sectors is out of "
                                       "range (1 to %u)", s->tracks,
                                       (unsigned)PRL_MAX_CLUSTER_SECTORS);
    }
    s->cluster = (uint64_t)s->tracks * PRL_SECTOR;
    s->bat_entries = load_le32(h + PRL_BAT_ENTRIES);
    if (s->bat_entries > PRL_MAX_BAT_ENTRIES) {
        return vimg_internal_img_error(img, EFBIG, "BAT is too large (%u "
                                       "entries, at most %u)",
                                       s->bat_entries, PRL_MAX_BAT_ENTRIES);
    }
    bat_end = PRL_BAT + (uint64_t)s->bat_entries * 4;
    if (bat_end > file_size) {
        return vimg_internal_img_error(img, EINVAL, "BAT (%u entries) lies "
                                       "past the end of the file",
                                       s->bat_entries);
    }
    /* Both factors are capped above: no overflow. */
    if (nb_sectors > (uint64_t)s->bat_entries * s->tracks) {
        return vimg_internal_img_error(img, EINVAL, "BAT (%u entries of %u "
                                       "sectors) is too small for the disk "
                                       "size (%llu sectors)", s->bat_entries,
                                       s->tracks,
                                       (unsigned long long)nb_sectors);
    }
    if (inuse != PRL_INUSE_CLOSED_OLD && inuse != PRL_INUSE_OPEN &&
        inuse != PRL_INUSE_CLOSED) {
        return vimg_internal_img_error(img, EINVAL, "invalid in-use flag "
                                       "0x%08x", inuse);
    }
    s->unclean = inuse == PRL_INUSE_OPEN;
    s->dirty_lo = UINT32_MAX;
    s->data_off = (uint64_t)load_le32(h + PRL_DATA_OFF) * PRL_SECTOR;
    if (s->data_off == 0) {
        /* The spec allows it for old images only; QEMU for both. */
        s->data_off = ROUND_UP(bat_end, PRL_SECTOR);
    }
    if (s->data_off < bat_end) {
        return vimg_internal_img_error(img, EINVAL, "data area at 0x%llx "
                                       "overlaps the BAT",
                                       (unsigned long long)s->data_off);
    }
    if (s->data_off > file_size) {
        return vimg_internal_img_error(img, EINVAL, "data area at 0x%llx "
                                       "lies past the end of the file",
                                       (unsigned long long)s->data_off);
    }
    img->size = nb_sectors * PRL_SECTOR;
    return 0;
}

/* Why entry ENTRY cannot be used, or NULL when its whole cluster lies in
 * the data area and the file. */
static const char *entry_problem(const struct prl_state *s, uint32_t entry,
                                 uint64_t file_size)
{
    uint64_t off = entry_offset(s, entry);

    if (off < s->data_off) {
        return "into the header or BAT";
    }
    if (range_outside(off, s->cluster, file_size)) {
        return "past the end of the file";
    }
    return NULL;
}

/* Read and check the BAT. An entry outside the data area or the file is
 * refused, unless TOLERANT (check, info, map): then it reads as 0 and is
 * listed in s->bad for check to report. Sets s->data_end. */
static int read_bat(struct vimg_image *img, uint64_t file_size,
                    bool tolerant)
{
    struct prl_state *s = prl_state(img);
    uint64_t bytes = (uint64_t)s->bat_entries * 4;
    uint64_t end = s->data_off;
    size_t cap = 0;
    int r;

    s->bat = malloc(bytes ? bytes : 1);
    if (!s->bat) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory for a "
                                       "BAT of %u entries", s->bat_entries);
    }
    if (bytes &&
        (r = vimg_internal_pread(img->file, s->bat, bytes, PRL_BAT)) < 0) {
        return r;
    }
    for (uint32_t i = 0; i < s->bat_entries; i++) {
        /* In place: each entry is read before its slot is written. */
        uint32_t e = load_le32((const uint8_t *)&s->bat[i]);
        const char *why;

        s->bat[i] = e;
        if (!e) {
            continue;
        }
        why = entry_problem(s, e, file_size);
        if (!why) {
            end = MAX(end, entry_offset(s, e) + s->cluster);
            continue;
        }
        if (!tolerant) {
            return vimg_internal_img_error(img, EINVAL, "BAT entry %u points "
                                           "at 0x%llx, %s", i,
                                           (unsigned long long)
                                           entry_offset(s, e), why);
        }
        if (s->n_bad == cap) {
            /* At most one per entry: bounded like the BAT itself. */
            cap = cap ? MIN(2 * cap, s->bat_entries) : 16;
            struct prl_bad *bad = realloc(s->bad, cap * sizeof *bad);
            if (!bad) {
                return vimg_internal_img_error(img, ENOMEM, "out of "
                                               "memory");
            }
            s->bad = bad;
        }
        s->bad[s->n_bad++] = (struct prl_bad){ i, e };
        s->bat[i] = 0;
    }
    /* New clusters of the new format must be addressable in clusters. */
    s->data_end = s->ext ? ROUND_UP(end, s->cluster) : end;
    return 0;
}

static int write_header(struct vimg_image *img)
{
    struct prl_state *s = prl_state(img);
    int r = vimg_internal_pwrite(img->file, s->header, PRL_HEADER_SIZE, 0,
                                 VIMG_INTERNAL_WRITE_METADATA);

    return r < 0 ? r : vimg_internal_flush(img->file);
}

static void free_state(struct prl_state *s)
{
    free(s->bat);
    free(s->bad);
    s->bat = NULL;
    s->bad = NULL;
    s->n_bad = 0;
}

static int prl_open(struct vimg_image *img, const struct vimg_opts *opts)
{
    struct prl_state *s = prl_state(img);
    uint64_t file_size;
    bool tolerant = img->params.flags & (VIMG_OPEN_CHECK | VIMG_OPEN_NO_IO);
    int r;

    (void)opts;
    if ((r = vimg_internal_read_header(img, s->header, PRL_HEADER_SIZE,
                                       "a Parallels header",
                                       &file_size)) < 0 ||
        (r = validate_header(img, s->header, file_size)) < 0 ||
        (r = read_bat(img, file_size, tolerant)) < 0) {
        goto fail;
    }
    if (img->writable) {
        if (s->unclean && !(img->params.flags & VIMG_OPEN_CHECK)) {
            r = vimg_internal_img_error(img, EACCES, "image was not closed "
                                        "correctly; it cannot be opened "
                                        "read-write before 'check -r all' "
                                        "repairs it");
            goto fail;
        }
        /* Marked in use before the first write, as QEMU does: a crash
         * leaves the BAT possibly behind the data, and the mark makes
         * check mandatory. */
        store_le32(s->header + PRL_INUSE, PRL_INUSE_OPEN);
        store_le64(s->header + PRL_EXT_OFF, 0);
        if ((r = write_header(img)) < 0) {
            goto fail;
        }
    }
    return 0;

fail:
    free_state(s);
    return r;
}

/* Write the BAT entries changed since the last flush, after the data
 * they point at is on disk. */
static int flush_bat(struct vimg_image *img)
{
    struct prl_state *s = prl_state(img);
    uint8_t buf[PRL_CHUNK];
    int r;

    if (s->dirty_lo >= s->dirty_hi) {
        return 0;
    }
    if ((r = vimg_internal_flush(img->file)) < 0) {
        return r;
    }
    for (uint32_t i = s->dirty_lo; i < s->dirty_hi;) {
        uint32_t n = MIN(s->dirty_hi - i, (uint32_t)(sizeof buf / 4));
        for (uint32_t k = 0; k < n; k++) {
            store_le32(buf + (uint64_t)k * 4, s->bat[i + k]);
        }
        if ((r = vimg_internal_pwrite(img->file, buf, (uint64_t)n * 4,
                                      PRL_BAT + (uint64_t)i * 4,
                                      VIMG_INTERNAL_WRITE_METADATA)) < 0) {
            return r;
        }
        i += n;
    }
    s->dirty_lo = UINT32_MAX;
    s->dirty_hi = 0;
    return 0;
}

static void set_entry(struct prl_state *s, uint32_t idx, uint32_t entry)
{
    s->bat[idx] = entry;
    s->dirty_lo = MIN(s->dirty_lo, idx);
    s->dirty_hi = MAX(s->dirty_hi, idx + 1);
}

static int prl_flush(struct vimg_image *img)
{
    return flush_bat(img);
}

/* A clean close clears the in-use mark (to 0, as QEMU writes it), once
 * the BAT is out; an image still found unclean keeps it. */
static int prl_close(struct vimg_image *img)
{
    struct prl_state *s = prl_state(img);
    int r = 0;

    if (img->writable) {
        r = flush_bat(img);
        if (r == 0 && !s->unclean) {
            store_le32(s->header + PRL_INUSE, PRL_INUSE_CLOSED_OLD);
            r = write_header(img);
        } else if (r == 0) {
            r = vimg_internal_flush(img->file);
        }
    }
    free_state(s);
    return r;
}

/* ---- Data path --------------------------------------------------------- */

static int bad_cmp(const void *key, const void *elem)
{
    uint32_t idx = *(const uint32_t *)key;
    const struct prl_bad *b = elem;

    return idx < b->idx ? -1 : idx > b->idx;
}

static const struct prl_bad *find_bad(const struct prl_state *s,
                                      uint32_t idx)
{
    return s->n_bad ? bsearch(&idx, s->bad, s->n_bad, sizeof *s->bad,
                              bad_cmp)
                    : NULL;
}

/* The file offset of guest OFFSET (0: its cluster is unallocated); *N is
 * how far the cluster reaches, at most COUNT. Returns the entry kept out
 * of the data path there, if any (*AT is then 0). */
static const struct prl_bad *lookup(const struct prl_state *s,
                                    uint64_t offset, uint64_t count,
                                    uint64_t *n, uint64_t *at)
{
    uint32_t idx = (uint32_t)(offset / s->cluster);
    uint64_t in = offset % s->cluster;

    *n = MIN(count, s->cluster - in);
    *at = s->bat[idx] ? entry_offset(s, s->bat[idx]) + in : 0;
    return find_bad(s, idx);
}

/* lookup, failing with EIO where an entry was kept out of the data path. */
static int cluster_map(struct vimg_image *img, uint64_t offset,
                       uint64_t count, uint64_t *n, uint64_t *at)
{
    struct prl_state *s = prl_state(img);
    const struct prl_bad *b = lookup(s, offset, count, n, at);

    if (b) {
        return vimg_internal_img_error(img, EIO, "BAT entry %u points at "
                                       "0x%llx, outside the data area or "
                                       "the file", b->idx,
                                       (unsigned long long)
                                       entry_offset(s, b->entry));
    }
    return 0;
}

static int prl_pread(struct vimg_image *img, void *buf, uint64_t count,
                     uint64_t offset)
{
    uint8_t *p = buf;

    while (count > 0) {
        uint64_t n, at;
        int r = cluster_map(img, offset, count, &n, &at);
        if (r < 0) {
            return r;
        }
        if (!at) {
            memset(p, 0, n);
        } else if ((r = vimg_internal_pread(img->file, p, n, at)) < 0) {
            return r;
        }
        p += n;
        offset += n;
        count -= n;
    }
    return 0;
}

/* Append a cluster for entry IDX at the end of the data area: zeros where
 * old bytes (a leak) lie, the file extended sparsely to its end. The entry
 * changes in memory only; flush writes it after the data. */
static int allocate_cluster(struct vimg_image *img, uint32_t idx,
                            uint64_t *at)
{
    struct prl_state *s = prl_state(img);
    uint64_t file_size = (uint64_t)vimg_internal_get_size(img->file);
    uint64_t unit = (s->ext ? s->tracks : 1) * (uint64_t)PRL_SECTOR;
    uint64_t entry = s->data_end / unit;
    int r;

    if (s->n_bad) {
        /* Such an entry may name bytes past data_end: a new cluster there
         * would be shared with it. */
        return vimg_internal_img_error(img, EIO, "BAT has entries outside "
                                       "the data area or the file; 'check "
                                       "-r all' must clear them before new "
                                       "clusters are written");
    }
    if (entry > UINT32_MAX) {
        return vimg_internal_img_error(img, ENOSPC, "image is full: a "
                                       "cluster at 0x%llx cannot be named "
                                       "in the BAT",
                                       (unsigned long long)s->data_end);
    }
    *at = s->data_end;
    if (file_size > *at &&
        (r = vimg_internal_zero(img->file, *at,
                                MIN(file_size - *at, s->cluster), 0)) < 0) {
        return r;
    }
    if (file_size < *at + s->cluster &&
        (r = vimg_internal_truncate(img->file, *at + s->cluster, 0,
                                    VIMG_PREALLOC_OFF)) < 0) {
        return r;
    }
    set_entry(s, idx, (uint32_t)entry);
    s->data_end = *at + s->cluster;
    return 0;
}

static int prl_pwrite(struct vimg_image *img, const void *buf, uint64_t count,
                      uint64_t offset, unsigned flags)
{
    struct prl_state *s = prl_state(img);
    const uint8_t *p = buf;

    while (count > 0) {
        uint64_t n, at;
        int r = cluster_map(img, offset, count, &n, &at);
        if (r == 0 && !at) {
            r = allocate_cluster(img, (uint32_t)(offset / s->cluster), &at);
            at += offset % s->cluster;
        }
        if (r < 0 ||
            (r = vimg_internal_pwrite(img->file, p, n, at, flags)) < 0) {
            return r;
        }
        p += n;
        offset += n;
        count -= n;
    }
    return 0;
}

/* Unallocated clusters read as zeros already: zeroing writes only into
 * allocated ones and never grows the image. */
static int prl_zero(struct vimg_image *img, uint64_t offset, uint64_t count,
                    unsigned flags)
{
    while (count > 0) {
        uint64_t n, at;
        int r = cluster_map(img, offset, count, &n, &at);
        if (r < 0 || (at && (r = vimg_internal_zero(img->file, at, n,
                                                    flags)) < 0)) {
            return r;
        }
        offset += n;
        count -= n;
    }
    return 0;
}

/* As QEMU reports them: unallocated clusters are not in this layer (zeros,
 * there being no backing file), allocated runs that are contiguous in the
 * file are one data extent at their file offset. */
static int prl_block_status(struct vimg_image *img, uint64_t offset,
                            uint64_t count, uint64_t *pnum, uint64_t *map,
                            const char **file)
{
    uint64_t n, at, next;
    int r = cluster_map(img, offset, count, &n, &at);

    if (r < 0) {
        return r;
    }
    *pnum = n;
    /* An entry kept out of the data path ends the run; it is reported
     * when its own extent is asked for. */
    while (*pnum < count &&
           !lookup(prl_state(img), offset + *pnum, count - *pnum, &n,
                   &next) &&
           (at ? next == at + *pnum : next == 0)) {
        *pnum += n;
    }
    if (!at) {
        return 0;
    }
    *map = at;
    *file = img->file->filename;
    return VIMG_BS_DATA | VIMG_BS_ALLOCATED | VIMG_BS_OFFSET_VALID;
}

/* An image left in use reads as not cleanly shut down (qemu-img 7.2 has
 * no info of its own for Parallels images). */
static int prl_get_info(struct vimg_image *img, struct vimg_value *info)
{
    return vimg_internal_value_set_bool(info, "dirty-flag",
                                        prl_state(img)->unclean);
}

/* ---- Resize ------------------------------------------------------------ */

/* Growing only, and only while the larger BAT fits before the data area
 * (qemu-img reserves whole clusters for it: 262128 entries in one 1 MiB
 * cluster). Moving clusters to make room is left to convert. */
static int prl_truncate(struct vimg_image *img, uint64_t size, unsigned flags,
                        enum vimg_prealloc prealloc)
{
    struct prl_state *s = prl_state(img);
    uint64_t entries = DIV_ROUND_UP(size, s->cluster);
    uint64_t old_size = img->size;
    uint32_t old_entries = s->bat_entries;
    uint8_t zeros[PRL_CHUNK] = { 0 };
    int r;

    (void)flags;
    if (prealloc != VIMG_PREALLOC_OFF) {
        return vimg_internal_img_error(img, ENOTSUP, "Parallels images are "
                                       "resized without preallocation");
    }
    if (size < old_size) {
        return vimg_internal_img_error(img, ENOTSUP, "Parallels images "
                                       "cannot be shrunk");
    }
    if (size % PRL_SECTOR) {
        return vimg_internal_img_error(img, EINVAL, "the size must be a "
                                       "multiple of %u bytes", PRL_SECTOR);
    }
    if (!s->ext && size / PRL_SECTOR > UINT32_MAX) {
        return vimg_internal_img_error(img, EFBIG, "an image with the old "
                                       "magic holds at most 2 TiB");
    }
    if (entries > PRL_MAX_BAT_ENTRIES ||
        PRL_BAT + entries * 4 > s->data_off) {
        return vimg_internal_img_error(img, ENOTSUP, "growing to %llu bytes "
                                       "needs a BAT of %llu entries, more "
                                       "than fit before the data area; "
                                       "convert the image instead",
                                       (unsigned long long)size,
                                       (unsigned long long)entries);
    }
    if (entries > old_entries) {
        uint32_t *bat = realloc(s->bat, (size_t)entries * sizeof *bat);
        if (!bat) {
            return vimg_internal_img_error(img, ENOMEM, "out of memory");
        }
        s->bat = bat;
        memset(bat + old_entries, 0,
               (size_t)(entries - old_entries) * sizeof *bat);
    }
    /* The bytes past the old end in its last cluster, and the new entries
     * (whatever the space before the data area held), must read 0. */
    uint64_t in = old_size % s->cluster;
    uint32_t last = (uint32_t)(old_size / s->cluster);
    if (in && s->bat[last] && !find_bad(s, last) &&
        (r = vimg_internal_zero(img->file,
                                entry_offset(s, s->bat[last]) + in,
                                MIN(s->cluster, size - old_size + in) - in,
                                0)) < 0) {
        return r;
    }
    for (uint64_t off = PRL_BAT + (uint64_t)old_entries * 4;
         off < PRL_BAT + entries * 4;) {
        uint64_t n = MIN(sizeof zeros, PRL_BAT + entries * 4 - off);
        if ((r = vimg_internal_pwrite(img->file, zeros, n, off,
                                      VIMG_INTERNAL_WRITE_METADATA)) < 0) {
            return r;
        }
        off += n;
    }
    if ((r = flush_bat(img)) < 0 || (r = vimg_internal_flush(img->file)) < 0) {
        return r;
    }
    s->bat_entries = (uint32_t)entries;
    store_le32(s->header + PRL_BAT_ENTRIES, s->bat_entries);
    store_le64(s->header + PRL_NB_SECTORS, size / PRL_SECTOR);
    if (load_le32(s->header + PRL_HEADS) == PRL_GEOM_HEADS) {
        store_le32(s->header + PRL_CYLINDERS,
                   (uint32_t)(size / PRL_SECTOR / PRL_GEOM_HEADS /
                              PRL_GEOM_SECTORS));
    }
    if ((r = write_header(img)) < 0) {
        return r;
    }
    img->size = size;
    return 0;
}

/* ---- Check ------------------------------------------------------------- */

static int offset_cmp(const void *a, const void *b, void *opaque)
{
    const struct prl_state *s = opaque;
    uint64_t x = entry_offset(s, s->bat[*(const uint32_t *)a]);
    uint64_t y = entry_offset(s, s->bat[*(const uint32_t *)b]);

    return x < y ? -1 : x > y;
}

static void say(vimg_report_fn report, void *opaque, bool fixing,
                const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void say(vimg_report_fn report, void *opaque, bool fixing,
                const char *fmt, ...)
{
    char msg[160];
    int n = snprintf(msg, sizeof msg, "%s ", fixing ? "Repairing" : "ERROR");
    va_list ap;

    if (!report) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
    va_end(ap);
    report(opaque, msg);
}

/* Copy the cluster at SRC to a new cluster for entry IDX. */
static int relocate(struct vimg_image *img, uint32_t idx, uint64_t src)
{
    struct prl_state *s = prl_state(img);
    uint8_t *buf = malloc(PRL_CHUNK);
    uint64_t dst;
    int r;

    if (!buf) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    if ((r = allocate_cluster(img, idx, &dst)) < 0) {
        free(buf);
        return r;
    }
    for (uint64_t done = 0; r == 0 && done < s->cluster;) {
        uint64_t n = MIN(PRL_CHUNK, s->cluster - done);
        if ((r = vimg_internal_pread(img->file, buf, n, src + done)) == 0) {
            r = vimg_internal_pwrite(img->file, buf, n, dst + done, 0);
        }
        done += n;
    }
    free(buf);
    return r;
}

/* Clusters that share bytes of the file: all but the first of each group
 * are reported, and with FIX_ERRORS copied to clusters of their own (the
 * guest then reads what it read before). */
static int check_overlaps(struct vimg_image *img, bool fixing,
                          struct vimg_check_result *res,
                          vimg_report_fn report, void *opaque)
{
    struct prl_state *s = prl_state(img);
    uint32_t n = 0, *order;
    uint64_t keep_end = 0;
    uint32_t keep = 0;
    int r = 0;

    for (uint32_t i = 0; i < s->bat_entries; i++) {
        n += s->bat[i] != 0;
    }
    order = malloc((n ? n : 1) * sizeof *order);
    if (!order) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    n = 0;
    for (uint32_t i = 0; i < s->bat_entries; i++) {
        if (s->bat[i]) {
            order[n++] = i;
        }
    }
    qsort_r(order, n, sizeof *order, offset_cmp, s);
    for (uint32_t k = 0; k < n && r == 0; k++) {
        uint32_t i = order[k];
        uint64_t off = entry_offset(s, s->bat[i]);
        if (k == 0 || off >= keep_end) {
            keep = i;
            keep_end = off + s->cluster;
            continue;
        }
        say(report, opaque, fixing, "cluster %u overlaps cluster %u in the "
            "file", i, keep);
        res->corruptions++;
        if (fixing && (r = relocate(img, i, off)) == 0) {
            res->corruptions_fixed++;
        }
    }
    free(order);
    return r;
}

/* What qemu-img check reports, in its words: an image left in use,
 * entries outside the image, space leaked after the last cluster; and
 * (QEMU 7.2 does not look) clusters that overlap. */
static int prl_check(struct vimg_image *img, unsigned fix,
                     struct vimg_check_result *res, vimg_report_fn report,
                     void *opaque)
{
    struct prl_state *s = prl_state(img);
    bool fix_errors = fix & VIMG_CHECK_FIX_ERRORS;
    bool fix_leaks = fix & VIMG_CHECK_FIX_LEAKS;
    /* QEMU sees files in whole sectors, leaks too. */
    uint64_t size = ROUND_UP((uint64_t)vimg_internal_get_size(img->file),
                             PRL_SECTOR);
    uint64_t high = 0, prev = 0, end;
    uint32_t b = 0;
    int r;

    if (s->unclean) {
        say(report, opaque, fix_errors, "image was not closed correctly");
        res->corruptions++;
        if (fix_errors) {
            s->unclean = false;
            res->corruptions_fixed++;
        }
    }
    res->has_cluster_stats = true;
    res->total_clusters = s->bat_entries;
    for (uint32_t i = 0; i < s->bat_entries; i++) {
        uint32_t e = s->bat[i];
        if (b < s->n_bad && s->bad[b].idx == i) {
            e = s->bad[b++].entry;
            say(report, opaque, fix_errors, "cluster %u is outside image", i);
            res->corruptions++;
            if (fix_errors) {
                set_entry(s, i, 0);
                res->corruptions_fixed++;
                e = 0;
            }
        }
        if (!e) {
            prev = 0;
            continue;
        }
        uint64_t off = entry_offset(s, e);
        res->allocated_clusters++;
        high = MAX(high, off + s->cluster);
        if (prev && prev + s->cluster != off) {
            res->fragmented_clusters++;
        }
        prev = off;
    }
    if (fix_errors) {
        s->n_bad = 0;
    }
    if ((r = check_overlaps(img, fix_errors, res, report, opaque)) < 0 ||
        (fix_errors && (r = flush_bat(img)) < 0)) {
        res->check_errors++;
        return r;
    }
    /* QEMU counts from one cluster, so a BAT longer than a cluster would
     * look leaked; the data area is where clusters start. Clusters the
     * repair appended count too. */
    end = MAX(high, s->data_off);
    if (fix_errors) {
        end = MAX(end, s->data_end);
    }
    res->image_end_offset = (int64_t)end;
    if (size > end) {
        uint64_t count = DIV_ROUND_UP(size - end, s->cluster);
        say(report, opaque, fix_leaks, "space leaked at the end of the "
            "image %llu", (unsigned long long)(size - end));
        res->leaks += (int64_t)count;
        if (fix_leaks) {
            if ((r = vimg_internal_truncate(img->file, end, 0,
                                            VIMG_PREALLOC_OFF)) < 0) {
                res->check_errors++;
                return r;
            }
            res->leaks_fixed += (int64_t)count;
            s->data_end = s->ext ? ROUND_UP(end, s->cluster) : end;
        }
    }
    return 0;
}

/* ---- Create ------------------------------------------------------------ */

static const struct vimg_opt_desc prl_create_opts[] = {
    { "size", VIMG_OPT_SIZE, "Virtual disk size" },
    { "cluster_size", VIMG_OPT_SIZE, "Parallels image cluster size" },
    { NULL, 0, NULL },
};

/* As qemu-img 7.2 lays a new image out: the new magic, the header and a
 * zeroed BAT filling whole clusters, the data area right after, empty. */
static int prl_create(struct vimg_image *file, const struct vimg_create_ctx *c)
{
    uint64_t size = ROUND_UP(c->size, PRL_SECTOR);
    uint64_t cl, entries, data_off;
    uint8_t h[PRL_HEADER_SIZE] = { 0 };
    int r;

    if ((r = vimg_internal_opts_get_size(c->opts, "cluster_size",
                                         PRL_DEFAULT_CLUSTER, &cl)) < 0) {
        return r;
    }
    if (cl > (uint64_t)PRL_MAX_CLUSTER_SECTORS * PRL_SECTOR) {
        return vimg_internal_error(EINVAL, "%s: Cluster size is too large "
                                   "(at most %llu bytes)", c->filename,
                                   (unsigned long long)
                                   PRL_MAX_CLUSTER_SECTORS * PRL_SECTOR);
    }
    cl = ROUND_UP(cl, PRL_SECTOR);
    if (cl == 0) {
        return vimg_internal_error(EINVAL, "%s: the cluster size must not "
                                   "be 0", c->filename);
    }
    entries = DIV_ROUND_UP(size, cl);
    if (entries > UINT32_MAX) {
        return vimg_internal_error(E2BIG, "%s: Image size is too large for "
                                   "this cluster size", c->filename);
    }
    if (entries > PRL_MAX_BAT_ENTRIES) {
        return vimg_internal_error(EFBIG, "%s: a %llu-byte image needs %llu "
                                   "clusters of %llu bytes, more than the "
                                   "%u a BAT may have here; choose larger "
                                   "clusters", c->filename,
                                   (unsigned long long)size,
                                   (unsigned long long)entries,
                                   (unsigned long long)cl,
                                   PRL_MAX_BAT_ENTRIES);
    }
    data_off = ROUND_UP(PRL_BAT + entries * 4, cl);
    memcpy(h + PRL_MAGIC, PRL_MAGIC_EXT, PRL_MAGIC_LEN);
    store_le32(h + PRL_VERSION, PRL_VERSION_2);
    store_le32(h + PRL_HEADS, PRL_GEOM_HEADS);
    store_le32(h + PRL_CYLINDERS, (uint32_t)(size / PRL_SECTOR /
                                             PRL_GEOM_HEADS /
                                             PRL_GEOM_SECTORS));
    store_le32(h + PRL_TRACKS, (uint32_t)(cl / PRL_SECTOR));
    store_le32(h + PRL_BAT_ENTRIES, (uint32_t)entries);
    store_le64(h + PRL_NB_SECTORS, size / PRL_SECTOR);
    store_le32(h + PRL_DATA_OFF, (uint32_t)(data_off / PRL_SECTOR));
    if ((r = vimg_internal_pwrite(file, h, sizeof h, 0, 0)) < 0) {
        return r;
    }
    /* The BAT and the rest of its clusters read as zeros: a sparse
     * extension is enough. */
    return vimg_internal_truncate(file, data_off, 0, VIMG_PREALLOC_OFF);
}

const struct vimg_driver vimg_driver_parallels = {
    .name = "parallels",
    .kind = VIMG_DRIVER_FORMAT,
    .instance_size = sizeof(struct prl_state),
    .thread_safe = false,
    .has_zero_init = true,
    .create_opts = prl_create_opts,
    .probe = prl_probe,
    .open = prl_open,
    .close = prl_close,
    .create = prl_create,
    .pread = prl_pread,
    .pwrite = prl_pwrite,
    .zero = prl_zero,
    .flush = prl_flush,
    .truncate = prl_truncate,
    .block_status = prl_block_status,
    .get_info = prl_get_info,
    .check = prl_check,
};
