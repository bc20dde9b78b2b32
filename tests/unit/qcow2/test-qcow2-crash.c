/* Crash safety: run a workload on a qcow2 image in memory and make the
 * Nth write-like call fail, and every later one (a crash), for every N
 * until the workload completes. After each crash the image as it was left
 * must check without corruption (leaks are allowed) and read back
 * everything written before the last successful flush. Workloads with
 * internal snapshots create, apply and delete them between writes, and
 * empty the image as commit does: each of those is durable once it
 * returns, and a crash inside an apply (or emptying) leaves the disk as it
 * was or as the snapshot has it (or empty).
 *
 * With VIMG_CRASH_DUMP_DIR set, a sample of the crashed images is also
 * written there (tests/interop/qcow2-crash.sh runs qemu-img check on
 * them). */
#include <stdint.h>

#include "internal.h"
#include "../test.h"

#define SECTOR 512u
#define MAX_FILE (64u << 20)
#define MAX_CRASH_POINTS 100000u

#define MAX_SNAPSHOTS 4

/* OP_SNAP_*: OFFSET is the snapshot's number (named "sN"). */
enum op_kind { OP_WRITE, OP_ZERO, OP_DISCARD, OP_FLUSH, OP_SNAP_CREATE,
               OP_SNAP_APPLY, OP_SNAP_DELETE, OP_EMPTY };

struct op {
    enum op_kind kind;
    uint64_t offset, length;
};

struct config {
    const char *name;
    const char *options;
    uint64_t size;
    const struct op *ops;
    size_t nops;
    unsigned dump_every; /* dump every Nth crash point */
};

/* 512-byte clusters and 64-bit refcounts: a refcount block covers 32 KiB
 * and one refcount table cluster 2 MiB of file, so the 2.5 MiB write
 * grows the refcount table; every 32 KiB of guest data needs an L2 table.
 * Writes straddle L2 boundaries. */
static const struct op ops_small_clusters[] = {
    { OP_WRITE, 0, 3 * SECTOR },
    { OP_WRITE, 32768 - SECTOR, 2 * SECTOR },
    { OP_FLUSH, 0, 0 },
    { OP_WRITE, 1u << 20, 2560u << 10 },
    { OP_FLUSH, 0, 0 },
    { OP_ZERO, (1u << 20) + 8192, 65536 },
    { OP_DISCARD, 2u << 20, 131072 },
    { OP_WRITE, 65536 - 1024, 4096 },
    { OP_FLUSH, 0, 0 },
    { OP_WRITE, (4u << 20) - 3 * SECTOR, 3 * SECTOR },
    { OP_ZERO, 0, SECTOR },
    { OP_WRITE, 40 * SECTOR, 100 * SECTOR },
    { OP_FLUSH, 0, 0 },
};

/* compat=0.10 (zero writes cannot use zero flags) and 16-bit refcounts;
 * one write straddles the 2 MiB boundary between two L2 tables. */
static const struct op ops_v2[] = {
    { OP_WRITE, 4096, 8192 },
    { OP_WRITE, (2u << 20) - 8192, 16384 },
    { OP_FLUSH, 0, 0 },
    { OP_WRITE, 60 * 1024, 200 * 1024 },
    { OP_ZERO, 64 * 1024, 4096 },
    { OP_FLUSH, 0, 0 },
    { OP_DISCARD, 128 * 1024, 64 * 1024 },
    { OP_WRITE, 0, 1024 },
    { OP_FLUSH, 0, 0 },
};

/* Snapshots taken, written around, applied and deleted: copies of shared
 * L2 tables and clusters, COPIED flags changing both ways, refcount blocks
 * and tables replaced, VM-less snapshots of v3 and v2 images. */
static const struct op ops_snapshots[] = {
    { OP_WRITE, 0, 64 * 1024 },
    { OP_WRITE, 1u << 20, 300 * 1024 },
    { OP_FLUSH, 0, 0 },
    { OP_SNAP_CREATE, 0, 0 },
    { OP_WRITE, 32 * 1024, 64 * 1024 },
    { OP_ZERO, (1u << 20) + 4096, 16384 },
    { OP_SNAP_CREATE, 1, 0 },
    { OP_WRITE, 3u << 20, 100 * 1024 },
    { OP_DISCARD, (1u << 20) + 65536, 65536 },
    { OP_SNAP_APPLY, 0, 0 },
    { OP_WRITE, 512 * 1024, 8192 },
    { OP_SNAP_DELETE, 0, 0 },
    { OP_SNAP_APPLY, 1, 0 },
    { OP_SNAP_DELETE, 1, 0 },
    { OP_WRITE, 0, 4096 },
    { OP_SNAP_CREATE, 2, 0 },
    { OP_EMPTY, 0, 0 },
    { OP_WRITE, 2u << 20, 8192 },
    { OP_SNAP_APPLY, 2, 0 },
    { OP_FLUSH, 0, 0 },
};

static const struct config configs[] = {
    { "v3-512-rc64", "cluster_size=512,refcount_bits=64", 4u << 20,
      ops_small_clusters,
      sizeof ops_small_clusters / sizeof ops_small_clusters[0], 37 },
    { "v2-4k", "compat=0.10,cluster_size=4096", 4u << 20,
      ops_v2, sizeof ops_v2 / sizeof ops_v2[0], 5 },
    { "snap-v3-4k", "cluster_size=4096", 4u << 20,
      ops_snapshots, sizeof ops_snapshots / sizeof ops_snapshots[0], 23 },
    { "snap-v2-512", "compat=0.10,cluster_size=512", 4u << 20,
      ops_snapshots, sizeof ops_snapshots / sizeof ops_snapshots[0], 97 },
};

/* What a snapshot holds: the model when it was taken, and which sectors
 * were then unknown. */
struct saved {
    uint8_t *model, *unknown;
};

static uint8_t pattern_byte(size_t op, uint64_t off)
{
    return (uint8_t)((op * 37 + off / SECTOR * 11 + off % 251) | 1);
}

/* Apply OP to MODEL. Discarded sectors read as "unspecified" (old data or
 * zeros) until a later write or zero covers them: UNKNOWN marks them. */
static void apply_to_model(uint8_t *model, uint8_t *unknown, size_t i,
                           const struct op *op)
{
    switch (op->kind) {
    case OP_WRITE:
        for (uint64_t b = 0; b < op->length; b++) {
            model[op->offset + b] = pattern_byte(i, op->offset + b);
        }
        break;
    case OP_ZERO:
        memset(model + op->offset, 0, op->length);
        break;
    case OP_DISCARD:
        memset(unknown + op->offset / SECTOR, 1, op->length / SECTOR);
        return;
    default:
        return;
    }
    memset(unknown + op->offset / SECTOR, 0, op->length / SECTOR);
}

static int run_op(struct vimg_image *img, size_t i, const struct op *op,
                  uint8_t *scratch)
{
    switch (op->kind) {
    case OP_WRITE:
        for (uint64_t b = 0; b < op->length; b++) {
            scratch[b] = pattern_byte(i, op->offset + b);
        }
        return vimg_pwrite(img, scratch, op->length, op->offset, 0);
    case OP_ZERO:
        return vimg_zero(img, op->offset, op->length, VIMG_ZERO_MAY_UNMAP);
    case OP_DISCARD:
        return vimg_discard(img, op->offset, op->length);
    case OP_FLUSH:
        return vimg_flush(img);
    case OP_EMPTY: {
        int r = img->drv->make_empty(img);
        return r < 0 ? r : vimg_flush(img);
    }
    case OP_SNAP_CREATE:
    case OP_SNAP_APPLY:
    case OP_SNAP_DELETE: {
        char name[16];
        snprintf(name, sizeof name, "s%llu", (unsigned long long)op->offset);
        return op->kind == OP_SNAP_CREATE ? vimg_snapshot_create(img, name)
               : op->kind == OP_SNAP_APPLY ? vimg_snapshot_apply(img, NULL,
                                                                 name)
                                           : vimg_snapshot_delete(img, NULL,
                                                                  name);
    }
    }
    return -1;
}

/* A fresh image of CFG as bytes (caller frees). */
static uint8_t *create_image(const struct config *cfg, size_t *len)
{
    const struct vimg_driver *drv = vimg_internal_find_driver("qcow2");
    struct vimg_opts opts = { 0 };
    struct vimg_image *mem = vimg_internal_memory_new("crash.qcow2", NULL,
                                                      0, MAX_FILE);
    uint8_t *copy = NULL;

    CHECK(drv && drv->create && mem);
    if (!drv || !drv->create || !mem) {
        vimg_close(mem);
        return NULL;
    }
    CHECK_EQ(vimg_internal_opts_parse(cfg->options, drv->create_opts,
                                      "qcow2", &opts), 0);
    struct vimg_create_ctx ctx = {
        .filename = "crash.qcow2", .size = cfg->size, .opts = &opts,
    };
    if (drv->create(mem, &ctx) == 0) {
        const void *data = vimg_internal_memory_data(mem, len);
        copy = malloc(*len);
        memcpy(copy, data, *len);
    } else {
        fprintf(stderr, "%s: create: %s\n", cfg->name, vimg_get_error());
        test_failures++;
    }
    vimg_internal_opts_free(&opts);
    vimg_close(mem);
    return copy;
}

static void dump(const struct config *cfg, uint64_t n, const void *data,
                 size_t len)
{
    const char *dir = getenv("VIMG_CRASH_DUMP_DIR");
    char path[4096];

    if (!dir || n % cfg->dump_every != 0) {
        return;
    }
    snprintf(path, sizeof path, "%s/%s-%06llu.qcow2", dir, cfg->name,
             (unsigned long long)n);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (f) {
        CHECK_EQ(fwrite(data, 1, len, f), len);
        CHECK_EQ(fclose(f), 0);
    }
}

/* Whether BUF holds COMMITTED but in the sectors in DIRTY. */
static bool matches(const struct config *cfg, const uint8_t *buf,
                    const uint8_t *committed, const uint8_t *dirty,
                    uint64_t *bad)
{
    for (uint64_t s = 0; s < cfg->size / SECTOR; s++) {
        if (!dirty[s] && memcmp(buf + s * SECTOR, committed + s * SECTOR,
                                SECTOR) != 0) {
            *bad = s * SECTOR;
            return false;
        }
    }
    return true;
}

/* Reopen the crashed contents and hold them to the last flushed state
 * COMMITTED, except sectors in DIRTY (touched since that flush), or to
 * ALT and ALT_DIRTY when given (a snapshot being applied). */
static void verify(const struct config *cfg, uint64_t n, const uint8_t *data,
                   size_t len, const uint8_t *committed,
                   const uint8_t *dirty, const uint8_t *alt,
                   const uint8_t *alt_dirty)
{
    struct vimg_open_params p = { .format = "qcow2" };
    struct vimg_image *img = vimg_open_buffer(data, len, "crash.qcow2", &p);
    if (!img) {
        fprintf(stderr, "%s: crash point %llu: reopen: %s\n", cfg->name,
                (unsigned long long)n, vimg_get_error());
        test_failures++;
        return;
    }
    struct vimg_check_result res;
    CHECK_EQ(vimg_check(img, 0, &res, NULL, NULL), 0);
    if (res.corruptions || res.check_errors) {
        fprintf(stderr, "%s: crash point %llu: %lld corruptions, %lld "
                "check errors\n", cfg->name, (unsigned long long)n,
                (long long)res.corruptions, (long long)res.check_errors);
        test_failures++;
    }
    uint8_t *buf = malloc(cfg->size);
    uint64_t bad = 0, bad_alt;
    CHECK_EQ(vimg_pread(img, buf, cfg->size, 0), 0);
    if (!matches(cfg, buf, committed, dirty, &bad) &&
        !(alt && matches(cfg, buf, alt, alt_dirty, &bad_alt))) {
        fprintf(stderr, "%s: crash point %llu: flushed data at %llu "
                "lost\n", cfg->name, (unsigned long long)n,
                (unsigned long long)bad);
        test_failures++;
    }
    free(buf);
    vimg_close(img);
}

static void run_config(const struct config *cfg)
{
    size_t base_len, nsect = cfg->size / SECTOR;
    uint8_t *base = create_image(cfg, &base_len);
    uint8_t *model = calloc(1, cfg->size);
    uint8_t *committed = calloc(1, cfg->size);
    uint8_t *dirty = calloc(1, nsect);
    uint8_t *unknown = calloc(1, nsect);
    uint8_t *scratch = malloc(cfg->size);
    struct saved saved[MAX_SNAPSHOTS] = { 0 };
    /* An empty disk: what emptying leaves (no backing file here). */
    struct saved empty = { calloc(1, cfg->size), calloc(1, nsect) };
    const struct saved *applying;
    uint64_t n, crashes = 0;
    bool completed = false;

    if (!base) {
        goto out;
    }
    for (n = 1; n < MAX_CRASH_POINTS && !completed; n++) {
        struct vimg_image *mem = vimg_internal_memory_new("crash.qcow2",
                                                          base, base_len,
                                                          MAX_FILE);
        struct vimg_open_params p = { .format = "qcow2",
                                      .flags = VIMG_OPEN_RDWR };
        memset(model, 0, cfg->size);
        memset(committed, 0, cfg->size);
        memset(dirty, 0, nsect);
        memset(unknown, 0, nsect);
        applying = NULL;
        vimg_internal_memory_fail_after(mem, n);
        /* The image owns MEM from here; MEM stays valid until it closes,
         * also when opening fails on the injected fault (then the open
         * took and freed it, and the untouched BASE is what remains). */
        struct vimg_image *img = vimg_internal_open_on(mem, &p);
        bool crashed = img == NULL;
        for (size_t i = 0; img && i < cfg->nops && !crashed; i++) {
            const struct op *op = &cfg->ops[i];
            /* A range is in doubt from the moment its request starts. */
            for (uint64_t s = op->offset / SECTOR;
                 s * SECTOR < op->offset + op->length; s++) {
                dirty[s] = 1;
            }
            if (op->kind == OP_SNAP_APPLY) {
                applying = &saved[op->offset];
            } else if (op->kind == OP_EMPTY) {
                applying = &empty;
            }
            if (run_op(img, i, op, scratch) < 0) {
                crashed = true;
                break;
            }
            apply_to_model(model, unknown, i, op);
            if (op->kind == OP_SNAP_CREATE) {
                struct saved *sv = &saved[op->offset];
                if (!sv->model) {
                    sv->model = malloc(cfg->size);
                    sv->unknown = malloc(nsect);
                }
                memcpy(sv->model, model, cfg->size);
                memcpy(sv->unknown, unknown, nsect);
            } else if (op->kind == OP_SNAP_APPLY || op->kind == OP_EMPTY) {
                memcpy(model, applying->model, cfg->size);
                memcpy(unknown, applying->unknown, nsect);
            }
            applying = NULL;
            /* A snapshot change is durable with all before it. */
            if (op->kind != OP_WRITE && op->kind != OP_ZERO &&
                op->kind != OP_DISCARD) {
                memcpy(committed, model, cfg->size);
                memset(dirty, 0, nsect);
            }
        }
        if (!crashed) {
            /* Closing flushes: it may hit the fault too. */
            crashed = vimg_flush(img) < 0;
            if (!crashed) {
                memcpy(committed, model, cfg->size);
                memset(dirty, 0, nsect);
            }
        }
        size_t len;
        const uint8_t *data;
        if (img) {
            data = vimg_internal_memory_data(img->file, &len);
        } else {
            data = base;
            len = base_len;
        }
        uint8_t *copy = malloc(len);
        memcpy(copy, data, len);
        vimg_close(img);
        for (size_t sct = 0; sct < nsect; sct++) {
            dirty[sct] |= unknown[sct];
        }
        if (crashed) {
            crashes++;
            dump(cfg, n, copy, len);
        } else {
            completed = true;
        }
        verify(cfg, n, copy, len, committed, dirty,
               applying ? applying->model : NULL,
               applying ? applying->unknown : NULL);
        free(copy);
    }
    CHECK(completed);
    CHECK(crashes > 10);
    printf("%s: %llu crash points checked\n", cfg->name,
           (unsigned long long)crashes);
out:
    for (size_t i = 0; i < MAX_SNAPSHOTS; i++) {
        free(saved[i].model);
        free(saved[i].unknown);
    }
    free(empty.model);
    free(empty.unknown);
    free(base);
    free(model);
    free(committed);
    free(dirty);
    free(unknown);
    free(scratch);
}

int main(int argc, char **argv)
{
    for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++) {
        if (argc < 2 || !strcmp(argv[1], configs[i].name)) {
            run_config(&configs[i]);
        }
    }
    TEST_MAIN_END();
}
