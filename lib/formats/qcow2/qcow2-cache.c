/* Fixed-size caches of L2 tables and refcount blocks. Memory is bounded by
 * the configured size, never by the image. Tables stay in on-disk byte
 * order. Writing back an L2 table first makes the refcount blocks durable,
 * so no L2 entry on disk points at a cluster whose refcount is not. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "qcow2.h"

int qcow2_cache_init(struct qcow2_cache *c, enum qcow2_role role,
                     uint64_t bytes, uint64_t cluster_size)
{
    uint64_t n = bytes / cluster_size;

    if (n < QCOW2_MIN_CACHE_TABLES) {
        n = QCOW2_MIN_CACHE_TABLES;
    }
    c->role = role;
    c->table_size = cluster_size;
    c->count = (unsigned)n;
    c->tick = 0;
    c->entries = calloc(n, sizeof *c->entries);
    c->data = malloc(n * cluster_size);
    if (!c->entries || !c->data) {
        qcow2_cache_free(c);
        return -ENOMEM;
    }
    return 0;
}

void qcow2_cache_free(struct qcow2_cache *c)
{
    free(c->entries);
    free(c->data);
    c->entries = NULL;
    c->data = NULL;
    c->count = 0;
}

static uint8_t *slot_data(struct vimg_image *img, struct qcow2_cache *c,
                          unsigned i)
{
    (void)img;
    return c->data + (uint64_t)i * c->table_size;
}

bool qcow2_cache_has_dirty(const struct qcow2_cache *c)
{
    for (unsigned i = 0; i < c->count; i++) {
        if (c->entries[i].dirty) {
            return true;
        }
    }
    return false;
}

/* L2 tables may reach the disk only after the refcounts of every cluster
 * they could point at (lazy refcounts waive this: the dirty bit is set). */
static int before_l2_write(struct vimg_image *img)
{
    struct qcow2_state *s = qcow2_state(img);
    int r;

    if (s->lazy || !qcow2_cache_has_dirty(&s->rb_cache)) {
        return 0;
    }
    if ((r = qcow2_cache_flush(img, &s->rb_cache)) < 0) {
        return r;
    }
    return vimg_internal_flush(img->file);
}

static int write_slot(struct vimg_image *img, struct qcow2_cache *c,
                      unsigned i)
{
    struct qcow2_cache_entry *e = &c->entries[i];
    int r;

    if (!e->dirty) {
        return 0;
    }
    if (c->role == QCOW2_ROLE_L2 && (r = before_l2_write(img)) < 0) {
        return r;
    }
    r = qcow2_write_meta(img, c->role, slot_data(img, c, i),
                         qcow2_state(img)->cluster_size, e->offset);
    if (r == 0) {
        e->dirty = false;
    }
    return r;
}

int qcow2_cache_flush(struct vimg_image *img, struct qcow2_cache *c)
{
    int r;

    for (unsigned i = 0; i < c->count; i++) {
        if ((r = write_slot(img, c, i)) < 0) {
            return r;
        }
    }
    return 0;
}

int qcow2_cache_get(struct vimg_image *img, struct qcow2_cache *c,
                    uint64_t offset, bool new_table, uint8_t **table)
{
    struct qcow2_state *s = qcow2_state(img);
    unsigned victim = 0;
    int r;

    for (unsigned i = 0; i < c->count; i++) {
        struct qcow2_cache_entry *e = &c->entries[i];
        if (e->offset == offset) {
            e->lru = ++c->tick;
            *table = slot_data(img, c, i);
            if (new_table) {
                memset(*table, 0, s->cluster_size);
            }
            return 0;
        }
        if (e->lru < c->entries[victim].lru) {
            victim = i;
        }
    }
    if ((r = write_slot(img, c, victim)) < 0) {
        return r;
    }
    struct qcow2_cache_entry *e = &c->entries[victim];
    uint8_t *data = slot_data(img, c, victim);
    e->offset = 0;
    e->lru = 0;
    if (new_table) {
        memset(data, 0, s->cluster_size);
    } else if ((r = vimg_internal_pread(img->file, data, s->cluster_size,
                                        offset)) < 0) {
        return r;
    }
    e->offset = offset;
    e->lru = ++c->tick;
    *table = data;
    return 0;
}

void qcow2_cache_mark_dirty(struct qcow2_cache *c, const uint8_t *table)
{
    c->entries[(uint64_t)(table - c->data) / c->table_size].dirty = true;
}

void qcow2_cache_discard(struct qcow2_cache *c, uint64_t offset)
{
    for (unsigned i = 0; i < c->count; i++) {
        if (c->entries[i].offset == offset) {
            c->entries[i].offset = 0;
            c->entries[i].dirty = false;
            c->entries[i].lru = 0;
        }
    }
}

void qcow2_cache_reset(struct qcow2_cache *c)
{
    memset(c->entries, 0, c->count * sizeof *c->entries);
}
