/* The thread-safe qcow2 driver under load: writer threads own interleaved
 * clusters (so they share every L2 table and refcount block) and write,
 * zero, discard and read them against a per-thread model, over clusters
 * that start out compressed; a reader thread reads across all of them at
 * once. Then writers overlap on purpose (run_overlap). Afterwards the
 * image must read as the model after a reopen and pass vimg check (and
 * qemu-img check when installed). Each runs on extended L2 entries too,
 * where writers share clusters by the subcluster and zero parts of them.
 * Also built with ThreadSanitizer by make check. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "test.h"

#define WRITERS 4
#define OPS 300

struct shared {
    struct vimg_image *img;
    uint64_t size, cs;
    uint8_t *model;          /* each writer touches only its own clusters */
    bool sub;                /* extended L2: zero writes in part too */
    atomic_bool done;
    atomic_int failures;
};

struct writer {
    struct shared *sh;
    unsigned id;
    uint64_t rng;
};

static uint64_t next_rand(uint64_t *r)
{
    *r ^= *r << 13;
    *r ^= *r >> 7;
    *r ^= *r << 17;
    return *r;
}

static void report(struct shared *sh, const char *what, uint64_t off)
{
    fprintf(stderr, "%s at %llu: %s\n", what, (unsigned long long)off,
            vimg_get_error() ? vimg_get_error() : "");
    atomic_fetch_add(&sh->failures, 1);
}

static void *writer_main(void *p)
{
    struct writer *w = p;
    struct shared *sh = w->sh;
    uint64_t clusters = sh->size / sh->cs;
    uint8_t *buf = malloc(sh->cs);

    for (int step = 0; buf && step < OPS && !sh->failures; step++) {
        /* Own clusters: c % WRITERS == id. */
        uint64_t c = next_rand(&w->rng) % (clusters / WRITERS) * WRITERS +
                     w->id;
        uint64_t off = c * sh->cs, len = sh->cs;
        unsigned kind = next_rand(&w->rng) % 10;
        if (kind < 2 || (sh->sub && kind == 7)) {
            /* A partial write: copy-on-write of the rest. */
            uint64_t from = next_rand(&w->rng) % sh->cs;
            len = 1 + next_rand(&w->rng) % (sh->cs - from);
            off += from;
        }
        if (kind < 6) {
            for (uint64_t i = 0; i < len; i++) {
                buf[i] = (uint8_t)(w->id * 64 + step + i);
            }
            if (vimg_pwrite(sh->img, buf, len, off, 0) != 0) {
                report(sh, "write", off);
            }
            memcpy(sh->model + off, buf, len);
        } else if (kind < 8) {
            unsigned fl = kind == 6 ? VIMG_ZERO_MAY_UNMAP : 0;
            if (vimg_zero(sh->img, off, len, fl) != 0) {
                report(sh, "zero", off);
            }
            memset(sh->model + off, 0, len);
        } else if (kind == 8) {
            if (vimg_discard(sh->img, off, len) != 0 ||
                vimg_pread(sh->img, buf, len, off) != 0) {
                report(sh, "discard", off);
            }
            for (uint64_t i = 0; i < len; i++) {
                if (buf[i] && buf[i] != sh->model[off + i]) {
                    report(sh, "discard exposed other data", off);
                    break;
                }
            }
            memcpy(sh->model + off, buf, len);
        } else {
            if (vimg_pread(sh->img, buf, len, off) != 0) {
                report(sh, "read", off);
            } else if (memcmp(buf, sh->model + off, len) != 0) {
                report(sh, "read back differs", off);
            }
        }
    }
    free(buf);
    return NULL;
}

/* Reads across everybody's clusters while they change: must never fail. */
static void *reader_main(void *p)
{
    struct shared *sh = p;
    uint64_t rng = 99;
    uint8_t *buf = malloc(4 * sh->cs);

    while (buf && !atomic_load(&sh->done)) {
        uint64_t off = next_rand(&rng) % (sh->size - 4 * sh->cs);
        if (vimg_pread(sh->img, buf, 4 * sh->cs, off) != 0) {
            report(sh, "concurrent read", off);
            break;
        }
    }
    free(buf);
    return NULL;
}

/* Overlapping writers: each thread writes its own pieces (every fourth of
 * PIECES per cluster) of the same clusters (copy-on-write of the rest must
 * not lose a neighbour's piece; with extended L2 entries, pieces smaller
 * than a subcluster share one) and whole clusters of a shared set (each
 * must end whole, one writer's). */
struct overlap {
    struct vimg_image *img;
    uint64_t cs, clusters, pieces;
    unsigned id;
    atomic_int *failures;
    pthread_barrier_t *start;
};

static void *overlap_main(void *p)
{
    struct overlap *o = p;
    uint64_t q = o->cs / o->pieces, rng = 7 + o->id;
    uint8_t *buf = malloc(o->cs);

    pthread_barrier_wait(o->start); /* all at once, on the same clusters */
    for (uint64_t c = 0; buf && c < o->clusters; c++) {
        memset(buf, 0x10 + o->id, q);
        for (uint64_t k = o->id; k < o->pieces; k += 4) {
            if (vimg_pwrite(o->img, buf, q, c * o->cs + k * q, 0) != 0) {
                atomic_fetch_add(o->failures, 1);
            }
        }
        uint64_t w = o->clusters + next_rand(&rng) % 8;
        memset(buf, 0x40 + o->id, o->cs);
        if (vimg_pwrite(o->img, buf, o->cs, w * o->cs, 0) != 0) {
            atomic_fetch_add(o->failures, 1);
        }
    }
    free(buf);
    return NULL;
}

static void run_overlap(const char *dir, const char *options, uint64_t cs,
                        uint64_t pieces)
{
    char *path;
    uint64_t clusters = 256, size = (clusters + 8) * cs;
    pthread_barrier_t start;
    atomic_int failures = 0;
    CHECK(asprintf(&path, "%s/overlap.qcow2", dir) > 0);
    struct vimg_create_params cp = { .format = "qcow2", .size = size,
                                     .size_given = true,
                                     .options = options };
    CHECK_EQ(vimg_create(path, &cp), 0);
    struct vimg_open_params op = { .format = "qcow2",
                                   .flags = VIMG_OPEN_RDWR };
    struct vimg_image *img = vimg_open(path, &op);
    CHECK(img != NULL);
    if (!img) {
        free(path);
        return;
    }
    pthread_t t[4];
    struct overlap o[4];
    pthread_barrier_init(&start, NULL, 4);
    for (unsigned i = 0; i < 4; i++) {
        o[i] = (struct overlap){ img, cs, clusters, pieces, i, &failures,
                                 &start };
        CHECK_EQ(pthread_create(&t[i], NULL, overlap_main, &o[i]), 0);
    }
    for (unsigned i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
    }
    pthread_barrier_destroy(&start);
    CHECK_EQ(failures, 0);
    uint8_t *buf = malloc(cs);
    for (uint64_t c = 0; buf && c < clusters + 8; c++) {
        CHECK_EQ(vimg_pread(img, buf, cs, c * cs), 0);
        bool ok = true;
        for (uint64_t i = 0; i < cs; i++) {
            uint8_t want = c < clusters ? 0x10 + i / (cs / pieces) % 4
                                        : buf[0];
            ok = ok && buf[i] == want;
        }
        if (c >= clusters) {
            ok = ok && buf[0] >= 0x40 && buf[0] < 0x44;
        }
        if (!ok) {
            fprintf(stderr, "cluster %llu mixed writers (%s)\n",
                    (unsigned long long)c, options);
            CHECK(ok);
            break;
        }
    }
    struct vimg_check_result res;
    CHECK_EQ(vimg_check(img, 0, &res, NULL, NULL), 0);
    CHECK_EQ(res.corruptions, 0);
    CHECK_EQ(res.leaks, 0);
    CHECK_EQ(vimg_close(img), 0);
    unlink(path);
    free(path);
    free(buf);
}

static void run(const char *dir, const char *options, const char *runtime,
                uint64_t size, uint64_t cs)
{
    struct shared sh = { .size = size, .cs = cs,
                         .sub = strstr(options, "extended_l2") != NULL };
    char *path;
    CHECK(asprintf(&path, "%s/threads.qcow2", dir) > 0);
    struct vimg_create_params cp = { .format = "qcow2", .size = size,
                                     .size_given = true,
                                     .options = options };
    CHECK_EQ(vimg_create(path, &cp), 0);
    struct vimg_open_params op = { .format = "qcow2",
                                   .flags = VIMG_OPEN_RDWR,
                                   .options = runtime };
    sh.img = vimg_open(path, &op);
    sh.model = calloc(1, size);
    CHECK(sh.img != NULL && sh.model != NULL);
    if (!sh.img || !sh.model) {
        free(sh.model);
        free(path);
        return;
    }
    /* Start with compressible data, half of it in compressed clusters
     * packed several to a host cluster. */
    for (uint64_t i = 0; i < size; i++) {
        sh.model[i] = (uint8_t)((i / 97) % 7);
    }
    CHECK_EQ(vimg_write_compressed(sh.img, sh.model, size / 2, 0), 0);
    CHECK_EQ(vimg_pwrite(sh.img, sh.model + size / 2, size / 2, size / 2,
                         0), 0);

    pthread_t wt[WRITERS], rt;
    struct writer w[WRITERS];
    for (unsigned i = 0; i < WRITERS; i++) {
        w[i] = (struct writer){ &sh, i, 0x9e3779b97f4a7c15ull * (i + 1) };
        CHECK_EQ(pthread_create(&wt[i], NULL, writer_main, &w[i]), 0);
    }
    CHECK_EQ(pthread_create(&rt, NULL, reader_main, &sh), 0);
    for (unsigned i = 0; i < WRITERS; i++) {
        pthread_join(wt[i], NULL);
    }
    atomic_store(&sh.done, true);
    pthread_join(rt, NULL);
    CHECK_EQ(sh.failures, 0);
    CHECK_EQ(vimg_close(sh.img), 0);

    struct vimg_image *img = vimg_open(path, NULL);
    uint8_t *buf = malloc(size);
    struct vimg_check_result res;
    CHECK(img != NULL && buf != NULL);
    if (img && buf) {
        CHECK_EQ(vimg_pread(img, buf, size, 0), 0);
        CHECK(memcmp(buf, sh.model, size) == 0);
        CHECK_EQ(vimg_check(img, 0, &res, NULL, NULL), 0);
        CHECK_EQ(res.corruptions, 0);
        CHECK_EQ(res.leaks, 0);
        CHECK_EQ(res.check_errors, 0);
    }
    if (img) {
        vimg_close(img);
    }
    if (access("/usr/bin/qemu-img", X_OK) == 0) {
        char *cmd;
        CHECK(asprintf(&cmd, "qemu-img check -q '%s'", path) > 0);
        CHECK_EQ(system(cmd), 0);
        free(cmd);
    }
    if (test_failures) {
        fprintf(stderr, "failed with options '%s' runtime '%s'\n", options,
                runtime ? runtime : "");
    }
    unlink(path);
    free(path);
    free(buf);
    free(sh.model);
}

int main(void)
{
    char dir[] = "/tmp/vimg-qcow2-threads-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    run(dir, "", NULL, 8u << 20, 65536);
    run(dir, "compression_type=zstd,cluster_size=4096",
        "l2-cache-size=0,refcount-cache-size=0", 2u << 20, 4096);
    run(dir, "cluster_size=512,lazy_refcounts=on", NULL, 1u << 20, 512);
    run(dir, "extended_l2=on", NULL, 8u << 20, 65536);
    run(dir, "extended_l2=on,cluster_size=16384",
        "l2-cache-size=0,refcount-cache-size=0", 2u << 20, 16384);
    run_overlap(dir, "", 65536, 4);
    run_overlap(dir, "cluster_size=512", 512, 4);
    /* Subclusters of 2 KiB: a piece per subcluster, then two pieces, of
     * two writers, to one (each completes the rest of it with zeros). */
    run_overlap(dir, "extended_l2=on", 65536, 32);
    run_overlap(dir, "extended_l2=on", 65536, 64);
    rmdir(dir);
    TEST_MAIN_END();
}
