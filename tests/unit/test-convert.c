/* The copy engine on raw images in memory: -S keeps long zero runs sparse
 * and writes short ones, in-order and out-of-order copies are identical,
 * -B writes only what differs from the target's backing image, progress
 * counts every byte once, and failures stop every worker with one error.
 *
 * A target filled with 0xAA and marked new (zero-initialised) shows which
 * ranges the engine wrote: skipped ranges keep their 0xAA. */
#include <unistd.h>

#include "internal.h"
#include "test.h"

#define SIZE (8u << 20)
#define FILL 0xAA

static unsigned char *src_data, *fill_data;

static struct vimg_image *mem_raw(const void *data, size_t len, bool rw)
{
    struct vimg_open_params p = { .format = "raw",
                                  .flags = rw ? VIMG_OPEN_RDWR : 0 };
    struct vimg_image *img = vimg_open_buffer(data, len, "mem.img", &p);
    CHECK(img != NULL);
    return img;
}

static const unsigned char *contents(struct vimg_image *img)
{
    size_t len;
    return vimg_internal_memory_data(img->file, &len);
}

static bool all_bytes(const unsigned char *p, size_t n, unsigned char c)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != c) {
            return false;
        }
    }
    return true;
}

/* Source layout (offsets in KiB):
 *   0..4      data        4..5     1 KiB of zeros inside a data block
 *   5..8      data        8..72    64 KiB of zeros
 *   72..76    data        the rest zeros, except the last 4 KiB (data) */
static void make_source(void)
{
    src_data = calloc(1, SIZE);
    fill_data = malloc(SIZE);
    memset(fill_data, FILL, SIZE);
    for (size_t i = 0; i < 4096; i++) {
        src_data[i] = (unsigned char)(i * 7 + 1) | 1;
    }
    memset(src_data + 5 * 1024, 0x11, 3 * 1024);
    memset(src_data + 72 * 1024, 0x22, 4096);
    memset(src_data + SIZE - 4096, 0x33, 4096);
}

static void test_min_sparse(void)
{
    struct vimg_image *src = mem_raw(src_data, SIZE, false);
    struct vimg_image *dst = mem_raw(fill_data, SIZE, true);
    struct vimg_convert_params p = { .min_sparse = 4096, .workers = 4,
                                     .target_is_new = true };

    CHECK_EQ(vimg_convert(src, dst, &p), 0);
    const unsigned char *d = contents(dst);
    /* Data and the short zero run are written... */
    CHECK(memcmp(d, src_data, 8 * 1024) == 0);
    CHECK(memcmp(d + 72 * 1024, src_data + 72 * 1024, 4096) == 0);
    CHECK(memcmp(d + SIZE - 4096, src_data + SIZE - 4096, 4096) == 0);
    /* ...long zero runs are left alone on a zero-initialised target. */
    CHECK(all_bytes(d + 8 * 1024, 64 * 1024, FILL));
    CHECK(all_bytes(d + 76 * 1024, 64 * 1024, FILL));
    vimg_close(dst);

    /* -S 64k: the 64 KiB run at 8 KiB is not 64k-aligned, so only whole
     * aligned 64 KiB blocks of zeros are skipped. */
    dst = mem_raw(fill_data, SIZE, true);
    p.min_sparse = 65536;
    CHECK_EQ(vimg_convert(src, dst, &p), 0);
    d = contents(dst);
    CHECK(memcmp(d, src_data, 64 * 1024) == 0);
    CHECK(memcmp(d + 64 * 1024, src_data + 64 * 1024, 64 * 1024) == 0);
    CHECK(all_bytes(d + 128 * 1024, 64 * 1024, FILL));
    vimg_close(dst);

    /* -S 0 writes everything. */
    dst = mem_raw(fill_data, SIZE, true);
    p.min_sparse = 0;
    CHECK_EQ(vimg_convert(src, dst, &p), 0);
    CHECK(memcmp(contents(dst), src_data, SIZE) == 0);
    vimg_close(dst);

    /* A target that is not new gets its zero runs zeroed, not skipped. */
    dst = mem_raw(fill_data, SIZE, true);
    p.min_sparse = 4096;
    p.target_is_new = false;
    CHECK_EQ(vimg_convert(src, dst, &p), 0);
    CHECK(memcmp(contents(dst), src_data, SIZE) == 0);
    vimg_close(dst);
    vimg_close(src);
}

/* A zero run shorter than -S at the end of the image is written, not
 * skipped, even though it fills the last (partial) -S block. */
static void test_short_zero_tail(void)
{
    size_t len = 68 * 1024;
    struct vimg_image *src = mem_raw(src_data, len, false);
    struct vimg_image *dst = mem_raw(fill_data, len, true);
    struct vimg_convert_params p = { .min_sparse = 65536,
                                     .target_is_new = true };

    CHECK(all_bytes(src_data + 64 * 1024, 4096, 0));
    CHECK_EQ(vimg_convert(src, dst, &p), 0);
    CHECK(memcmp(contents(dst), src_data, len) == 0);
    vimg_close(dst);
    vimg_close(src);
}

static void test_orders_agree(void)
{
    struct vimg_image *src = mem_raw(src_data, SIZE, false);
    unsigned char *first = malloc(SIZE);
    static const struct { int workers; bool ooo; } runs[] = {
        { 1, false }, { 8, false }, { 8, true }, { 3, true }, { 64, false },
    };

    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        struct vimg_image *dst = mem_raw(fill_data, SIZE, true);
        struct vimg_convert_params p = { .min_sparse = 4096,
                                         .workers = runs[i].workers,
                                         .out_of_order = runs[i].ooo,
                                         .target_is_new = true };
        CHECK_EQ(vimg_convert(src, dst, &p), 0);
        if (i == 0) {
            memcpy(first, contents(dst), SIZE);
        } else {
            CHECK(memcmp(first, contents(dst), SIZE) == 0);
        }
        vimg_close(dst);
    }
    free(first);
    vimg_close(src);
}

/* -B: the target's backing image holds BASE; the source is BASE with one
 * changed 4 KiB block and one block zeroed. Only those two are written. */
static void test_target_backing(void)
{
    unsigned char *base_data = malloc(SIZE), *changed = malloc(SIZE);
    for (size_t i = 0; i < SIZE; i++) {
        base_data[i] = (unsigned char)(i % 251 + 1);
    }
    memcpy(changed, base_data, SIZE);
    memset(changed + 40960, 0x5a, 4096);
    memset(changed + 3 * 1048576, 0, 4096);

    struct vimg_image *src = mem_raw(changed, SIZE, false);
    struct vimg_image *dst = mem_raw(fill_data, SIZE, true);
    struct vimg_image *base = mem_raw(base_data, SIZE, false);
    dst->backing = base;
    dst->backing_name = strdup("base.img");
    struct vimg_convert_params p = { .min_sparse = 4096, .workers = 4,
                                     .target_is_new = true,
                                     .target_backing = base };
    CHECK_EQ(vimg_convert(src, dst, &p), 0);
    const unsigned char *d = contents(dst);
    CHECK(all_bytes(d, 40960, FILL));
    CHECK(all_bytes(d + 40960, 4096, 0x5a));
    CHECK(all_bytes(d + 45056, 3 * 1048576 - 45056, FILL));
    CHECK(all_bytes(d + 3 * 1048576, 4096, 0));
    CHECK(all_bytes(d + 3 * 1048576 + 4096, SIZE - 3 * 1048576 - 4096,
                    FILL));
    vimg_close(dst); /* closes base too */
    vimg_close(src);
    free(base_data);
    free(changed);
}

/* -B with a source whose holes are zero extents longer than the 2 MiB
 * buffer (a sparse file): the zero unit goes through the buffer piece by
 * piece, and only the pieces where the backing image has data are
 * written. */
static void test_target_backing_holes(void)
{
    char path[] = "/tmp/vimg-test-convert.XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    CHECK(ftruncate(fd, SIZE) == 0);
    CHECK(pwrite(fd, "data", 4, 4096) == 4);
    close(fd);
    struct vimg_image *src = vimg_open(path, &(struct vimg_open_params){
                                                 .format = "raw" });
    CHECK(src != NULL);

    unsigned char *base_data = calloc(1, SIZE);
    memset(base_data + 6 * 1048576, 0x77, 8192);
    struct vimg_image *dst = mem_raw(fill_data, SIZE, true);
    struct vimg_image *base = mem_raw(base_data, SIZE, false);
    dst->backing = base;
    dst->backing_name = strdup("base.img");
    struct vimg_convert_params p = { .min_sparse = 4096, .workers = 2,
                                     .target_is_new = true,
                                     .target_backing = base };
    CHECK_EQ(vimg_convert(src, dst, &p), 0);
    const unsigned char *d = contents(dst);
    CHECK(memcmp(d + 4096, "data", 4) == 0);
    CHECK(all_bytes(d + 4100, 4092, 0));
    CHECK(all_bytes(d + 6 * 1048576, 8192, 0));
    CHECK(all_bytes(d + 8192, 6 * 1048576 - 8192, FILL));
    CHECK(all_bytes(d + 6 * 1048576 + 8192, SIZE - 6 * 1048576 - 8192,
                    FILL));
    vimg_close(dst);
    vimg_close(src);
    unlink(path);
    free(base_data);
}

struct progress_log {
    uint64_t last, total, calls;
    bool monotonic;
};

static void on_progress(void *opaque, uint64_t done, uint64_t total)
{
    struct progress_log *l = opaque;
    l->monotonic &= done >= l->last && done <= total;
    l->last = done;
    l->total = total;
    l->calls++;
}

static void test_progress(void)
{
    struct vimg_image *src = mem_raw(src_data, SIZE, false);
    for (int ooo = 0; ooo < 2; ooo++) {
        struct vimg_image *dst = mem_raw(fill_data, SIZE, true);
        struct progress_log log = { .monotonic = true };
        struct vimg_convert_params p = { .min_sparse = 4096, .workers = 4,
                                         .out_of_order = ooo,
                                         .progress = on_progress,
                                         .opaque = &log };
        CHECK_EQ(vimg_convert(src, dst, &p), 0);
        CHECK(log.monotonic);
        CHECK(log.calls >= SIZE / (2u << 20));
        CHECK_EQ(log.last, SIZE);
        CHECK_EQ(log.total, SIZE);
        vimg_close(dst);
    }
    vimg_close(src);
}

static void test_errors(void)
{
    struct vimg_image *src = mem_raw(src_data, SIZE, false);
    struct vimg_image *small = mem_raw(fill_data, SIZE / 2, true);
    struct vimg_image *ro = mem_raw(fill_data, SIZE, false);

    CHECK_EQ(vimg_convert(src, small, NULL), -1);
    CHECK_ERROR(EINVAL, "mem.img: target (4194304 bytes) is smaller");
    CHECK_EQ(vimg_convert(src, ro, NULL), -1);
    CHECK_ERROR(EROFS, "mem.img: target is opened read-only");
    vimg_close(small);
    vimg_close(ro);

    /* A write failing half-way stops every worker, in both orders, with
     * the failing write's message; nothing hangs. */
    for (int ooo = 0; ooo < 2; ooo++) {
        struct vimg_image *dst = mem_raw(fill_data, SIZE, true);
        struct vimg_convert_params p = { .min_sparse = 0, .workers = 8,
                                         .out_of_order = ooo };
        vimg_internal_memory_fail_after(dst->file, 3);
        CHECK_EQ(vimg_convert(src, dst, &p), -1);
        CHECK_EQ(vimg_get_errno(), EIO);
        CHECK(vimg_get_error() && strstr(vimg_get_error(), "mem.img"));
        vimg_internal_memory_fail_after(dst->file, 0);
        vimg_close(dst);
    }
    vimg_close(src);
}

/* Several sources laid end to end, an empty one among them, and windows
 * of the whole that start and end inside sources and across their
 * boundaries, in both orders and with compressed-style units off. */
static void test_sources_window(void)
{
    size_t sizes[] = { 3 * 4096 + 512, 0, 40960, SIZE - 53760 };
    struct vimg_image *srcs[4];
    size_t at = 0;
    for (int i = 0; i < 4; i++) {
        srcs[i] = mem_raw(src_data + at, sizes[i], false);
        at += sizes[i];
    }
    CHECK_EQ(at, SIZE);
    static const uint64_t windows[][2] = {
        { 0, 0 }, { 512, 0 }, { 12800, 40960 }, { 13000, 1 },
        { SIZE - 4097, 4097 }, { 53760, 0 },
    };
    for (size_t w = 0; w < sizeof windows / sizeof windows[0]; w++) {
        for (int ooo = 0; ooo < 2; ooo++) {
            struct vimg_image *dst = mem_raw(fill_data, SIZE, true);
            struct vimg_convert_params p = { .min_sparse = 4096,
                                             .workers = 3,
                                             .out_of_order = ooo,
                                             .src_offset = windows[w][0],
                                             .length = windows[w][1] };
            uint64_t len = windows[w][1] ? windows[w][1]
                                         : SIZE - windows[w][0];
            CHECK_EQ(vimg_convert_sources(srcs, 4, dst, &p), 0);
            const unsigned char *d = contents(dst);
            CHECK(memcmp(d, src_data + windows[w][0], len) == 0);
            /* Past the window, the target is as it was. */
            CHECK(all_bytes(d + len, SIZE - len, FILL));
            vimg_close(dst);
        }
    }
    /* A window past the end, and one running past it, are refused. */
    struct vimg_image *dst = mem_raw(fill_data, SIZE, true);
    struct vimg_convert_params p = { .src_offset = SIZE + 1 };
    CHECK_EQ(vimg_convert_sources(srcs, 4, dst, &p), -1);
    CHECK_EQ(vimg_get_errno(), EINVAL);
    p.src_offset = 4096;
    p.length = SIZE;
    CHECK_EQ(vimg_convert_sources(srcs, 4, dst, &p), -1);
    CHECK_EQ(vimg_get_errno(), EINVAL);
    CHECK_EQ(vimg_convert_sources(srcs, 0, dst, NULL), -1);
    CHECK_EQ(vimg_get_errno(), EINVAL);
    vimg_close(dst);
    for (int i = 0; i < 4; i++) {
        vimg_close(srcs[i]);
    }
}

/* --target-is-zero: an existing target said to read as zeros gets no zero
 * writes, as a new one; without it, the zero runs are written. */
static void test_target_is_zero(void)
{
    struct vimg_image *src = mem_raw(src_data, SIZE, false);
    for (int tiz = 0; tiz < 2; tiz++) {
        struct vimg_image *dst = mem_raw(fill_data, SIZE, true);
        struct vimg_convert_params p = { .min_sparse = 4096,
                                         .target_is_zero = tiz };
        CHECK_EQ(vimg_convert(src, dst, &p), 0);
        const unsigned char *d = contents(dst);
        CHECK(memcmp(d, src_data, 8 * 1024) == 0);
        CHECK(tiz ? all_bytes(d + 8 * 1024, 64 * 1024, FILL)
                  : all_bytes(d + 8 * 1024, 64 * 1024, 0));
        vimg_close(dst);
    }
    vimg_close(src);
}

int main(void)
{
    make_source();
    test_min_sparse();
    test_short_zero_tail();
    test_orders_agree();
    test_target_backing();
    test_target_backing_holes();
    test_progress();
    test_errors();
    test_sources_window();
    test_target_is_zero();
    free(src_data);
    free(fill_data);
    TEST_MAIN_END();
}
