/* QED consistency check ("Consistency checking" in the spec), counted as
 * QEMU 7.2's qed-check.c counts: every cluster referenced once, offsets
 * aligned and inside the file, tables wholly inside it; clusters nobody
 * references are leaks. A repair clears the entries that point outside
 * the file; clusters referenced twice cannot be repaired. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/rounding.h"
#include "qed.h"

/* The clusters referenced so far: a hash set of cluster numbers, so that
 * memory follows the number of references read, not the length of a
 * (possibly sparse) file. */
struct used_set {
    uint64_t *slot;            /* cluster + 1; 0 is empty */
    uint64_t cap, n;           /* cap a power of two */
};

static uint64_t *find_slot(struct used_set *u, uint64_t key)
{
    uint64_t i = (key * 0x9e3779b97f4a7c15ull) & (u->cap - 1);
    while (u->slot[i] && u->slot[i] != key) {
        i = (i + 1) & (u->cap - 1);
    }
    return &u->slot[i];
}

/* 1 when CLUSTER is new, 0 when it was already there, -ENOMEM. */
static int used_add(struct used_set *u, uint64_t cluster)
{
    if (2 * (u->n + 1) > u->cap) {
        struct used_set g = { .cap = u->cap ? 2 * u->cap : 1024 };
        if (!(g.slot = calloc(g.cap, sizeof *g.slot))) {
            return -ENOMEM;
        }
        for (uint64_t i = 0; i < u->cap; i++) {
            if (u->slot[i]) {
                *find_slot(&g, u->slot[i]) = u->slot[i];
            }
        }
        free(u->slot);
        g.n = u->n;
        *u = g;
    }
    uint64_t *p = find_slot(u, cluster + 1);
    if (*p) {
        return 0;
    }
    *p = cluster + 1;
    u->n++;
    return 1;
}

struct check {
    struct vimg_image *img;
    struct qed_state *s;
    struct vimg_check_result *res;
    bool fix;
    struct used_set used;
};

/* Mark N clusters from OFF used; *FRESH false when one already was (each
 * such cluster is a corruption). */
static int mark_used(struct check *c, uint64_t off, uint64_t n, bool *fresh)
{
    *fresh = true;
    for (uint64_t i = 0; i < n; i++) {
        int r = used_add(&c->used, (off >> c->s->cluster_bits) + i);
        if (r < 0) {
            return vimg_internal_img_error(c->img, ENOMEM, "out of memory");
        }
        if (r == 0) {
            c->res->corruptions++;
            *fresh = false;
        }
    }
    return 0;
}

/* QEMU's qed_check_cluster_offset: aligned, past the header, starting
 * inside the file (which is whole clusters). */
static bool cluster_ok(const struct qed_state *s, uint64_t off)
{
    return off % s->cluster_size == 0 && off >= s->header_end &&
           off < s->file_size;
}

static bool table_ok(const struct qed_state *s, uint64_t off)
{
    return cluster_ok(s, off) && !range_outside(off, s->table_bytes,
                                                s->file_size);
}

/* Store ENTRIES host-order entries into RAW and write them at OFF. */
static int write_table(struct check *c, const uint64_t *entries,
                       uint8_t *raw, uint64_t off)
{
    for (uint64_t i = 0; i < c->s->entries; i++) {
        store_le64(raw + i * QED_ENTRY_SIZE, entries[i]);
    }
    return vimg_internal_pwrite(c->img->file, raw, c->s->table_bytes, off,
                                VIMG_INTERNAL_WRITE_METADATA);
}

/* One L2 table (TABLE, host order): its clusters counted and marked;
 * *INVALID is how many entries were invalid (cleared when fixing). */
static int check_l2(struct check *c, uint64_t *table, uint64_t *invalid)
{
    struct qed_state *s = c->s;
    uint64_t last = 0;
    bool fresh;
    int r;

    *invalid = 0;
    for (uint64_t i = 0; i < s->entries; i++) {
        uint64_t e = table[i];
        if (e == 0 || e == QED_ZERO_CLUSTER) {
            continue;
        }
        c->res->allocated_clusters++;
        if (last && last + s->cluster_size != e) {
            c->res->fragmented_clusters++;
        }
        last = e;
        if (!cluster_ok(s, e)) {
            if (c->fix) {
                table[i] = 0;
                c->res->corruptions_fixed++;
            } else {
                c->res->corruptions++;
            }
            (*invalid)++;
            continue;
        }
        if ((r = mark_used(c, e, 1, &fresh)) < 0) {
            return r;
        }
    }
    return 0;
}

/* Walk the L1 table and every L2 table it names. Returns the last I/O
 * error (each also counted as a check error), or 0. */
static int check_tables(struct check *c, uint8_t *raw, uint64_t *table)
{
    struct qed_state *s = c->s;
    uint64_t invalid_l1 = 0;
    int r, last_error = 0;
    bool fresh;

    if ((r = mark_used(c, s->l1_offset, s->table_size, &fresh)) < 0) {
        return r;
    }
    for (uint64_t i = 0; i < s->entries; i++) {
        uint64_t off = s->l1[i], invalid;
        if (!off) {
            continue;
        }
        if (!table_ok(s, off)) {
            if (c->fix) {
                s->l1[i] = 0;
                c->res->corruptions_fixed++;
            } else {
                c->res->corruptions++;
            }
            invalid_l1++;
            continue;
        }
        if ((r = mark_used(c, off, s->table_size, &fresh)) < 0) {
            return r;
        }
        if (!fresh) {
            continue; /* a table over another: not followed */
        }
        if ((r = vimg_internal_pread(c->img->file, raw, s->table_bytes,
                                     off)) < 0) {
            c->res->check_errors++;
            last_error = r;
            continue;
        }
        for (uint64_t j = 0; j < s->entries; j++) {
            table[j] = load_le64(raw + j * QED_ENTRY_SIZE);
        }
        if ((r = check_l2(c, table, &invalid)) < 0) {
            return r;
        }
        if (invalid && c->fix &&
            (r = write_table(c, table, raw, off)) < 0) {
            c->res->check_errors++;
            last_error = r;
        }
    }
    if (invalid_l1 && c->fix &&
        (r = write_table(c, s->l1, raw, s->l1_offset)) < 0) {
        c->res->check_errors++;
        last_error = r;
    }
    return last_error;
}

int qed_check(struct vimg_image *img, unsigned fix,
              struct vimg_check_result *res, vimg_report_fn report,
              void *opaque)
{
    struct qed_state *s = qed_state(img);
    struct check c = { .img = img, .s = s, .res = res, .fix = fix != 0 };
    uint8_t *raw = malloc(s->table_bytes);
    uint64_t *table = malloc(s->table_bytes);
    int r;

    (void)report;
    (void)opaque;
    res->has_cluster_stats = true;
    res->total_clusters = (int64_t)DIV_ROUND_UP(s->image_size,
                                                s->cluster_size);
    if (!raw || !table) {
        free(raw);
        free(table);
        res->check_errors++;
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    r = check_tables(&c, raw, table);
    free(raw);
    free(table);
    if (c.fix) {
        qed_drop_cache(s);
        if (res->corruptions_fixed && qed_index_tables(img) < 0) {
            r = -ENOMEM;
        }
    }
    if (r == -ENOMEM) {
        free(c.used.slot);
        res->check_errors++;
        return r;
    }
    if (r == 0) {
        /* Every reference lies in [header_size, end of file), counted
         * once in the set. */
        uint64_t clusters = s->file_size >> s->cluster_bits;
        uint64_t free_clusters = clusters - s->header_size;
        res->leaks = (int64_t)(free_clusters > c.used.n
                                   ? free_clusters - c.used.n : 0);
    }
    free(c.used.slot);
    if (c.fix && res->corruptions == 0 && res->check_errors == 0 &&
        (r = qed_mark_clean(img)) < 0) {
        res->check_errors++;
    }
    return 0;
}
