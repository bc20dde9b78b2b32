/* The VDI driver on byte buffers and small files: a valid image read and
 * mapped, hostile headers and block maps in exactly-sized buffers (errno
 * and message), check's three findings, and randomised writes and zeroes
 * on new dynamic and static images checked against a model after
 * reopening. */
#define _GNU_SOURCE /* strcasestr */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/rounding.h"
#include "formats/vdi-ondisk.h"
#include "internal.h"
#include "test-refused.h"
#include "test.h"

#define NAME "hostile.vdi"
#define MIB 0x100000u
/* Header, a one-sector map of 4 entries at 512, block 0 at 1024 holding
 * guest block 2. */
#define LEN (1024u + MIB)

static uint8_t *image(void)
{
    uint8_t *b = calloc(1, LEN);
    store_le32(b + VDI_SIGNATURE, VDI_MAGIC);
    store_le32(b + VDI_VERSION, VDI_VERSION_1_1);
    store_le32(b + VDI_HDR_SIZE, VDI_HDR_SIZE_1_1);
    store_le32(b + VDI_IMAGE_TYPE, VDI_TYPE_DYNAMIC);
    store_le32(b + VDI_OFFSET_BMAP, 512);
    store_le32(b + VDI_OFFSET_DATA, 1024);
    store_le32(b + VDI_SECTOR_SIZE, 512);
    store_le64(b + VDI_DISK_SIZE, 4 * MIB - 1000); /* odd: rounded up */
    store_le32(b + VDI_BLOCK_SIZE, MIB);
    store_le32(b + VDI_BLOCKS_IN_IMAGE, 4);
    store_le32(b + VDI_BLOCKS_ALLOCATED, 1);
    for (int i = 0; i < 4; i++) {
        store_le32(b + 512 + 4 * i, i == 2 ? 0 : VDI_UNALLOCATED);
    }
    store_le32(b + 512 + 4 * 3, VDI_DISCARDED);
    memset(b + 1024, 0x5a, MIB);
    return b;
}

static void test_valid(void)
{
    uint8_t *b = image();
    struct vimg_open_params p = { .format = "vdi" };
    struct vimg_image *img = vimg_open_buffer(b, LEN, NAME, &p);
    struct vimg_extent e;
    uint8_t buf[4096];

    CHECK(img != NULL);
    if (img) {
        CHECK_EQ(vimg_get_size(img), 4 * MIB - 512);
        CHECK_EQ(vimg_pread(img, buf, sizeof buf, 2 * MIB - 2048), 0);
        CHECK(buf[0] == 0 && buf[2047] == 0);
        CHECK(buf[2048] == 0x5a && buf[4095] == 0x5a);
        CHECK_EQ(vimg_block_status(img, 0, 4 * MIB - 512, 0, &e), 0);
        CHECK_EQ(e.length, 2 * MIB);
        CHECK_EQ(e.flags, VIMG_BS_ZERO | VIMG_BS_ALLOCATED);
        CHECK_EQ(vimg_block_status(img, 2 * MIB + 7, MIB, 0, &e), 0);
        CHECK_EQ(e.length, MIB - 7);
        CHECK_EQ(e.file_offset, 1024 + 7);
        /* The discarded block reads as zeros too. */
        CHECK_EQ(vimg_pread(img, buf, sizeof buf, 3 * MIB), 0);
        CHECK(buf[0] == 0 && buf[4095] == 0);
        vimg_close(img);
    }
    free(b);
}

#define REFUSED(b, len, err, word) \
    test_expect_refused("vdi", NAME, b, len, err, word, __LINE__)

static void test_hostile(void)
{
    uint8_t *b;

    b = image();
    REFUSED(b, 511, EINVAL, "too small");
    b = image();
    store_le32(b + VDI_SIGNATURE, 0);
    REFUSED(b, LEN, EINVAL, "signature");
    b = image();
    store_le32(b + VDI_VERSION, 0x00010000);
    REFUSED(b, LEN, ENOTSUP, "version 1.0");
    b = image();
    store_le32(b + VDI_IMAGE_TYPE, 3);
    REFUSED(b, LEN, ENOTSUP, "type 3");
    b = image();
    b[VDI_UUID_LINK + 15] = 1;
    REFUSED(b, LEN, ENOTSUP, "differencing");
    b = image();
    store_le64(b + VDI_DISK_SIZE, UINT64_MAX);
    REFUSED(b, LEN, ENOTSUP, "size");
    b = image();
    store_le32(b + VDI_BLOCK_SIZE, MIB / 2);
    REFUSED(b, LEN, ENOTSUP, "block size");
    b = image();
    store_le32(b + VDI_SECTOR_SIZE, 4096);
    REFUSED(b, LEN, ENOTSUP, "sector size");
    b = image();
    store_le32(b + VDI_OFFSET_DATA, 1000);
    REFUSED(b, LEN, ENOTSUP, "aligned");
    b = image();
    store_le32(b + VDI_BLOCKS_IN_IMAGE, 3);
    REFUSED(b, LEN, EINVAL, "too small for the disk size");
    b = image();
    store_le32(b + VDI_BLOCKS_IN_IMAGE, 0xffffffff);
    REFUSED(b, LEN, EFBIG, "too large");
    b = image();
    /* Within the cap: the map would run past the end of the file. */
    store_le32(b + VDI_BLOCKS_IN_IMAGE, 1u << 20);
    store_le32(b + VDI_OFFSET_DATA, 8u << 20);
    REFUSED(b, LEN, EINVAL, "outside the file");
    b = image();
    store_le32(b + VDI_OFFSET_BMAP, 0);
    REFUSED(b, LEN, EINVAL, "over the header");
    b = image();
    store_le32(b + VDI_OFFSET_DATA, 512);
    REFUSED(b, LEN, EINVAL, "overlaps the block map");
    b = image();
    store_le32(b + 512, 1);
    REFUSED(b, LEN, EINVAL, "past the end of the file");
    /* The allocated block's last byte is missing. */
    b = image();
    REFUSED(b, LEN - 1, EINVAL, "past the end of the file");
}

static int reports;
static void count_report(void *opaque, const char *msg)
{
    (void)opaque;
    CHECK(strncmp(msg, "ERROR: ", 7) == 0);
    reports++;
}

static void test_check(void)
{
    uint8_t *b = image();
    struct vimg_open_params p = { .format = "vdi" };
    struct vimg_check_result res;
    struct vimg_image *img;

    /* Guest block 0 shares data block 0 with guest block 2, and the
     * header's count is 1 where the map holds 2. */
    store_le32(b + 512, 0);
    img = vimg_open_buffer(b, LEN, NAME, &p);
    CHECK(img != NULL);
    if (img) {
        reports = 0;
        CHECK_EQ(vimg_check(img, 0, &res, count_report, NULL), 0);
        CHECK_EQ(res.corruptions, 2);
        CHECK_EQ(reports, 2);
        CHECK_EQ(vimg_check(img, VIMG_CHECK_FIX_ERRORS, &res, NULL, NULL),
                 -1);
        vimg_close(img);
    }
    free(b);
}

/* ---- Randomised writes against a model -------------------------------- */

static uint64_t rng = 11;
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
    struct vimg_create_params cp = { .format = "vdi", .size = 7000000,
                                     .size_given = true,
                                     .options = options };
    CHECK(asprintf(&path, "%s/rw.vdi", dir) > 0);
    CHECK_EQ(vimg_create(path, &cp), 0);
    struct vimg_open_params p = { .format = "vdi", .flags = VIMG_OPEN_RDWR };
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
            CHECK_EQ(vimg_zero(img, off, n, VIMG_ZERO_MAY_UNMAP), 0);
            memset(model + off, 0, n);
        } else {
            memset(model + off, (int)(i + 1), n);
            CHECK_EQ(vimg_pwrite(img, model + off, n, off, 0), 0);
        }
    }
    CHECK_EQ(vimg_pread(img, buf, size, 0), 0);
    CHECK(memcmp(buf, model, size) == 0);
    CHECK_EQ(vimg_close(img), 0);
    img = vimg_open(path, &(struct vimg_open_params){ .format = "vdi" });
    CHECK(img != NULL);
    if (img) {
        memset(buf, 0xee, size);
        CHECK_EQ(vimg_pread(img, buf, size, 0), 0);
        CHECK(memcmp(buf, model, size) == 0);
        CHECK_EQ(vimg_check(img, 0, &res, NULL, NULL), 0);
        CHECK_EQ(res.corruptions, 0);
        vimg_close(img);
    }
    unlink(path);
    free(path);
    free(model);
    free(buf);
}

int main(void)
{
    char dir[] = "/tmp/vimg-vdi-XXXXXX";

    test_valid();
    test_hostile();
    test_check();
    CHECK(mkdtemp(dir) != NULL);
    rw(dir, NULL);
    rw(dir, "static=on");
    rmdir(dir);
    TEST_MAIN_END();
}
