/* The QED driver on byte buffers and small files: a valid image read and
 * mapped, hostile headers in exactly-sized buffers (errno and message),
 * randomised writes and zeroes against a model (several tables, reopened,
 * check clean), and a simulated crash: the need-check flag stays on disk
 * and the next writer repairs the image. */
#define _GNU_SOURCE /* strcasestr, asprintf */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/rounding.h"
#include "formats/qed-ondisk.h"
#include "internal.h"
#include "test-refused.h"
#include "test.h"

#define NAME "hostile.qed"
#define CS 4096u
/* Header cluster, L1 (one cluster) at 4 KiB, an L2 table at 8 KiB, one
 * data cluster at 12 KiB holding guest cluster 1; guest cluster 2 is a
 * zero cluster. */
#define LEN (4 * CS)

static uint8_t *image(void)
{
    uint8_t *b = calloc(1, LEN);
    store_le32(b + QED_HDR_MAGIC, QED_MAGIC);
    store_le32(b + QED_HDR_CLUSTER_SIZE, CS);
    store_le32(b + QED_HDR_TABLE_SIZE, 1);
    store_le32(b + QED_HDR_HEADER_SIZE, 1);
    store_le64(b + QED_HDR_L1_TABLE_OFFSET, CS);
    store_le64(b + QED_HDR_IMAGE_SIZE, 64 * CS);
    store_le64(b + CS, 2 * CS);
    store_le64(b + 2 * CS + 8, 3 * CS);
    store_le64(b + 2 * CS + 16, QED_ZERO_CLUSTER);
    memset(b + 3 * CS, 0x5a, CS);
    return b;
}

static void test_valid(void)
{
    uint8_t *b = image();
    struct vimg_open_params p = { .format = "qed" };
    struct vimg_image *img = vimg_open_buffer(b, LEN, NAME, &p);
    struct vimg_extent e;
    uint8_t buf[3 * CS];

    CHECK(img != NULL);
    if (img) {
        CHECK_EQ(vimg_get_size(img), 64 * CS);
        CHECK_EQ(vimg_pread(img, buf, sizeof buf, 0), 0);
        CHECK(buf[0] == 0 && buf[CS - 1] == 0);
        CHECK(buf[CS] == 0x5a && buf[2 * CS - 1] == 0x5a);
        CHECK(buf[2 * CS] == 0 && buf[3 * CS - 1] == 0);
        CHECK_EQ(vimg_block_status(img, 0, 64 * CS, 0, &e), 0);
        CHECK_EQ(e.length, CS);
        CHECK_EQ(e.flags, 0);
        CHECK_EQ(vimg_block_status(img, CS + 7, 63 * CS - 7, 0, &e), 0);
        CHECK_EQ(e.length, CS - 7);
        CHECK_EQ(e.file_offset, 3 * CS + 7);
        CHECK_EQ(vimg_block_status(img, 2 * CS, 62 * CS, 0, &e), 0);
        CHECK_EQ(e.length, CS);
        CHECK_EQ(e.flags, VIMG_BS_ZERO | VIMG_BS_ALLOCATED);
        vimg_close(img);
    }
    free(b);
}

static void expect_refused(uint8_t *b, size_t len, int err, const char *word,
                           int line)
{
    struct vimg_open_params p = { .format = "qed" };
    struct vimg_image *img = vimg_open_buffer(b, len, NAME, &p);
    uint8_t buf[CS];

    /* Table entries are checked when first used: a read fails instead. */
    if (img && vimg_pread(img, buf, sizeof buf, CS) == 0) {
        fprintf(stderr, "line %d: hostile image read\n", line);
        test_failures++;
    } else {
        test_check_refusal(NAME, err, word, line);
    }
    if (img) {
        vimg_close(img);
    }
    free(b);
}
#define REFUSED(b, len, err, word) expect_refused(b, len, err, word, __LINE__)

static void test_hostile(void)
{
    uint8_t *b;

    b = image();
    REFUSED(b, QED_HDR_LENGTH - 1, EINVAL, "too small");
    b = image();
    store_le64(b + QED_HDR_FEATURES, 0x08);
    REFUSED(b, LEN, ENOTSUP, "feature bits 0x8");
    b = image();
    store_le32(b + QED_HDR_CLUSTER_SIZE, CS + 1);
    REFUSED(b, LEN, EINVAL, "cluster size 4097");
    b = image();
    store_le32(b + QED_HDR_TABLE_SIZE, 17);
    REFUSED(b, LEN, EINVAL, "table size 17");
    b = image();
    store_le32(b + QED_HDR_CLUSTER_SIZE, 64u << 20);
    store_le32(b + QED_HDR_TABLE_SIZE, 2);
    REFUSED(b, LEN, EFBIG, "larger than vimg reads");
    b = image();
    store_le32(b + QED_HDR_HEADER_SIZE, 5);
    REFUSED(b, LEN, EINVAL, "header size");
    b = image();
    store_le64(b + QED_HDR_IMAGE_SIZE, 64 * CS + 1);
    REFUSED(b, LEN, EINVAL, "image size");
    b = image();
    /* 512 entries of 512 clusters of 4 KiB: 1 GiB at most. */
    store_le64(b + QED_HDR_IMAGE_SIZE, (1ull << 30) + 512);
    REFUSED(b, LEN, EINVAL, "image size");
    b = image();
    store_le64(b + QED_HDR_L1_TABLE_OFFSET, 4 * CS);
    REFUSED(b, LEN, EINVAL, "L1 table at 0x4000");
    b = image();
    store_le64(b + QED_HDR_FEATURES, QED_F_BACKING_FILE);
    store_le32(b + QED_HDR_BACKING_FILENAME_OFFSET, CS - 2);
    store_le32(b + QED_HDR_BACKING_FILENAME_SIZE, 3);
    REFUSED(b, LEN, EINVAL, "backing file name at 4094");
    b = image();
    store_le64(b + CS, 4 * CS);
    REFUSED(b, LEN, EIO, "L2 table at 0x4000 lies outside");
    b = image();
    store_le64(b + 2 * CS + 8, CS);
    REFUSED(b, LEN, EIO, "data cluster at 0x1000");
    b = image();
    store_le64(b + 2 * CS + 8, 2 * CS);
    REFUSED(b, LEN, EIO, "data cluster at 0x2000");
    /* The data cluster's last byte is missing. */
    b = image();
    REFUSED(b, LEN - 1, EIO, "data cluster at 0x3000");
}

/* ---- Randomised writes against a model -------------------------------- */

static uint64_t rng = 15;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void rw(const char *dir, const char *options)
{
    char *path;
    struct vimg_create_params cp = { .format = "qed", .size = 7000000,
                                     .size_given = true,
                                     .options = options };
    CHECK(asprintf(&path, "%s/rw.qed", dir) > 0);
    CHECK_EQ(vimg_create(path, &cp), 0);
    struct vimg_open_params p = { .format = "qed", .flags = VIMG_OPEN_RDWR };
    struct vimg_image *img = vimg_open(path, &p);
    CHECK(img != NULL);
    if (!img) {
        fprintf(stderr, "%s\n", vimg_get_error());
        free(path);
        return;
    }
    uint64_t size = (uint64_t)vimg_get_size(img);
    uint8_t *model = calloc(1, size), *buf = malloc(size);
    struct vimg_check_result res;
    for (int i = 0; i < 200; i++) {
        uint64_t off = next_rand() % size;
        uint64_t n = 1 + next_rand() % (300u << 10);
        n = MIN(n, size - off);
        if (next_rand() % 4 == 0) {
            CHECK_EQ(vimg_zero(img, off, n, 0), 0);
            memset(model + off, 0, n);
        } else {
            memset(model + off, (int)(i + 1), n);
            CHECK_EQ(vimg_pwrite(img, model + off, n, off, 0), 0);
        }
    }
    CHECK_EQ(vimg_pread(img, buf, size, 0), 0);
    CHECK(memcmp(buf, model, size) == 0);
    CHECK_EQ(vimg_close(img), 0);
    img = vimg_open(path, &(struct vimg_open_params){ .format = "qed" });
    CHECK(img != NULL);
    if (img) {
        memset(buf, 0xee, size);
        CHECK_EQ(vimg_pread(img, buf, size, 0), 0);
        CHECK(memcmp(buf, model, size) == 0);
        CHECK_EQ(vimg_check(img, 0, &res, NULL, NULL), 0);
        CHECK_EQ(res.corruptions, 0);
        CHECK_EQ(res.leaks, 0);
        vimg_close(img);
    }
    unlink(path);
    free(path);
    free(model);
    free(buf);
}

/* A writer that stops (every write failing from the Nth on, as after a
 * crash) leaves the need-check flag on disk; the next writer's repair
 * leaves a clean image that reads what the completed writes wrote. */
static void test_crash(void)
{
    uint8_t *b = image();
    uint8_t data[2 * CS];
    struct vimg_check_result res;
    int crashes = 0;

    memset(data, 0x33, sizeof data);
    for (uint64_t fail = 1; fail < 8; fail++) {
        struct vimg_image *mem = vimg_internal_memory_new(NAME, b, LEN,
                                                          LEN + (1u << 20));
        struct vimg_open_params p = { .format = "qed",
                                      .flags = VIMG_OPEN_RDWR };
        struct vimg_image *img = vimg_internal_open_on(mem, &p);
        size_t len;
        CHECK(img != NULL);
        if (!img) {
            continue;
        }
        /* Two new clusters: flag, data, L2 entries, each may fail. */
        vimg_internal_memory_fail_after(mem, fail);
        int w = vimg_pwrite(img, data, sizeof data, 40 * CS, 0);
        const uint8_t *d = vimg_internal_memory_data(mem, &len);
        uint8_t *copy = malloc(len);
        memcpy(copy, d, len);
        vimg_close(img);
        /* The write got through before the failures began. */
        if (w == 0) {
            free(copy);
            continue;
        }
        crashes++;
        CHECK(copy[QED_HDR_FEATURES] & QED_F_NEED_CHECK || fail == 1);
        mem = vimg_internal_memory_new(NAME, copy, len, len + (1u << 20));
        img = vimg_internal_open_on(mem, &p);
        CHECK(img != NULL);
        if (img) {
            CHECK_EQ(vimg_check(img, 0, &res, NULL, NULL), 0);
            CHECK_EQ(res.corruptions, 0);
            const uint8_t *h = vimg_internal_memory_data(mem, &len);
            CHECK(!(h[QED_HDR_FEATURES] & QED_F_NEED_CHECK));
            CHECK_EQ(vimg_pwrite(img, data, sizeof data, 40 * CS, 0), 0);
            vimg_close(img);
        }
        free(copy);
    }
    /* The flag, the data and the entries were each interrupted. */
    CHECK(crashes >= 3);
    free(b);
}

int main(void)
{
    char dir[] = "/tmp/vimg-qed-XXXXXX";

    test_valid();
    test_hostile();
    test_crash();
    CHECK(mkdtemp(dir) != NULL);
    rw(dir, NULL);
    rw(dir, "cluster_size=4k,table_size=1");
    rw(dir, "cluster_size=16k,table_size=2");
    rmdir(dir);
    TEST_MAIN_END();
}
