/* Persistent dirty bitmaps (QEMU docs/interop/qcow2.txt, "Bitmaps
 * extension"). The directory is read and validated once, at open. While
 * the image is open read-write, every enabled bitmap records the guest
 * ranges written, in memory: one cluster-sized page of bits per bitmap
 * data cluster touched, on top of what the image holds. Flush and close
 * write changed bitmaps back copy-on-write: their new data clusters and
 * tables, then a new directory, are made durable before the header
 * extension names that directory; only then are the old clusters freed.
 * So the header always names a complete directory, and a crash at any
 * point leaves at worst leaked clusters.
 *
 * Before the first change of the guest disk the directory marks the
 * enabled bitmaps in use (QEMU's IN_USE flag): if vimg then stops without
 * closing the image, they read as inconsistent rather than as a record
 * that misses writes. A clean close clears the flag. Disabled bitmaps do
 * not change with guest writes and stay consistent. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../../common/checked-overflow.h"
#include "../../../common/iszero.h"
#include "../../../common/rounding.h"
#include "qcow2.h"

/* ---- Sizes ------------------------------------------------------------ */

static uint64_t nb_bits(uint64_t size, unsigned gran_bits)
{
    return DIV_ROUND_UP(size, (uint64_t)1 << gran_bits);
}

/* Table entries for a bitmap of a SIZE-byte disk: QEMU serialises the
 * bits in 64-bit words, a cluster of them per entry. */
static uint64_t table_entries(const struct qcow2_state *s, uint64_t size,
                              unsigned gran_bits)
{
    return DIV_ROUND_UP(DIV_ROUND_UP(nb_bits(size, gran_bits), 64) * 8,
                        s->cluster_size);
}

static uint64_t bits_per_page(const struct qcow2_state *s)
{
    return s->cluster_size * 8;
}

static uint64_t dir_entry_size(size_t name_len)
{
    return ROUND_UP(QCOW2_BMDIR_FIXED_SIZE + (uint64_t)name_len, 8);
}

static bool tracking(const struct qcow2_bitmap *b)
{
    return (b->flags & QCOW2_BMDIR_FLAG_AUTO) && !b->inconsistent;
}

/* The directory flags of B while the image is open (CLOSING: as a clean
 * close leaves them). */
static uint32_t disk_flags(const struct qcow2_state *s,
                           const struct qcow2_bitmap *b, bool closing)
{
    uint32_t f = b->flags & QCOW2_BMDIR_FLAG_AUTO;

    if (b->inconsistent ||
        (!closing && ((tracking(b) && s->bm_in_use) || s->bm_resizing))) {
        f |= QCOW2_BMDIR_FLAG_IN_USE;
    }
    return f;
}

static struct qcow2_bitmap *find(struct qcow2_state *s, const char *name)
{
    for (uint32_t i = 0; i < s->bm_count; i++) {
        if (strcmp(s->bm[i].name, name) == 0) {
            return &s->bm[i];
        }
    }
    return NULL;
}

static void free_pages(struct qcow2_bitmap *b)
{
    for (uint64_t i = 0; i < b->nb_pages; i++) {
        free(b->pages[i]);
    }
    free(b->pages);
    b->pages = NULL;
    b->nb_pages = 0;
}

static void bitmap_free(struct qcow2_bitmap *b)
{
    free(b->name);
    free(b->table);
    free_pages(b);
    memset(b, 0, sizeof *b);
}

void qcow2_bitmaps_free(struct qcow2_state *s)
{
    for (uint32_t i = 0; s->bm && i < s->bm_count; i++) {
        bitmap_free(&s->bm[i]);
    }
    free(s->bm);
    s->bm = NULL;
    s->bm_count = 0;
}

/* ---- Host ranges freed once the new directory is on disk -------------- */

struct ranges {
    struct qcow2_range *v;
    size_t n, cap;
};

static int ranges_add(struct vimg_image *img, struct ranges *r,
                      uint64_t offset, uint64_t len)
{
    if (!len) {
        return 0;
    }
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        void *p = realloc(r->v, cap * sizeof *r->v);
        if (!p) {
            return vimg_internal_img_error(img, ENOMEM, "out of memory");
        }
        r->v = p;
        r->cap = cap;
    }
    r->v[r->n].offset = offset;
    r->v[r->n].len = len;
    r->n++;
    return 0;
}

static void ranges_release(struct ranges *r)
{
    free(r->v);
    memset(r, 0, sizeof *r);
}

/* ---- Loading and validation ------------------------------------------ */

bool qcow2_bitmap_entry_valid(const struct qcow2_state *s, uint64_t e)
{
    uint64_t off = e & QCOW2_BMT_OFFSET_MASK;

    if (e & QCOW2_BMT_RESERVED) {
        return false;
    }
    /* With a data cluster, bit 0 is reserved. */
    return !off || (!(e & QCOW2_BMT_ALL_ONES) &&
                    !(off & (s->cluster_size - 1)));
}

/* Check one directory entry at E (AVAIL bytes left in the directory) into
 * B, its length in *LEN: QEMU's bitmap_list_load and check_dir_entry
 * rules, plus what reading it safely needs (the table inside the file, a
 * name without NUL bytes). */
static int parse_entry(struct vimg_image *img, const uint8_t *e,
                       uint64_t avail, uint64_t file_size, uint64_t *len,
                       struct qcow2_bitmap *b)
{
    struct qcow2_state *s = qcow2_state(img);
    uint64_t table = load_be64(e + QCOW2_BMDIR_TABLE_OFFSET);
    uint32_t size = load_be32(e + QCOW2_BMDIR_TABLE_SIZE);
    uint32_t flags = load_be32(e + QCOW2_BMDIR_FLAGS);
    uint8_t type = e[QCOW2_BMDIR_TYPE];
    uint8_t gran = e[QCOW2_BMDIR_GRANULARITY];
    uint16_t name_len = load_be16(e + QCOW2_BMDIR_NAME_SIZE);
    uint32_t extra = load_be32(e + QCOW2_BMDIR_EXTRA_DATA_SIZE);

    *len = ROUND_UP(QCOW2_BMDIR_FIXED_SIZE + (uint64_t)extra + name_len, 8);
    if (*len > avail) {
        return vimg_internal_img_error(img, EINVAL, "Broken bitmap "
                                       "directory");
    }
    if (extra) {
        return vimg_internal_img_error(img, ENOTSUP, "Bitmap extra data is "
                                       "not supported");
    }
    const char *name = (const char *)e + QCOW2_BMDIR_FIXED_SIZE;
    uint64_t phys = (uint64_t)size * s->cluster_size;
    bool bad = size == 0 || table == 0 || (table & (s->cluster_size - 1)) ||
               size > QCOW2_MAX_BITMAP_TABLE ||
               gran < QCOW2_MIN_BITMAP_GRAN_BITS ||
               gran > QCOW2_MAX_BITMAP_GRAN_BITS ||
               (flags & QCOW2_BMDIR_FLAGS_RESERVED) ||
               name_len > QCOW2_MAX_BITMAP_NAME ||
               type != QCOW2_BMDIR_TYPE_DIRTY ||
               phys > QCOW2_MAX_BITMAP_BYTES ||
               memchr(name, 0, name_len);
    /* A bitmap not in use must cover the disk (one in use may be stale
     * after a resize that did not write it back). */
    if (!bad && !(flags & QCOW2_BMDIR_FLAG_IN_USE) &&
        img->size > ((phys * 8) << gran)) {
        bad = true;
    }
    if (bad) {
        return vimg_internal_img_error(img, EINVAL, "Bitmap '%.*s' doesn't "
                                       "satisfy the constraints",
                                       (int)name_len, name);
    }
    if (range_outside(table, (uint64_t)size * 8, file_size)) {
        return vimg_internal_img_error(img, EINVAL, "Bitmap '%.*s': its "
                                       "table at 0x%llx lies past the end "
                                       "of the file", (int)name_len, name,
                                       (unsigned long long)table);
    }
    if (!(flags & QCOW2_BMDIR_FLAG_IN_USE) &&
        size != table_entries(s, img->size, gran)) {
        return vimg_internal_img_error(img, EINVAL, "Could not read bitmap "
                                       "'%.*s' from image: its table has %u "
                                       "entries, the disk size needs %llu",
                                       (int)name_len, name, size,
                                       (unsigned long long)table_entries(
                                           s, img->size, gran));
    }
    b->name = strndup(name, name_len);
    if (!b->name) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    b->flags = flags & QCOW2_BMDIR_FLAG_AUTO;
    b->inconsistent = flags & QCOW2_BMDIR_FLAG_IN_USE;
    b->gran_bits = gran;
    b->table_offset = table;
    b->table_size = size;
    return 0;
}

int qcow2_bitmaps_open(struct vimg_image *img)
{
    struct qcow2_state *s = qcow2_state(img);
    uint64_t file_size = (uint64_t)vimg_internal_get_size(img->file);
    uint64_t size = s->bitmap_dir_size, pos = 0;
    uint8_t *dir;
    int r = 0;

    /* Without the autoclear bit, a program that does not maintain bitmaps
     * changed the image: they are all stale, and QEMU drops them too. A
     * v2 header has no autoclear bits at all. */
    if (!s->has_bitmaps_ext || s->version < 3 ||
        !(s->autoclear & QCOW2_AUTOCLEAR_BITMAPS)) {
        return 0;
    }
    if (s->nb_bitmaps == 0) {
        return vimg_internal_img_error(img, EINVAL, "found bitmaps "
                                       "extension with zero bitmaps");
    }
    if (s->nb_bitmaps > QCOW2_MAX_BITMAPS) {
        return vimg_internal_img_error(img, EFBIG, "too many bitmaps (%u)",
                                       s->nb_bitmaps);
    }
    if (size == 0 || size > QCOW2_MAX_BITMAP_DIR) {
        return vimg_internal_img_error(img, EINVAL, "Requested bitmap "
                                       "directory size is %s",
                                       size ? "too big" : "zero");
    }
    if ((s->bitmap_dir_offset & (s->cluster_size - 1)) ||
        s->bitmap_dir_offset < s->cluster_size ||
        range_outside(s->bitmap_dir_offset, size, file_size)) {
        return vimg_internal_img_error(img, EINVAL, "bitmap directory at "
                                       "0x%llx is unaligned or lies outside "
                                       "the file",
                                       (unsigned long long)
                                           s->bitmap_dir_offset);
    }
    if (!(dir = malloc(size)) ||
        !(s->bm = calloc(s->nb_bitmaps, sizeof *s->bm))) {
        free(dir);
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    if ((r = vimg_internal_pread(img->file, dir, size,
                                 s->bitmap_dir_offset)) < 0) {
        goto out;
    }
    while (pos < size && r == 0) {
        uint64_t len;
        if (size - pos < QCOW2_BMDIR_FIXED_SIZE) {
            r = vimg_internal_img_error(img, EINVAL, "Broken bitmap "
                                        "directory");
        } else if (s->bm_count == s->nb_bitmaps) {
            r = vimg_internal_img_error(img, EINVAL, "More bitmaps found "
                                        "than specified in header "
                                        "extension");
        } else if ((r = parse_entry(img, dir + pos, size - pos, file_size,
                                    &len, &s->bm[s->bm_count])) == 0) {
            struct qcow2_bitmap *b = &s->bm[s->bm_count++];
            for (uint32_t i = 0; i + 1 < s->bm_count; i++) {
                if (strcmp(s->bm[i].name, b->name) == 0) {
                    r = vimg_internal_img_error(img, EINVAL, "Bitmap "
                                                "already exists: %s",
                                                b->name);
                }
            }
            pos += len;
        }
    }
    if (r == 0 && s->bm_count != s->nb_bitmaps) {
        r = vimg_internal_img_error(img, EINVAL, "Less bitmaps found than "
                                    "specified in header extension");
    }
out:
    free(dir);
    if (r < 0) {
        qcow2_bitmaps_free(s);
        return r;
    }
    s->bm_loaded = true;
    return 0;
}

/* B's table, read and validated on first use: every entry well formed,
 * data clusters inside the file. */
static int load_table(struct vimg_image *img, struct qcow2_bitmap *b)
{
    struct qcow2_state *s = qcow2_state(img);
    uint64_t file_size = (uint64_t)vimg_internal_get_size(img->file);
    uint64_t n = b->table_size;
    uint8_t *raw;
    uint64_t *t;
    int r;

    if (b->table || !b->table_offset) {
        return 0;
    }
    raw = malloc(n * 8);
    t = malloc(n * sizeof *t);
    if (!raw || !t) {
        free(raw);
        free(t);
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    r = vimg_internal_pread(img->file, raw, n * 8, b->table_offset);
    for (uint64_t i = 0; r == 0 && i < n; i++) {
        t[i] = load_be64(raw + i * 8);
        uint64_t off = t[i] & QCOW2_BMT_OFFSET_MASK;
        if (!qcow2_bitmap_entry_valid(s, t[i]) ||
            (off && range_outside(off, s->cluster_size, file_size))) {
            r = vimg_internal_img_error(img, EINVAL, "Could not read bitmap "
                                        "'%s' from image: table entry %llu "
                                        "(0x%llx) is invalid", b->name,
                                        (unsigned long long)i,
                                        (unsigned long long)t[i]);
        }
    }
    free(raw);
    if (r < 0) {
        free(t);
        return r;
    }
    b->table = t;
    return 0;
}

const char *qcow2_bitmaps_metadata_at(const struct qcow2_state *s,
                                      uint64_t offset, uint64_t len)
{
    if (s->bm_loaded && s->bitmap_dir_size &&
        offset < s->bitmap_dir_offset + s->bitmap_dir_size &&
        s->bitmap_dir_offset < offset + len) {
        return "bitmap directory";
    }
    for (uint32_t i = 0; i < s->bm_count; i++) {
        const struct qcow2_bitmap *b = &s->bm[i];
        uint64_t bytes = (uint64_t)b->table_size * 8;
        if (b->table_offset && offset < b->table_offset + bytes &&
            b->table_offset < offset + len) {
            return "bitmap table";
        }
    }
    return NULL;
}

/* ---- Bits ------------------------------------------------------------- */

/* Set bits [LO, HI) of PAGE. */
static void set_range(uint8_t *page, uint64_t lo, uint64_t hi)
{
    for (; lo < hi && (lo & 7); lo++) {
        page[lo >> 3] |= (uint8_t)(1u << (lo & 7));
    }
    if (hi - lo >= 8) {
        memset(page + (lo >> 3), 0xff, (hi - lo) >> 3);
        lo += (hi - lo) & ~(uint64_t)7;
    }
    for (; lo < hi; lo++) {
        page[lo >> 3] |= (uint8_t)(1u << (lo & 7));
    }
}

/* Clear bits [LO, end of the page) of PAGE. */
static void clear_from(const struct qcow2_state *s, uint8_t *page,
                       uint64_t lo)
{
    for (; lo < bits_per_page(s) && (lo & 7); lo++) {
        page[lo >> 3] &= (uint8_t)~(1u << (lo & 7));
    }
    if (lo < bits_per_page(s)) {
        memset(page + (lo >> 3), 0, s->cluster_size - (lo >> 3));
    }
}

/* Set bits [LO, HI) of B in memory. */
static int mark_bits(struct vimg_image *img, struct qcow2_bitmap *b,
                     uint64_t lo, uint64_t hi)
{
    struct qcow2_state *s = qcow2_state(img);
    uint64_t per = bits_per_page(s);
    uint64_t need = DIV_ROUND_UP(hi, per);

    if (need > b->nb_pages) {
        uint8_t **p = realloc(b->pages, need * sizeof *p);
        if (!p) {
            return vimg_internal_img_error(img, ENOMEM, "out of memory for "
                                           "bitmap '%s'", b->name);
        }
        memset(p + b->nb_pages, 0, (need - b->nb_pages) * sizeof *p);
        b->pages = p;
        b->nb_pages = need;
    }
    for (uint64_t i = lo / per; i * per < hi; i++) {
        if (!b->pages[i] && !(b->pages[i] = calloc(1, s->cluster_size))) {
            return vimg_internal_img_error(img, ENOMEM, "out of memory for "
                                           "bitmap '%s'", b->name);
        }
        set_range(b->pages[i], MAX(lo, i * per) - i * per,
                  MIN(hi, (i + 1) * per) - i * per);
    }
    b->changed = true;
    return 0;
}

/* Set the bits of B that cover guest bytes [OFFSET, OFFSET+LEN). */
static int mark_range(struct vimg_image *img, struct qcow2_bitmap *b,
                      uint64_t offset, uint64_t len)
{
    return mark_bits(img, b, offset >> b->gran_bits,
                     ((offset + len - 1) >> b->gran_bits) + 1);
}

int qcow2_bitmaps_mark(struct vimg_image *img, uint64_t offset,
                       uint64_t len)
{
    struct qcow2_state *s = qcow2_state(img);
    int r = 0;

    if (len == 0) {
        return 0;
    }
    for (uint32_t i = 0; i < s->bm_count && r == 0; i++) {
        if (tracking(&s->bm[i])) {
            r = mark_range(img, &s->bm[i], offset, len);
        }
    }
    return r;
}

/* Data cluster I of B as the bitmap reads now, into BUF. */
static int page_read(struct vimg_image *img, struct qcow2_bitmap *b,
                     uint64_t i, uint8_t *buf)
{
    struct qcow2_state *s = qcow2_state(img);
    uint64_t e = 0;
    int r;

    if (!b->cleared && i < b->table_size) {
        if ((r = load_table(img, b)) < 0) {
            return r;
        }
        e = b->table[i];
    }
    if (e & QCOW2_BMT_OFFSET_MASK) {
        if ((r = vimg_internal_pread(img->file, buf, s->cluster_size,
                                     e & QCOW2_BMT_OFFSET_MASK)) < 0) {
            return r;
        }
    } else {
        memset(buf, e & QCOW2_BMT_ALL_ONES ? 0xff : 0, s->cluster_size);
    }
    if (i < b->nb_pages && b->pages[i]) {
        for (uint64_t j = 0; j < s->cluster_size; j++) {
            buf[j] |= b->pages[i][j];
        }
    }
    return 0;
}

/* Call FN for each run of guest bytes B marks dirty within [OFFSET,
 * OFFSET + LEN), clipped to that range and to the disk; only the data
 * clusters of the bitmap that cover the range are read. */
static int walk_dirty(struct vimg_image *img, struct qcow2_bitmap *b,
                      uint64_t offset, uint64_t len,
                      vimg_internal_range_fn fn, void *opaque)
{
    struct qcow2_state *s = qcow2_state(img);
    uint64_t per = bits_per_page(s);
    uint64_t end = len < img->size - MIN(offset, img->size)
                   ? offset + len : img->size;
    uint64_t run = UINT64_MAX; /* first byte of the open run */
    int r = 0;

    if (offset >= end) {
        return 0;
    }
    uint64_t first = offset >> b->gran_bits, last = (end - 1) >> b->gran_bits;
    uint8_t *buf = malloc(s->cluster_size);
    if (!buf) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    for (uint64_t i = first / per; i <= last / per && r == 0; i++) {
        if ((r = page_read(img, b, i, buf)) < 0) {
            break;
        }
        uint64_t k = i == first / per ? first % per : 0;
        uint64_t k_end = i == last / per ? last % per + 1 : per;
        while (k < k_end && r == 0) {
            uint8_t byte = buf[k >> 3];
            /* Whole bytes that continue the current state. */
            if (!(k & 7) && k + 8 <= k_end &&
                byte == (run == UINT64_MAX ? 0 : 0xff)) {
                k += 8;
                continue;
            }
            bool set = byte & (1u << (k & 7));
            uint64_t at = MAX((i * per + k) << b->gran_bits, offset);
            if (set && run == UINT64_MAX) {
                run = at;
            } else if (!set && run != UINT64_MAX) {
                r = fn(opaque, run, at - run);
                run = UINT64_MAX;
            }
            k++;
        }
    }
    if (r == 0 && run != UINT64_MAX) {
        r = fn(opaque, run, end - run);
    }
    free(buf);
    return r;
}

/* ---- Writing back ------------------------------------------------------ */

struct new_table {
    uint64_t offset;
    uint32_t size;
    uint64_t *table;
};

/* Allocate N clusters, checked against metadata, and write LEN bytes of
 * BUF (zero-padded) there; FRESH records them. */
static int write_new(struct vimg_image *img, const uint8_t *buf, uint64_t len,
                     struct ranges *fresh, uint64_t *offset)
{
    struct qcow2_state *s = qcow2_state(img);
    uint64_t n = DIV_ROUND_UP(len, s->cluster_size);
    int r;

    if ((r = qcow2_alloc_clusters(img, n, offset)) < 0) {
        return r;
    }
    if ((r = ranges_add(img, fresh, *offset, n * s->cluster_size)) < 0) {
        struct qcow2_range one = { *offset, n * s->cluster_size };
        (void)qcow2_free_clusters(img, &one, 1);
        return r;
    }
    return qcow2_write_meta(img, QCOW2_ROLE_DATA, buf, len, *offset);
}

/* Write B's changed data clusters and a new table for the disk's current
 * size into free clusters (FRESH), recording in OLD what the new table no
 * longer uses. */
static int write_bitmap(struct vimg_image *img, struct qcow2_bitmap *b,
                        struct new_table *out, uint8_t *buf,
                        struct ranges *fresh, struct ranges *old)
{
    struct qcow2_state *s = qcow2_state(img);
    uint64_t cs = s->cluster_size, per = bits_per_page(s);
    uint64_t n = table_entries(s, img->size, b->gran_bits);
    uint64_t bits = nb_bits(img->size, b->gran_bits);
    uint64_t *t;
    uint8_t *raw;
    int r;

    if ((r = load_table(img, b)) < 0) {
        return r;
    }
    if (!(t = calloc(n ? n : 1, sizeof *t))) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    for (uint64_t i = 0; i < n; i++) {
        uint64_t e = !b->cleared && i < b->table_size ? b->table[i] : 0;
        bool page = i < b->nb_pages && b->pages[i];
        /* After a resize, bits past the end of the disk are dropped. */
        bool tail = b->resized && i == n - 1 && bits % per && e;
        if (!page && !tail) {
            t[i] = e;
            continue;
        }
        if ((r = page_read(img, b, i, buf)) < 0) {
            goto fail;
        }
        if (i == n - 1 && bits % per) {
            clear_from(s, buf, bits % per);
        }
        if (!is_zero(buf, cs) &&
            (r = write_new(img, buf, cs, fresh, &t[i])) < 0) {
            goto fail;
        }
        if ((e & QCOW2_BMT_OFFSET_MASK) &&
            (r = ranges_add(img, old, e & QCOW2_BMT_OFFSET_MASK, cs)) < 0) {
            goto fail;
        }
    }
    /* Data clusters the new table does not take over. */
    for (uint64_t i = 0; b->table && i < b->table_size; i++) {
        uint64_t off = b->table[i] & QCOW2_BMT_OFFSET_MASK;
        if (off && (b->cleared || i >= n) &&
            (r = ranges_add(img, old, off, cs)) < 0) {
            goto fail;
        }
    }
    if (!(raw = calloc(1, ROUND_UP(n * 8, cs)))) {
        r = vimg_internal_img_error(img, ENOMEM, "out of memory");
        goto fail;
    }
    for (uint64_t i = 0; i < n; i++) {
        store_be64(raw + i * 8, t[i]);
    }
    r = write_new(img, raw, ROUND_UP(n * 8, cs), fresh, &out->offset);
    free(raw);
    if (r == 0 && b->table_offset) {
        r = ranges_add(img, old, b->table_offset,
                       ROUND_UP((uint64_t)b->table_size * 8, cs));
    }
    if (r < 0) {
        goto fail;
    }
    out->size = (uint32_t)n;
    out->table = t;
    return 0;
fail:
    free(t);
    return r;
}

/* Point the header at the directory of COUNT bitmaps at OFFSET (SIZE
 * bytes): in place when the extension is there, else by rewriting the
 * header cluster (adding or dropping the extension and the autoclear
 * bit). */
static int set_header(struct vimg_image *img, uint32_t count,
                      uint64_t offset, uint64_t size)
{
    struct qcow2_state *s = qcow2_state(img);
    uint64_t ext = qcow2_header_ext_offset(s, QCOW2_EXT_BITMAPS);
    uint32_t old_count = s->nb_bitmaps;
    uint64_t old_offset = s->bitmap_dir_offset, old_size = s->bitmap_dir_size;
    uint64_t old_autoclear = s->autoclear;
    bool old_ext = s->has_bitmaps_ext;
    int r;

    if (count && ext && (s->autoclear & QCOW2_AUTOCLEAR_BITMAPS)) {
        uint8_t *d = s->cluster0 + ext + QCOW2_EXT_DATA;
        uint8_t data[QCOW2_BITMAPS_EXT_SIZE] = { 0 };
        store_be32(data + QCOW2_BITMAPS_EXT_NB_BITMAPS, count);
        store_be64(data + QCOW2_BITMAPS_EXT_DIR_SIZE, size);
        store_be64(data + QCOW2_BITMAPS_EXT_DIR_OFFSET, offset);
        if ((r = qcow2_write_meta(img, QCOW2_ROLE_HEADER, data, sizeof data,
                                  ext + QCOW2_EXT_DATA)) < 0) {
            return r;
        }
        memcpy(d, data, sizeof data);
    } else {
        s->nb_bitmaps = count;
        s->bitmap_dir_offset = offset;
        s->bitmap_dir_size = size;
        s->has_bitmaps_ext = count > 0;
        if (count) {
            s->autoclear |= QCOW2_AUTOCLEAR_BITMAPS;
        } else {
            s->autoclear &= ~QCOW2_AUTOCLEAR_BITMAPS;
        }
        if ((r = qcow2_rewrite_header(img)) < 0) {
            s->nb_bitmaps = old_count;
            s->bitmap_dir_offset = old_offset;
            s->bitmap_dir_size = old_size;
            s->has_bitmaps_ext = old_ext;
            s->autoclear = old_autoclear;
            return r;
        }
    }
    s->nb_bitmaps = count;
    s->bitmap_dir_offset = offset;
    s->bitmap_dir_size = size;
    s->has_bitmaps_ext = count > 0;
    s->bm_loaded = count > 0;
    return 0;
}

/* Write back every changed bitmap and a new directory (always with
 * FORCE), then free what the old directory alone used and the ranges of
 * EXTRA. CLOSING clears the in-use flags. */
static int store(struct vimg_image *img, bool closing, bool force,
                 struct ranges *extra)
{
    struct qcow2_state *s = qcow2_state(img);
    uint64_t cs = s->cluster_size, dir_size = 0, dir_offset = 0;
    struct ranges fresh = { 0 }, old = { 0 };
    struct new_table *nt;
    uint8_t *buf, *dir = NULL;
    bool any = force || (closing && s->bm_in_use);
    int r = 0;

    for (uint32_t i = 0; i < s->bm_count; i++) {
        any = any || s->bm[i].changed;
    }
    if (!any) {
        return 0;
    }
    if (s->corrupt) {
        return vimg_internal_img_error(img, EIO, "image is marked corrupt; "
                                       "its bitmaps are not written");
    }
    nt = calloc(s->bm_count ? s->bm_count : 1, sizeof *nt);
    buf = malloc(cs);
    if (!nt || !buf) {
        free(nt);
        free(buf);
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    for (uint32_t i = 0; i < s->bm_count && r == 0; i++) {
        struct qcow2_bitmap *b = &s->bm[i];
        if (b->changed && !b->inconsistent) {
            r = write_bitmap(img, b, &nt[i], buf, &fresh, &old);
        }
        dir_size += dir_entry_size(strlen(b->name));
    }
    if (r == 0 && s->bm_count) {
        uint8_t *e = dir = calloc(1, dir_size);
        if (!dir) {
            r = vimg_internal_img_error(img, ENOMEM, "out of memory");
        }
        for (uint32_t i = 0; r == 0 && i < s->bm_count; i++) {
            const struct qcow2_bitmap *b = &s->bm[i];
            size_t len = strlen(b->name);
            bool fresh_table = nt[i].offset != 0;
            store_be64(e + QCOW2_BMDIR_TABLE_OFFSET,
                       fresh_table ? nt[i].offset : b->table_offset);
            store_be32(e + QCOW2_BMDIR_TABLE_SIZE,
                       fresh_table ? nt[i].size : b->table_size);
            store_be32(e + QCOW2_BMDIR_FLAGS, disk_flags(s, b, closing));
            e[QCOW2_BMDIR_TYPE] = QCOW2_BMDIR_TYPE_DIRTY;
            e[QCOW2_BMDIR_GRANULARITY] = b->gran_bits;
            store_be16(e + QCOW2_BMDIR_NAME_SIZE, (uint16_t)len);
            memcpy(e + QCOW2_BMDIR_FIXED_SIZE, b->name, len);
            e += dir_entry_size(len);
        }
        if (r == 0) {
            r = write_new(img, dir, dir_size, &fresh, &dir_offset);
        }
    }
    /* Everything new, and the refcounts that keep it, is durable before
     * the header names it. */
    if (r == 0 && (r = qcow2_flush_metadata(img)) == 0) {
        r = vimg_internal_flush(img->file);
    }
    free(dir);
    free(buf);
    if (r < 0) {
        (void)qcow2_free_clusters(img, fresh.v, fresh.n);
        goto out;
    }
    uint64_t old_dir = s->bm_loaded ? s->bitmap_dir_offset : 0;
    uint64_t old_dir_size = s->bitmap_dir_size;
    /* From here a failure leaves the header unknown: nothing is freed. */
    if ((r = set_header(img, s->bm_count, dir_offset, dir_size)) < 0 ||
        (r = vimg_internal_flush(img->file)) < 0) {
        goto out;
    }
    for (uint32_t i = 0; i < s->bm_count; i++) {
        struct qcow2_bitmap *b = &s->bm[i];
        if (nt[i].offset) {
            free(b->table);
            b->table = nt[i].table;
            b->table_offset = nt[i].offset;
            b->table_size = nt[i].size;
            nt[i].table = NULL;
            b->cleared = b->resized = false;
            free_pages(b);
        }
        b->changed = false;
    }
    if (closing) {
        s->bm_in_use = false;
    }
    if (old_dir) {
        r = ranges_add(img, &old, old_dir, ROUND_UP(old_dir_size, cs));
    }
    if (r == 0 && extra) {
        for (size_t i = 0; i < extra->n && r == 0; i++) {
            r = ranges_add(img, &old, extra->v[i].offset, extra->v[i].len);
        }
    }
    if (r == 0) {
        r = qcow2_free_clusters(img, old.v, old.n);
    }
out:
    for (uint32_t i = 0; i < s->bm_count; i++) {
        free(nt[i].table);
    }
    free(nt);
    ranges_release(&fresh);
    ranges_release(&old);
    return r;
}

int qcow2_bitmaps_store(struct vimg_image *img, bool closing)
{
    return store(img, closing, false, NULL);
}

int qcow2_bitmaps_begin_write(struct vimg_image *img)
{
    struct qcow2_state *s = qcow2_state(img);
    bool any = false;
    int r;

    if (s->has_bitmaps_ext && !s->bm_loaded) {
        /* A stale extension (a program that does not maintain bitmaps
         * changed the image): dropped, as QEMU drops it, so that readers
         * stop warning about it. Its clusters stay leaked. */
        s->has_bitmaps_ext = false;
        if ((r = qcow2_rewrite_header(img)) < 0) {
            s->has_bitmaps_ext = true;
            return r;
        }
        s->nb_bitmaps = 0;
        s->bitmap_dir_offset = s->bitmap_dir_size = 0;
    }
    for (uint32_t i = 0; i < s->bm_count; i++) {
        any = any || tracking(&s->bm[i]);
    }
    if (s->bm_in_use || !any) {
        return 0;
    }
    s->bm_in_use = true;
    if ((r = store(img, false, true, NULL)) < 0) {
        s->bm_in_use = false;
    }
    return r;
}

int qcow2_bitmaps_resize_begin(struct vimg_image *img, uint64_t size)
{
    struct qcow2_state *s = qcow2_state(img);
    int r;

    if (!s->bm_count || size == img->size) {
        return 0;
    }
    for (uint32_t i = 0; i < s->bm_count; i++) {
        if (s->bm[i].inconsistent) {
            return vimg_internal_img_error(img, EBUSY, "Bitmap '%s' is "
                                           "inconsistent and cannot be "
                                           "resized (remove it with 'vimg "
                                           "bitmap --remove')",
                                           s->bm[i].name);
        }
    }
    if (size == 0) {
        return vimg_internal_img_error(img, ENOTSUP, "an image with "
                                       "persistent bitmaps cannot be "
                                       "resized to 0 bytes");
    }
    /* A bitmap not in use must match the disk size: while both change,
     * every one is marked in use. */
    s->bm_resizing = true;
    if ((r = store(img, false, true, NULL)) < 0) {
        s->bm_resizing = false;
    }
    return r;
}

int qcow2_bitmaps_resize_end(struct vimg_image *img, bool resized)
{
    struct qcow2_state *s = qcow2_state(img);

    if (!s->bm_resizing) {
        return 0;
    }
    for (uint32_t i = 0; resized && i < s->bm_count; i++) {
        struct qcow2_bitmap *b = &s->bm[i];
        uint64_t n = table_entries(s, img->size, b->gran_bits);
        for (uint64_t p = n; p < b->nb_pages; p++) {
            free(b->pages[p]);
            b->pages[p] = NULL;
        }
        b->nb_pages = MIN(b->nb_pages, n);
        b->changed = b->resized = true;
    }
    s->bm_resizing = false;
    return store(img, false, true, NULL);
}

/* ---- Info and listing ------------------------------------------------- */

int qcow2_bitmaps_info(struct vimg_image *img, struct vimg_value *data)
{
    struct qcow2_state *s = qcow2_state(img);
    struct vimg_value *list;
    int r = 0;

    if (!s->bm_count) {
        return 0;
    }
    if (!(list = vimg_internal_value_new(VIMG_VALUE_ARRAY))) {
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < s->bm_count && r == 0; i++) {
        const struct qcow2_bitmap *b = &s->bm[i];
        uint32_t f = disk_flags(s, b, false);
        struct vimg_value *o = vimg_internal_value_new(VIMG_VALUE_OBJECT);
        struct vimg_value *flags = vimg_internal_value_new(VIMG_VALUE_ARRAY);
        if (!o || !flags) {
            vimg_value_free(o);
            vimg_value_free(flags);
            r = -ENOMEM;
            break;
        }
        /* qemu-img's order: in-use, then auto. */
        if (((f & QCOW2_BMDIR_FLAG_IN_USE) &&
             (r = vimg_internal_value_append(
                  flags, vimg_internal_value_str("in-use"))) < 0) ||
            ((f & QCOW2_BMDIR_FLAG_AUTO) &&
             (r = vimg_internal_value_append(
                  flags, vimg_internal_value_str("auto"))) < 0) ||
            (r = vimg_internal_value_add(o, "flags", flags)) < 0 ||
            (r = vimg_internal_value_set_str(o, "name", b->name)) < 0 ||
            (r = vimg_internal_value_set_int(
                 o, "granularity", (int64_t)1 << b->gran_bits)) < 0) {
            vimg_value_free(o);
            break;
        }
        r = vimg_internal_value_append(list, o);
    }
    if (r < 0) {
        vimg_value_free(list);
        return r;
    }
    return vimg_internal_value_add(data, "bitmaps", list);
}

int qcow2_bitmap_list(struct vimg_image *img, struct vimg_internal_bitmap **v,
                      size_t *n)
{
    struct qcow2_state *s = qcow2_state(img);
    struct vimg_internal_bitmap *l;

    *v = NULL;
    *n = 0;
    if (s->version < 3) {
        return -ENOTSUP; /* QEMU keeps no bitmaps in v2 images */
    }
    if (!s->bm_count) {
        return 0;
    }
    if (!(l = calloc(s->bm_count, sizeof *l))) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    for (uint32_t i = 0; i < s->bm_count; i++) {
        const struct qcow2_bitmap *b = &s->bm[i];
        l[i].granularity = (uint64_t)1 << b->gran_bits;
        l[i].enabled = b->flags & QCOW2_BMDIR_FLAG_AUTO;
        l[i].inconsistent = b->inconsistent;
        if (!(l[i].name = strdup(b->name))) {
            vimg_internal_bitmaps_free(l, i);
            return vimg_internal_img_error(img, ENOMEM, "out of memory");
        }
    }
    *v = l;
    *n = s->bm_count;
    return 0;
}

static int not_found(struct vimg_image *img, const char *name)
{
    return vimg_internal_img_error(img, ENOENT, "Dirty bitmap '%s' not "
                                   "found", name);
}

static int inconsistent(struct vimg_image *img, const char *name)
{
    return vimg_internal_img_error(img, EBUSY, "Bitmap '%s' is inconsistent "
                                   "and cannot be used (only removing it "
                                   "works)", name);
}

int qcow2_bitmap_dirty(struct vimg_image *img, const char *name,
                       uint64_t offset, uint64_t len,
                       vimg_internal_range_fn fn, void *opaque)
{
    struct qcow2_bitmap *b = find(qcow2_state(img), name);

    if (!b) {
        return not_found(img, name);
    }
    if (b->inconsistent) {
        return inconsistent(img, name);
    }
    return walk_dirty(img, b, offset, len, fn, opaque);
}

/* ---- Operations ------------------------------------------------------- */

static int add(struct vimg_image *img, const struct vimg_bitmap_params *p)
{
    struct qcow2_state *s = qcow2_state(img);
    uint64_t gran = p->granularity, dir = 0;
    const char *name = p->name;
    int r;

    if (!name || !*name) {
        return vimg_internal_img_error(img, EINVAL, "Bitmap name cannot be "
                                       "empty");
    }
    if (gran == 0) {
        gran = MIN(65536, MAX(4096, s->cluster_size));
    } else if (gran < 512 || !is_power_of_2(gran) ||
               gran > ((uint64_t)1 << QCOW2_MAX_BITMAP_GRAN_BITS)) {
        return vimg_internal_img_error(img, EINVAL, "Granularity must be "
                                       "power of 2 and at least 512");
    }
    unsigned gbits = (unsigned)__builtin_ctzll(gran);
    uint64_t bytes = DIV_ROUND_UP(nb_bits(img->size, gbits), 8);
    const char *why = NULL;
    for (uint32_t i = 0; i < s->bm_count; i++) {
        dir += dir_entry_size(strlen(s->bm[i].name));
    }
    if (s->version < 3) {
        why = "Cannot store dirty bitmaps in qcow2 v2 files";
    } else if (bytes > QCOW2_MAX_BITMAP_BYTES ||
               bytes > (uint64_t)QCOW2_MAX_BITMAP_TABLE * s->cluster_size) {
        why = "Too much space will be occupied by the bitmap. Use larger "
              "granularity";
    } else if (strlen(name) > QCOW2_MAX_BITMAP_NAME) {
        why = "Name length exceeds maximum (1023 characters)";
    } else if (s->bm_count >= QCOW2_MAX_BITMAPS) {
        why = "Maximum number of persistent bitmaps is already reached";
    } else if (dir + dir_entry_size(strlen(name)) > QCOW2_MAX_BITMAP_DIR) {
        why = "Not enough space in the bitmap directory";
    } else if (img->size == 0) {
        why = "the image is empty";
    }
    if (why) {
        return vimg_internal_img_error(img, s->version < 3 ? ENOTSUP
                                                           : EINVAL,
                                       "Can't make bitmap '%s' persistent "
                                       "in '%s': %s", name, img->filename,
                                       why);
    }
    if (find(s, name)) {
        return vimg_internal_img_error(img, EEXIST, "Bitmap already exists: "
                                       "%s", name);
    }
    struct qcow2_bitmap *v = realloc(s->bm, (s->bm_count + 1) * sizeof *v);
    if (!v) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    s->bm = v;
    struct qcow2_bitmap *b = &s->bm[s->bm_count];
    memset(b, 0, sizeof *b);
    if (!(b->name = strdup(name))) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    b->flags = p->disabled ? 0 : QCOW2_BMDIR_FLAG_AUTO;
    b->gran_bits = (uint8_t)gbits;
    b->cleared = b->changed = true;
    s->bm_count++;
    if ((r = store(img, false, true, NULL)) < 0) {
        bitmap_free(&s->bm[--s->bm_count]);
    }
    return r;
}

static int remove_bitmap(struct vimg_image *img, struct qcow2_bitmap *b)
{
    struct qcow2_state *s = qcow2_state(img);
    struct ranges freed = { 0 };
    uint32_t at = (uint32_t)(b - s->bm);
    struct qcow2_bitmap gone;
    int r = 0;

    /* An unreadable table leaves its data clusters leaked, as QEMU
     * does; the bitmap goes anyway. */
    if (load_table(img, b) < 0) {
        vimg_internal_error_clear();
    }
    for (uint64_t i = 0; b->table && i < b->table_size && r == 0; i++) {
        r = ranges_add(img, &freed, b->table[i] & QCOW2_BMT_OFFSET_MASK,
                       b->table[i] & QCOW2_BMT_OFFSET_MASK
                           ? s->cluster_size : 0);
    }
    if (r == 0 && b->table_offset) {
        r = ranges_add(img, &freed, b->table_offset,
                       ROUND_UP((uint64_t)b->table_size * 8,
                                s->cluster_size));
    }
    if (r < 0) {
        ranges_release(&freed);
        return r;
    }
    gone = *b;
    memmove(&s->bm[at], &s->bm[at + 1],
            (s->bm_count - at - 1) * sizeof *s->bm);
    s->bm_count--;
    if ((r = store(img, false, true, &freed)) < 0) {
        memmove(&s->bm[at + 1], &s->bm[at],
                (s->bm_count - at) * sizeof *s->bm);
        s->bm[at] = gone;
        s->bm_count++;
    } else {
        bitmap_free(&gone);
    }
    ranges_release(&freed);
    return r;
}

struct merge_ctx {
    struct vimg_image *img;
    struct qcow2_bitmap *dst;
};

static int merge_range(void *opaque, uint64_t offset, uint64_t len)
{
    struct merge_ctx *m = opaque;
    return len ? mark_range(m->img, m->dst, offset, len) : 0;
}

static int merge(struct vimg_image *img, struct qcow2_bitmap *dst,
                 const struct vimg_bitmap_params *p)
{
    struct qcow2_state *s = qcow2_state(img);
    struct vimg_image *src_img = p->source_image ? p->source_image : img;
    struct merge_ctx m = { img, dst };
    int r;

    if (!p->source) {
        return vimg_internal_img_error(img, EINVAL, "merge needs a source "
                                       "bitmap");
    }
    if (src_img == img) {
        struct qcow2_bitmap *src = find(s, p->source);
        if (!src) {
            return not_found(img, p->source);
        }
        if (src->inconsistent) {
            return inconsistent(img, p->source);
        }
        if (dst->inconsistent) {
            return inconsistent(img, dst->name);
        }
        if (src == dst) {
            return 0;
        }
        r = walk_dirty(img, src, 0, img->size, merge_range, &m);
    } else {
        struct vimg_internal_bitmap *v = NULL;
        size_t n = 0, i;
        if (!src_img->drv->bitmap_list || !src_img->drv->bitmap_dirty) {
            return not_found(src_img, p->source);
        }
        if ((r = src_img->drv->bitmap_list(src_img, &v, &n)) < 0) {
            return r;
        }
        for (i = 0; i < n && strcmp(v[i].name, p->source); i++) {
        }
        bool missing = i == n, broken = !missing && v[i].inconsistent;
        vimg_internal_bitmaps_free(v, n);
        if (missing) {
            return not_found(src_img, p->source);
        }
        if (broken) {
            return inconsistent(src_img, p->source);
        }
        if (src_img->size != img->size) {
            return vimg_internal_img_error(img, EINVAL, "Bitmaps are of "
                                           "different sizes (destination "
                                           "size is %llu, source size is "
                                           "%llu) and can't be merged",
                                           (unsigned long long)img->size,
                                           (unsigned long long)
                                               src_img->size);
        }
        if (dst->inconsistent) {
            return inconsistent(img, dst->name);
        }
        r = src_img->drv->bitmap_dirty(src_img, p->source, 0, src_img->size,
                                       merge_range, &m);
    }
    /* Bits merged before a failure stay recorded as changed: a bitmap may
     * only gain bits, never miss one. */
    return r < 0 ? r : store(img, false, true, NULL);
}

int qcow2_bitmap(struct vimg_image *img, const struct vimg_bitmap_params *p)
{
    struct qcow2_state *s = qcow2_state(img);
    struct qcow2_bitmap *b;
    int r;

    if (s->corrupt) {
        return vimg_internal_img_error(img, EIO, "image is marked corrupt; "
                                       "writes are refused");
    }
    if (p->op == VIMG_BITMAP_ADD) {
        return add(img, p);
    }
    if (!p->name || !(b = find(s, p->name))) {
        return not_found(img, p->name ? p->name : "");
    }
    switch (p->op) {
    case VIMG_BITMAP_REMOVE:
        return remove_bitmap(img, b);
    case VIMG_BITMAP_MERGE:
        return merge(img, b, p);
    case VIMG_BITMAP_CLEAR: {
        if (b->inconsistent) {
            return inconsistent(img, b->name);
        }
        uint8_t **pages = b->pages;
        uint64_t nb = b->nb_pages;
        bool was = b->cleared, changed = b->changed;
        b->pages = NULL;
        b->nb_pages = 0;
        b->cleared = b->changed = true;
        if ((r = store(img, false, true, NULL)) < 0) {
            b->pages = pages;
            b->nb_pages = nb;
            b->cleared = was;
            b->changed = changed;
            return r;
        }
        for (uint64_t i = 0; i < nb; i++) {
            free(pages[i]);
        }
        free(pages);
        return 0;
    }
    case VIMG_BITMAP_ENABLE:
    case VIMG_BITMAP_DISABLE: {
        if (b->inconsistent) {
            return inconsistent(img, b->name);
        }
        uint32_t was = b->flags;
        if (p->op == VIMG_BITMAP_ENABLE) {
            b->flags |= QCOW2_BMDIR_FLAG_AUTO;
        } else {
            b->flags &= ~QCOW2_BMDIR_FLAG_AUTO;
        }
        if ((r = store(img, false, true, NULL)) < 0) {
            b->flags = was;
        }
        return r;
    }
    default:
        return vimg_internal_img_error(img, EINVAL, "unknown bitmap "
                                       "operation %d", (int)p->op);
    }
}
