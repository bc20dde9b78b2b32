/* The VHD driver on byte buffers and small files: the size rule (geometry
 * or current size, by creator application and by the force_size_calc
 * option), hostile footers and dynamic headers in exactly-sized buffers
 * (errno and message), and randomised writes and zeroes on new dynamic
 * and fixed disks checked against a model after reopening. */
#define _GNU_SOURCE /* strcasestr */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/rounding.h"
#include "formats/vpc-ondisk.h"
#include "internal.h"
#include "test-refused.h"
#include "test.h"

#define NAME "hostile.vhd"

static uint32_t checksum(const uint8_t *b, size_t len, size_t at)
{
    uint32_t sum = 0;
    for (size_t i = 0; i < len; i++) {
        if (i < at || i >= at + 4) {
            sum += b[i];
        }
    }
    return ~sum;
}

static void seal_footer(uint8_t *f)
{
    store_be32(f + VPC_FTR_CHECKSUM,
               checksum(f, VPC_FOOTER_SIZE, VPC_FTR_CHECKSUM));
}

/* A fixed disk of DATA bytes plus the footer. */
static uint8_t *fixed_disk(size_t data, const char *app, uint16_t c,
                           uint8_t h, uint8_t s, uint64_t current)
{
    uint8_t *b = calloc(1, data + VPC_FOOTER_SIZE);
    uint8_t *f = b + data;
    memcpy(f, VPC_COOKIE, 8);
    store_be64(f + VPC_FTR_DATA_OFFSET, VPC_NO_DATA_OFFSET);
    memcpy(f + VPC_FTR_CREATOR_APP, app, 4);
    store_be64(f + VPC_FTR_CURRENT_SIZE, current);
    store_be16(f + VPC_FTR_CYLINDERS, c);
    f[VPC_FTR_HEADS] = h;
    f[VPC_FTR_SECTORS] = s;
    store_be32(f + VPC_FTR_DISK_TYPE, VPC_TYPE_FIXED);
    seal_footer(f);
    return b;
}

static int64_t size_of(const uint8_t *b, size_t len, const char *opts)
{
    struct vimg_open_params p = { .format = "vpc", .options = opts };
    struct vimg_image *img = vimg_open_buffer(b, len, "size.vhd", &p);
    int64_t n = img ? vimg_get_size(img) : -1;
    if (!img) {
        fprintf(stderr, "%s\n", vimg_get_error());
    }
    vimg_close(img);
    return n;
}

static void test_size_rule(void)
{
    /* 10 x 4 x 17 sectors = 680: the geometry holds less than the 700
     * sectors of current size. */
    size_t data = 700 * 512;
    static const char *const chs_apps[] = { "vpc ", "qemu", "vimg" };
    static const char *const cur_apps[] = { "win ", "qem2", "d2v ", "CTXS" };
    uint8_t *b;

    for (size_t i = 0; i < 3; i++) {
        b = fixed_disk(data, chs_apps[i], 10, 4, 17, data);
        CHECK_EQ(size_of(b, data + 512, NULL), 680 * 512);
        CHECK_EQ(size_of(b, data + 512, "force_size_calc=current_size"),
                 data);
        free(b);
    }
    for (size_t i = 0; i < 4; i++) {
        b = fixed_disk(data, cur_apps[i], 10, 4, 17, data);
        CHECK_EQ(size_of(b, data + 512, NULL), data);
        CHECK_EQ(size_of(b, data + 512, "force_size_calc=chs"), 680 * 512);
        free(b);
    }
    b = fixed_disk(data, "tap", 10, 4, 17, data); /* "tap\0" */
    CHECK_EQ(size_of(b, data + 512, NULL), data);
    free(b);
    /* The largest geometry means "use the current size", even for CHS
     * creators and against force_size_calc=chs. */
    b = fixed_disk(data, "vpc ", 65535, 16, 255, data);
    CHECK_EQ(size_of(b, data + 512, NULL), data);
    CHECK_EQ(size_of(b, data + 512, "force_size_calc=chs"), data);
    free(b);
    /* A current size that is not whole sectors is rounded down. */
    b = fixed_disk(data, "win ", 10, 4, 17, data - 100);
    CHECK_EQ(size_of(b, data + 512, NULL), data - 512);
    struct vimg_open_params p = { .format = "vpc",
                                  .options = "force_size_calc=heads" };
    CHECK(vimg_open_buffer(b, data + 512, NAME, &p) == NULL);
    CHECK_ERROR(EINVAL, NAME ": invalid size calculation mode");
    free(b);
}

/* A dynamic disk as qemu-img lays it out: footer copy, header at 512, BAT
 * at 1536 (4 entries of 4 KiB blocks), block 1 allocated at 2048, footer
 * at the end. */
#define DYN_BLOCK 4096u
#define DYN_LEN (2048u + 512u + DYN_BLOCK + 512u)
#define DYN 512u
#define BAT 1536u

static void seal_dyn(uint8_t *b)
{
    store_be32(b + DYN + VPC_DYN_CHECKSUM,
               checksum(b + DYN, VPC_DYN_SIZE, VPC_DYN_CHECKSUM));
}

static uint8_t *dynamic_disk(void)
{
    uint8_t *b = calloc(1, DYN_LEN);
    uint8_t *f = b;
    memcpy(f, VPC_COOKIE, 8);
    store_be64(f + VPC_FTR_DATA_OFFSET, DYN);
    memcpy(f + VPC_FTR_CREATOR_APP, "qem2", 4);
    store_be64(f + VPC_FTR_CURRENT_SIZE, 4 * DYN_BLOCK);
    store_be16(f + VPC_FTR_CYLINDERS, 65535);
    f[VPC_FTR_HEADS] = 16;
    f[VPC_FTR_SECTORS] = 255;
    store_be32(f + VPC_FTR_DISK_TYPE, VPC_TYPE_DYNAMIC);
    seal_footer(f);
    memcpy(b + DYN_LEN - 512, f, 512);
    memcpy(b + DYN + VPC_DYN_COOKIE, VPC_DYN_COOKIE_STR, 8);
    store_be64(b + DYN + VPC_DYN_DATA_OFFSET, UINT64_MAX);
    store_be64(b + DYN + VPC_DYN_TABLE_OFFSET, BAT);
    store_be32(b + DYN + VPC_DYN_MAX_TABLE_ENTRIES, 4);
    store_be32(b + DYN + VPC_DYN_BLOCK_SIZE, DYN_BLOCK);
    seal_dyn(b);
    memset(b + BAT, 0xff, 16);
    store_be32(b + BAT + 4, 2048 / 512);
    memset(b + 2048, 0xff, 512);
    memset(b + 2560, 0x5a, DYN_BLOCK);
    return b;
}

#define REFUSED(b, len, err, word) \
    test_expect_refused("vpc", NAME, b, len, err, word, __LINE__)

static void test_dynamic_valid(void)
{
    uint8_t *b = dynamic_disk();
    struct vimg_open_params p = { .format = "vpc" };
    struct vimg_image *img = vimg_open_buffer(b, DYN_LEN, NAME, &p);
    uint8_t buf[2 * DYN_BLOCK];
    struct vimg_extent e;

    CHECK(img != NULL);
    if (img) {
        CHECK_EQ(vimg_get_size(img), 4 * DYN_BLOCK);
        CHECK_EQ(vimg_pread(img, buf, sizeof buf, 0), 0);
        CHECK(buf[0] == 0 && buf[DYN_BLOCK - 1] == 0);
        CHECK(buf[DYN_BLOCK] == 0x5a && buf[2 * DYN_BLOCK - 1] == 0x5a);
        CHECK_EQ(vimg_block_status(img, 0, 4 * DYN_BLOCK, 0, &e), 0);
        CHECK_EQ(e.length, DYN_BLOCK);
        CHECK_EQ(e.flags, VIMG_BS_ZERO | VIMG_BS_ALLOCATED);
        CHECK_EQ(vimg_block_status(img, DYN_BLOCK + 512, DYN_BLOCK, 0,
                                   &e), 0);
        CHECK_EQ(e.length, DYN_BLOCK - 512);
        CHECK_EQ(e.file_offset, 2560 + 512);
        CHECK(e.flags & VIMG_BS_DATA);
        CHECK_EQ(vimg_block_status(img, 2 * DYN_BLOCK, 2 * DYN_BLOCK, 0,
                                   &e), 0);
        CHECK_EQ(e.length, 2 * DYN_BLOCK); /* unallocated runs merge */
        vimg_close(img);
    }
    free(b);
}

static void test_hostile(void)
{
    uint8_t *b;

    b = dynamic_disk();
    b[200] ^= 1;
    REFUSED(b, DYN_LEN, EINVAL, "footer at 0x0 has checksum");
    b = dynamic_disk();
    b[DYN + 300] ^= 1;
    REFUSED(b, DYN_LEN, EINVAL, "dynamic disk header at 0x200 has checksum");
    b = dynamic_disk();
    REFUSED(b, 511, EINVAL, "too small");
    b = dynamic_disk();
    b[0] = 'x';
    /* No footer copy, and the one at the end says dynamic. */
    REFUSED(b, DYN_LEN, EINVAL, "disk type 3");
    b = dynamic_disk();
    store_be32(b + VPC_FTR_DISK_TYPE, VPC_TYPE_DIFFERENCING);
    seal_footer(b);
    /* A differencing disk whose header names no parent at all. */
    REFUSED(b, DYN_LEN, ENOENT, "the differencing VHD gives no parent");
    b = dynamic_disk();
    store_be64(b + VPC_FTR_CURRENT_SIZE, 0xff000001ull * 512);
    seal_footer(b);
    REFUSED(b, DYN_LEN, EFBIG, "2040 GiB");
    b = dynamic_disk();
    store_be64(b + VPC_FTR_DATA_OFFSET, DYN_LEN - 1023);
    seal_footer(b);
    REFUSED(b, DYN_LEN, EINVAL, "outside the file");
    b = dynamic_disk();
    store_be64(b + VPC_FTR_DATA_OFFSET, 100);
    seal_footer(b);
    REFUSED(b, DYN_LEN, EINVAL, "outside the file");
    b = dynamic_disk();
    store_be32(b + DYN + VPC_DYN_BLOCK_SIZE, 256);
    seal_dyn(b);
    REFUSED(b, DYN_LEN, EINVAL, "power of two");
    b = dynamic_disk();
    store_be32(b + DYN + VPC_DYN_MAX_TABLE_ENTRIES, 3);
    seal_dyn(b);
    REFUSED(b, DYN_LEN, EINVAL, "too small");
    b = dynamic_disk();
    store_be32(b + DYN + VPC_DYN_MAX_TABLE_ENTRIES, 0xffffffff);
    seal_dyn(b);
    REFUSED(b, DYN_LEN, EFBIG, "too large");
    b = dynamic_disk();
    /* Within the cap but past the end of the file: nothing allocated. */
    store_be32(b + DYN + VPC_DYN_MAX_TABLE_ENTRIES, 16u << 20);
    seal_dyn(b);
    REFUSED(b, DYN_LEN, EINVAL, "outside the file");
    b = dynamic_disk();
    store_be64(b + DYN + VPC_DYN_TABLE_OFFSET, DYN + 8);
    seal_dyn(b);
    REFUSED(b, DYN_LEN, EINVAL, "over the headers");
    b = dynamic_disk();
    store_be32(b + BAT + 8, 0xfffffffe);
    REFUSED(b, DYN_LEN, EINVAL, "past the end of the file");
    b = dynamic_disk();
    store_be32(b + BAT + 8, BAT / 512);
    REFUSED(b, DYN_LEN, EINVAL, "overlaps");
    b = dynamic_disk();
    /* The block's last byte is missing. */
    REFUSED(b, 2048 + 512 + DYN_BLOCK - 1, EINVAL, "past the end");
    /* A fixed disk whose geometry reaches into its footer. */
    b = fixed_disk(4096, "vpc ", 20, 4, 17, 4096);
    REFUSED(b, 4096 + 512, EINVAL, "runs into the footer");
}

/* ---- Randomised writes against a model -------------------------------- */

static uint64_t rng = 7;
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
    struct vimg_create_params cp = { .format = "vpc", .size = 9u << 20,
                                     .size_given = true,
                                     .options = options };
    CHECK(asprintf(&path, "%s/rw.vhd", dir) > 0);
    CHECK_EQ(vimg_create(path, &cp), 0);
    struct vimg_open_params p = { .format = "vpc", .flags = VIMG_OPEN_RDWR };
    struct vimg_image *img = vimg_open(path, &p);
    CHECK(img != NULL);
    if (!img) {
        fprintf(stderr, "%s\n", vimg_get_error());
        free(path);
        return;
    }
    uint64_t size = (uint64_t)vimg_get_size(img);
    uint8_t *model = calloc(1, size), *buf = malloc(size);
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
    img = vimg_open(path, &(struct vimg_open_params){ .format = "vpc" });
    CHECK(img != NULL);
    if (img) {
        memset(buf, 0xee, size);
        CHECK_EQ(vimg_pread(img, buf, size, 0), 0);
        CHECK(memcmp(buf, model, size) == 0);
        vimg_close(img);
    }
    unlink(path);
    free(path);
    free(model);
    free(buf);
}

/* The dynamic disk made differencing: block 1 holds sectors 0-3 (0x5a),
 * the rest is the parent's, named by one locator of platform CODE whose
 * UTF-16LE path PATH lies in the BAT sector's unused tail. */
#define LOC_AT 1600u
static uint8_t *differencing_disk(uint32_t code, const char *path)
{
    uint8_t *b = dynamic_disk();
    uint8_t *l = b + DYN + VPC_DYN_PARENT_LOCATORS;
    size_t n = strlen(path);

    store_be32(b + VPC_FTR_DISK_TYPE, VPC_TYPE_DIFFERENCING);
    seal_footer(b);
    memcpy(b + DYN_LEN - 512, b, 512);
    for (size_t i = 0; i < n; i++) {
        store_le16(b + LOC_AT + 2 * i, (uint8_t)path[i]);
    }
    store_be32(l + VPC_PL_PLATFORM_CODE, code);
    store_be32(l + VPC_PL_DATA_SPACE, 512);
    store_be32(l + VPC_PL_DATA_LENGTH, (uint32_t)(2 * n));
    store_be64(l + VPC_PL_DATA_OFFSET, LOC_AT);
    seal_dyn(b);
    b[2048] = 0xf0; /* most significant bit first: sectors 0-3 */
    return b;
}

static void test_differencing(void)
{
    struct vimg_open_params p = { .format = "vpc" };
    uint8_t *b = differencing_disk(VPC_PLATFORM_W2RU, ".\\sub\\p.vhd");
    uint8_t buf[2048];
    struct vimg_image *img = vimg_open_buffer(b, DYN_LEN, NAME, &p);

    CHECK(img != NULL);
    if (img) {
        CHECK(strcmp(vimg_get_backing_name(img), "sub/p.vhd") == 0);
        CHECK_EQ(vimg_pread(img, buf, 2048, DYN_BLOCK), 0);
        CHECK(buf[0] == 0x5a && buf[2047] == 0x5a);
        /* The parent's sectors: this buffer opened no parent. */
        CHECK_EQ(vimg_pread(img, buf, 512, DYN_BLOCK + 2048), -1);
        CHECK_ERROR(EIO, NAME ": backing file 'sub/p.vhd' was not opened");
        CHECK_EQ(vimg_pread(img, buf, 512, 0), -1);
        vimg_close(img);
    }
    p.flags = VIMG_OPEN_RDWR;
    CHECK(vimg_open_buffer(b, DYN_LEN, NAME, &p) == NULL);
    CHECK_ERROR(ENOTSUP, NAME ": differencing VHD images (with a parent) "
                "can only be opened read-only");
    free(b);
    /* Only a Windows drive path: nothing to open here. */
    REFUSED(differencing_disk(VPC_PLATFORM_W2KU, "C:\\vm\\p.vhd"), DYN_LEN,
            ENOENT, "gives no parent path");
    b = differencing_disk(VPC_PLATFORM_W2RU, "p.vhd");
    store_be64(b + DYN + VPC_DYN_PARENT_LOCATORS + VPC_PL_DATA_OFFSET,
               DYN_LEN - 8);
    seal_dyn(b);
    REFUSED(b, DYN_LEN, EINVAL, "outside the file");
    b = differencing_disk(VPC_PLATFORM_W2RU, "p.vhd");
    store_be32(b + DYN + VPC_DYN_PARENT_LOCATORS + VPC_PL_DATA_LENGTH,
               1u << 20);
    seal_dyn(b);
    REFUSED(b, DYN_LEN, EINVAL, "too long");
}

int main(void)
{
    char dir[] = "/tmp/vimg-vpc-XXXXXX";

    test_size_rule();
    test_dynamic_valid();
    test_hostile();
    test_differencing();
    CHECK(mkdtemp(dir) != NULL);
    rw(dir, NULL);
    rw(dir, "subformat=fixed");
    rw(dir, "force_size=on");
    rmdir(dir);
    TEST_MAIN_END();
}
