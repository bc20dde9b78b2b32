/* Refcounts: reading and updating them at every width (refcount_order
 * 0..6), allocating clusters, growing the refcount table. Crash-safety
 * rules: a new refcount block is on disk before the table entry naming
 * it, and a new table before the header points at it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../../common/checked-overflow.h"
#include "../../../common/rounding.h"
#include "qcow2.h"

/* Host offsets live in bits 9-55 of table entries. */
#define MAX_HOST_OFFSET ((uint64_t)1 << 56)

uint64_t qcow2_refcount_load(const uint8_t *block, uint32_t order,
                             uint64_t index)
{
    switch (order) {
    case 0:
    case 1:
    case 2: {
        /* Sub-byte refcounts are packed from the least significant bit. */
        unsigned bits = 1u << order;
        unsigned per_byte = 8 / bits;
        unsigned shift = (unsigned)(index % per_byte) * bits;
        return (block[index / per_byte] >> shift) & ((1u << bits) - 1);
    }
    case 3:
        return block[index];
    case 4:
        return load_be16(block + index * 2);
    case 5:
        return load_be32(block + index * 4);
    default:
        return load_be64(block + index * 8);
    }
}

void qcow2_refcount_store(uint8_t *block, uint32_t order, uint64_t index,
                          uint64_t value)
{
    switch (order) {
    case 0:
    case 1:
    case 2: {
        unsigned bits = 1u << order;
        unsigned per_byte = 8 / bits;
        unsigned shift = (unsigned)(index % per_byte) * bits;
        uint8_t mask = (uint8_t)(((1u << bits) - 1) << shift);
        uint8_t *b = &block[index / per_byte];
        *b = (uint8_t)((*b & ~mask) | ((value << shift) & mask));
        break;
    }
    case 3:
        block[index] = (uint8_t)value;
        break;
    case 4:
        store_be16(block + index * 2, (uint16_t)value);
        break;
    case 5:
        store_be32(block + index * 4, (uint32_t)value);
        break;
    default:
        store_be64(block + index * 8, value);
        break;
    }
}

static uint64_t refcount_max(const struct qcow2_state *s)
{
    return s->refcount_order == 6 ? UINT64_MAX
                                  : ((uint64_t)1 << (1u << s->refcount_order))
                                        - 1;
}

/* The refcount block for table index T, or 0 when there is none. */
static int block_offset(struct vimg_image *img, uint64_t t, uint64_t *off)
{
    struct qcow2_state *s = qcow2_state(img);

    *off = t < s->rt_entries ? s->rt[t] & QCOW2_RTE_OFFSET_MASK : 0;
    if (*off & (s->cluster_size - 1)) {
        return qcow2_signal_corruption(img, *off, "refcount block %llu is "
                                       "not cluster aligned",
                                       (unsigned long long)t);
    }
    return 0;
}

int qcow2_get_refcount(struct vimg_image *img, uint64_t cluster,
                       uint64_t *refcount)
{
    struct qcow2_state *s = qcow2_state(img);
    uint64_t off;
    uint8_t *block;
    int r;

    *refcount = 0;
    if ((r = block_offset(img, cluster >> s->rb_bits, &off)) < 0 || !off) {
        return r;
    }
    if ((r = qcow2_cache_get(img, &s->rb_cache, off, false, &block)) < 0) {
        return r;
    }
    *refcount = qcow2_refcount_load(block, s->refcount_order,
                                    cluster & (((uint64_t)1 << s->rb_bits)
                                               - 1));
    return 0;
}

/* Find N free clusters in a row at or after the hint; *FIRST_FREE gets
 * the first free cluster seen (the new hint if the run is elsewhere). */
static int find_free(struct vimg_image *img, uint64_t n, uint64_t *start,
                     uint64_t *first_free)
{
    struct qcow2_state *s = qcow2_state(img);
    uint64_t per_block = (uint64_t)1 << s->rb_bits;
    uint64_t covered = s->rt_entries << s->rb_bits;
    uint64_t i = s->free_hint, run = 0;
    bool seen = false;
    int r;

    *first_free = UINT64_MAX;
    while (run < n) {
        if (i >= covered) {
            /* Past the table: all free (the table grows on allocation). */
            if (!seen) {
                *first_free = i;
            }
            if (run == 0) {
                *start = i;
            }
            break;
        }
        uint64_t off;
        uint8_t *block = NULL;
        if ((r = block_offset(img, i >> s->rb_bits, &off)) < 0) {
            return r;
        }
        if (off && (r = qcow2_cache_get(img, &s->rb_cache, off, false,
                                        &block)) < 0) {
            return r;
        }
        uint64_t end = ROUND_DOWN(i, per_block) + per_block;
        for (; i < end && run < n; i++) {
            uint64_t rc = block ? qcow2_refcount_load(block, s->refcount_order,
                                                      i & (per_block - 1))
                                : 0;
            if (rc || i == 0) {
                run = 0;
                continue;
            }
            if (!seen) {
                seen = true;
                *first_free = i;
            }
            if (run++ == 0) {
                *start = i;
            }
        }
    }
    uint64_t end_byte;
    if (CHECKED_MUL(*start + n, s->cluster_size, &end_byte) ||
        end_byte > MAX_HOST_OFFSET) {
        return vimg_internal_img_error(img, ENOSPC, "no room for %llu more "
                                       "clusters (host offsets are limited "
                                       "to 64 PiB)", (unsigned long long)n);
    }
    return 0;
}

/* Free clusters [START, START+N) must not hold metadata: only damaged
 * refcounts make that happen, and handing them out would let data or
 * another table overwrite it. */
static int alloc_overlap_check(struct vimg_image *img, uint64_t start,
                               uint64_t n)
{
    struct qcow2_state *s = qcow2_state(img);
    const char *what;
    int r = qcow2_metadata_at(img, 0, NULL, start * s->cluster_size,
                              n * s->cluster_size, &what);

    if (r == 0 && what) {
        r = qcow2_signal_corruption(img, start * s->cluster_size,
                                    "Preventing allocation of clusters "
                                    "with refcount 0 that overlap with %s",
                                    what);
    }
    return r;
}

/* Refcount blocks missing for clusters [START, END). */
static uint64_t missing_blocks(const struct qcow2_state *s, uint64_t start,
                               uint64_t end)
{
    uint64_t need = 0;

    for (uint64_t t = start >> s->rb_bits; t <= (end - 1) >> s->rb_bits;
         t++) {
        if (t >= s->rt_entries || !s->rt[t]) {
            need++;
        }
    }
    return need;
}

/* Replace the refcount table with a larger one of at least MIN_ENTRIES.
 * The new table and the refcount blocks describing it go to free space
 * (usually the end of the file): blocks first, then the table, then the
 * header switches to it, and only then is the old table freed. */
static int grow_table(struct vimg_image *img, uint64_t min_entries)
{
    struct qcow2_state *s = qcow2_state(img);
    uint64_t per_cluster = s->cluster_size / 8;
    uint64_t entries = MAX(min_entries, s->rt_entries + s->rt_entries / 2);
    uint64_t start, first_free, k, m = 0;
    int r;

    /* The old table is released at the end: check it first. */
    struct qcow2_range old_range = { s->rt_offset,
                                     s->rt_clusters * s->cluster_size };
    if ((r = qcow2_check_release(img, QCOW2_ROLE_RT, &old_range, 1)) < 0) {
        return r;
    }
    for (;;) {
        m = 0;
        entries = ROUND_UP(entries, per_cluster);
        k = entries / per_cluster;
        if (k * s->cluster_size > QCOW2_MAX_RT_BYTES) {
            return vimg_internal_img_error(img, ENOSPC, "the refcount table "
                                           "would exceed %u bytes",
                                           QCOW2_MAX_RT_BYTES);
        }
        /* Blocks follow the table; count those its range needs, and find
         * room for both (the clusters after a free run may be in use). */
        for (unsigned tries = 0;; tries++) {
            if (tries > 64) {
                return vimg_internal_img_error(img, EIO, "cannot find room "
                                               "for a larger refcount "
                                               "table");
            }
            if ((r = find_free(img, k + m, &start, &first_free)) < 0) {
                return r;
            }
            uint64_t need = missing_blocks(s, start, start + k + m);
            if (need == m) {
                break;
            }
            m = need;
        }
        uint64_t last_t = (start + k + m - 1) >> s->rb_bits;
        if (last_t < entries) {
            break;
        }
        entries = last_t + 1;
    }

    if ((r = alloc_overlap_check(img, start, k + m)) < 0) {
        return r;
    }
    uint64_t *rt = calloc(entries, sizeof *rt);
    uint8_t *buf = calloc(1, s->cluster_size);
    uint64_t *old = s->rt;
    if (!rt || !buf) {
        free(rt);
        free(buf);
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    memcpy(rt, s->rt, s->rt_entries * sizeof *rt);
    uint64_t end = start + k + m, next_block = start + k;
    for (uint64_t t = start >> s->rb_bits; t <= (end - 1) >> s->rb_bits;
         t++) {
        if (t < s->rt_entries && s->rt[t]) {
            continue;
        }
        rt[t] = next_block++ * s->cluster_size;
        memset(buf, 0, s->cluster_size);
        uint64_t lo = MAX(start, t << s->rb_bits);
        uint64_t hi = MIN(end, (t + 1) << s->rb_bits);
        for (uint64_t c = lo; c < hi; c++) {
            qcow2_refcount_store(buf, s->refcount_order,
                                 c - (t << s->rb_bits), 1);
        }
        if ((r = qcow2_write_meta(img, QCOW2_ROLE_RB, buf, s->cluster_size,
                                  rt[t])) < 0) {
            goto out;
        }
    }
    /* Clusters of the new range whose blocks already exist. */
    for (uint64_t c = start; c < end; c++) {
        uint64_t t = c >> s->rb_bits;
        if (t < s->rt_entries && s->rt[t] &&
            (r = qcow2_update_refcount(img, c * s->cluster_size,
                                       s->cluster_size, 1)) < 0) {
            goto out;
        }
    }
    if ((r = qcow2_cache_flush(img, &s->rb_cache)) < 0) {
        goto out;
    }
    for (uint64_t i = 0; i < k; i++) {
        for (uint64_t j = 0; j < per_cluster; j++) {
            store_be64(buf + j * 8, rt[i * per_cluster + j]);
        }
        if ((r = qcow2_write_meta(img, QCOW2_ROLE_RT, buf,
                                  s->cluster_size,
                                  (start + i) * s->cluster_size)) < 0) {
            goto out;
        }
    }
    if ((r = vimg_internal_flush(img->file)) < 0) {
        goto out;
    }
    s->rt = rt;
    s->rt_entries = entries;
    s->rt_offset = start * s->cluster_size;
    s->rt_clusters = (uint32_t)k;
    rt = NULL;
    if ((r = qcow2_update_header_fields(img, QCOW2_HDR_REFCOUNT_TABLE_OFFSET,
                                        12)) < 0 ||
        (r = vimg_internal_flush(img->file)) < 0) {
        goto out;
    }
    free(old);
    old = NULL;
    if (s->free_hint == start) {
        s->free_hint = end;
    }
    r = qcow2_free_clusters(img, &old_range, 1);
out:
    if (rt) {
        free(rt);
    }
    if (old && old != s->rt) {
        free(old);
    }
    free(buf);
    return r;
}

/* Cluster C is about to lose its last reference: it must not be a
 * snapshot's L2 table. */
static int last_reference_check(struct vimg_image *img, uint64_t c)
{
    struct qcow2_state *s = qcow2_state(img);
    bool inactive;
    int r = qcow2_inactive_l2_at(img, c * s->cluster_size, &inactive);

    if (r == 0 && inactive) {
        r = qcow2_signal_corruption(img, c * s->cluster_size, "Preventing "
                                    "invalid free of clusters "
                                    "0x%llx..0x%llx that overlap with "
                                    "inactive L2 table",
                                    (unsigned long long)(c *
                                                         s->cluster_size),
                                    (unsigned long long)((c + 1) *
                                                         s->cluster_size -
                                                         1));
    }
    return r;
}

int qcow2_update_refcount(struct vimg_image *img, uint64_t offset,
                          uint64_t len, int64_t delta)
{
    struct qcow2_state *s = qcow2_state(img);
    uint64_t per_block = (uint64_t)1 << s->rb_bits;
    uint64_t first = offset / s->cluster_size;
    uint64_t last = (offset + len - 1) / s->cluster_size;
    uint64_t max = refcount_max(s);
    int r;

    if (len == 0) {
        return 0;
    }
    if (s->lazy && (r = qcow2_mark_dirty(img)) < 0) {
        return r;
    }
    for (uint64_t c = first; c <= last;) {
        uint64_t t = c >> s->rb_bits, off;
        uint8_t *block;
        if ((r = block_offset(img, t, &off)) < 0) {
            return r;
        }
        if (!off) {
            return qcow2_signal_corruption(img, c * s->cluster_size,
                                           "cluster %llu has no refcount "
                                           "block",
                                           (unsigned long long)c);
        }
        if ((r = qcow2_cache_get(img, &s->rb_cache, off, false,
                                 &block)) < 0) {
            return r;
        }
        uint64_t end = MIN(last + 1, (t + 1) * per_block);
        for (; c < end; c++) {
            uint64_t idx = c & (per_block - 1);
            uint64_t rc = qcow2_refcount_load(block, s->refcount_order, idx);
            if ((delta < 0 && rc < (uint64_t)-delta) ||
                (delta > 0 && max - rc < (uint64_t)delta)) {
                qcow2_cache_mark_dirty(&s->rb_cache, block);
                return qcow2_signal_corruption(img, c * s->cluster_size,
                                               "refcount of cluster %llu "
                                               "would %s",
                                               (unsigned long long)c,
                                               delta < 0 ? "drop below 0"
                                                         : "overflow");
            }
            if (delta < 0 && rc == (uint64_t)-delta &&
                (r = last_reference_check(img, c)) < 0) {
                qcow2_cache_mark_dirty(&s->rb_cache, block);
                return r;
            }
            rc += (uint64_t)delta;
            qcow2_refcount_store(block, s->refcount_order, idx, rc);
            if (rc == 0) {
                if (c < s->free_hint) {
                    s->free_hint = c;
                }
                qcow2_cache_discard(&s->l2_cache, c * s->cluster_size);
            }
        }
        qcow2_cache_mark_dirty(&s->rb_cache, block);
    }
    return 0;
}

/* Allocation places the refcount blocks a run needs right after it, so
 * the run and its blocks are counted together:
 * [start, start + n) data, [start + n, start + n + m) new blocks. New
 * blocks reach the disk before the table entries naming them. */
int qcow2_alloc_clusters(struct vimg_image *img, uint64_t n,
                         uint64_t *offset)
{
    struct qcow2_state *s = qcow2_state(img);
    uint64_t start = 0, first_free = 0, m = 0, tries = 0;
    uint8_t *block;
    int r;

    for (;;) {
        if (++tries > 64) {
            return vimg_internal_img_error(img, EIO, "cannot find room for "
                                           "%llu clusters and their "
                                           "refcount blocks",
                                           (unsigned long long)n);
        }
        if ((r = find_free(img, n + m, &start, &first_free)) < 0) {
            return r;
        }
        uint64_t need = missing_blocks(s, start, start + n + m);
        if (need != m) {
            m = need;
            continue;
        }
        uint64_t last_t = (start + n + m - 1) >> s->rb_bits;
        if (last_t >= s->rt_entries) {
            if ((r = grow_table(img, last_t + 1)) < 0) {
                return r;
            }
            m = 0;
            continue;
        }
        break;
    }
    if ((r = alloc_overlap_check(img, start, n + m)) < 0) {
        return r;
    }
    uint64_t next = start + n;
    for (uint64_t t = start >> s->rb_bits;
         m && t <= (start + n + m - 1) >> s->rb_bits; t++) {
        if (s->rt[t]) {
            continue;
        }
        uint64_t off = next++ * s->cluster_size;
        if ((r = qcow2_cache_get(img, &s->rb_cache, off, true,
                                 &block)) < 0) {
            return r;
        }
        qcow2_cache_mark_dirty(&s->rb_cache, block);
        s->rt[t] = off;
    }
    if ((r = qcow2_update_refcount(img, start * s->cluster_size,
                                   (n + m) * s->cluster_size, 1)) < 0) {
        return r;
    }
    if (m) {
        if ((r = qcow2_cache_flush(img, &s->rb_cache)) < 0 ||
            (!s->lazy && (r = vimg_internal_flush(img->file)) < 0)) {
            return r;
        }
        /* One write for all the new entries: a new block's own refcount
         * may live in another new block, so entries written one by one
         * could leave a block referenced whose refcount is not. */
        uint64_t t0 = start >> s->rb_bits;
        uint64_t nt = ((start + n + m - 1) >> s->rb_bits) - t0 + 1;
        uint8_t *be = malloc(nt * 8);
        if (!be) {
            return vimg_internal_img_error(img, ENOMEM, "out of memory");
        }
        for (uint64_t i = 0; i < nt; i++) {
            store_be64(be + i * 8, s->rt[t0 + i]);
        }
        r = qcow2_write_meta(img, QCOW2_ROLE_RT, be, nt * 8,
                             s->rt_offset + t0 * 8);
        free(be);
        if (r < 0) {
            return r;
        }
    }
    s->free_hint = first_free == start ? start + n + m : first_free;
    *offset = start * s->cluster_size;
    return 0;
}

/* Whether refcount block T (at OFF, contents BLOCK) counts nothing but
 * possibly itself. */
static bool block_unused(const struct qcow2_state *s, uint64_t t,
                         uint64_t off, const uint8_t *block)
{
    uint64_t per_block = (uint64_t)1 << s->rb_bits;
    uint64_t self = off >> s->cluster_bits;

    for (uint64_t i = 0; i < per_block; i++) {
        if (t * per_block + i != self &&
            qcow2_refcount_load(block, s->refcount_order, i)) {
            return false;
        }
    }
    return true;
}

int qcow2_drop_unused_refblocks(struct vimg_image *img)
{
    struct qcow2_state *s = qcow2_state(img);
    uint64_t lo = UINT64_MAX, hi = 0, *drop;
    uint8_t *block, *be = NULL;
    int r = 0;

    /* drop[t]: the offset of block T when it goes, else 0. */
    if (!(drop = calloc(s->rt_entries, sizeof *drop))) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    for (uint64_t t = 0; t < s->rt_entries; t++) {
        uint64_t off;
        if ((r = block_offset(img, t, &off)) < 0) {
            goto out;
        }
        if (!off) {
            continue;
        }
        if ((r = qcow2_cache_get(img, &s->rb_cache, off, false,
                                 &block)) < 0) {
            goto out;
        }
        if (block_unused(s, t, off, block)) {
            /* It is punched below: it must be nothing else too. */
            const char *what;
            if ((r = qcow2_metadata_at(img, QCOW2_ROLE_RB, NULL, off,
                                       s->cluster_size, &what)) < 0) {
                goto out;
            }
            if (what) {
                r = qcow2_signal_corruption(img, off, "Preventing invalid "
                                            "free of refcount block 0x%llx "
                                            "that overlaps with %s",
                                            (unsigned long long)off, what);
                goto out;
            }
            drop[t] = off;
            lo = MIN(lo, t);
            hi = t;
        }
    }
    if (lo == UINT64_MAX) {
        goto out;
    }
    /* The table without the blocks reaches the disk before a block's own
     * reference (held by another block) is dropped. */
    if (!(be = malloc((hi - lo + 1) * 8))) {
        r = vimg_internal_img_error(img, ENOMEM, "out of memory");
        goto out;
    }
    for (uint64_t t = lo; t <= hi; t++) {
        store_be64(be + (t - lo) * 8, drop[t] ? 0 : s->rt[t]);
    }
    if ((r = qcow2_write_meta(img, QCOW2_ROLE_RT, be, (hi - lo + 1) * 8,
                              s->rt_offset + lo * 8)) < 0 ||
        (r = vimg_internal_flush(img->file)) < 0) {
        goto out;
    }
    for (uint64_t t = lo; t <= hi; t++) {
        if (drop[t]) {
            qcow2_cache_discard(&s->rb_cache, drop[t]);
            s->rt[t] = 0;
        }
    }
    /* A block counted by another block gives that reference back; one
     * that counted itself took its count with it. */
    for (uint64_t t = lo; t <= hi && r == 0; t++) {
        if (drop[t] && (drop[t] >> s->cluster_bits) >> s->rb_bits != t) {
            struct qcow2_range range = { drop[t], s->cluster_size };
            r = qcow2_free_clusters(img, &range, 1);
        }
        if (r == 0 && drop[t] && s->data == img->file) {
            (void)vimg_internal_discard(img->file, drop[t], s->cluster_size);
        }
    }
out:
    free(be);
    free(drop);
    return r;
}

int qcow2_last_used_cluster(struct vimg_image *img, uint64_t below,
                            uint64_t *last)
{
    struct qcow2_state *s = qcow2_state(img);
    uint64_t per_block = (uint64_t)1 << s->rb_bits;
    uint64_t t = MIN(s->rt_entries, DIV_ROUND_UP(below, per_block));
    int r;

    /* Cluster 0, the header, is always in use. */
    *last = 0;
    while (t-- > 0) {
        uint64_t off;
        uint8_t *block;
        if ((r = block_offset(img, t, &off)) < 0) {
            return r;
        }
        if (!off) {
            continue;
        }
        if ((r = qcow2_cache_get(img, &s->rb_cache, off, false,
                                 &block)) < 0) {
            return r;
        }
        uint64_t i = MIN(per_block, below - t * per_block);
        while (i-- > 0) {
            if (qcow2_refcount_load(block, s->refcount_order, i)) {
                *last = t * per_block + i;
                return 0;
            }
        }
    }
    return 0;
}

/* Ranges checked one by one scan the tables; past this many, sorting
 * them first is cheaper. */
#define INDEX_MIN_RANGES 8

/* Releasing the N ranges V must not give metadata (but of the roles in
 * IGNORE) back. Snapshot L2 tables may be shared: their last reference is
 * guarded where refcounts drop to 0 instead. */
static int free_overlap_check(struct vimg_image *img, unsigned ignore,
                              const struct qcow2_range *v, size_t n)
{
    struct qcow2_meta_index ix, *ixp = NULL;
    const char *what = NULL;
    size_t i;
    int r = 0;

    ignore |= QCOW2_ROLE_INACTIVE_L2;
    if (n >= INDEX_MIN_RANGES) {
        if ((r = qcow2_meta_index_build(img, &ix)) < 0) {
            return r;
        }
        ixp = &ix;
    }
    for (i = 0; r == 0 && !what && i < n; i++) {
        r = qcow2_metadata_at(img, ignore, ixp, v[i].offset, v[i].len,
                              &what);
    }
    if (ixp) {
        qcow2_meta_index_free(ixp);
    }
    if (r == 0 && what) {
        const struct qcow2_range *bad = &v[i - 1];
        r = qcow2_signal_corruption(img, bad->offset, "Preventing invalid "
                                    "free of clusters 0x%llx..0x%llx that "
                                    "overlap with %s",
                                    (unsigned long long)bad->offset,
                                    (unsigned long long)(bad->offset +
                                                         bad->len - 1),
                                    what);
    }
    return r;
}

int qcow2_check_release(struct vimg_image *img, unsigned ignore,
                        const struct qcow2_range *v, size_t n)
{
    struct qcow2_state *s = qcow2_state(img);
    int r;

    if ((r = free_overlap_check(img, ignore, v, n)) < 0) {
        return r;
    }
    for (size_t i = 0; i < n; i++) {
        for (uint64_t c = v[i].offset / s->cluster_size;
             v[i].len && c <= (v[i].offset + v[i].len - 1) / s->cluster_size;
             c++) {
            uint64_t rc;
            if ((r = qcow2_get_refcount(img, c, &rc)) < 0) {
                return r;
            }
            if (rc == 0) {
                return qcow2_signal_corruption(img, c * s->cluster_size,
                                               "cluster %llu is in use but "
                                               "its refcount is 0",
                                               (unsigned long long)c);
            }
            if (rc == 1 && (r = last_reference_check(img, c)) < 0) {
                return r;
            }
        }
    }
    return 0;
}

int qcow2_free_clusters(struct vimg_image *img, const struct qcow2_range *v,
                        size_t n)
{
    struct qcow2_state *s = qcow2_state(img);
    int r;

    if ((r = free_overlap_check(img, 0, v, n)) < 0) {
        return r;
    }
    for (size_t i = 0; r == 0 && i < n; i++) {
        /* The cluster compressed data was being packed into may now be
         * free and reused for anything: start the next piece in a fresh
         * one. */
        if (s->free_byte_offset >= ROUND_DOWN(v[i].offset, s->cluster_size) &&
            s->free_byte_offset < v[i].offset + v[i].len) {
            s->free_byte_offset = 0;
        }
        r = qcow2_update_refcount(img, v[i].offset, v[i].len, -1);
    }
    return r;
}

/* Compressed clusters are packed back to back, as QEMU packs them: a host
 * cluster holding pieces of N compressed clusters has refcount N. A piece
 * that does not fit the current cluster continues into a fresh cluster when
 * that one happens to follow, else starts in it. */
int qcow2_alloc_bytes(struct vimg_image *img, uint64_t size,
                      uint64_t *offset)
{
    struct qcow2_state *s = qcow2_state(img);
    uint64_t off = s->free_byte_offset, fresh, rc = 0;
    uint64_t max = s->refcount_order == 6
                       ? UINT64_MAX
                       : ((uint64_t)1 << (1u << s->refcount_order)) - 1;
    int r;

    if (size == 0 || size >= s->cluster_size) {
        return vimg_internal_img_error(img, EINVAL, "compressed piece of "
                                       "%llu bytes does not fit a cluster",
                                       (unsigned long long)size);
    }
    if (off && ((r = qcow2_get_refcount(img, off / s->cluster_size,
                                        &rc)) < 0)) {
        return r;
    }
    if (off && (rc == 0 || rc >= max)) {
        off = 0; /* freed meanwhile, or no reference left to give */
    }
    uint64_t room = off ? s->cluster_size - (off & (s->cluster_size - 1))
                        : 0;
    if (room >= size) {
        r = qcow2_update_refcount(img, off, size, 1);
    } else {
        if ((r = qcow2_alloc_clusters(img, 1, &fresh)) < 0) {
            return r;
        }
        if (off && ROUND_UP(off, s->cluster_size) == fresh) {
            /* Spans the old cluster's tail and the fresh one, which
             * already has its reference. */
            r = qcow2_update_refcount(img, off, room, 1);
        } else {
            off = fresh;
        }
    }
    if (r < 0) {
        return r;
    }
    *offset = off;
    s->free_byte_offset = (off + size) & (s->cluster_size - 1)
                              ? off + size
                              : 0;
    return 0;
}
