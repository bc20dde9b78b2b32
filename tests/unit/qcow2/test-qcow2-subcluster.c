/* Extended L2 entries: the subcluster range logic on bitmaps (types, run
 * lengths, invalid combinations), and the bitmaps the driver writes for
 * subcluster writes and zero writes, read back from the file. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "formats/qcow2/qcow2.h"
#include "test.h"

static void check_range(const struct qcow2_state *s, enum qcow2_ctype ct,
                        uint64_t bm, unsigned sc, enum qcow2_ctype want,
                        unsigned want_n)
{
    enum qcow2_ctype t;
    unsigned n;
    CHECK(qcow2_sc_range(s, ct, bm, sc, &t, &n));
    CHECK_EQ(t, want);
    CHECK_EQ(n, want_n);
}

static void test_bits(void)
{
    CHECK_EQ(qcow2_sc_bits(0, 0), 0);
    CHECK_EQ(qcow2_sc_bits(0, 1), 1);
    CHECK_EQ(qcow2_sc_bits(3, 2), 0x18);
    CHECK_EQ(qcow2_sc_bits(0, 32), 0xffffffffull);
    CHECK_EQ(qcow2_sc_bits(31, 1), 0x80000000ull);
}

static void test_ranges(void)
{
    struct qcow2_state plain = { .ext_l2 = false };
    struct qcow2_state ext = { .ext_l2 = true };
    enum qcow2_ctype t;
    unsigned n;

    /* Without extended entries a cluster is one subcluster. */
    check_range(&plain, QCOW2_C_ZERO_ALLOC, 0, 0, QCOW2_C_ZERO_ALLOC, 1);
    check_range(&plain, QCOW2_C_NORMAL, 0, 0, QCOW2_C_NORMAL, 1);

    /* Allocated 0-3, zeros 8-9, the rest not allocated in the cluster. */
    uint64_t bm = 0xfull | (0x300ull << 32);
    check_range(&ext, QCOW2_C_NORMAL, bm, 0, QCOW2_C_NORMAL, 4);
    check_range(&ext, QCOW2_C_NORMAL, bm, 2, QCOW2_C_NORMAL, 2);
    check_range(&ext, QCOW2_C_NORMAL, bm, 4, QCOW2_C_UNALLOC_ALLOC, 4);
    check_range(&ext, QCOW2_C_NORMAL, bm, 8, QCOW2_C_ZERO_ALLOC, 2);
    check_range(&ext, QCOW2_C_NORMAL, bm, 10, QCOW2_C_UNALLOC_ALLOC, 22);
    check_range(&ext, QCOW2_C_NORMAL, bm, 31, QCOW2_C_UNALLOC_ALLOC, 1);
    check_range(&ext, QCOW2_C_NORMAL, QCOW2_EXTL2_ALL_ALLOC, 0,
                QCOW2_C_NORMAL, 32);
    check_range(&ext, QCOW2_C_NORMAL, QCOW2_EXTL2_ALL_ZERO, 5,
                QCOW2_C_ZERO_ALLOC, 27);

    /* No host cluster: zeros or the backing file. */
    check_range(&ext, QCOW2_C_UNALLOC, 0x1ull << 33, 0, QCOW2_C_UNALLOC, 1);
    check_range(&ext, QCOW2_C_UNALLOC, 0x1ull << 33, 1, QCOW2_C_ZERO_PLAIN,
                1);
    check_range(&ext, QCOW2_C_UNALLOC, 0, 7, QCOW2_C_UNALLOC, 25);

    /* Compressed: the whole cluster, bitmap 0. */
    check_range(&ext, QCOW2_C_COMPRESSED, 0, 3, QCOW2_C_COMPRESSED, 29);

    /* Invalid: allocated and zero (anywhere in the entry, even away from
     * the subcluster asked about), allocation without a host cluster,
     * any bit of a compressed cluster's bitmap. */
    CHECK(!qcow2_sc_range(&ext, QCOW2_C_NORMAL, 0x4ull | (0x4ull << 32), 0,
                          &t, &n));
    CHECK(qcow2_sc_range(&ext, QCOW2_C_NORMAL, 0x4ull | (0x8ull << 32), 0,
                         &t, &n));
    CHECK(!qcow2_sc_range(&ext, QCOW2_C_UNALLOC, 0x80000000ull, 0, &t, &n));
    CHECK(!qcow2_sc_range(&ext, QCOW2_C_COMPRESSED, 1ull << 40, 0, &t, &n));
    CHECK(!qcow2_sc_range(&ext, QCOW2_C_COMPRESSED, 1, 0, &t, &n));
}

/* The bitmap of guest cluster 0's entry, read from the file at PATH. */
static uint64_t bitmap0(const char *path, uint64_t *entry)
{
    uint8_t b[16];
    int fd = open(path, O_RDONLY);
    uint64_t bm = 0;

    *entry = 0;
    CHECK(fd >= 0);
    if (fd < 0) {
        return 0;
    }
    CHECK_EQ(pread(fd, b, 8, QCOW2_HDR_L1_TABLE_OFFSET), 8);
    uint64_t l1 = load_be64(b);
    CHECK_EQ(pread(fd, b, 8, (off_t)l1), 8);
    uint64_t l2 = load_be64(b) & QCOW2_L1E_OFFSET_MASK;
    if (l2) {
        CHECK_EQ(pread(fd, b, 16, (off_t)l2), 16);
        *entry = load_be64(b);
        bm = load_be64(b + 8);
    }
    close(fd);
    return bm;
}

/* Writes allocate only the subclusters they touch, partial ones
 * completed; zero writes of whole subclusters set their zero bits; a
 * compressed cluster gets bitmap 0. 16 KiB clusters: 512-byte
 * subclusters. */
static void test_driver(const char *dir)
{
    char *path;
    uint8_t buf[4096], out[4096];
    uint64_t e;

    CHECK(asprintf(&path, "%s/sc.qcow2", dir) > 0);
    struct vimg_create_params cp = { .format = "qcow2", .size = 1 << 20,
                                     .size_given = true,
                                     .options = "extended_l2=on,"
                                                "cluster_size=16384" };
    CHECK_EQ(vimg_create(path, &cp), 0);
    struct vimg_open_params op = { .format = "qcow2",
                                   .flags = VIMG_OPEN_RDWR };
    struct vimg_image *img = vimg_open(path, &op);
    CHECK(img != NULL);
    if (!img) {
        free(path);
        return;
    }
    memset(buf, 0xab, sizeof buf);
    /* Subcluster 3 whole, 5 in part. */
    CHECK_EQ(vimg_pwrite(img, buf, 512, 3 * 512, 0), 0);
    CHECK_EQ(vimg_pwrite(img, buf, 100, 5 * 512 + 200, 0), 0);
    CHECK_EQ(vimg_flush(img), 0);
    CHECK_EQ(bitmap0(path, &e), 0x28);
    CHECK(e & QCOW2_L2E_COPIED);
    /* Zeros over 3-4 (allocated, then not), and a partial subcluster 6
     * (written as data). */
    CHECK_EQ(vimg_zero(img, 3 * 512, 1024, 0), 0);
    CHECK_EQ(vimg_zero(img, 6 * 512, 100, 0), 0);
    CHECK_EQ(vimg_flush(img), 0);
    CHECK_EQ(bitmap0(path, &e), 0x60 | (0x18ull << 32));
    CHECK_EQ(vimg_pread(img, out, 4096, 0), 0);
    for (unsigned i = 0; i < 4096; i++) {
        uint8_t want = i >= 5 * 512 + 200 && i < 5 * 512 + 300 ? 0xab : 0;
        if (out[i] != want) {
            fprintf(stderr, "byte %u: %#x, want %#x\n", i, out[i], want);
            CHECK(out[i] == want);
            break;
        }
    }
    /* Block status by the subcluster: 3-4 zero, 5-6 data. */
    struct vimg_extent x;
    CHECK_EQ(vimg_block_status(img, 3 * 512, 4096, 0, &x), 0);
    CHECK_EQ(x.length, 1024);
    CHECK(x.flags & VIMG_BS_ZERO);
    CHECK_EQ(vimg_block_status(img, 5 * 512, 4096, 0, &x), 0);
    CHECK_EQ(x.length, 1024);
    CHECK(x.flags & VIMG_BS_DATA);
    CHECK_EQ(vimg_close(img), 0);

    /* A compressed cluster over one with zero bits: bitmap 0. */
    img = vimg_open(path, &op);
    CHECK(img != NULL);
    if (img) {
        uint8_t *c = calloc(1, 16384);
        CHECK_EQ(vimg_discard(img, 0, 16384), 0);
        CHECK_EQ(vimg_zero(img, 0, 1024, 0), 0);
        CHECK(c != NULL);
        if (c) {
            CHECK_EQ(vimg_write_compressed(img, c, 16384, 0), 0);
        }
        CHECK_EQ(vimg_close(img), 0);
        free(c);
        CHECK_EQ(bitmap0(path, &e), 0);
        CHECK(e & QCOW2_L2E_COMPRESSED);
    }
    unlink(path);
    free(path);
}

/* A hostile entry of ours (copied flag set) pointing at the L1 table,
 * with no subcluster allocated: a write into it is refused as an
 * in-place write onto metadata is, and the table stays as it was. */
static void test_hostile_keep(const char *dir)
{
    char *path;
    uint8_t buf[512], l1[16], after[16];

    CHECK(asprintf(&path, "%s/hostile.qcow2", dir) > 0);
    struct vimg_create_params cp = { .format = "qcow2", .size = 1 << 20,
                                     .size_given = true,
                                     .options = "extended_l2=on,"
                                                "cluster_size=16384" };
    CHECK_EQ(vimg_create(path, &cp), 0);
    struct vimg_open_params op = { .format = "qcow2",
                                   .flags = VIMG_OPEN_RDWR };
    struct vimg_image *img = vimg_open(path, &op);
    CHECK(img != NULL);
    if (!img) {
        free(path);
        return;
    }
    memset(buf, 0x5a, sizeof buf);
    CHECK_EQ(vimg_pwrite(img, buf, 512, 0, 0), 0);
    CHECK_EQ(vimg_close(img), 0);

    int fd = open(path, O_RDWR);
    CHECK(fd >= 0);
    if (fd < 0) {
        free(path);
        return;
    }
    uint8_t b[16];
    CHECK_EQ(pread(fd, b, 8, QCOW2_HDR_L1_TABLE_OFFSET), 8);
    uint64_t l1_off = load_be64(b);
    CHECK_EQ(pread(fd, l1, 16, (off_t)l1_off), 16);
    uint64_t l2 = load_be64(l1) & QCOW2_L1E_OFFSET_MASK;
    store_be64(b, QCOW2_L2E_COPIED | l1_off);
    store_be64(b + 8, 0);
    CHECK_EQ(pwrite(fd, b, 16, (off_t)l2), 16);

    img = vimg_open(path, &op);
    CHECK(img != NULL);
    if (img) {
        CHECK_EQ(vimg_pwrite(img, buf, 512, 1024, 0), -1);
        CHECK_EQ(vimg_get_errno(), EIO);
        vimg_close(img);
    }
    CHECK_EQ(pread(fd, after, 16, (off_t)l1_off), 16);
    CHECK(memcmp(l1, after, 16) == 0);
    close(fd);
    unlink(path);
    free(path);
}

int main(void)
{
    char dir[] = "/tmp/vimg-qcow2-subcluster-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_bits();
    test_ranges();
    test_driver(dir);
    test_hostile_keep(dir);
    rmdir(dir);
    TEST_MAIN_END();
}
