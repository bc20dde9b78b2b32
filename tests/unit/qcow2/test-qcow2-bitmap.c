/* Persistent bitmaps through the library: every write path (pwrite,
 * unaligned pwrite, zero, discard, compressed write) sets the bits of
 * what it wrote in the enabled bitmaps and none in a disabled one; the
 * bits survive a close and reopen, and the image checks clean. Then
 * hostile bitmap directories and tables, each field lying in turn: the
 * open fails with a message naming the problem, or check counts the
 * corruption, never a crash. */
#include <stdint.h>
#include <unistd.h>

#include "formats/qcow2/qcow2-ondisk.h"
#include "internal.h"
#include "../test.h"

#define SIZE (8u << 20)

static char dir[] = "/tmp/vimg-bitmap-XXXXXX";
static char path[4096];

struct runs {
    uint64_t v[64][2];
    size_t n;
};

static int collect(void *opaque, uint64_t offset, uint64_t len)
{
    struct runs *r = opaque;
    if (r->n < 64) {
        r->v[r->n][0] = offset;
        r->v[r->n][1] = len;
    }
    r->n++;
    return 0;
}

/* The dirty runs of bitmap NAME within [OFFSET, OFFSET + COUNT), through
 * the public call. */
static void expect_range(struct vimg_image *img, const char *name,
                         uint64_t offset, uint64_t count,
                         const uint64_t (*want)[2], size_t n, int line)
{
    struct runs got = { .n = 0 };
    int r = vimg_bitmap_dirty(img, name, offset, count, collect, &got);
    bool same = r == 0 && got.n == n;
    for (size_t i = 0; same && i < n; i++) {
        same = got.v[i][0] == want[i][0] && got.v[i][1] == want[i][1];
    }
    if (!same) {
        fprintf(stderr, "line %d: bitmap %s (r=%d, %s):", line, name, r,
                r < 0 ? vimg_get_error() : "");
        for (size_t i = 0; i < got.n && i < 64; i++) {
            fprintf(stderr, " %llu+%llu", (unsigned long long)got.v[i][0],
                    (unsigned long long)got.v[i][1]);
        }
        fprintf(stderr, "\n");
        test_failures++;
    }
}

static void expect_runs(struct vimg_image *img, const char *name,
                        const uint64_t (*want)[2], size_t n, int line)
{
    expect_range(img, name, 0, UINT64_MAX, want, n, line);
}

static struct vimg_image *open_rw(bool rw)
{
    struct vimg_open_params p = { .format = "qcow2",
                                  .flags = rw ? VIMG_OPEN_RDWR : 0 };
    struct vimg_image *img = vimg_open(path, &p);
    if (!img) {
        fprintf(stderr, "open: %s\n", vimg_get_error());
        test_failures++;
    }
    return img;
}

static void check_clean(struct vimg_image *img, int line)
{
    struct vimg_check_result res;
    if (vimg_check(img, 0, &res, NULL, NULL) < 0 || res.corruptions ||
        res.leaks || res.check_errors) {
        fprintf(stderr, "line %d: check: %lld corruptions, %lld leaks, "
                "%lld errors\n", line, (long long)res.corruptions,
                (long long)res.leaks, (long long)res.check_errors);
        test_failures++;
    }
}

static void write_paths(void)
{
    struct vimg_create_params cp = { .format = "qcow2", .size = SIZE,
                                     .size_given = true };
    uint8_t *buf = malloc(1u << 20);

    memset(buf, 0x5a, 1u << 20);
    CHECK_EQ(vimg_create(path, &cp), 0);
    struct vimg_image *img = open_rw(true);
    if (!img) {
        free(buf);
        return;
    }
    struct vimg_bitmap_params add = { .op = VIMG_BITMAP_ADD, .name = "c" };
    CHECK_EQ(vimg_bitmap(img, &add), 0);
    add.name = "f";
    add.granularity = 512;
    CHECK_EQ(vimg_bitmap(img, &add), 0);
    add.name = "off";
    add.granularity = 0;
    add.disabled = true;
    CHECK_EQ(vimg_bitmap(img, &add), 0);
    CHECK_EQ(vimg_bitmap(img, &add), -1);
    CHECK_ERROR(EEXIST, path);

    CHECK_EQ(vimg_pwrite(img, buf, 4096, 65536, 0), 0);
    CHECK_EQ(vimg_pwrite(img, buf, 100, 200000, 0), 0);
    CHECK_EQ(vimg_zero(img, 1u << 20, 8192, 0), 0);
    CHECK_EQ(vimg_discard(img, 2u << 20, 65536), 0);
    CHECK_EQ(vimg_write_compressed(img, buf, 65536, 3u << 20), 0);
    CHECK_EQ(vimg_pwrite(img, buf, 1024, SIZE - 1024, 0), 0);

    static const uint64_t c[][2] = {
        { 65536, 65536 }, { 196608, 65536 }, { 1u << 20, 65536 },
        { 2u << 20, 65536 }, { 3u << 20, 65536 }, { SIZE - 65536, 65536 },
    };
    static const uint64_t f[][2] = {
        { 65536, 4096 }, { 199680, 512 }, { 1u << 20, 8192 },
        { 2u << 20, 65536 }, { 3u << 20, 65536 }, { SIZE - 1024, 1024 },
    };
    expect_runs(img, "c", c, 6, __LINE__);
    expect_runs(img, "f", f, 6, __LINE__);
    expect_runs(img, "off", NULL, 0, __LINE__);
    /* Flushed in the middle: the bits stay, and more come. */
    CHECK_EQ(vimg_flush(img), 0);
    CHECK_EQ(vimg_pwrite(img, buf, 512, 4u << 20, 0), 0);
    CHECK_EQ(vimg_close(img), 0);

    img = open_rw(false);
    if (img) {
        static const uint64_t f2[][2] = {
            { 65536, 4096 }, { 199680, 512 }, { 1u << 20, 8192 },
            { 2u << 20, 65536 }, { 3u << 20, 65536 }, { 4u << 20, 512 },
            { SIZE - 1024, 1024 },
        };
        expect_runs(img, "f", f2, 7, __LINE__);
        expect_runs(img, "off", NULL, 0, __LINE__);
        check_clean(img, __LINE__);
        /* Read-only: no change. */
        struct vimg_bitmap_params clear = { .op = VIMG_BITMAP_CLEAR,
                                            .name = "f" };
        CHECK_EQ(vimg_bitmap(img, &clear), -1);
        CHECK_ERROR(EROFS, path);
        vimg_close(img);
    }
    /* Merge across granularities, clear, then a merge from a bitmap that
     * no longer exists. */
    img = open_rw(true);
    if (img) {
        struct vimg_bitmap_params m = { .op = VIMG_BITMAP_MERGE,
                                        .name = "off", .source = "f" };
        CHECK_EQ(vimg_bitmap(img, &m), 0);
        static const uint64_t off[][2] = {
            { 65536, 65536 }, { 196608, 65536 }, { 1u << 20, 65536 },
            { 2u << 20, 65536 }, { 3u << 20, 65536 }, { 4u << 20, 65536 },
            { SIZE - 65536, 65536 },
        };
        expect_runs(img, "off", off, 7, __LINE__);
        struct vimg_bitmap_params clear = { .op = VIMG_BITMAP_CLEAR,
                                            .name = "c" };
        CHECK_EQ(vimg_bitmap(img, &clear), 0);
        expect_runs(img, "c", NULL, 0, __LINE__);
        struct vimg_bitmap_params rm = { .op = VIMG_BITMAP_REMOVE,
                                         .name = "f" };
        CHECK_EQ(vimg_bitmap(img, &rm), 0);
        CHECK_EQ(vimg_bitmap(img, &m), -1);
        CHECK_ERROR(ENOENT, path);
        check_clean(img, __LINE__);
        CHECK_EQ(vimg_close(img), 0);
    }
    free(buf);
}

/* ---- Ranges ---------------------------------------------------------- */

static int stop_at_once(void *opaque, uint64_t offset, uint64_t len)
{
    collect(opaque, offset, len);
    return -5; /* any non-zero value stops, negative ones too */
}

/* Ranges of a bitmap read as a server reads them: clipped to the range,
 * a run across two data clusters of the bitmap kept whole, only the
 * clusters covering the range read. With 512-byte granules and 64 KiB
 * clusters, one cluster of bits covers 256 MiB of disk. */
static void ranges(void)
{
    const uint64_t page = 256u << 20;
    struct vimg_create_params cp = { .format = "qcow2", .size = 1u << 30,
                                     .size_given = true };
    uint8_t buf[4096];

    memset(buf, 0x77, sizeof buf);
    CHECK_EQ(vimg_create(path, &cp), 0);
    struct vimg_image *img = open_rw(true);
    if (!img) {
        return;
    }
    struct vimg_bitmap_params add = { .op = VIMG_BITMAP_ADD, .name = "g",
                                      .granularity = 512 };
    CHECK_EQ(vimg_bitmap(img, &add), 0);
    CHECK_EQ(vimg_pwrite(img, buf, 1024, page - 512, 0), 0);
    CHECK_EQ(vimg_pwrite(img, buf, 4096, 300u << 20, 0), 0);
    CHECK_EQ(vimg_pwrite(img, buf, 10, (1u << 30) - 10, 0), 0);

    static const uint64_t all[][2] = {
        { page - 512, 1024 }, { 300u << 20, 4096 }, { (1u << 30) - 512, 512 },
    };
    expect_runs(img, "g", all, 3, __LINE__);
    const uint64_t mid[][2] = { { page - 100, 300 } };
    expect_range(img, "g", page - 100, 300, mid, 1, __LINE__);
    const uint64_t two[][2] = { { page, 512 }, { 300u << 20, 1000 } };
    expect_range(img, "g", page, (44u << 20) + 1000, two, 2, __LINE__);
    const uint64_t tail[][2] = { { (1u << 30) - 7, 7 } };
    expect_range(img, "g", (1u << 30) - 7, 100, tail, 1, __LINE__);
    expect_range(img, "g", 0, page - 512, NULL, 0, __LINE__);
    expect_range(img, "g", 2u << 30, 4096, NULL, 0, __LINE__);
    expect_range(img, "g", page - 512, 0, NULL, 0, __LINE__);

    struct runs got = { .n = 0 };
    CHECK_EQ(vimg_bitmap_dirty(img, "g", 0, UINT64_MAX, stop_at_once, &got),
             0);
    CHECK_EQ(got.n, 1);
    CHECK_EQ(vimg_bitmap_dirty(img, "nope", 0, 0, collect, &got), -1);
    CHECK_ERROR(ENOENT, path);
    CHECK_EQ(vimg_close(img), 0);

    /* Formats without bitmaps say so. */
    struct vimg_open_params rp = { .format = "raw" };
    img = vimg_open(path, &rp);
    if (img) {
        CHECK_EQ(vimg_bitmap_dirty(img, "g", 0, 0, collect, &got), -1);
        CHECK_ERROR(ENOTSUP, path);
        vimg_close(img);
    }
}

/* ---- Hostile directories --------------------------------------------- */

static uint8_t *image;
static size_t image_len;
static uint64_t dir_offset, table_offset;

/* A 1 MiB image (512-byte clusters) with one bitmap "bm" holding a data
 * cluster, read into IMAGE; DIR_OFFSET and TABLE_OFFSET locate it. */
static void make_hostile_base(void)
{
    struct vimg_create_params cp = { .format = "qcow2", .size = 1u << 20,
                                     .size_given = true,
                                     .options = "cluster_size=512" };
    uint8_t buf[512];

    memset(buf, 1, sizeof buf);
    CHECK_EQ(vimg_create(path, &cp), 0);
    struct vimg_image *img = open_rw(true);
    if (!img) {
        return;
    }
    struct vimg_bitmap_params add = { .op = VIMG_BITMAP_ADD, .name = "bm" };
    CHECK_EQ(vimg_bitmap(img, &add), 0);
    CHECK_EQ(vimg_pwrite(img, buf, sizeof buf, 4096, 0), 0);
    CHECK_EQ(vimg_close(img), 0);
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    if (!f) {
        return;
    }
    fseek(f, 0, SEEK_END);
    image_len = (size_t)ftell(f);
    rewind(f);
    image = malloc(image_len);
    CHECK_EQ(fread(image, 1, image_len, f), image_len);
    fclose(f);
    size_t pos = load_be32(image + QCOW2_HDR_HEADER_LENGTH);
    while (load_be32(image + pos) != QCOW2_EXT_BITMAPS) {
        pos += 8 + ((load_be32(image + pos + 4) + 7) & ~7u);
    }
    dir_offset = load_be64(image + pos + 8 + QCOW2_BITMAPS_EXT_DIR_OFFSET);
    table_offset = load_be64(image + dir_offset + QCOW2_BMDIR_TABLE_OFFSET);
}

enum how { BE16, BE32, BE64, BYTE };

static void poke(uint8_t *b, uint64_t off, enum how how, uint64_t v)
{
    switch (how) {
    case BE16: store_be16(b + off, (uint16_t)v); break;
    case BE32: store_be32(b + off, (uint32_t)v); break;
    case BE64: store_be64(b + off, v); break;
    case BYTE: b[off] = (uint8_t)v; break;
    }
}

/* Change one field (or two: OFF2 non-zero) of the base image and open it
 * read-only and read-write: both must fail with ERR and a message
 * containing WORD. */
static void expect_refused2(uint64_t off, enum how how, uint64_t v,
                            uint64_t off2, enum how how2, uint64_t v2,
                            int err, const char *word, int line)
{
    uint8_t *b = malloc(image_len);
    memcpy(b, image, image_len);
    poke(b, off, how, v);
    if (off2) {
        poke(b, off2, how2, v2);
    }
    for (int rw = 0; rw < 2; rw++) {
        struct vimg_open_params p = { .format = "qcow2",
                                      .flags = rw ? VIMG_OPEN_RDWR : 0 };
        struct vimg_image *img = vimg_open_buffer(b, image_len, "h.qcow2",
                                                  &p);
        const char *m = vimg_get_error();
        if (img || vimg_get_errno() != err || !m || !strstr(m, word)) {
            fprintf(stderr, "line %d: opened=%d errno=%d message '%s', "
                    "expected %d '%s'\n", line, img != NULL,
                    vimg_get_errno(), m ? m : "", err, word);
            test_failures++;
        }
        vimg_close(img);
    }
    free(b);
}

static void expect_refused(uint64_t off, enum how how, uint64_t v, int err,
                           const char *word, int line)
{
    expect_refused2(off, how, v, 0, BYTE, 0, err, word, line);
}

static void hostile(void)
{
    make_hostile_base();
    if (!image) {
        return;
    }
    size_t ext = load_be32(image + QCOW2_HDR_HEADER_LENGTH);
    while (load_be32(image + ext) != QCOW2_EXT_BITMAPS) {
        ext += 8 + ((load_be32(image + ext + 4) + 7) & ~7u);
    }
    ext += QCOW2_EXT_DATA;
    uint64_t e = dir_offset;

    expect_refused(ext + QCOW2_BITMAPS_EXT_NB_BITMAPS, BE32, 0, EINVAL,
                   "zero bitmaps", __LINE__);
    expect_refused(ext + QCOW2_BITMAPS_EXT_NB_BITMAPS, BE32, 2, EINVAL,
                   "Less bitmaps", __LINE__);
    expect_refused(ext + QCOW2_BITMAPS_EXT_NB_BITMAPS, BE32, 70000, EFBIG,
                   "too many bitmaps", __LINE__);
    expect_refused(ext + QCOW2_BITMAPS_EXT_DIR_SIZE, BE64, 0, EINVAL,
                   "size is zero", __LINE__);
    expect_refused(ext + QCOW2_BITMAPS_EXT_DIR_SIZE, BE64, 1ull << 40,
                   EINVAL, "too big", __LINE__);
    expect_refused(ext + QCOW2_BITMAPS_EXT_DIR_SIZE, BE64, 16, EINVAL,
                   "Broken bitmap directory", __LINE__);
    expect_refused(ext + QCOW2_BITMAPS_EXT_DIR_SIZE, BE64, 64, EINVAL,
                   "More bitmaps found", __LINE__);
    expect_refused(ext + QCOW2_BITMAPS_EXT_DIR_OFFSET, BE64, 1ull << 40,
                   EINVAL, "outside the file", __LINE__);
    expect_refused(ext + QCOW2_BITMAPS_EXT_DIR_OFFSET, BE64, dir_offset + 8,
                   EINVAL, "unaligned", __LINE__);
    /* The name's two bytes taken as extra data: the entry still fits. */
    expect_refused2(e + QCOW2_BMDIR_EXTRA_DATA_SIZE, BE32, 2,
                    e + QCOW2_BMDIR_NAME_SIZE, BE16, 0, ENOTSUP,
                    "extra data", __LINE__);
    expect_refused(e + QCOW2_BMDIR_EXTRA_DATA_SIZE, BE32, 0xfffffff0u,
                   EINVAL, "Broken bitmap directory", __LINE__);
    expect_refused(e + QCOW2_BMDIR_NAME_SIZE, BE16, 0xffff, EINVAL,
                   "Broken bitmap directory", __LINE__);
    expect_refused(e + QCOW2_BMDIR_FIXED_SIZE, BYTE, 0, EINVAL,
                   "constraints", __LINE__);
    expect_refused(e + QCOW2_BMDIR_TYPE, BYTE, 2, EINVAL, "constraints",
                   __LINE__);
    expect_refused(e + QCOW2_BMDIR_GRANULARITY, BYTE, 8, EINVAL,
                   "constraints", __LINE__);
    expect_refused(e + QCOW2_BMDIR_GRANULARITY, BYTE, 32, EINVAL,
                   "constraints", __LINE__);
    expect_refused(e + QCOW2_BMDIR_FLAGS, BE32, 6, EINVAL, "constraints",
                   __LINE__);
    expect_refused(e + QCOW2_BMDIR_TABLE_SIZE, BE32, 0, EINVAL,
                   "constraints", __LINE__);
    expect_refused(e + QCOW2_BMDIR_TABLE_SIZE, BE32, 0xffffffffu, EINVAL,
                   "constraints", __LINE__);
    expect_refused(e + QCOW2_BMDIR_TABLE_SIZE, BE32, 2, EINVAL,
                   "Could not read bitmap", __LINE__);
    expect_refused(e + QCOW2_BMDIR_TABLE_SIZE, BE32, 1u << 20, EINVAL,
                   "past the end", __LINE__);
    expect_refused(e + QCOW2_BMDIR_TABLE_OFFSET, BE64, table_offset + 8,
                   EINVAL, "constraints", __LINE__);
    expect_refused(e + QCOW2_BMDIR_TABLE_OFFSET, BE64, 1ull << 50, EINVAL,
                   "past the end", __LINE__);

    /* A malformed table entry: the image opens (tables are read when
     * used); check counts one corruption; reading the bitmap fails. */
    for (int k = 0; k < 3; k++) {
        static const uint64_t bad[] = { 1ull << 62, 0x10000 | 1, 0x10100 };
        uint8_t *b = malloc(image_len);
        memcpy(b, image, image_len);
        store_be64(b + table_offset, bad[k]);
        struct vimg_open_params p = { .format = "qcow2" };
        struct vimg_image *img = vimg_open_buffer(b, image_len, "h.qcow2",
                                                  &p);
        CHECK(img != NULL);
        if (img) {
            struct vimg_check_result res;
            struct runs got = { .n = 0 };
            CHECK_EQ(vimg_check(img, 0, &res, NULL, NULL), 0);
            CHECK_EQ(res.corruptions, 1);
            CHECK(vimg_bitmap_dirty(img, "bm", 0, UINT64_MAX, collect,
                                    &got) < 0);
            CHECK_ERROR(EINVAL, "h.qcow2: Could not read bitmap 'bm'");
            vimg_close(img);
        }
        free(b);
    }
    /* Without the autoclear bit the extension is stale: no bitmaps. */
    uint8_t *b = malloc(image_len);
    memcpy(b, image, image_len);
    store_be64(b + QCOW2_HDR_AUTOCLEAR_FEATURES, 0);
    struct vimg_open_params p = { .format = "qcow2" };
    struct vimg_image *img = vimg_open_buffer(b, image_len, "h.qcow2", &p);
    CHECK(img != NULL);
    if (img) {
        struct vimg_internal_bitmap *v;
        size_t n;
        CHECK_EQ(img->drv->bitmap_list(img, &v, &n), 0);
        CHECK_EQ(n, 0);
        vimg_close(img);
    }
    free(b);
    free(image);
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(path, sizeof path, "%s/b.qcow2", dir);
    write_paths();
    unlink(path);
    ranges();
    unlink(path);
    hostile();
    unlink(path);
    rmdir(dir);
    TEST_MAIN_END();
}
