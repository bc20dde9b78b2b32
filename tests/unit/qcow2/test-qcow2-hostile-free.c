/* Hostile L2 entries and damaged refcounts must never make a write, a
 * zero write or a discard free, punch or reuse the image's metadata: each
 * request either works as asked or marks the image corrupt and changes
 * nothing else (the file differs from before by the corrupt bit only).
 * Images are 512-byte-cluster qcow2s in memory. */
#include <stdint.h>

#include "formats/qcow2/qcow2-ondisk.h"
#include "internal.h"
#include "../test.h"

#define NAME "hostile-free.qcow2"
#define CS 512u
#define SIZE (64u << 10)
#define MAX_FILE (1u << 20)

struct layout {
    uint64_t l1, l2, l2b, rt, rb, data0;
};

static uint8_t *base;
static size_t base_len;
static struct layout lay;

/* The base image: four data clusters written at guest offset 0, one at
 * 32 KiB (the second L2 table). */
static void make_base(void)
{
    const struct vimg_driver *drv = vimg_internal_find_driver("qcow2");
    struct vimg_opts opts = { 0 };
    struct vimg_image *mem = vimg_internal_memory_new(NAME, NULL, 0,
                                                      MAX_FILE);
    struct vimg_open_params p = { .format = "qcow2",
                                  .flags = VIMG_OPEN_RDWR };
    uint8_t buf[4 * CS];
    size_t len;

    CHECK_EQ(vimg_internal_opts_parse("cluster_size=512", drv->create_opts,
                                      "qcow2", &opts), 0);
    struct vimg_create_ctx ctx = { .filename = NAME, .size = SIZE,
                                   .opts = &opts };
    CHECK_EQ(drv->create(mem, &ctx), 0);
    vimg_internal_opts_free(&opts);
    struct vimg_image *img = vimg_internal_open_on(mem, &p);
    CHECK(img != NULL);
    memset(buf, 0x5a, sizeof buf);
    CHECK_EQ(vimg_pwrite(img, buf, sizeof buf, 0, 0), 0);
    CHECK_EQ(vimg_pwrite(img, buf, CS, 32768, 0), 0);
    CHECK_EQ(vimg_flush(img), 0);
    const uint8_t *data = vimg_internal_memory_data(mem, &len);
    base = malloc(len);
    memcpy(base, data, len);
    base_len = len;
    CHECK_EQ(vimg_close(img), 0);

    lay.l1 = load_be64(base + QCOW2_HDR_L1_TABLE_OFFSET);
    lay.rt = load_be64(base + QCOW2_HDR_REFCOUNT_TABLE_OFFSET);
    lay.rb = load_be64(base + lay.rt);
    lay.l2 = load_be64(base + lay.l1) & QCOW2_L1E_OFFSET_MASK;
    lay.l2b = load_be64(base + lay.l1 + 8) & QCOW2_L1E_OFFSET_MASK;
    lay.data0 = load_be64(base + lay.l2) & QCOW2_L2E_OFFSET_MASK;
    CHECK(lay.rt && lay.rb && lay.l1 && lay.l2 && lay.l2b && lay.data0);
}

enum op { OP_WRITE, OP_WRITE_PART, OP_ZERO, OP_ZERO_UNMAP, OP_DISCARD,
          OP_COUNT };
static const char *const op_names[] = { "write", "partial write", "zero",
                                        "zero (unmap)", "discard" };

static int run_op(struct vimg_image *img, enum op op)
{
    uint8_t buf[CS];

    memset(buf, 0xc3, sizeof buf);
    switch (op) {
    case OP_WRITE:
        return vimg_pwrite(img, buf, CS, 0, 0);
    case OP_WRITE_PART:
        return vimg_pwrite(img, buf, 100, 10, 0);
    case OP_ZERO:
        return vimg_zero(img, 0, CS, 0);
    case OP_ZERO_UNMAP:
        return vimg_zero(img, 0, CS, VIMG_ZERO_MAY_UNMAP);
    default:
        return vimg_discard(img, 0, CS);
    }
}

/* A compressed descriptor for SECTORS sectors at HOST (512-byte clusters:
 * one bit of sector count). */
static uint64_t compressed(uint64_t host, unsigned sectors)
{
    unsigned x = qcow2_compressed_offset_bits(9);
    return QCOW2_L2E_COMPRESSED | ((uint64_t)(sectors - 1) << x) | host;
}

/* Run OP on IMG (LEN bytes, edited from the base image) and hold it to:
 * refused with a corruption message, every byte but the corrupt bit as
 * before. */
static void expect_refused(const uint8_t *im, size_t len, enum op op,
                           const char *what, int line)
{
    struct vimg_image *mem = vimg_internal_memory_new(NAME, im, len,
                                                      MAX_FILE);
    struct vimg_open_params p = { .format = "qcow2",
                                  .flags = VIMG_OPEN_RDWR };
    struct vimg_image *img = vimg_internal_open_on(mem, &p);
    size_t after_len;

    if (!img) {
        fprintf(stderr, "line %d: %s: open: %s\n", line, what,
                vimg_get_error());
        test_failures++;
        return;
    }
    int r = run_op(img, op);
    const char *m = vimg_get_error();
    if (r != -1 || vimg_get_errno() != EIO || !m ||
        strncmp(m, NAME ": Marking image as corrupt: ",
                strlen(NAME ": Marking image as corrupt: ")) != 0) {
        fprintf(stderr, "line %d: %s, %s: returned %d, errno %d, '%s'\n",
                line, what, op_names[op], r, vimg_get_errno(),
                r < 0 && m ? m : "");
        test_failures++;
    }
    vimg_flush(img);
    const uint8_t *after = vimg_internal_memory_data(mem, &after_len);
    uint8_t *want = malloc(len);
    memcpy(want, im, len);
    want[QCOW2_HDR_INCOMPATIBLE_FEATURES + 7] |= QCOW2_INCOMPAT_CORRUPT;
    if (after_len != len || memcmp(after, want, len) != 0) {
        size_t i = 0;
        while (i < len && i < after_len && after[i] == want[i]) {
            i++;
        }
        fprintf(stderr, "line %d: %s, %s: the file changed (length %zu -> "
                "%zu, first difference at %zu)\n", line, what,
                op_names[op], len, after_len, i);
        test_failures++;
    }
    free(want);
    vimg_close(img);
}

static uint8_t *edited(void)
{
    uint8_t *im = malloc(base_len);
    memcpy(im, base, base_len);
    return im;
}

/* Guest cluster 0 pointing at each metadata cluster, compressed or as a
 * plain cluster that is not exclusively ours (so it is replaced and
 * released rather than written in place). */
static void test_entries_over_metadata(void)
{
    struct { const char *what; uint64_t e; } cases[] = {
        { "compressed over header and refcount table", compressed(0, 2) },
        { "compressed over the refcount block", compressed(lay.rb, 1) },
        { "compressed over L1", compressed(lay.l1, 1) },
        { "compressed over its own L2", compressed(lay.l2 + 100, 1) },
        { "compressed over L2 and data", compressed(lay.data0 - 8, 2) },
        { "plain over the refcount table", lay.rt },
        { "plain over L1", lay.l1 },
        { "plain over its own L2", lay.l2 },
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        for (enum op op = 0; op < OP_COUNT; op++) {
            uint8_t *im = edited();
            store_be64(im + lay.l2, cases[c].e);
            expect_refused(im, base_len, op, cases[c].what, __LINE__);
            free(im);
        }
    }
}

static void set_refcount(uint8_t *im, uint64_t offset, uint16_t rc)
{
    store_be16(im + lay.rb + 2 * (offset / CS), rc);
}

/* Damaged refcounts: a cluster in use whose refcount is 0 is free to the
 * allocator. A request must not be handed the cluster it then releases
 * (it would free, and punch, what it just wrote), nor metadata. */
static void test_damaged_refcounts(void)
{
    for (enum op op = 0; op < OP_COUNT; op++) {
        uint8_t *im = edited();
        /* Data cluster 0, not exclusively ours, with refcount 0. */
        store_be64(im + lay.l2, lay.data0);
        set_refcount(im, lay.data0, 0);
        expect_refused(im, base_len, op, "data cluster with refcount 0",
                       __LINE__);
        free(im);

        im = edited();
        /* The L2 table, shared (L1 entry not copied, nor the data entry),
         * refcount 0: copying it must not reuse it. */
        store_be64(im + lay.l1, lay.l2);
        store_be64(im + lay.l2, lay.data0);
        set_refcount(im, lay.l2, 0);
        expect_refused(im, base_len, op, "shared L2 table with refcount 0",
                       __LINE__);
        free(im);
    }
    /* Metadata with refcount 0 is never allocated. */
    const uint64_t meta[] = { lay.rt, lay.rb, lay.l1, lay.l2 };
    for (size_t i = 0; i < sizeof meta / sizeof meta[0]; i++) {
        uint8_t *im = edited();
        store_be64(im + lay.l2, 0); /* guest cluster 0 unallocated */
        set_refcount(im, meta[i], 0);
        expect_refused(im, base_len, OP_WRITE, "metadata with refcount 0",
                       __LINE__);
        free(im);
    }
}

/* A compressed span past the end of the file is refused on every path,
 * reads included. */
static void test_span_past_end(void)
{
    uint8_t *im = edited();
    struct vimg_open_params p = { .format = "qcow2" };
    uint8_t buf[CS];

    store_be64(im + lay.l2, compressed(base_len + 10 * CS, 1));
    struct vimg_image *img = vimg_open_buffer(im, base_len, NAME, &p);
    CHECK(img != NULL);
    CHECK_EQ(vimg_pread(img, buf, CS, 0), -1);
    CHECK_ERROR(EIO, NAME ": Marking image as corrupt: compressed cluster");
    vimg_close(img);
    for (enum op op = 0; op < OP_COUNT; op++) {
        expect_refused(im, base_len, op, "compressed span past the end",
                       __LINE__);
    }
    free(im);
}

/* Shrinking drops the tables past the new end and cuts the file after
 * the last cluster in use: neither may free metadata nor cut it off. */
static void test_shrink(void)
{
    struct vimg_open_params p = { .format = "qcow2",
                                  .flags = VIMG_OPEN_RDWR };
    size_t len;

    for (int c = 0; c < 2; c++) {
        uint8_t *im = edited();
        if (c == 0) {
            /* The second table's entry: compressed over the header. */
            store_be64(im + lay.l2b, compressed(0, 2));
        } else {
            /* Refcounts of everything after the L1 table are 0: the file
             * would be cut before the L2 tables. */
            for (uint64_t off = lay.l1 + CS; off < base_len; off += CS) {
                set_refcount(im, off, 0);
            }
        }
        struct vimg_image *mem = vimg_internal_memory_new(NAME, im,
                                                          base_len,
                                                          MAX_FILE);
        struct vimg_image *img = vimg_internal_open_on(mem, &p);
        CHECK(img != NULL);
        if (!img) {
            free(im);
            continue;
        }
        CHECK_EQ(vimg_truncate(img, 32768, VIMG_TRUNCATE_SHRINK,
                               VIMG_PREALLOC_OFF), -1);
        CHECK_ERROR(EIO, NAME ": Marking image as corrupt: ");
        const uint8_t *after = vimg_internal_memory_data(mem, &len);
        CHECK_EQ(len, base_len);
        /* Only the corrupt bit changes, and the size field once the
         * tables are dropped (the cut comes after). */
        for (size_t i = 0; len == base_len && i < len; i++) {
            uint8_t want = im[i];
            if (i == QCOW2_HDR_INCOMPATIBLE_FEATURES + 7) {
                want |= QCOW2_INCOMPAT_CORRUPT;
            }
            if (c == 1 && i >= QCOW2_HDR_SIZE && i < QCOW2_HDR_SIZE + 8) {
                continue;
            }
            if (after[i] != want) {
                fprintf(stderr, "shrink case %d: byte %zu changed\n", c, i);
                test_failures++;
                break;
            }
        }
        vimg_close(img);
        free(im);
    }
}

/* The base image itself takes every request. */
static void test_honest_image(void)
{
    for (enum op op = 0; op < OP_COUNT; op++) {
        struct vimg_open_params p = { .format = "qcow2",
                                      .flags = VIMG_OPEN_RDWR };
        struct vimg_image *img = vimg_open_buffer(base, base_len, NAME, &p);
        struct vimg_check_result res;
        CHECK(img != NULL);
        CHECK_EQ(run_op(img, op), 0);
        CHECK_EQ(vimg_check(img, 0, &res, NULL, NULL), 0);
        CHECK_EQ(res.corruptions, 0);
        CHECK_EQ(res.check_errors, 0);
        CHECK_EQ(vimg_close(img), 0);
    }
}

int main(void)
{
    make_base();
    if (!base) {
        TEST_MAIN_END();
    }
    test_honest_image();
    test_entries_over_metadata();
    test_damaged_refcounts();
    test_span_past_end();
    test_shrink();
    free(base);
    TEST_MAIN_END();
}
