/* ISO 9660 reading: the volume descriptor set, directory records, path
 * lookup, tree walks and file data, all through the image API so that the
 * same code reads a raw .iso, a qcow2 holding one, or a fuzzer's buffer.
 * Every offset and length taken from the image is checked in
 * iso_check_extent() or next to where the record is decoded. */
#define _GNU_SOURCE /* tdestroy */
#include <errno.h>
#include <inttypes.h>
#include <search.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../../common/checked-overflow.h"
#include "../../common/rounding.h"
#include "iso-read.h"

int iso_error(struct vimg_iso *iso, int errnum, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return vimg_internal_img_error(iso->img, errnum, "%s", msg);
}

int iso_check_extent(struct vimg_iso *iso, uint64_t lba, uint64_t length,
                     const char *what, struct iso_extent *out)
{
    uint64_t offset, end;

    if (length == 0) {
        /* Writers point empty files anywhere, even past the end. */
        out->offset = 0;
        out->length = 0;
        return 0;
    }
    if (CHECKED_MUL(lba, (uint64_t)ISO_SECTOR_SIZE, &offset) ||
        CHECKED_ADD(offset, length, &end) || end > iso->image_size) {
        return iso_error(iso, EINVAL, "%s: extent at LBA %" PRIu64 " (%"
                         PRIu64 " bytes) lies past the end of the image",
                         what, lba, length);
    }
    out->offset = offset;
    out->length = length;
    return 0;
}

int iso_read_at(struct vimg_iso *iso, void *buf, size_t count,
                uint64_t offset)
{
    return vimg_internal_pread(iso->img, buf, count, offset);
}

void iso_node_reset(struct iso_node *n)
{
    free(n->extents);
    n->extents = NULL;
    n->n_extents = 0;
    n->has_target = false;
    n->has_serial = false;
    n->serial = 0;
    n->name[0] = '\0';
    n->target[0] = '\0';
    memset(&n->st, 0, sizeof n->st);
    n->lba = 0;
}

/* Days from 1970-01-01 to Y-M-D in the proleptic Gregorian calendar. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static bool make_time(int64_t year, unsigned mon, unsigned day, unsigned h,
                      unsigned min, unsigned sec, int gmtoff15,
                      int64_t *out)
{
    if (mon < 1 || mon > 12 || day < 1 || day > 31 || h > 23 || min > 59 ||
        sec > 60 || gmtoff15 < -48 || gmtoff15 > 52) {
        return false;
    }
    *out = days_from_civil(year, mon, day) * 86400 + h * 3600 + min * 60 +
           sec - (int64_t)gmtoff15 * 15 * 60;
    return true;
}

bool iso_dir_date(const uint8_t *p, int64_t *out)
{
    return make_time(1900 + p[ISO_DIR_DATE_YEAR], p[ISO_DIR_DATE_MONTH],
                     p[ISO_DIR_DATE_DAY], p[ISO_DIR_DATE_HOUR],
                     p[ISO_DIR_DATE_MINUTE], p[ISO_DIR_DATE_SECOND],
                     (int8_t)p[ISO_DIR_DATE_GMTOFF], out);
}

static bool digits(const uint8_t *p, int n, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return false;
        }
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    *out = v;
    return true;
}

bool iso_vol_date(const uint8_t *p, int64_t *out, int *gmtoff_minutes)
{
    unsigned y, mo, d, h, mi, s, cs;
    int off = (int8_t)p[ISO_VOL_DATE_GMTOFF];

    if (!digits(p + ISO_VOL_DATE_YEAR, 4, &y) ||
        !digits(p + ISO_VOL_DATE_MONTH, 2, &mo) ||
        !digits(p + ISO_VOL_DATE_DAY, 2, &d) ||
        !digits(p + ISO_VOL_DATE_HOUR, 2, &h) ||
        !digits(p + ISO_VOL_DATE_MINUTE, 2, &mi) ||
        !digits(p + ISO_VOL_DATE_SECOND, 2, &s) ||
        !digits(p + ISO_VOL_DATE_HUNDREDTHS, 2, &cs) || y == 0) {
        return false; /* "0000000000000000" means not specified */
    }
    *gmtoff_minutes = off * 15;
    return make_time(y, mo, d, h, mi, s, off, out);
}

/* The ISO 9660 name of a record: ";VERSION" and a trailing '.' dropped. */
static int iso_name(const uint8_t *in, size_t len, char *out)
{
    size_t n = 0;
    while (n < len && in[n] != ISO_FILE_VERSION_SEPARATOR) {
        if (in[n] == '\0') {
            return -EINVAL;
        }
        n++;
    }
    if (n > 1 && in[n - 1] == '.') {
        n--;
    }
    memcpy(out, in, n);
    out[n] = '\0';
    return 0;
}

static int add_extent(struct vimg_iso *iso, struct iso_node *n,
                      const uint8_t *rec, const char *what)
{
    struct iso_extent e;
    uint64_t total;
    int r;

    if (n->n_extents >= ISO_MAX_EXTENTS) {
        return iso_error(iso, EINVAL, "%s: more than %d extents", what,
                         ISO_MAX_EXTENTS);
    }
    /* Data follows the extended attribute record, when there is one. */
    uint64_t lba = (uint64_t)iso_load_both32(rec + ISO_DR_EXTENT_OFFSET) +
                   rec[ISO_DR_EXT_ATTR_LENGTH_OFFSET];
    if ((r = iso_check_extent(iso, lba,
                              iso_load_both32(rec +
                                              ISO_DR_DATA_LENGTH_OFFSET),
                              what, &e)) < 0) {
        return r;
    }
    if (CHECKED_ADD(n->st.size, e.length, &total)) {
        return iso_error(iso, EINVAL, "%s: file size overflows", what);
    }
    /* Grow to the next power of two, so that a hostile run of 64 Ki
     * extents costs linear time. */
    size_t k = n->n_extents;
    if ((k & (k - 1)) == 0) {
        struct iso_extent *x = realloc(n->extents,
                                       (k ? 2 * k : 1) * sizeof *x);
        if (!x) {
            return iso_error(iso, ENOMEM, "out of memory");
        }
        n->extents = x;
    }
    struct iso_extent *x = n->extents;
    x[n->n_extents++] = e;
    n->st.size = total;
    return 0;
}

static enum vimg_iso_type type_of_mode(uint32_t mode)
{
    switch (mode & S_IFMT) {
    case S_IFDIR: return VIMG_ISO_DIRECTORY;
    case S_IFLNK: return VIMG_ISO_SYMLINK;
    case S_IFCHR: return VIMG_ISO_CHARDEV;
    case S_IFBLK: return VIMG_ISO_BLOCKDEV;
    case S_IFIFO: return VIMG_ISO_FIFO;
    case S_IFSOCK: return VIMG_ISO_SOCKET;
    default: return VIMG_ISO_FILE;
    }
}

/* Decode record REC (RECLEN bytes, >= ISO_DR_MIN_LENGTH, inside its
 * sector) of directory DIRPATH into N (reset first). */
static int decode_record(struct vimg_iso *iso, const uint8_t *rec,
                         size_t reclen, const char *dirpath,
                         struct iso_node *n, bool *relocated,
                         uint64_t *child_lba)
{
    unsigned name_len = rec[ISO_DR_NAME_LENGTH_OFFSET];
    const uint8_t *name = rec + ISO_DR_NAME_OFFSET;
    char what[2 * ISO_MAX_NAME];
    int r;

    iso_node_reset(n);
    *relocated = false;
    *child_lba = 0;
    if (ISO_DR_NAME_OFFSET + name_len > reclen) {
        return iso_error(iso, EINVAL, "directory %s: record name overruns "
                         "its %zu-byte record", *dirpath ? dirpath : "/",
                         reclen);
    }
    if (iso->use_joliet) {
        if ((r = iso_joliet_name(name, name_len, n->name,
                                 sizeof n->name)) < 0) {
            return iso_error(iso, -r, "directory %s: bad Joliet name",
                             *dirpath ? dirpath : "/");
        }
    } else if (iso_name(name, name_len, n->name) < 0) {
        return iso_error(iso, EINVAL, "directory %s: name contains a NUL "
                         "byte", *dirpath ? dirpath : "/");
    }
    bool dir = rec[ISO_DR_FLAGS_OFFSET] & ISO_DR_FLAG_DIRECTORY;
    n->st.mode = dir ? (S_IFDIR | 0555) : (S_IFREG | 0444);
    n->st.nlink = 1;
    if (iso_dir_date(rec + ISO_DR_DATE_OFFSET, &n->st.mtime)) {
        n->st.atime = n->st.mtime;
    }
    n->lba = iso_load_both32(rec + ISO_DR_EXTENT_OFFSET);
    if (iso->rock_ridge && !iso->use_joliet) {
        size_t su = (size_t)iso_dr_system_use_offset(name_len) +
                    iso->susp_skip;
        snprintf(what, sizeof what, "%s/%s", dirpath, n->name);
        if (su < reclen &&
            (r = iso_susp_apply(iso, rec + su, reclen - su, what, n,
                                relocated, child_lba)) < 0) {
            return r;
        }
    }
    if (dir) {
        n->st.mode = (n->st.mode & 07777) | S_IFDIR;
    }
    n->st.type = type_of_mode(n->st.mode);
    snprintf(what, sizeof what, "%s/%s", dirpath, n->name);
    return add_extent(iso, n, rec, what);
}

/* The next non-empty record of D: *REC points into d->sector. */
static int next_raw(struct iso_dir *d, const uint8_t **rec, size_t *reclen)
{
    struct vimg_iso *iso = d->iso;
    int r;

    while (d->pos < d->length) {
        uint64_t sec = ROUND_DOWN(d->pos, ISO_SECTOR_SIZE);
        size_t in = (size_t)(d->pos - sec);
        size_t avail = (size_t)MIN(ISO_SECTOR_SIZE, d->length - sec);
        if (d->loaded != sec) {
            memset(d->sector, 0, sizeof d->sector);
            if ((r = iso_read_at(iso, d->sector, avail,
                                 d->offset + sec)) < 0) {
                return r;
            }
            d->loaded = sec;
        }
        size_t len = d->sector[in];
        if (len == 0) {
            d->pos = sec + ISO_SECTOR_SIZE; /* padding to the next sector */
            continue;
        }
        if (len < ISO_DR_MIN_LENGTH || len > avail - in) {
            return iso_error(iso, EINVAL, "directory %s: record at byte %"
                             PRIu64 " is %zu bytes long (%s)",
                             *d->path ? d->path : "/", d->pos, len,
                             len < ISO_DR_MIN_LENGTH ?
                             "shorter than 34" : "overruns its sector");
        }
        if (++iso->entries > iso->max_entries) {
            return iso_error(iso, EINVAL, "more than %" PRIu64 " directory "
                             "records (at most one per 34 bytes of the "
                             "image, and %u)", iso->max_entries,
                             ISO_MAX_ENTRIES);
        }
        d->pos += len;
        *rec = d->sector + in;
        *reclen = len;
        return 1;
    }
    return 0;
}

int iso_dir_open(struct vimg_iso *iso, const struct iso_node *dir,
                 const char *path, struct iso_dir *d)
{
    memset(d, 0, sizeof *d);
    d->iso = iso;
    d->path = path;
    d->loaded = UINT64_MAX;
    if (dir->n_extents != 1) {
        return iso_error(iso, EINVAL, "directory %s has %zu extents",
                         *path ? path : "/", dir->n_extents);
    }
    if (dir->extents[0].length > ISO_MAX_DIR_BYTES) {
        return iso_error(iso, EINVAL, "directory %s is %" PRIu64 " bytes "
                         "long (more than %u)", *path ? path : "/",
                         dir->extents[0].length, ISO_MAX_DIR_BYTES);
    }
    d->offset = dir->extents[0].offset;
    d->length = dir->extents[0].length;
    return 0;
}

/* A relocated directory (RRIP CL): its real extent comes from the "."
 * record at CHILD_LBA. */
static int resolve_child_link(struct iso_dir *d, struct iso_node *n,
                              uint64_t child_lba)
{
    struct vimg_iso *iso = d->iso;
    uint8_t rec[ISO_DR_MIN_LENGTH];
    struct iso_extent e;
    int r;

    if ((r = iso_check_extent(iso, child_lba, sizeof rec, n->name,
                              &e)) < 0 ||
        (r = iso_read_at(iso, rec, sizeof rec, e.offset)) < 0) {
        return r;
    }
    if (rec[ISO_DR_LENGTH_OFFSET] < ISO_DR_MIN_LENGTH) {
        return iso_error(iso, EINVAL, "%s/%s: relocated directory at LBA %"
                         PRIu64 " has no \".\" record", d->path, n->name,
                         child_lba);
    }
    n->n_extents = 0;
    n->st.size = 0;
    n->st.mode = (n->st.mode & 07777) | S_IFDIR;
    n->st.type = VIMG_ISO_DIRECTORY;
    return add_extent(iso, n, rec, n->name);
}

int iso_dir_next(struct iso_dir *d, struct iso_node *out)
{
    struct vimg_iso *iso = d->iso;
    const uint8_t *rec;
    size_t reclen;
    bool relocated;
    uint64_t child;
    int r;

    for (;;) {
        if ((r = next_raw(d, &rec, &reclen)) <= 0) {
            return r;
        }
        if (rec[ISO_DR_NAME_LENGTH_OFFSET] == 1 &&
            (rec[ISO_DR_NAME_OFFSET] == ISO_DR_NAME_SELF ||
             rec[ISO_DR_NAME_OFFSET] == ISO_DR_NAME_PARENT)) {
            continue;
        }
        if ((r = decode_record(iso, rec, reclen, d->path, out, &relocated,
                               &child)) < 0) {
            return r;
        }
        /* Multi-extent: the records that follow carry the same name. */
        uint8_t first[ISO_DR_MAX_LENGTH];
        memcpy(first, rec, reclen);
        while (rec[ISO_DR_FLAGS_OFFSET] & ISO_DR_FLAG_MULTI_EXTENT) {
            if ((r = next_raw(d, &rec, &reclen)) < 0) {
                return r;
            }
            if (r == 0 || (size_t)ISO_DR_NAME_OFFSET +
                rec[ISO_DR_NAME_LENGTH_OFFSET] > reclen ||
                rec[ISO_DR_NAME_LENGTH_OFFSET] !=
                first[ISO_DR_NAME_LENGTH_OFFSET] ||
                memcmp(rec + ISO_DR_NAME_OFFSET, first + ISO_DR_NAME_OFFSET,
                       first[ISO_DR_NAME_LENGTH_OFFSET]) != 0) {
                return iso_error(iso, EINVAL, "%s/%s: multi-extent file is "
                                 "not followed by its next extent",
                                 d->path, out->name);
            }
            if ((r = add_extent(iso, out, rec, out->name)) < 0) {
                return r;
            }
        }
        if (relocated) {
            continue; /* shown where its CL entry is */
        }
        if (child && (r = resolve_child_link(d, out, child)) < 0) {
            return r;
        }
        if (out->name[0] == '\0') {
            return iso_error(iso, EINVAL, "directory %s: entry with an "
                             "empty name", *d->path ? d->path : "/");
        }
        return 1;
    }
}

int iso_lookup(struct vimg_iso *iso, const char *path, struct iso_node *out)
{
    char *copy = strdup(path), *save = NULL, *sofar, *dirpath;
    struct iso_dir *d = malloc(sizeof *d);
    uint64_t saved_entries = iso->entries;
    int r = 0;

    iso_node_reset(out);
    sofar = malloc(strlen(path) + 2);
    dirpath = malloc(strlen(path) + 2);
    if (!copy || !d || !sofar || !dirpath ||
        !(out->extents = malloc(iso->root.n_extents *
                                sizeof *out->extents))) {
        r = iso_error(iso, ENOMEM, "out of memory");
        goto out;
    }
    memcpy(out->extents, iso->root.extents,
           iso->root.n_extents * sizeof *out->extents);
    out->n_extents = iso->root.n_extents;
    out->st = iso->root.st;
    out->lba = iso->root.lba;
    sofar[0] = '\0';
    /* A lookup may run inside a walk's callback: count its own records. */
    saved_entries = iso->entries;
    iso->entries = 0;
    for (char *c = strtok_r(copy, "/", &save); c;
         c = strtok_r(NULL, "/", &save)) {
        if (!strcmp(c, ".")) {
            continue;
        }
        if (out->st.type != VIMG_ISO_DIRECTORY) {
            r = iso_error(iso, ENOTDIR, "%s is not a directory",
                          *sofar ? sofar : "/");
            goto out;
        }
        /* D keeps DIRPATH for its messages while SOFAR grows. */
        strcpy(dirpath, sofar);
        if ((r = iso_dir_open(iso, out, dirpath, d)) < 0) {
            goto out;
        }
        strcat(sofar, "/");
        strcat(sofar, c);
        /* OUT is overwritten by the entries; D copied what it needs. */
        while ((r = iso_dir_next(d, out)) == 1 && strcmp(out->name, c)) {
        }
        if (r < 0) {
            goto out;
        }
        if (r == 0) {
            r = iso_error(iso, ENOENT, "%s: no such file or directory",
                          sofar);
            goto out;
        }
    }
    r = 0;
out:
    iso->entries = saved_entries;
    free(copy);
    free(d);
    free(sofar);
    free(dirpath);
    return r;
}

static int cmp_extent(const void *a, const void *b)
{
    const struct iso_entered *x = a, *y = b;

    if (x->end <= y->start) {
        return -1;
    }
    if (y->end <= x->start) {
        return 1;
    }
    return 0; /* they overlap: the tree's extents stay disjoint */
}

int iso_visit_enter(struct iso_visited *v, const struct iso_dir *d,
                    int depth, struct iso_entered **out)
{
    struct vimg_iso *iso = d->iso;
    const char *path = *d->path ? d->path : "/";
    struct iso_entered *e;
    void **slot;

    *out = NULL;
    if (depth > ISO_MAX_DEPTH) {
        return iso_error(iso, EINVAL, "directories nest more than %d levels "
                         "deep: %s", ISO_MAX_DEPTH, path);
    }
    if (d->length == 0) {
        return 0; /* nothing is read */
    }
    if (!(e = malloc(sizeof *e))) {
        return iso_error(iso, ENOMEM, "out of memory");
    }
    *e = (struct iso_entered){ d->offset, d->offset + d->length, true };
    if (!(slot = tsearch(e, &v->tree, cmp_extent))) {
        free(e);
        return iso_error(iso, ENOMEM, "out of memory");
    }
    if (*slot != e) {
        const struct iso_entered *old = *slot;
        free(e);
        if (old->open) {
            return iso_error(iso, EINVAL, "directory %s points back at an "
                             "ancestor (directory loop)", path);
        }
        return iso_error(iso, EINVAL, "directory %s shares its extent (LBA %"
                         PRIu64 ") with a directory already read; each is "
                         "read once", path, d->offset / ISO_SECTOR_SIZE);
    }
    *out = e;
    return 0;
}

void iso_visit_free(struct iso_visited *v)
{
    tdestroy(v->tree, free);
    v->tree = NULL;
}

struct walk_level {
    struct iso_dir dir;
    struct iso_node node;
};

static int walk(struct vimg_iso *iso, const struct iso_node *dir,
                const char *path, bool recursive, iso_walk_fn fn,
                void *opaque, struct iso_visited *visited, int depth)
{
    struct walk_level *l = calloc(1, sizeof *l);
    struct iso_entered *entered = NULL;
    char *child = NULL;
    int r;

    if (!l) {
        return iso_error(iso, ENOMEM, "out of memory");
    }
    if ((r = iso_dir_open(iso, dir, path, &l->dir)) < 0 ||
        (r = iso_visit_enter(visited, &l->dir, depth, &entered)) < 0) {
        goto out;
    }
    while ((r = iso_dir_next(&l->dir, &l->node)) == 1) {
        free(child);
        if (!(child = malloc(strlen(path) + strlen(l->node.name) + 2))) {
            r = iso_error(iso, ENOMEM, "out of memory");
            goto out;
        }
        sprintf(child, "%s/%s", path, l->node.name);
        if ((r = fn(opaque, child, &l->node)) != 0) {
            goto out;
        }
        if (recursive && l->node.st.type == VIMG_ISO_DIRECTORY &&
            (r = walk(iso, &l->node, child, true, fn, opaque, visited,
                      depth + 1)) != 0) {
            goto out;
        }
    }
out:
    iso_visit_leave(entered);
    free(child);
    iso_node_reset(&l->node);
    free(l);
    return r;
}

int iso_walk(struct vimg_iso *iso, const struct iso_node *dir,
             const char *path, bool recursive, iso_walk_fn fn, void *opaque)
{
    struct iso_visited visited = { NULL };

    iso->entries = 0;
    int r = walk(iso, dir, path, recursive, fn, opaque, &visited, 0);
    iso_visit_free(&visited);
    return r;
}

/* ---- The volume ------------------------------------------------------- */

static int joliet_level(const uint8_t *vd)
{
    static const char *const esc[] = { ISO_JOLIET_ESCAPE_LEVEL1,
                                       ISO_JOLIET_ESCAPE_LEVEL2,
                                       ISO_JOLIET_ESCAPE_LEVEL3 };
    const uint8_t *e = vd + ISO_SVD_ESCAPE_SEQUENCES_OFFSET;

    for (int i = 0; i < 3; i++) {
        if (!memcmp(e, esc[i], ISO_JOLIET_ESCAPE_SIZE)) {
            return i + 1;
        }
    }
    return 0;
}

static int read_descriptors(struct vimg_iso *iso)
{
    uint8_t vd[ISO_SECTOR_SIZE];
    bool have_pvd = false;
    int r;

    for (int i = 0; i < ISO_MAX_DESCRIPTORS; i++) {
        uint64_t off = ISO_VD_FIRST_OFFSET + (uint64_t)i * ISO_SECTOR_SIZE;
        if (off + ISO_SECTOR_SIZE > iso->image_size) {
            return iso_error(iso, EINVAL, "%s", i == 0 ?
                             "no ISO 9660 volume descriptor (image too "
                             "small)" : "ISO 9660 descriptor set runs past "
                             "the end of the image");
        }
        if ((r = iso_read_at(iso, vd, sizeof vd, off)) < 0) {
            return r;
        }
        if (memcmp(vd + ISO_VD_ID_OFFSET, ISO_VD_ID, ISO_VD_ID_SIZE)) {
            return iso_error(iso, EINVAL, "%s", i == 0 ?
                             "no ISO 9660 volume descriptor" :
                             "ISO 9660 descriptor set ends without a "
                             "terminator");
        }
        switch (vd[ISO_VD_TYPE_OFFSET]) {
        case ISO_VD_TERMINATOR:
            if (!have_pvd) {
                return iso_error(iso, EINVAL, "ISO 9660 descriptor set has "
                                 "no primary volume descriptor");
            }
            return 0;
        case ISO_VD_PRIMARY:
            if (!have_pvd) {
                memcpy(iso->pvd, vd, sizeof vd);
                have_pvd = true;
            }
            break;
        case ISO_VD_SUPPLEMENTARY:
            if (!iso->joliet_level && (iso->joliet_level =
                                       joliet_level(vd))) {
                memcpy(iso->joliet_root, vd + ISO_PVD_ROOT_DIR_RECORD_OFFSET,
                       ISO_DR_MIN_LENGTH);
            }
            break;
        case ISO_VD_BOOT_RECORD:
            if (!memcmp(vd + ISO_BR_SYSTEM_ID_OFFSET, ISO_ELTORITO_SYSTEM_ID,
                        strlen(ISO_ELTORITO_SYSTEM_ID))) {
                iso->el_torito = true;
                iso->catalog_lba = load_le32(vd + ISO_BR_CATALOG_LBA_OFFSET);
            }
            break;
        default:
            break;
        }
    }
    return iso_error(iso, EINVAL, "ISO 9660 descriptor set has no "
                     "terminator within %d descriptors",
                     ISO_MAX_DESCRIPTORS);
}

static int root_from_record(struct vimg_iso *iso, const uint8_t *rec)
{
    iso_node_reset(&iso->root);
    if (rec[ISO_DR_LENGTH_OFFSET] < ISO_DR_MIN_LENGTH ||
        !(rec[ISO_DR_FLAGS_OFFSET] & ISO_DR_FLAG_DIRECTORY)) {
        return iso_error(iso, EINVAL, "root directory record is invalid");
    }
    iso->root.st.type = VIMG_ISO_DIRECTORY;
    iso->root.st.mode = S_IFDIR | 0555;
    iso->root.st.nlink = 1;
    if (iso_dir_date(rec + ISO_DR_DATE_OFFSET, &iso->root.st.mtime)) {
        iso->root.st.atime = iso->root.st.mtime;
    }
    iso->root.lba = iso_load_both32(rec + ISO_DR_EXTENT_OFFSET);
    return add_extent(iso, &iso->root, rec, "root directory");
}

/* Rock Ridge lives in the SUSP area of the root's "." record. */
static int detect_rock_ridge(struct vimg_iso *iso)
{
    struct iso_dir d;
    const uint8_t *rec;
    size_t reclen;
    int r;

    if ((r = iso_dir_open(iso, &iso->root, "", &d)) < 0 ||
        (r = next_raw(&d, &rec, &reclen)) <= 0) {
        return r < 0 ? r : iso_error(iso, EINVAL, "root directory is "
                                     "empty");
    }
    size_t su = iso_dr_system_use_offset(rec[ISO_DR_NAME_LENGTH_OFFSET]);
    if (su >= reclen) {
        return 0;
    }
    if ((r = iso_susp_detect(iso, rec + su, reclen - su)) < 0) {
        return r;
    }
    /* The root's own attributes and times. */
    if (iso->rock_ridge) {
        bool relocated;
        uint64_t child;
        struct iso_node *n = &iso->cur;
        iso_node_reset(n);
        /* This area starts with SP itself (no LEN_SKP bytes before it);
         * apply_entry ignores SP and ER. */
        if ((r = iso_susp_apply(iso, rec + su, reclen - su, "/", n,
                                &relocated, &child)) < 0) {
            return r;
        }
        if (n->st.mode) {
            iso->root.st.mode = S_IFDIR | (n->st.mode & 07777);
            iso->root.st.nlink = n->st.nlink;
            iso->root.st.uid = n->st.uid;
            iso->root.st.gid = n->st.gid;
            iso->root.st.rock_ridge = true;
        }
        if (n->st.mtime) {
            iso->root.st.mtime = n->st.mtime;
            iso->root.st.atime = n->st.atime;
        }
        iso_node_reset(n);
    }
    return 0;
}

struct vimg_iso *iso_volume_open(struct vimg_image *img)
{
    struct vimg_iso *iso = calloc(1, sizeof *iso);
    int64_t size;
    int r;

    if (!iso) {
        vimg_internal_img_error(img, ENOMEM, "out of memory");
        return NULL;
    }
    iso->img = img;
    if ((size = vimg_internal_get_size(img)) < 0) {
        goto fail;
    }
    iso->image_size = (uint64_t)size;
    iso->max_entries = MIN(ISO_MAX_ENTRIES,
                           iso->image_size / ISO_DR_MIN_LENGTH);
    if ((r = read_descriptors(iso)) < 0) {
        goto fail;
    }
    uint32_t bs = iso_load_both16(iso->pvd + ISO_PVD_BLOCK_SIZE_OFFSET);
    if (bs != ISO_SECTOR_SIZE) {
        iso_error(iso, ENOTSUP, "ISO 9660 logical block size %u is not "
                  "supported (only 2048)", bs);
        goto fail;
    }
    iso->volume_blocks = iso_load_both32(iso->pvd +
                                         ISO_PVD_VOLUME_SPACE_SIZE_OFFSET);
    if ((r = root_from_record(iso, iso->pvd +
                              ISO_PVD_ROOT_DIR_RECORD_OFFSET)) < 0 ||
        (r = detect_rock_ridge(iso)) < 0) {
        goto fail;
    }
    if (!iso->rock_ridge && iso->joliet_level) {
        if ((r = root_from_record(iso, iso->joliet_root)) < 0) {
            goto fail;
        }
        iso->use_joliet = true;
    }
    return iso;

fail:
    vimg_iso_close(iso);
    return NULL;
}

struct vimg_iso *vimg_iso_open(struct vimg_image *img)
{
    vimg_internal_error_clear();
    return iso_volume_open(img);
}

void vimg_iso_close(struct vimg_iso *iso)
{
    if (iso) {
        iso_node_reset(&iso->root);
        iso_node_reset(&iso->cur);
        free(iso->cur_path);
        free(iso);
    }
}

/* Make iso->cur the node at PATH. */
static int lookup_cur(struct vimg_iso *iso, const char *path)
{
    int r;

    if (iso->cur_path && !strcmp(iso->cur_path, path)) {
        return 0;
    }
    free(iso->cur_path);
    iso->cur_path = NULL;
    if ((r = iso_lookup(iso, path, &iso->cur)) < 0) {
        return r;
    }
    if (!(iso->cur_path = strdup(path))) {
        return iso_error(iso, ENOMEM, "out of memory");
    }
    return 0;
}

int vimg_iso_stat(struct vimg_iso *iso, const char *path,
                  struct vimg_iso_stat *st)
{
    vimg_internal_error_clear();
    if (lookup_cur(iso, path) < 0) {
        return -1;
    }
    *st = *iso_node_stat(&iso->cur);
    return 0;
}

struct list_ctx {
    vimg_iso_list_fn fn;
    void *opaque;
};

static int list_one(void *opaque, const char *path, struct iso_node *n)
{
    struct list_ctx *c = opaque;
    return c->fn(c->opaque, path, iso_node_stat(n));
}

int vimg_iso_list(struct vimg_iso *iso, const char *path, bool recursive,
                  vimg_iso_list_fn fn, void *opaque)
{
    struct list_ctx c = { fn, opaque };
    struct iso_node *dir;
    char *p;
    int r;

    vimg_internal_error_clear();
    if (!(dir = calloc(1, sizeof *dir))) {
        iso_error(iso, ENOMEM, "out of memory");
        return -1;
    }
    if ((r = iso_lookup(iso, path ? path : "/", dir)) < 0) {
        iso_node_reset(dir); /* a failed lookup may hold extents */
        free(dir);
        return -1;
    }
    /* Paths handed to FN are absolute: "/" + PATH without the slashes
     * around it. */
    path = path ? path : "";
    path += strspn(path, "/");
    if (!(p = malloc(strlen(path) + 2))) {
        iso_node_reset(dir);
        free(dir);
        iso_error(iso, ENOMEM, "out of memory");
        return -1;
    }
    size_t n = strlen(path);
    while (n > 0 && path[n - 1] == '/') {
        n--;
    }
    sprintf(p, "%s%.*s", n ? "/" : "", (int)n, path);
    if (dir->st.type != VIMG_ISO_DIRECTORY) {
        r = list_one(&c, p, dir);
    } else {
        r = iso_walk(iso, dir, p, recursive, list_one, &c);
    }
    iso_node_reset(dir);
    free(dir);
    free(p);
    return r < 0 ? -1 : r;
}

int64_t vimg_iso_read(struct vimg_iso *iso, const char *path, void *buf,
                      size_t count, uint64_t offset)
{
    struct iso_node *n = &iso->cur;
    uint8_t *out = buf;
    uint64_t done = 0, base = 0;

    vimg_internal_error_clear();
    if (lookup_cur(iso, path) < 0) {
        return -1;
    }
    if (n->st.type != VIMG_ISO_FILE) {
        iso_error(iso, EISDIR, "%s is not a regular file", path);
        return -1;
    }
    for (size_t i = 0; i < n->n_extents && done < count; i++) {
        const struct iso_extent *e = &n->extents[i];
        uint64_t pos = offset + done;
        if (pos < base + e->length) {
            uint64_t in = pos - base;
            uint64_t len = MIN(e->length - in, count - done);
            if (iso_read_at(iso, out + done, len, e->offset + in) < 0) {
                return -1;
            }
            done += len;
        }
        base += e->length;
    }
    return (int64_t)done;
}
