/* Check and repair: rebuild every refcount in memory from what references
 * clusters (header, L1/L2 tables of the image and its snapshots, the
 * snapshot table, refcount table and blocks, encryption header, bitmaps),
 * compare with the refcounts on disk, and repair leaks, refcounts that are
 * too low, OFLAG_COPIED flags, or the whole refcount structure. Messages
 * and counters follow qemu-img check. */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../../common/rounding.h"
#include "qcow2.h"

/* References are counted up to QEMU's bound (INT_MAX clusters);
 * references past the end of the file are reported, not counted. */
#define MAX_CHECK_CLUSTERS ((uint64_t)INT32_MAX)

/* The counted references live in pages allocated on first use, so memory
 * follows what the image references, not the file's apparent size (a
 * sparse file truncated to a terabyte costs a directory of at most 4 MiB
 * plus the pages its metadata touches). A page holds 16-bit counters and
 * widens to 64 bits when one of them passes 65535, which only images with
 * 32- or 64-bit refcounts can reach. */
#define REFS_PAGE_BITS 12
#define REFS_PAGE ((uint64_t)1 << REFS_PAGE_BITS)

struct refs_page {
    uint64_t *wide;                 /* NULL while every counter fits 16 bits */
    uint16_t narrow[REFS_PAGE];
};

struct check {
    struct vimg_image *img;
    struct qcow2_state *s;
    struct vimg_check_result *res;
    vimg_report_fn report;
    void *opaque;
    unsigned fix;
    uint64_t nb;        /* clusters counted */
    uint64_t max_nb;    /* bound on nb */
    uint64_t refcount_max; /* the image's largest refcount */
    struct refs_page **pages; /* DIV_ROUND_UP(nb, REFS_PAGE) entries */
    uint64_t nb_pages;  /* entries of pages[] */
    int err;            /* out of memory while counting */
    bool rebuild;
    uint8_t *buf;       /* one cluster */
};

static void say(struct check *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void say(struct check *c, const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    if (!c->report) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->report(c->opaque, msg);
}

static uint64_t refs_get(const struct check *c, uint64_t k)
{
    uint64_t p = k >> REFS_PAGE_BITS, i = k & (REFS_PAGE - 1);
    const struct refs_page *page = p < c->nb_pages ? c->pages[p] : NULL;

    if (!page) {
        return 0;
    }
    return page->wide ? page->wide[i] : page->narrow[i];
}

/* Set the count of cluster K (< nb). */
static int refs_set(struct check *c, uint64_t k, uint64_t v)
{
    uint64_t i = k & (REFS_PAGE - 1);
    struct refs_page **pp = &c->pages[k >> REFS_PAGE_BITS];

    if (!*pp && !(*pp = calloc(1, sizeof **pp))) {
        return -ENOMEM;
    }
    if (!(*pp)->wide && v > UINT16_MAX) {
        uint64_t *w = malloc(REFS_PAGE * sizeof *w);
        if (!w) {
            return -ENOMEM;
        }
        for (uint64_t j = 0; j < REFS_PAGE; j++) {
            w[j] = (*pp)->narrow[j];
        }
        (*pp)->wide = w;
    }
    if ((*pp)->wide) {
        (*pp)->wide[i] = v;
    } else {
        (*pp)->narrow[i] = (uint16_t)v;
    }
    return 0;
}

/* The first cluster in [K, LIMIT) with a nonzero count, or LIMIT; pages
 * never touched are skipped whole. */
static uint64_t refs_next(const struct check *c, uint64_t k, uint64_t limit)
{
    while (k < limit) {
        uint64_t p = k >> REFS_PAGE_BITS;
        uint64_t end = MIN(limit, (p + 1) << REFS_PAGE_BITS);
        const struct refs_page *page = p < c->nb_pages ? c->pages[p] : NULL;
        if (!page) {
            k = end;
            continue;
        }
        for (; k < end; k++) {
            uint64_t i = k & (REFS_PAGE - 1);
            if (page->wide ? page->wide[i] : page->narrow[i]) {
                return k;
            }
        }
    }
    return limit;
}

static void refs_clear(struct check *c)
{
    for (uint64_t p = 0; p < c->nb_pages; p++) {
        if (c->pages[p]) {
            free(c->pages[p]->wide);
            free(c->pages[p]);
            c->pages[p] = NULL;
        }
    }
}

/* Count clusters [0, N): references past the end of the file are counted
 * like QEMU does (the comparison then finds them without refcounts),
 * within a bound so that a hostile entry cannot make the count huge. */
static int grow_refs(struct check *c, uint64_t n)
{
    uint64_t want = DIV_ROUND_UP(n, REFS_PAGE);

    if (n > c->max_nb) {
        return -EFBIG;
    }
    if (want > c->nb_pages) {
        uint64_t cap = MAX(want, MIN(c->nb_pages * 2,
                                     DIV_ROUND_UP(c->max_nb, REFS_PAGE)));
        struct refs_page **p = realloc(c->pages, cap * sizeof *p);
        if (!p) {
            return -ENOMEM;
        }
        memset(p + c->nb_pages, 0, (cap - c->nb_pages) * sizeof *p);
        c->pages = p;
        c->nb_pages = cap;
    }
    c->nb = MAX(c->nb, n);
    return 0;
}

/* Count one reference to every cluster of [OFFSET, OFFSET+LEN). A count
 * at the image's refcount maximum stays there and is an error, as in
 * QEMU (the refcount could not record it). */
static void inc_refs(struct check *c, uint64_t offset, uint64_t len)
{
    uint64_t cs = c->s->cluster_size;
    uint64_t file_len = (uint64_t)vimg_internal_get_size(c->img->file);
    int r;

    if (len == 0 || c->err) {
        return;
    }
    /* The last cluster may lie partly past the end of the file, no more
     * (QEMU's qcow2_inc_refcounts_imrt; the driver refuses such
     * compressed spans too). */
    if (offset + len > file_len && offset + len - file_len >= cs) {
        say(c, "ERROR: counting reference for region exceeding the end of "
            "the file by one cluster or more: offset 0x%" PRIx64 " size "
            "0x%" PRIx64, offset, len);
        c->res->corruptions++;
        return;
    }
    for (uint64_t k = offset / cs; k <= (offset + len - 1) / cs; k++) {
        r = k >= c->nb ? grow_refs(c, k + 1) : 0;
        if (r == -EFBIG) {
            say(c, "ERROR: cluster %" PRIu64 " (offset 0x%" PRIx64 ") lies "
                "far past the end of the file", k, k * cs);
            c->res->corruptions++;
            return;
        }
        if (r < 0) {
            goto nomem;
        }
        uint64_t v = refs_get(c, k);
        if (v == c->refcount_max) {
            say(c, "ERROR: overflow cluster offset=0x%" PRIx64, k * cs);
            c->res->corruptions++;
            continue;
        }
        if ((r = refs_set(c, k, v + 1)) < 0) {
            goto nomem;
        }
    }
    return;
nomem:
    c->res->check_errors++;
    c->err = r;
}

static int read_at(struct check *c, void *buf, uint64_t len, uint64_t off)
{
    int r = vimg_internal_pread(c->img->file, buf, len, off);
    if (r < 0) {
        c->res->check_errors++;
    }
    return r;
}

static void check_l2(struct check *c, uint64_t l2_offset, bool active)
{
    struct qcow2_state *s = c->s;
    uint64_t next = 0;

    if (read_at(c, c->buf, s->cluster_size, l2_offset) < 0) {
        say(c, "ERROR: I/O error in check_refcounts_l2");
        return;
    }
    for (uint64_t i = 0; i < qcow2_l2_entries(s); i++) {
        uint64_t e = qcow2_l2e_get(s, c->buf, i);
        uint64_t bm = qcow2_l2bm_get(s, c->buf, i);
        uint64_t off = e & QCOW2_L2E_OFFSET_MASK;
        if (e & QCOW2_L2E_COMPRESSED) {
            unsigned x = qcow2_compressed_offset_bits(s->cluster_bits);
            uint64_t host = e & (((uint64_t)1 << x) - 1);
            uint64_t sectors = ((e & ~(QCOW2_L2E_COMPRESSED |
                                       QCOW2_L2E_COPIED)) >> x) + 1;
            if (e & QCOW2_L2E_COPIED) {
                say(c, "ERROR: coffset=0x%" PRIx64 ": copied flag must "
                    "never be set for compressed clusters", host);
                c->res->corruptions++;
            }
            if (bm) {
                /* As QEMU: such a cluster is not counted as referenced
                 * either. */
                say(c, "ERROR compressed cluster %" PRIu64 " with non-zero "
                    "subcluster allocation bitmap, entry=0x%" PRIx64, i, e);
                c->res->corruptions++;
                continue;
            }
            inc_refs(c, host, sectors * QCOW2_COMPRESSED_SECTOR_SIZE -
                                  (host & (QCOW2_COMPRESSED_SECTOR_SIZE - 1)));
            if (active) {
                c->res->allocated_clusters++;
                c->res->compressed_clusters++;
                c->res->fragmented_clusters++;
            }
            continue;
        }
        if (e & QCOW2_L2E_RESERVED) {
            say(c, "ERROR found l2 entry with reserved bits set: %" PRIx64, e);
            c->res->corruptions++;
        }
        if (!off && !(qcow2_has_data_file(s) && (e & QCOW2_L2E_COPIED))) {
            if (bm & QCOW2_EXTL2_ALL_ALLOC) {
                say(c, "ERROR: Unallocated cluster has non-zero subcluster "
                    "allocation map");
                c->res->corruptions++;
            }
            continue;
        }
        if ((bm >> 32) & bm) {
            say(c, "ERROR offset=%" PRIx64 ": Allocated cluster has "
                "corrupted subcluster allocation bitmap", off);
            c->res->corruptions++;
        }
        if (off & (s->cluster_size - 1)) {
            c->res->corruptions++;
            say(c, "ERROR offset=%" PRIx64 ": %s cluster is not properly "
                "aligned; L2 entry corrupted.", off,
                s->version >= 3 && (e & QCOW2_L2E_ZERO) ? "Preallocated"
                                                        : "Data");
        }
        if (active) {
            c->res->allocated_clusters++;
            if (next && off != next) {
                c->res->fragmented_clusters++;
            }
            next = off + s->cluster_size;
        }
        if (s->data == c->img->file) {
            inc_refs(c, off, s->cluster_size);
        }
    }
}

static void check_l1(struct check *c, uint64_t l1_offset, uint64_t l1_size,
                     bool active)
{
    struct qcow2_state *s = c->s;
    uint64_t *l1 = active ? s->l1 : NULL;
    uint8_t *raw = NULL;

    inc_refs(c, l1_offset, l1_size * 8);
    if (!active && l1_size) {
        raw = malloc(l1_size * 8);
        if (!raw || read_at(c, raw, l1_size * 8, l1_offset) < 0) {
            if (!raw) {
                c->res->check_errors++;
            }
            say(c, "ERROR: I/O error in check_refcounts_l1");
            free(raw);
            return;
        }
    }
    for (uint64_t i = 0; i < l1_size; i++) {
        uint64_t e = l1 ? l1[i] : load_be64(raw + i * 8);
        uint64_t l2 = e & QCOW2_L1E_OFFSET_MASK;
        if (e & QCOW2_L1E_RESERVED) {
            say(c, "ERROR found L1 entry with reserved bits set: %" PRIx64,
                e);
            c->res->corruptions++;
        }
        if (!l2) {
            continue;
        }
        inc_refs(c, l2, s->cluster_size);
        if (l2 & (s->cluster_size - 1)) {
            say(c, "ERROR l2_offset=%" PRIx64 ": Table is not cluster "
                "aligned; L1 entry corrupted", l2);
            c->res->corruptions++;
            continue;
        }
        check_l2(c, l2, active);
    }
    free(raw);
}

/* The directory, tables and data clusters of the bitmaps as the image
 * holds them (validated at open; the table entries here, as QEMU's check
 * does: a malformed one is a corruption). */
static void check_bitmaps(struct check *c)
{
    struct qcow2_state *s = c->s;

    if (!s->bm_loaded || !s->bitmap_dir_size) {
        return;
    }
    inc_refs(c, s->bitmap_dir_offset, s->bitmap_dir_size);
    for (uint32_t i = 0; i < s->bm_count && !c->err; i++) {
        const struct qcow2_bitmap *b = &s->bm[i];
        uint64_t bytes = (uint64_t)b->table_size * 8;
        uint8_t *t;
        if (!b->table_offset) {
            continue;
        }
        inc_refs(c, b->table_offset, bytes);
        if (!(t = malloc(bytes))) {
            c->res->check_errors++;
            continue;
        }
        if (read_at(c, t, bytes, b->table_offset) == 0) {
            for (uint32_t j = 0; j < b->table_size; j++) {
                uint64_t e = load_be64(t + j * 8);
                if (!qcow2_bitmap_entry_valid(s, e)) {
                    say(c, "ERROR bitmap '%s' table entry %" PRIu32 " is "
                        "invalid: %" PRIx64, b->name, j, e);
                    c->res->corruptions++;
                } else if (e & QCOW2_BMT_OFFSET_MASK) {
                    inc_refs(c, e & QCOW2_BMT_OFFSET_MASK, s->cluster_size);
                }
            }
        }
        free(t);
    }
}

static void check_refblocks(struct check *c)
{
    struct qcow2_state *s = c->s;

    for (uint64_t i = 0; i < s->rt_entries && !c->err; i++) {
        uint64_t off = s->rt[i] & QCOW2_RTE_OFFSET_MASK;
        if (s->rt[i] & QCOW2_RTE_RESERVED) {
            say(c, "ERROR refcount table entry %" PRIu64 " has reserved "
                "bits set", i);
            c->res->corruptions++;
            c->rebuild = true;
            continue;
        }
        if (!off) {
            continue;
        }
        if (off & (s->cluster_size - 1)) {
            say(c, "ERROR refcount block %" PRIu64 " is not cluster aligned; "
                "refcount table entry corrupted", i);
            c->res->corruptions++;
            c->rebuild = true;
            continue;
        }
        if (off / s->cluster_size >= c->nb) {
            say(c, "ERROR refcount block %" PRIu64 " is outside image", i);
            c->res->corruptions++;
            c->rebuild = true;
            continue;
        }
        inc_refs(c, off, s->cluster_size);
        uint64_t n = refs_get(c, off / s->cluster_size);
        if (n != 1 && !c->err) {
            say(c, "ERROR refcount block %" PRIu64 " refcount=%" PRIu64, i,
                n);
            c->res->corruptions++;
            c->rebuild = true;
        }
    }
}

static int calculate(struct check *c)
{
    struct qcow2_state *s = c->s;

    refs_clear(c);
    c->res->allocated_clusters = c->res->fragmented_clusters = 0;
    c->res->compressed_clusters = 0;
    inc_refs(c, 0, s->cluster_size);
    check_l1(c, s->l1_offset, s->l1_size, true);
    for (uint32_t i = 0; i < s->nb_snapshots; i++) {
        check_l1(c, s->snapshots[i].l1_offset, s->snapshots[i].l1_size,
                 false);
    }
    inc_refs(c, s->snapshots_offset, s->nb_snapshots ? s->snapshots_size : 0);
    inc_refs(c, s->rt_offset, s->rt_clusters * s->cluster_size);
    inc_refs(c, s->crypto_offset, s->crypto_length);
    check_bitmaps(c);
    check_refblocks(c);
    return c->err;
}

/* The offset of refcount block T, or 0 where there is none or the table
 * entry is broken (check_refblocks reported it): all its refcounts are 0
 * then. */
static uint64_t refblock_offset(const struct check *c, uint64_t t)
{
    const struct qcow2_state *s = c->s;
    uint64_t off = t < s->rt_entries ? s->rt[t] & QCOW2_RTE_OFFSET_MASK : 0;

    if (!off || (off & (s->cluster_size - 1)) ||
        off / s->cluster_size >= c->nb) {
        return 0;
    }
    return off;
}

/* The refcount on disk of cluster K. */
static int disk_refcount(struct check *c, uint64_t k, uint64_t *rc)
{
    struct qcow2_state *s = c->s;
    uint64_t off = refblock_offset(c, k >> s->rb_bits);
    uint8_t *block;
    int r;

    *rc = 0;
    if (!off) {
        return 0;
    }
    if ((r = qcow2_cache_get(c->img, &s->rb_cache, off, false, &block)) < 0) {
        c->res->check_errors++;
        return r;
    }
    *rc = qcow2_refcount_load(block, s->refcount_order,
                              k & (((uint64_t)1 << s->rb_bits) - 1));
    return 0;
}

/* Whether refcount block T may hold a nonzero refcount: it exists and is
 * not a hole of the file, which the file's block status tells without a
 * read (unless the cache holds changes not yet on disk). */
static bool refblock_present(struct check *c, uint64_t t)
{
    uint64_t off = refblock_offset(c, t);
    struct vimg_extent e;

    if (!off) {
        return false;
    }
    if (qcow2_cache_has_dirty(&c->s->rb_cache) ||
        vimg_internal_block_status(c->img->file, off, c->s->cluster_size, 0,
                                   &e) < 0) {
        return true;
    }
    return !(e.flags & VIMG_BS_ZERO) || e.length < c->s->cluster_size;
}

static int compare(struct check *c, unsigned fix, uint64_t *highest)
{
    struct qcow2_state *s = c->s;
    uint64_t t_seen = UINT64_MAX;
    bool present = false;
    int r;

    *highest = 0;
    for (uint64_t k = 0; k < c->nb; k++) {
        /* Where the refcount table has no block (or one of zeros), only
         * clusters counted here can differ from the disk; past the table's
         * end, none until the last counted one. */
        uint64_t t = k >> s->rb_bits;
        if (t != t_seen) {
            t_seen = t;
            present = refblock_present(c, t);
        }
        if (!present) {
            uint64_t end = t >= s->rt_entries
                               ? c->nb
                               : MIN(c->nb, (t + 1) << s->rb_bits);
            uint64_t next = refs_next(c, k, end);
            if (next != k) {
                k = next - 1;
                continue;
            }
        }
        uint64_t rc1 = 0, rc2 = refs_get(c, k);
        if (present && disk_refcount(c, k, &rc1) < 0) {
            say(c, "Can't get refcount for cluster %" PRIu64 ": I/O error",
                k);
            continue;
        }
        if (rc1 || rc2) {
            *highest = k;
        }
        if (rc1 == rc2) {
            continue;
        }
        int64_t *fixed = NULL;
        if (rc1 == 0) {
            c->rebuild = true;
        } else if (rc1 > rc2 && (fix & VIMG_CHECK_FIX_LEAKS)) {
            fixed = &c->res->leaks_fixed;
        } else if (rc1 < rc2 && (fix & VIMG_CHECK_FIX_ERRORS)) {
            fixed = &c->res->corruptions_fixed;
        }
        say(c, "%s cluster %" PRIu64 " refcount=%" PRIu64 " reference=%"
            PRIu64, fixed ? "Repairing" : rc1 < rc2 ? "ERROR" : "Leaked",
            k, rc1, rc2);
        if (fixed) {
            r = qcow2_update_refcount(c->img, k * s->cluster_size,
                                      s->cluster_size,
                                      (int64_t)(rc2 - rc1));
            if (r == 0) {
                (*fixed)++;
                continue;
            }
            c->res->check_errors++;
        }
        if (rc1 < rc2) {
            c->res->corruptions++;
        } else {
            c->res->leaks++;
        }
    }
    return 0;
}

/* Write a new refcount table and blocks of ORDER (the refcount width
 * the image will have) after everything in use, from the counted
 * references; the old structure becomes leaked clusters. Only the blocks
 * that describe some cluster in use are written (a table entry of 0 stands
 * for a block of zeros), so a sparse image costs no more than what it
 * holds. The header switches to the new structure, and width, in one
 * write of its first sector. */
static int rebuild(struct check *c, uint32_t order)
{
    struct qcow2_state *s = c->s;
    uint32_t rb_bits = s->cluster_bits + 3 - order;
    uint64_t cs = s->cluster_size, per_block = (uint64_t)1 << rb_bits;
    uint64_t first = 0, used = 0, m = 0, k = 1, end;
    int r = 0;

    /* FIRST: after the last cluster in use; USED: blocks below it. */
    for (uint64_t i = refs_next(c, 0, c->nb); i < c->nb;
         i = refs_next(c, i + 1, c->nb)) {
        if (!first || (i >> rb_bits) != ((first - 1) >> rb_bits)) {
            used++;
        }
        first = i + 1;
    }
    /* M blocks, then a table of K clusters, from FIRST on: the block that
     * holds FIRST is among the USED ones unless FIRST starts a block. */
    for (;;) {
        end = first + m + k;
        if (end > MAX_CHECK_CLUSTERS) {
            break;
        }
        uint64_t m2 = used + ((end - 1) >> rb_bits) -
                      (first >> rb_bits) + !(first & (per_block - 1));
        uint64_t k2 = DIV_ROUND_UP(DIV_ROUND_UP(end, per_block) * 8, cs);
        if (m2 == m && k2 == k) {
            break;
        }
        m = m2;
        k = k2;
    }
    if (k * cs > QCOW2_MAX_RT_BYTES || end > MAX_CHECK_CLUSTERS) {
        return vimg_internal_img_error(c->img, EFBIG, "cannot rebuild the "
                                       "refcount structure: too large");
    }
    c->max_nb = MAX(c->max_nb, end);
    int grown = grow_refs(c, end);
    for (uint64_t i = first; i < end && grown == 0; i++) {
        grown = refs_set(c, i, 1);
    }
    uint64_t *rt = calloc(k * cs / 8, sizeof *rt);
    uint8_t *buf = calloc(1, cs);
    if (grown < 0 || !rt || !buf) {
        free(rt);
        free(buf);
        return vimg_internal_img_error(c->img, ENOMEM, "out of memory");
    }
    uint64_t next = first;
    for (uint64_t i = refs_next(c, 0, end); i < end && r == 0;
         i = refs_next(c, (i | (per_block - 1)) + 1, end)) {
        uint64_t t = i >> rb_bits, base = t << rb_bits;
        memset(buf, 0, cs);
        for (uint64_t j = 0; j < per_block && base + j < end; j++) {
            qcow2_refcount_store(buf, order, j,
                                 refs_get(c, base + j));
        }
        rt[t] = next++ * cs;
        r = vimg_internal_pwrite(c->img->file, buf, cs, rt[t], 0);
    }
    assert(r < 0 || next == first + m);
    for (uint64_t i = 0; i < k && r == 0; i++) {
        for (uint64_t j = 0; j < cs / 8; j++) {
            store_be64(buf + j * 8, rt[i * cs / 8 + j]);
        }
        r = vimg_internal_pwrite(c->img->file, buf, cs,
                                 (first + m + i) * cs, 0);
    }
    free(buf);
    if (r == 0) {
        r = vimg_internal_flush(c->img->file);
    }
    if (r < 0) {
        free(rt);
        return r;
    }
    qcow2_cache_reset(&s->rb_cache);
    free(s->rt);
    s->rt = rt;
    s->rt_entries = k * cs / 8;
    s->rt_offset = (first + m) * cs;
    s->rt_clusters = (uint32_t)k;
    s->free_hint = 1;
    unsigned len = 12;
    if (order != s->refcount_order) {
        /* Table, snapshot fields and features up to the order: all in
         * the first sector, written at once. */
        s->refcount_order = order;
        s->rb_bits = rb_bits;
        store_be32(s->hdr + QCOW2_HDR_NB_SNAPSHOTS, s->nb_snapshots);
        store_be64(s->hdr + QCOW2_HDR_SNAPSHOTS_OFFSET, s->snapshots_offset);
        store_be32(s->hdr + QCOW2_HDR_REFCOUNT_ORDER, order);
        len = QCOW2_HDR_REFCOUNT_ORDER + 4 - QCOW2_HDR_REFCOUNT_TABLE_OFFSET;
    }
    if ((r = qcow2_update_header_fields(c->img,
                                        QCOW2_HDR_REFCOUNT_TABLE_OFFSET,
                                        len)) < 0) {
        return r;
    }
    return vimg_internal_flush(c->img->file);
}

static int check_copied(struct check *c, bool repair)
{
    struct qcow2_state *s = c->s;
    uint64_t rc;
    int r;

    for (uint64_t i = 0; i < s->l1_size; i++) {
        uint64_t e = s->l1[i], l2 = e & QCOW2_L1E_OFFSET_MASK;
        if (!l2 || (l2 & (s->cluster_size - 1))) {
            continue;
        }
        if (qcow2_get_refcount(c->img, l2 / s->cluster_size, &rc) < 0) {
            continue;
        }
        if ((rc == 1) != !!(e & QCOW2_L1E_COPIED)) {
            say(c, "%s OFLAG_COPIED L2 cluster: l1_index=%" PRIu64
                " l1_entry=%" PRIx64 " refcount=%" PRIu64,
                repair ? "Repairing" : "ERROR", i, e, rc);
            if (repair) {
                s->l1[i] = rc == 1 ? e | QCOW2_L1E_COPIED
                                   : e & ~QCOW2_L1E_COPIED;
                s->l1_dirty = true;
                c->res->corruptions_fixed++;
            } else {
                c->res->corruptions++;
            }
        }
        uint8_t *table;
        if ((r = qcow2_cache_get(c->img, &s->l2_cache, l2, false,
                                 &table)) < 0) {
            c->res->check_errors++;
            return r;
        }
        for (uint64_t j = 0; j < qcow2_l2_entries(s); j++) {
            uint64_t le = qcow2_l2e_get(s, table, j);
            uint64_t off = le & QCOW2_L2E_OFFSET_MASK;
            if ((le & QCOW2_L2E_COMPRESSED) || !off ||
                (off & (s->cluster_size - 1))) {
                continue;
            }
            rc = 1;
            if (s->data == c->img->file &&
                qcow2_get_refcount(c->img, off / s->cluster_size, &rc) < 0) {
                continue;
            }
            if ((rc == 1) == !!(le & QCOW2_L2E_COPIED)) {
                continue;
            }
            say(c, "%s OFLAG_COPIED data cluster: l2_entry=%" PRIx64
                " refcount=%" PRIu64, repair ? "Repairing" : "ERROR", le, rc);
            if (repair) {
                qcow2_l2e_set(s, table, j, rc == 1 ? le | QCOW2_L2E_COPIED
                                                   : le & ~QCOW2_L2E_COPIED);
                qcow2_cache_mark_dirty(&s->l2_cache, table);
                c->res->corruptions_fixed++;
            } else {
                c->res->corruptions++;
            }
        }
    }
    return 0;
}

/* A v3 image's snapshot entries must carry the extra data v3 requires;
 * qemu-img check counts an entry without it as a corruption, and -r all
 * writes the table anew (before the references are counted: the table
 * moves). */
static int check_snapshot_entries(struct check *c)
{
    struct qcow2_state *s = c->s;
    bool repair = (c->fix & VIMG_CHECK_FIX_ERRORS) && c->img->writable;
    uint32_t n = 0;

    if (s->version < 3) {
        return 0;
    }
    for (uint32_t i = 0; i < s->nb_snapshots; i++) {
        if (s->snapshots[i].short_extra) {
            say(c, "%s snapshot table entry %" PRIu32 " is incomplete",
                repair ? "Repairing" : "ERROR", i);
            n++;
        }
    }
    if (!n) {
        return 0;
    }
    if (!repair) {
        c->res->corruptions += n;
        return 0;
    }
    int r = qcow2_snapshot_rewrite_table(c->img);
    if (r < 0) {
        c->res->check_errors++;
        return r;
    }
    c->res->corruptions_fixed += n;
    return 0;
}

int qcow2_check(struct vimg_image *img, unsigned fix,
                struct vimg_check_result *res, vimg_report_fn report,
                void *opaque)
{
    struct qcow2_state *s = qcow2_state(img);
    struct check c = { .img = img, .s = s, .res = res, .report = report,
                       .opaque = opaque, .fix = fix };
    uint64_t file_size = (uint64_t)vimg_internal_get_size(img->file);
    uint64_t highest;
    bool was_corrupt = s->corrupt;
    int r;

    if (img->writable && (r = qcow2_flush_metadata(img)) < 0) {
        return r;
    }
    if (fix) {
        s->corrupt = false; /* repair may write a corrupt image */
    }
    c.nb = DIV_ROUND_UP(file_size, s->cluster_size);
    if (c.nb > MAX_CHECK_CLUSTERS) {
        res->check_errors++;
        return vimg_internal_img_error(img, EFBIG, "image file too large "
                                       "to check");
    }
    c.max_nb = MIN(MAX_CHECK_CLUSTERS, c.nb + ((uint64_t)1 << 20));
    c.refcount_max = s->refcount_order == 6
                         ? UINT64_MAX
                         : ((uint64_t)1 << (1u << s->refcount_order)) - 1;
    uint64_t nb = c.nb;
    c.nb = 0;
    c.buf = malloc(s->cluster_size);
    if (!c.buf || grow_refs(&c, nb) < 0) {
        r = vimg_internal_img_error(img, ENOMEM, "out of memory");
        goto out;
    }
    res->has_cluster_stats = true;
    res->total_clusters = (int64_t)DIV_ROUND_UP(img->size, s->cluster_size);
    if ((r = check_snapshot_entries(&c)) < 0) {
        goto out;
    }
    if ((r = calculate(&c)) < 0) {
        r = vimg_internal_img_error(img, -r, "out of memory");
        goto out;
    }
    struct vimg_check_result pre = *res;
    compare(&c, 0, &highest);
    if (c.rebuild && (fix & VIMG_CHECK_FIX_ERRORS)) {
        struct vimg_check_result old = *res;
        say(&c, "Rebuilding refcount structure");
        if ((r = rebuild(&c, s->refcount_order)) < 0) {
            res->check_errors++;
            goto out;
        }
        res->corruptions = res->leaks = 0;
        c.rebuild = false;
        nb = DIV_ROUND_UP((uint64_t)vimg_internal_get_size(img->file),
                          s->cluster_size);
        c.nb = 0;
        c.max_nb = MAX(c.max_nb, nb); /* the file grew by the rebuild only */
        if ((r = grow_refs(&c, nb)) < 0 || (r = calculate(&c)) < 0) {
            r = vimg_internal_img_error(img, -r, "out of memory");
            goto out;
        }
        struct vimg_check_result saved = *res;
        compare(&c, VIMG_CHECK_FIX_LEAKS, &highest);
        int64_t fresh_leaks = res->leaks;
        *res = saved;
        if (res->corruptions < old.corruptions) {
            res->corruptions_fixed += old.corruptions - res->corruptions;
        }
        if (res->leaks < old.leaks) {
            res->leaks_fixed += old.leaks - res->leaks;
        }
        res->leaks += fresh_leaks;
    } else if (fix) {
        if (c.rebuild) {
            say(&c, "ERROR need to rebuild refcount structures");
            res->check_errors++;
            r = -EIO;
            goto out;
        }
        if (res->leaks || res->corruptions) {
            *res = pre;
            compare(&c, fix, &highest);
        }
    }
    bool repair = (fix & VIMG_CHECK_FIX_ERRORS) ||
                  ((fix & VIMG_CHECK_FIX_LEAKS) && !res->check_errors &&
                   !res->corruptions && !res->leaks);
    if ((r = check_copied(&c, repair)) < 0) {
        goto out;
    }
    res->image_end_offset = (int64_t)((highest + 1) * s->cluster_size);
    r = 0;
    if (fix) {
        if ((r = qcow2_flush_metadata(img)) < 0 ||
            (r = vimg_internal_flush(img->file)) < 0) {
            goto out;
        }
        if (!res->check_errors && !res->corruptions) {
            was_corrupt = false;
            if (s->version >= 3 &&
                (s->incompat & (QCOW2_INCOMPAT_DIRTY |
                                QCOW2_INCOMPAT_CORRUPT))) {
                s->incompat &= ~(QCOW2_INCOMPAT_DIRTY |
                                 QCOW2_INCOMPAT_CORRUPT);
                s->dirty_set = false;
                if ((r = qcow2_update_header_fields(
                         img, QCOW2_HDR_INCOMPATIBLE_FEATURES, 8)) == 0) {
                    r = vimg_internal_flush(img->file);
                }
            }
        }
    }
out:
    s->corrupt = s->corrupt || was_corrupt;
    refs_clear(&c);
    free(c.pages);
    free(c.buf);
    return r;
}

int qcow2_repair_dirty(struct vimg_image *img)
{
    struct vimg_check_result res = { 0 };
    int r = qcow2_check(img, VIMG_CHECK_FIX_LEAKS | VIMG_CHECK_FIX_ERRORS,
                        &res, NULL, NULL);

    if (r == 0 && (res.corruptions || res.check_errors)) {
        return vimg_internal_img_error(img, EIO, "could not repair the "
                                       "refcounts of a dirty image");
    }
    return r;
}

int qcow2_change_refcount_order(struct vimg_image *img, uint32_t order)
{
    struct qcow2_state *s = qcow2_state(img);
    struct vimg_check_result res = { 0 };
    struct check c = { .img = img, .s = s, .res = &res };
    uint64_t file_size = (uint64_t)vimg_internal_get_size(img->file);
    uint64_t max = order == 6 ? UINT64_MAX
                              : ((uint64_t)1 << (1u << order)) - 1;
    uint64_t highest;
    int r;

    if ((r = qcow2_flush_metadata(img)) < 0 ||
        (r = vimg_internal_flush(img->file)) < 0) {
        return r;
    }
    c.nb = DIV_ROUND_UP(file_size, s->cluster_size);
    if (c.nb > MAX_CHECK_CLUSTERS) {
        return vimg_internal_img_error(img, EFBIG, "image file too large "
                                       "to rebuild its refcounts");
    }
    c.max_nb = MIN(MAX_CHECK_CLUSTERS, c.nb + ((uint64_t)1 << 20));
    c.refcount_max = s->refcount_order == 6
                         ? UINT64_MAX
                         : ((uint64_t)1 << (1u << s->refcount_order)) - 1;
    uint64_t nb = c.nb;
    c.nb = 0;
    c.buf = malloc(s->cluster_size);
    if (!c.buf || grow_refs(&c, nb) < 0 || (r = calculate(&c)) < 0) {
        r = vimg_internal_img_error(img, ENOMEM, "out of memory");
        goto out;
    }
    /* The refcounts are rebuilt from the references: that is only right
     * when they agree (leaks aside, which the rebuild drops). */
    compare(&c, 0, &highest);
    if (res.corruptions || res.check_errors || c.rebuild) {
        r = vimg_internal_img_error(img, EIO, "the image has errors (run "
                                    "'vimg check -r all' first); its "
                                    "refcounts are left as they are");
        goto out;
    }
    for (uint64_t k = refs_next(&c, 0, c.nb); k < c.nb;
         k = refs_next(&c, k + 1, c.nb)) {
        if (refs_get(&c, k) > max) {
            r = vimg_internal_img_error(img, ENOTSUP, "Cannot decrease "
                                        "refcount entry width to %u bits: "
                                        "Cluster at offset 0x%llx has a "
                                        "refcount of %llu", 1u << order,
                                        (unsigned long long)(k *
                                                             s->cluster_size),
                                        (unsigned long long)refs_get(&c, k));
            goto out;
        }
    }
    if ((r = rebuild(&c, order)) < 0) {
        goto out;
    }
    /* The old table and blocks are leaked clusters now: give them back. */
    nb = DIV_ROUND_UP((uint64_t)vimg_internal_get_size(img->file),
                      s->cluster_size);
    c.nb = 0;
    c.max_nb = MAX(c.max_nb, nb);
    c.refcount_max = max;
    memset(&res, 0, sizeof res);
    if ((r = grow_refs(&c, nb)) < 0 || (r = calculate(&c)) < 0) {
        r = vimg_internal_img_error(img, ENOMEM, "out of memory");
        goto out;
    }
    compare(&c, VIMG_CHECK_FIX_LEAKS, &highest);
    if (res.corruptions || res.check_errors) {
        r = vimg_internal_img_error(img, EIO, "the refcounts rebuilt at %u "
                                    "bits do not check clean",
                                    1u << order);
        goto out;
    }
    if ((r = qcow2_flush_metadata(img)) == 0) {
        r = vimg_internal_flush(img->file);
    }
out:
    refs_clear(&c);
    free(c.pages);
    free(c.buf);
    return r;
}
