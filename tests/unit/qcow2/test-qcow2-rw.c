/* Randomised writes, zeroes and discards on qcow2 images of several
 * layouts (with and without a backing file), checked against an in-memory
 * model after every step, after reopening, and by vimg check (and
 * qemu-img check when installed). Also reads of any range over runs of
 * compressed clusters, which are read together. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "test.h"

#define SIZE (6u << 20)

static uint64_t rng = 42;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static char dir[] = "/tmp/vimg-qcow2-rw-XXXXXX";

static void check_image(const char *path, const uint8_t *model)
{
    struct vimg_image *img = vimg_open(path, NULL);
    uint8_t *buf = malloc(SIZE);
    struct vimg_check_result res;

    CHECK(img != NULL);
    if (!img) {
        fprintf(stderr, "%s\n", vimg_get_error());
        free(buf);
        return;
    }
    CHECK_EQ(vimg_pread(img, buf, SIZE, 0), 0);
    CHECK(memcmp(buf, model, SIZE) == 0);
    CHECK_EQ(vimg_check(img, 0, &res, NULL, NULL), 0);
    CHECK_EQ(res.corruptions, 0);
    CHECK_EQ(res.leaks, 0);
    CHECK_EQ(res.check_errors, 0);
    vimg_close(img);
    free(buf);
    if (access("/usr/bin/qemu-img", X_OK) == 0) {
        char *cmd;
        CHECK(asprintf(&cmd, "qemu-img check -q '%s'", path) > 0);
        CHECK_EQ(system(cmd), 0);
        free(cmd);
        /* QEMU reads the guest disk as the model too. */
        char *raw;
        CHECK(asprintf(&raw, "%s.model", path) > 0);
        FILE *f = fopen(raw, "w");
        CHECK(f != NULL);
        if (f) {
            CHECK_EQ(fwrite(model, 1, SIZE, f), SIZE);
            fclose(f);
            CHECK(asprintf(&cmd, "qemu-img compare -q -f qcow2 -F raw "
                                 "'%s' '%s'", path, raw) > 0);
            CHECK_EQ(system(cmd), 0);
            free(cmd);
            unlink(raw);
        }
        free(raw);
    }
}

static void run(const char *options, const char *runtime, bool backing)
{
    char *path, *base;
    uint8_t *model = calloc(1, SIZE), *buf = malloc(SIZE);
    int v3 = !strstr(options, "compat=0.10");

    CHECK(asprintf(&path, "%s/img.qcow2", dir) > 0);
    CHECK(asprintf(&base, "%s/base.raw", dir) > 0);
    if (backing) {
        FILE *f = fopen(base, "w");
        for (size_t i = 0; i < SIZE; i++) {
            model[i] = (uint8_t)(i * 7 + 1);
        }
        /* A backing file shorter than the image reads as zeros past its
         * end. */
        fwrite(model, 1, SIZE - 65536, f);
        fclose(f);
        memset(model + SIZE - 65536, 0, 65536);
    }
    struct vimg_create_params cp = {
        .format = "qcow2", .size = SIZE, .size_given = true,
        .options = options, .backing_file = backing ? "base.raw" : NULL,
        .backing_format = backing ? "raw" : NULL,
    };
    CHECK_EQ(vimg_create(path, &cp), 0);
    struct vimg_open_params op = { .format = "qcow2",
                                   .flags = VIMG_OPEN_RDWR,
                                   .options = runtime };
    struct vimg_image *img = vimg_open(path, &op);
    CHECK(img != NULL);
    if (!img) {
        fprintf(stderr, "%s\n", vimg_get_error());
        return;
    }
    for (int step = 0; step < 300; step++) {
        uint64_t len = 1 + next_rand() % (300 * 1024);
        uint64_t off = next_rand() % SIZE;
        unsigned op_kind = next_rand() % 10;
        if (off + len > SIZE) {
            len = SIZE - off;
        }
        if (op_kind < 6) {
            for (uint64_t i = 0; i < len; i++) {
                buf[i] = (uint8_t)(step + i);
            }
            CHECK_EQ(vimg_pwrite(img, buf, len, off, 0), 0);
            memcpy(model + off, buf, len);
        } else if (op_kind < 8) {
            unsigned fl = next_rand() % 2 ? VIMG_ZERO_MAY_UNMAP : 0;
            CHECK_EQ(vimg_zero(img, off, len, fl), 0);
            memset(model + off, 0, len);
        } else if (v3 || !backing) {
            /* Discard leaves unspecified contents: read them back into the
             * model, but they must be zeros or the old data, never the
             * backing file's. */
            CHECK_EQ(vimg_discard(img, off, len), 0);
            CHECK_EQ(vimg_pread(img, buf, len, off), 0);
            for (uint64_t i = 0; i < len; i++) {
                if (buf[i] != model[off + i] && buf[i] != 0) {
                    CHECK(!"discard exposed other data");
                    break;
                }
            }
            memcpy(model + off, buf, len);
        }
        if (step % 50 == 0) {
            CHECK_EQ(vimg_pread(img, buf, SIZE, 0), 0);
            CHECK(memcmp(buf, model, SIZE) == 0);
        }
        if (test_failures) {
            fprintf(stderr, "%s backing=%d step %d: op %u off %llu len "
                    "%llu: %s\n", options, backing, step, op_kind,
                    (unsigned long long)off, (unsigned long long)len,
                    vimg_get_error() ? vimg_get_error() : "");
            break;
        }
    }
    CHECK_EQ(vimg_close(img), 0);
    check_image(path, model);
    unlink(path);
    unlink(base);
    free(path);
    free(base);
    free(model);
    free(buf);
}

/* Compressed clusters packed back to back, more of them than one read
 * takes, broken by a hole and by a plain cluster: every read, from any
 * offset to any length, returns the model. */
static void compressed_ranges(const char *options)
{
    enum { CLUSTERS = 80 };
    const uint64_t cs = strstr(options, "16384") ? 16384 : 4096;
    const uint64_t size = CLUSTERS * cs;
    char *path;
    uint8_t *model = malloc(size), *buf = malloc(size);

    CHECK(asprintf(&path, "%s/c.qcow2", dir) > 0);
    struct vimg_create_params cp = {
        .format = "qcow2", .size = size, .size_given = true,
        .options = options,
    };
    CHECK_EQ(vimg_create(path, &cp), 0);
    struct vimg_open_params op = { .format = "qcow2",
                                   .flags = VIMG_OPEN_RDWR };
    struct vimg_image *img = vimg_open(path, &op);
    CHECK(img != NULL && model != NULL && buf != NULL);
    if (!img || !model || !buf) {
        goto out;
    }
    /* Compressible, and different in every cluster. */
    for (uint64_t i = 0; i < size; i++) {
        model[i] = (uint8_t)((i / 61) * 13 + i / cs);
    }
    CHECK_EQ(vimg_write_compressed(img, model, size, 0), 0);
    CHECK_EQ(vimg_discard(img, 40 * cs, cs), 0);
    memset(model + 40 * cs, 0, cs);
    memset(model + 60 * cs, 0xa5, cs);
    CHECK_EQ(vimg_pwrite(img, model + 60 * cs, cs, 60 * cs, 0), 0);
    CHECK_EQ(vimg_close(img), 0);

    img = vimg_open(path, NULL);
    CHECK(img != NULL);
    for (int i = 0; img && i < 400 && !test_failures; i++) {
        uint64_t off = next_rand() % size;
        uint64_t len = 1 + next_rand() % (size - off);
        if (i % 4 == 0) {
            off &= ~(cs - 1); /* whole clusters from a cluster's start */
            len = size - off;
        }
        CHECK_EQ(vimg_pread(img, buf, len, off), 0);
        CHECK(memcmp(buf, model + off, len) == 0);
    }
    if (img) {
        CHECK_EQ(vimg_close(img), 0);
    }
out:
    unlink(path);
    free(path);
    free(model);
    free(buf);
}

int main(void)
{
    static const char *const layouts[] = {
        "", "compat=0.10", "cluster_size=512,refcount_bits=1",
        "cluster_size=4096,refcount_bits=64", "cluster_size=2M",
        "lazy_refcounts=on", "refcount_bits=8,cluster_size=1024",
        /* Subclusters: fresh clusters, and preallocated ones (allocated
         * with no subcluster in them, over the backing file too). */
        "extended_l2=on", "extended_l2=on,cluster_size=16384",
        "extended_l2=on,cluster_size=16384,preallocation=metadata",
    };

    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    for (size_t i = 0; i < sizeof layouts / sizeof layouts[0]; i++) {
        for (int backing = 0; backing < 2 && !test_failures; backing++) {
            run(layouts[i], NULL, backing);
        }
    }
    /* Caches of two tables: every step evicts dirty L2 tables and
     * refcount blocks, exercising the write-back order. */
    run("cluster_size=4096", "l2-cache-size=0,refcount-cache-size=0", true);
    run("cluster_size=512,refcount_bits=4",
        "l2-cache-size=1k,refcount-cache-size=1k", false);
    compressed_ranges("cluster_size=4096,compression_type=zlib");
    compressed_ranges("cluster_size=4096,compression_type=zstd");
    compressed_ranges("cluster_size=16384,extended_l2=on");
    rmdir(dir);
    TEST_MAIN_END();
}
