/* The Parallels driver on byte buffers and small files: images with both
 * magics read and mapped, hostile headers and BATs in exactly-sized
 * buffers (errno and message), the in-use mark set by a writer and cleared
 * by its close, new BAT entries written only after their data, check's
 * findings and repairs, and randomised writes checked against a model
 * after reopening. */
#define _GNU_SOURCE /* strcasestr */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/rounding.h"
#include "formats/parallels-ondisk.h"
#include "internal.h"
#include "test-refused.h"
#include "test.h"

#define NAME "hostile.hdd"
#define CL 4096u
/* Header, an 8-entry BAT, data at 4096: guest cluster 2 in the first
 * data cluster, guest cluster 5 in the second; the disk is 7.5 clusters. */
#define LEN (3u * CL)

static uint8_t *image(bool old_magic)
{
    uint8_t *b = calloc(1, LEN);
    uint32_t unit = old_magic ? 1 : CL / 512;

    memcpy(b + PRL_MAGIC, old_magic ? PRL_MAGIC_OLD : PRL_MAGIC_EXT,
           PRL_MAGIC_LEN);
    store_le32(b + PRL_VERSION, PRL_VERSION_2);
    store_le32(b + PRL_TRACKS, CL / 512);
    store_le32(b + PRL_BAT_ENTRIES, 8);
    store_le64(b + PRL_NB_SECTORS, 15 * CL / 2 / 512);
    store_le32(b + PRL_DATA_OFF, CL / 512);
    store_le32(b + PRL_BAT + 2 * 4, CL / 512 / unit);
    store_le32(b + PRL_BAT + 5 * 4, 2 * CL / 512 / unit);
    memset(b + CL, 0x5a, CL);
    memset(b + 2 * CL, 0xa5, CL);
    return b;
}

static void test_valid(void)
{
    for (int old = 0; old < 2; old++) {
        uint8_t *b = image(old);
        struct vimg_open_params p = { .format = "parallels" };
        struct vimg_image *img = vimg_open_buffer(b, LEN, NAME, &p);
        struct vimg_extent e;
        uint8_t buf[2 * CL];

        CHECK(img != NULL);
        if (!img) {
            free(b);
            continue;
        }
        CHECK_EQ(vimg_get_size(img), 15 * CL / 2);
        CHECK_EQ(vimg_pread(img, buf, sizeof buf, CL), 0);
        CHECK(buf[0] == 0 && buf[CL - 1] == 0);
        CHECK(buf[CL] == 0x5a && buf[2 * CL - 1] == 0x5a);
        CHECK_EQ(vimg_pread(img, buf, CL, 5 * CL), 0);
        CHECK(buf[0] == 0xa5 && buf[CL - 1] == 0xa5);
        CHECK_EQ(vimg_block_status(img, 0, 15 * CL / 2, 0, &e), 0);
        CHECK_EQ(e.length, 2 * CL);
        CHECK_EQ(e.flags, 0); /* not in this layer */
        CHECK_EQ(vimg_block_status(img, 2 * CL + 7, CL, 0, &e), 0);
        CHECK_EQ(e.length, CL - 7);
        CHECK_EQ(e.file_offset, CL + 7);
        CHECK_EQ(e.flags & VIMG_BS_DATA, VIMG_BS_DATA);
        vimg_close(img);
        free(b);
    }
}

#define REFUSED(b, len, err, word) \
    test_expect_refused("parallels", NAME, b, len, err, word, __LINE__)

static void test_hostile(void)
{
    uint8_t *b;

    REFUSED(image(false), 63, EINVAL, "too small");
    b = image(false);
    b[PRL_MAGIC] = 'w';
    REFUSED(b, LEN, EINVAL, "bad magic");
    b = image(false);
    store_le32(b + PRL_VERSION, 1);
    REFUSED(b, LEN, ENOTSUP, "version 1");
    b = image(false);
    store_le32(b + PRL_TRACKS, 0);
    REFUSED(b, LEN, EINVAL, "cluster size of 0 sectors");
    b = image(false);
    store_le32(b + PRL_TRACKS, UINT32_MAX);
    REFUSED(b, LEN, EFBIG, "out of range");
    b = image(false);
    store_le32(b + PRL_BAT_ENTRIES, UINT32_MAX);
    REFUSED(b, LEN, EFBIG, "BAT is too large");
    b = image(false);
    /* Within the cap, but a BAT longer than the file. */
    store_le32(b + PRL_BAT_ENTRIES, 1u << 20);
    REFUSED(b, LEN, EINVAL, "BAT (1048576 entries) lies past the end");
    b = image(false);
    store_le64(b + PRL_NB_SECTORS, UINT64_MAX);
    REFUSED(b, LEN, EINVAL, "too small for the disk size");
    b = image(false);
    store_le32(b + PRL_INUSE, 1);
    REFUSED(b, LEN, EINVAL, "in-use flag 0x00000001");
    b = image(false);
    store_le32(b + PRL_DATA_OFF, 100);
    REFUSED(b, LEN, EINVAL, "data area at 0xc800 lies past the end");
    b = image(false);
    store_le32(b + PRL_BAT_ENTRIES, 200);
    store_le32(b + PRL_DATA_OFF, 1);
    REFUSED(b, LEN, EINVAL, "overlaps the BAT");
    b = image(false);
    store_le32(b + PRL_BAT + 7 * 4, 3);
    REFUSED(b, LEN, EINVAL, "BAT entry 7 points at 0x3000, past the end");
    b = image(true);
    store_le32(b + PRL_BAT + 4, 1);
    REFUSED(b, LEN, EINVAL, "BAT entry 1 points at 0x200, into the header");
    /* The last cluster's last byte is missing. */
    REFUSED(image(false), LEN - 1, EINVAL, "BAT entry 5 points at 0x2000");
    /* The old magic ignores the size's high half; the new one does not. */
    b = image(true);
    store_le64(b + PRL_NB_SECTORS, (1ull << 32) | 8);
    struct vimg_image *img = vimg_open_buffer(
        b, LEN, NAME, &(struct vimg_open_params){ .format = "parallels" });
    CHECK(img != NULL);
    if (img) {
        CHECK_EQ(vimg_get_size(img), 4096);
        vimg_close(img);
    }
    store_le64(b + PRL_NB_SECTORS, (1ull << 32) | 8);
    memcpy(b + PRL_MAGIC, PRL_MAGIC_EXT, PRL_MAGIC_LEN);
    REFUSED(b, LEN, EINVAL, "too small for the disk size");
}

/* ---- Write order ---------------------------------------------------- */

struct seen {
    int data_at, bat_at, n;
};

static void observe(void *opaque, enum vimg_memory_op op, uint64_t offset,
                    uint64_t len, unsigned flags)
{
    struct seen *s = opaque;

    (void)len;
    s->n++;
    if (op != VIMG_MEMORY_WRITE) {
        return;
    }
    if (offset >= 3 * CL && !(flags & VIMG_INTERNAL_WRITE_METADATA)) {
        s->data_at = s->n;
    }
    if (offset >= PRL_BAT && offset < PRL_BAT + 32 &&
        (flags & VIMG_INTERNAL_WRITE_METADATA)) {
        s->bat_at = s->n;
    }
}

static void test_write_order(void)
{
    uint8_t *b = image(false);
    struct vimg_image *mem = vimg_internal_memory_new(NAME, b, LEN,
                                                      LEN + 4 * CL);
    struct vimg_open_params p = { .format = "parallels",
                                  .flags = VIMG_OPEN_RDWR };
    struct seen seen = { 0 };
    const uint8_t *d;
    size_t len;
    uint8_t byte = 0x77;

    struct vimg_image *img = vimg_internal_open_on(mem, &p);
    CHECK(img != NULL);
    if (!img) {
        free(b);
        return;
    }
    d = vimg_internal_memory_data(mem, &len);
    CHECK_EQ(load_le32(d + PRL_INUSE), PRL_INUSE_OPEN);
    vimg_internal_memory_observe(mem, observe, &seen);
    CHECK_EQ(vimg_pwrite(img, &byte, 1, 0, 0), 0);
    CHECK_EQ(seen.bat_at, 0);
    CHECK_EQ(vimg_flush(img), 0);
    CHECK(seen.data_at > 0 && seen.bat_at > seen.data_at);
    d = vimg_internal_memory_data(mem, &len);
    CHECK_EQ(len, 4 * CL);
    CHECK_EQ(load_le32(d + PRL_BAT), 3 * CL / 512 / (CL / 512));
    CHECK_EQ(d[3 * CL], 0x77);
    vimg_internal_memory_observe(mem, NULL, NULL);
    vimg_close(img);
    free(b);
}

/* ---- Files: the in-use mark, check, random writes ------------------- */

static uint32_t inuse_on_disk(const char *path)
{
    uint8_t v[4] = { 0 };
    int fd = open(path, O_RDONLY);

    CHECK(fd >= 0 && pread(fd, v, 4, PRL_INUSE) == 4);
    if (fd >= 0) {
        close(fd);
    }
    return load_le32(v);
}

static int reports;
static void count_report(void *opaque, const char *msg)
{
    (void)opaque;
    CHECK(strncmp(msg, "ERROR ", 6) == 0 ||
          strncmp(msg, "Repairing ", 10) == 0);
    reports++;
}

static void test_inuse_and_check(const char *dir)
{
    char *path;
    struct vimg_create_params cp = { .format = "parallels", .size = 1 << 20,
                                     .size_given = true,
                                     .options = "cluster_size=4k" };
    struct vimg_open_params rw = { .format = "parallels",
                                   .flags = VIMG_OPEN_RDWR };
    struct vimg_check_result res;
    uint8_t buf[CL];
    struct vimg_image *img;

    CHECK(asprintf(&path, "%s/u.hdd", dir) > 0);
    CHECK_EQ(vimg_create(path, &cp), 0);
    img = vimg_open(path, &rw);
    CHECK(img != NULL);
    if (!img) {
        free(path);
        return;
    }
    CHECK_EQ(inuse_on_disk(path), PRL_INUSE_OPEN);
    memset(buf, 0x42, sizeof buf);
    CHECK_EQ(vimg_pwrite(img, buf, CL, 0, 0), 0);
    CHECK_EQ(vimg_pwrite(img, buf, CL, 8 * CL, 0), 0);
    /* Not closed: the mark stays, and a writer is refused. */
    CHECK_EQ(vimg_flush(img), 0);
    struct vimg_image *second = vimg_open(path, &(struct vimg_open_params){
        .format = "parallels", .flags = VIMG_OPEN_RDWR | VIMG_OPEN_NO_LOCK });
    CHECK(second == NULL);
    CHECK_ERROR(EACCES, path);
    CHECK_EQ(vimg_close(img), 0);
    CHECK_EQ(inuse_on_disk(path), 0);

    /* Entry 8 made to share entry 0's cluster, and the mark left set. */
    int fd = open(path, O_RDWR);
    uint8_t e[4];
    CHECK(fd >= 0 && pread(fd, e, 4, PRL_BAT) == 4);
    CHECK(pwrite(fd, e, 4, PRL_BAT + 8 * 4) == 4);
    store_le32(e, PRL_INUSE_OPEN);
    CHECK(pwrite(fd, e, 4, PRL_INUSE) == 4);
    close(fd);
    img = vimg_open(path, &(struct vimg_open_params){
        .format = "parallels", .flags = VIMG_OPEN_RDWR | VIMG_OPEN_CHECK });
    CHECK(img != NULL);
    if (img) {
        reports = 0;
        CHECK_EQ(vimg_check(img, 0, &res, count_report, NULL), 0);
        /* In use, the shared cluster, and the orphaned one leaked. */
        CHECK_EQ(res.corruptions, 2);
        CHECK_EQ(res.leaks, 1);
        CHECK_EQ(reports, 3);
        CHECK_EQ(vimg_check(img, VIMG_CHECK_FIX_LEAKS |
                            VIMG_CHECK_FIX_ERRORS, &res, NULL, NULL), 0);
        CHECK_EQ(res.corruptions_fixed, 2);
        CHECK_EQ(vimg_check(img, 0, &res, NULL, NULL), 0);
        CHECK_EQ(res.corruptions + res.leaks, 0);
        CHECK_EQ(vimg_pread(img, buf, CL, 8 * CL), 0);
        CHECK(buf[0] == 0x42 && buf[CL - 1] == 0x42);
        CHECK_EQ(vimg_close(img), 0);
    }
    CHECK_EQ(inuse_on_disk(path), 0);
    unlink(path);
    free(path);
}

static uint64_t rng = 13;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void test_random(const char *dir)
{
    char *path;
    struct vimg_create_params cp = { .format = "parallels", .size = 3000000,
                                     .size_given = true,
                                     .options = "cluster_size=64k" };
    CHECK(asprintf(&path, "%s/rw.hdd", dir) > 0);
    CHECK_EQ(vimg_create(path, &cp), 0);
    struct vimg_image *img = vimg_open(path, &(struct vimg_open_params){
        .format = "parallels", .flags = VIMG_OPEN_RDWR });
    CHECK(img != NULL);
    if (!img) {
        free(path);
        return;
    }
    uint64_t size = (uint64_t)vimg_get_size(img);
    uint8_t *model = calloc(1, size), *buf = malloc(size);
    struct vimg_check_result res;
    for (int i = 0; i < 200; i++) {
        uint64_t off = next_rand() % size;
        uint64_t n = 1 + next_rand() % (200u << 10);
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
    img = vimg_open(path, &(struct vimg_open_params){ .format = "parallels" });
    CHECK(img != NULL);
    if (img) {
        memset(buf, 0xee, size);
        CHECK_EQ(vimg_pread(img, buf, size, 0), 0);
        CHECK(memcmp(buf, model, size) == 0);
        CHECK_EQ(vimg_check(img, 0, &res, NULL, NULL), 0);
        CHECK_EQ(res.corruptions + res.leaks, 0);
        vimg_close(img);
    }
    unlink(path);
    free(path);
    free(model);
    free(buf);
}

int main(void)
{
    char dir[] = "/tmp/vimg-parallels-XXXXXX";

    test_valid();
    test_hostile();
    test_write_order();
    CHECK(mkdtemp(dir) != NULL);
    test_inuse_and_check(dir);
    test_random(dir);
    rmdir(dir);
    TEST_MAIN_END();
}
