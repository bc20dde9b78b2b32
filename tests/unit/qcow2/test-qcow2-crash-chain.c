/* Crash safety of the operations on a backing chain, on qcow2 images in
 * memory: commit (the base grows, the overlay's clusters are copied into
 * it and flushed, then the overlay is emptied), a safe rebase that
 * flattens the overlay and a safe rebase onto another backing file (a raw
 * file on disk, only read): the copy phase into the overlay, its flush,
 * then the header change. As in test-qcow2-crash.c, the Nth write-like
 * call and every later one fail, for every N until the operation
 * completes; for commit the writes to both images count together, so the
 * crash falls where the operation's order puts it. After each crash both
 * images check without corruption (leaks are allowed), the chain the
 * overlay's header names reads exactly what it read before the
 * operation, and the base still holds its own data wherever the overlay
 * did not. */
#include <stdint.h>
#include <unistd.h>

#include "internal.h"
#include "../test.h"

#define SECTOR 512u
#define BASE_SIZE (1u << 20)
#define TOP_SIZE (1536u << 10)
#define MAX_FILE (64u << 20)
#define MAX_CRASH_POINTS 20000u

/* What the overlay holds: [start, end) ranges, cluster aligned. */
static const uint64_t held[][2] = {
    { 64u << 10, 192u << 10 },      /* data over the base's */
    { 300u << 10, 332u << 10 },     /* zeros over the base's */
    { 700u << 10, 800u << 10 },     /* data where the base has none */
    { 1200u << 10, 1300u << 10 },   /* data past the base's end */
};

static uint8_t pattern(unsigned op, uint64_t off)
{
    return (uint8_t)((op * 31 + off / SECTOR * 5 + off % 251) | 1);
}

static void write_pattern(struct vimg_image *img, unsigned op, uint64_t off,
                          uint64_t len)
{
    uint8_t *buf = malloc(len);
    for (uint64_t i = 0; i < len; i++) {
        buf[i] = pattern(op, off + i);
    }
    CHECK_EQ(vimg_pwrite(img, buf, len, off, 0), 0);
    free(buf);
}

/* A new qcow2 image in memory (512-byte clusters, so that every range
 * touches many tables), filled by FILL, as bytes (caller frees). */
static uint8_t *make(uint64_t size, const char *backing,
                     void (*fill)(struct vimg_image *), size_t *len)
{
    const struct vimg_driver *drv = vimg_internal_find_driver("qcow2");
    struct vimg_opts opts = { 0 };
    struct vimg_image *mem = vimg_internal_memory_new("c.qcow2", NULL, 0,
                                                      MAX_FILE);
    struct vimg_open_params p = { .format = "qcow2",
                                  .flags = VIMG_OPEN_RDWR |
                                           VIMG_OPEN_NO_BACKING };

    CHECK_EQ(vimg_internal_opts_parse("cluster_size=512", drv->create_opts,
                                      "qcow2", &opts), 0);
    struct vimg_create_ctx ctx = { .filename = "c.qcow2", .size = size,
                                   .opts = &opts, .backing_file = backing,
                                   .backing_format = backing ? "qcow2"
                                                             : NULL };
    CHECK_EQ(drv->create(mem, &ctx), 0);
    vimg_internal_opts_free(&opts);
    struct vimg_image *img = vimg_internal_open_on(mem, &p);
    CHECK(img != NULL);
    fill(img);
    CHECK_EQ(vimg_flush(img), 0);
    const void *d = vimg_internal_memory_data(img->file, len);
    uint8_t *copy = malloc(*len);
    memcpy(copy, d, *len);
    CHECK_EQ(vimg_close(img), 0);
    return copy;
}

static void fill_base(struct vimg_image *img)
{
    write_pattern(img, 1, 0, 512u << 10);
    write_pattern(img, 2, 900u << 10, 100u << 10);
}

static void fill_top(struct vimg_image *img)
{
    write_pattern(img, 3, held[0][0], held[0][1] - held[0][0]);
    CHECK_EQ(vimg_zero(img, held[1][0], held[1][1] - held[1][0], 0), 0);
    write_pattern(img, 4, held[2][0], held[2][1] - held[2][0]);
    write_pattern(img, 5, held[3][0], held[3][1] - held[3][0]);
}

/* Open DATA as a qcow2 image on a memory image failing from write N (0:
 * never), writes counted in *COUNTER (NULL: its own). */
static struct vimg_image *open_mem(const uint8_t *data, size_t len,
                                   uint64_t n, uint64_t *counter,
                                   unsigned flags)
{
    struct vimg_image *mem = vimg_internal_memory_new("c.qcow2", data, len,
                                                      MAX_FILE);
    struct vimg_open_params p = { .format = "qcow2",
                                  .flags = flags | VIMG_OPEN_NO_BACKING };
    if (counter) {
        vimg_internal_memory_fail_after_shared(mem, n, counter);
    } else {
        vimg_internal_memory_fail_after(mem, n);
    }
    return vimg_internal_open_on(mem, &p);
}

/* TOP reads BASE below it (TOP takes BASE, closing it with itself). */
static void attach(struct vimg_image *top, struct vimg_image *base)
{
    top->backing = base;
    base->parent = top;
}

static uint8_t *copy_of(struct vimg_image *img, size_t *len)
{
    const void *d = vimg_internal_memory_data(img->file, len);
    uint8_t *c = malloc(*len);
    memcpy(c, d, *len);
    return c;
}

static bool is_held(uint64_t off)
{
    for (size_t i = 0; i < sizeof held / sizeof held[0]; i++) {
        if (off >= held[i][0] && off < held[i][1]) {
            return true;
        }
    }
    return false;
}

static void check_clean(const char *what, uint64_t n, struct vimg_image *img)
{
    struct vimg_check_result res;
    CHECK_EQ(vimg_check(img, 0, &res, NULL, NULL), 0);
    if (res.corruptions || res.check_errors) {
        fprintf(stderr, "%s: crash point %llu: %lld corruptions, %lld "
                "check errors\n", what, (unsigned long long)n,
                (long long)res.corruptions, (long long)res.check_errors);
        test_failures++;
    }
}

/* The images left by a crash: each checks clean; TOP over BASE (or alone,
 * once it names no backing file) reads WANT; BASE keeps ORIG (its guest
 * bytes before) wherever the overlay holds nothing. */
static void verify(const char *what, uint64_t n, const uint8_t *top_data,
                   size_t top_len, const uint8_t *base_data,
                   size_t base_len, const uint8_t *want,
                   const uint8_t *orig, const char *new_path)
{
    struct vimg_image *base = open_mem(base_data, base_len, 0, NULL, 0);
    struct vimg_image *top = open_mem(top_data, top_len, 0, NULL, 0);
    uint8_t *buf = malloc(TOP_SIZE);

    CHECK(base != NULL && top != NULL);
    if (!base || !top) {
        goto out;
    }
    check_clean(what, n, base);
    check_clean(what, n, top);
    CHECK(vimg_get_size(base) == BASE_SIZE ||
          vimg_get_size(base) == TOP_SIZE);
    CHECK_EQ(vimg_pread(base, buf, BASE_SIZE, 0), 0);
    for (uint64_t off = 0; off < BASE_SIZE; off += SECTOR) {
        if (!is_held(off) && memcmp(buf + off, orig + off, SECTOR)) {
            fprintf(stderr, "%s: crash point %llu: the base changed at "
                    "%llu\n", what, (unsigned long long)n,
                    (unsigned long long)off);
            test_failures++;
            break;
        }
    }
    if (new_path && top->backing_name &&
        !strcmp(top->backing_name, new_path)) {
        struct vimg_open_params np = { .format = "raw" };
        struct vimg_image *nb = vimg_open(new_path, &np);
        CHECK(nb != NULL);
        if (nb) {
            attach(top, nb);
        }
    } else if (top->backing_name) {
        attach(top, base);
        base = NULL;
    }
    CHECK_EQ(vimg_get_size(top), TOP_SIZE);
    CHECK_EQ(vimg_pread(top, buf, TOP_SIZE, 0), 0);
    if (memcmp(buf, want, TOP_SIZE)) {
        fprintf(stderr, "%s: crash point %llu: the chain reads other "
                "data\n", what, (unsigned long long)n);
        test_failures++;
    }
out:
    free(buf);
    vimg_close(top);
    vimg_close(base);
}

/* Commit with a crash at the Nth write to either image (both count in
 * one counter, so the crash falls where the operation's order puts it). */
static void test_commit(const uint8_t *top_data, size_t top_len,
                        const uint8_t *base_data, size_t base_len,
                        const uint8_t *want, const uint8_t *orig)
{
    uint64_t crashes = 0;
    bool done = false;

    for (uint64_t n = 1; n < MAX_CRASH_POINTS && !done; n++) {
        uint64_t counter = 0;
        struct vimg_image *base = open_mem(base_data, base_len, n, &counter,
                                           VIMG_OPEN_RDWR);
        struct vimg_image *top = open_mem(top_data, top_len, n, &counter,
                                          VIMG_OPEN_RDWR);
        size_t tl, bl;
        CHECK(base != NULL && top != NULL);
        if (!base || !top) {
            vimg_close(base);
            vimg_close(top);
            return;
        }
        attach(top, base);
        done = vimg_commit(top, NULL) == 0;
        crashes += !done;
        uint8_t *t = copy_of(top, &tl);
        uint8_t *b = copy_of(base, &bl);
        vimg_close(top);
        verify("commit", n, t, tl, b, bl, want, orig, NULL);
        free(t);
        free(b);
    }
    CHECK(done);
    CHECK(crashes > 20);
    printf("commit: %llu crash points checked\n",
           (unsigned long long)crashes);
}

/* A safe rebase with a crash at the Nth write to the overlay: onto
 * NEW_PATH, or with NEW_PATH NULL onto nothing (flattening). */
static void test_rebase(const uint8_t *top_data, size_t top_len,
                        const uint8_t *base_data, size_t base_len,
                        const uint8_t *want, const uint8_t *orig,
                        const char *new_path)
{
    struct vimg_rebase_params p = { .backing_file = new_path ? new_path : "",
                                    .backing_format = new_path ? "raw"
                                                               : NULL };
    const char *what = new_path ? "rebase" : "rebase-flatten";
    uint64_t crashes = 0;
    bool done = false;

    for (uint64_t n = 1; n < MAX_CRASH_POINTS && !done; n++) {
        struct vimg_image *base = open_mem(base_data, base_len, 0, NULL, 0);
        struct vimg_image *top = open_mem(top_data, top_len, n, NULL,
                                          VIMG_OPEN_RDWR);
        size_t tl;
        CHECK(base != NULL && top != NULL);
        if (!base || !top) {
            vimg_close(base);
            vimg_close(top);
            return;
        }
        attach(top, base);
        done = vimg_rebase(top, &p) == 0;
        if (!done && n == 1 && !strstr(vimg_get_error(), "simulated")) {
            fprintf(stderr, "%s: %s\n", what, vimg_get_error());
            test_failures++;
            vimg_close(top);
            return;
        }
        crashes += !done;
        uint8_t *t = copy_of(top, &tl);
        vimg_close(top);
        verify(what, n, t, tl, base_data, base_len, want, orig, new_path);
        free(t);
    }
    CHECK(done);
    CHECK(crashes > 20);
    printf("%s: %llu crash points checked\n", what,
           (unsigned long long)crashes);
}

/* The new backing file for the rebase: a raw file on disk (the rebase
 * only reads it) with data of its own and holes. */
static void make_new_backing(const char *path)
{
    struct vimg_create_params cp = { .format = "raw", .size = BASE_SIZE,
                                     .size_given = true };
    struct vimg_open_params op = { .format = "raw",
                                   .flags = VIMG_OPEN_RDWR };
    CHECK_EQ(vimg_create(path, &cp), 0);
    struct vimg_image *img = vimg_open(path, &op);
    CHECK(img != NULL);
    if (img) {
        write_pattern(img, 9, 0, 256u << 10);
        write_pattern(img, 1, 256u << 10, 128u << 10);
        write_pattern(img, 10, 960u << 10, 64u << 10);
        CHECK_EQ(vimg_close(img), 0);
    }
}

int main(int argc, char **argv)
{
    size_t base_len, top_len;
    uint8_t *base = make(BASE_SIZE, NULL, fill_base, &base_len);
    uint8_t *top = make(TOP_SIZE, "base.qcow2", fill_top, &top_len);
    uint8_t *want = calloc(1, TOP_SIZE), *orig = calloc(1, BASE_SIZE);

    /* What the chain and the base read before any operation. */
    struct vimg_image *b = open_mem(base, base_len, 0, NULL, 0);
    struct vimg_image *t = open_mem(top, top_len, 0, NULL, 0);
    CHECK(b != NULL && t != NULL);
    if (!b || !t) {
        TEST_MAIN_END();
    }
    CHECK_EQ(vimg_pread(b, orig, BASE_SIZE, 0), 0);
    attach(t, b);
    CHECK_EQ(vimg_pread(t, want, TOP_SIZE, 0), 0);
    vimg_close(t);

    if (argc < 2 || !strcmp(argv[1], "commit")) {
        test_commit(top, top_len, base, base_len, want, orig);
    }
    if (argc < 2 || !strcmp(argv[1], "rebase-flatten")) {
        test_rebase(top, top_len, base, base_len, want, orig, NULL);
    }
    if (argc < 2 || !strcmp(argv[1], "rebase")) {
        char dir[] = "/tmp/vimg-crash-chain-XXXXXX", path[64];
        CHECK(mkdtemp(dir) != NULL);
        snprintf(path, sizeof path, "%s/new.raw", dir);
        make_new_backing(path);
        test_rebase(top, top_len, base, base_len, want, orig, path);
        unlink(path);
        rmdir(dir);
    }
    free(base);
    free(top);
    free(want);
    free(orig);
    TEST_MAIN_END();
}
