/* qcow2 header validation on exactly-sized byte buffers, and refcount
 * load/store at every width. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/qcow2/qcow2.h"
#include "test.h"

/* A minimal valid image with 512-byte clusters: header, refcount table,
 * refcount block, L1 table (2 entries), 2 MiB... of virtual size 64 KiB. */
#define CS 512
#define IMG_LEN (3 * CS + 16)

static void build(uint8_t *b)
{
    memset(b, 0, IMG_LEN);
    store_be32(b + QCOW2_HDR_MAGIC, QCOW2_MAGIC);
    store_be32(b + QCOW2_HDR_VERSION, 3);
    store_be32(b + QCOW2_HDR_CLUSTER_BITS, 9);
    store_be64(b + QCOW2_HDR_SIZE, 65536);
    store_be32(b + QCOW2_HDR_L1_SIZE, 2);
    store_be64(b + QCOW2_HDR_L1_TABLE_OFFSET, 3 * CS);
    store_be64(b + QCOW2_HDR_REFCOUNT_TABLE_OFFSET, CS);
    store_be32(b + QCOW2_HDR_REFCOUNT_TABLE_CLUSTERS, 1);
    store_be32(b + QCOW2_HDR_REFCOUNT_ORDER, 4);
    store_be32(b + QCOW2_HDR_HEADER_LENGTH, QCOW2_HDR_V3_LENGTH);
    store_be64(b + CS, 2 * CS);
    for (int i = 0; i < 4; i++) {
        store_be16(b + 2 * CS + i * 2, 1);
    }
}

static struct vimg_image *open_buf(const uint8_t *b, size_t len, bool rw)
{
    struct vimg_open_params p = { .format = "qcow2",
                                  .flags = rw ? VIMG_OPEN_RDWR : 0 };
    return vimg_open_buffer(b, len, "t.qcow2", &p);
}

#define EXPECT_FAIL(b, err, prefix)                                         \
    do {                                                                    \
        struct vimg_image *i_ = open_buf((b), IMG_LEN, false);              \
        CHECK(i_ == NULL);                                                  \
        if (i_) {                                                           \
            vimg_close(i_);                                                 \
        } else {                                                            \
            CHECK_ERROR((err), (prefix));                                   \
        }                                                                   \
    } while (0)

static void test_valid(void)
{
    uint8_t b[IMG_LEN], buf[4096];
    build(b);
    struct vimg_image *img = open_buf(b, sizeof b, false);
    CHECK(img != NULL);
    if (img) {
        CHECK_EQ(vimg_get_size(img), 65536);
        memset(buf, 0xff, sizeof buf);
        CHECK_EQ(vimg_pread(img, buf, sizeof buf, 4096), 0);
        CHECK(buf[0] == 0 && buf[4095] == 0);
        vimg_close(img);
    }
}

static void test_hostile(void)
{
    uint8_t b[IMG_LEN];

    build(b);
    store_be32(b, 0x12345678);
    EXPECT_FAIL(b, EINVAL, "t.qcow2: not a qcow2 image");
    build(b);
    store_be32(b + QCOW2_HDR_VERSION, 4);
    EXPECT_FAIL(b, ENOTSUP, "t.qcow2: unsupported qcow2 version 4");
    build(b);
    store_be32(b + QCOW2_HDR_CLUSTER_BITS, 8);
    EXPECT_FAIL(b, EINVAL, "t.qcow2: cluster size 2^8");
    build(b);
    store_be32(b + QCOW2_HDR_CLUSTER_BITS, 22);
    EXPECT_FAIL(b, EINVAL, "t.qcow2: cluster size 2^22");
    build(b);
    store_be64(b + QCOW2_HDR_SIZE, 1ull << 40);
    EXPECT_FAIL(b, EINVAL, "t.qcow2: L1 table (2 entries) is too small");
    build(b);
    store_be64(b + QCOW2_HDR_SIZE, UINT64_MAX);
    EXPECT_FAIL(b, EINVAL, "t.qcow2: virtual size");
    build(b);
    store_be64(b + QCOW2_HDR_L1_TABLE_OFFSET, 3 * CS + 8);
    EXPECT_FAIL(b, EINVAL, "t.qcow2: L1 table offset 0x608 is not cluster");
    build(b);
    store_be64(b + QCOW2_HDR_L1_TABLE_OFFSET, 1ull << 50);
    EXPECT_FAIL(b, EINVAL, "t.qcow2: L1 table at 0x4000000000000 lies past");
    build(b);
    store_be32(b + QCOW2_HDR_L1_SIZE, 0x7fffffff);
    EXPECT_FAIL(b, EFBIG, "t.qcow2: L1 table is too large");
    build(b);
    store_be32(b + QCOW2_HDR_REFCOUNT_TABLE_CLUSTERS, 0xffffffff);
    EXPECT_FAIL(b, EFBIG, "t.qcow2: refcount table is too large");
    build(b);
    store_be32(b + QCOW2_HDR_REFCOUNT_TABLE_CLUSTERS, 0);
    EXPECT_FAIL(b, EINVAL, "t.qcow2: the refcount table is empty");
    build(b);
    store_be32(b + QCOW2_HDR_REFCOUNT_ORDER, 7);
    EXPECT_FAIL(b, EINVAL, "t.qcow2: refcount order 7");
    build(b);
    store_be32(b + QCOW2_HDR_HEADER_LENGTH, 50);
    EXPECT_FAIL(b, EINVAL, "t.qcow2: header length 50");
    build(b);
    store_be32(b + QCOW2_HDR_HEADER_LENGTH, 4096);
    EXPECT_FAIL(b, EINVAL, "t.qcow2: header length 4096");
    build(b);
    store_be64(b + QCOW2_HDR_BACKING_FILE_OFFSET, 400);
    store_be32(b + QCOW2_HDR_BACKING_FILE_SIZE, 200);
    EXPECT_FAIL(b, EINVAL, "t.qcow2: backing file name (200 bytes at 400)");
    build(b);
    store_be32(b + QCOW2_HDR_CRYPT_METHOD, 3);
    EXPECT_FAIL(b, EINVAL, "t.qcow2: unknown encryption method 3");
    build(b);
    store_be32(b + QCOW2_HDR_NB_SNAPSHOTS, 100000);
    EXPECT_FAIL(b, EFBIG, "t.qcow2: too many snapshots");
    /* An extension whose length runs past the header cluster. */
    build(b);
    store_be32(b + QCOW2_HDR_V3_LENGTH, QCOW2_EXT_BACKING_FORMAT);
    store_be32(b + QCOW2_HDR_V3_LENGTH + 4, 1000);
    EXPECT_FAIL(b, EINVAL, "t.qcow2: header extension 0xe2792aca");
    /* Subclusters under 512 bytes (clusters under 16 KiB), as QEMU. */
    build(b);
    store_be64(b + QCOW2_HDR_INCOMPATIBLE_FEATURES, QCOW2_INCOMPAT_EXTL2);
    EXPECT_FAIL(b, EINVAL, "t.qcow2: unsupported subcluster size: 16");
}

/* An unknown incompatible bit is refused with the name the feature table
 * gives it. */
static void test_feature_name(void)
{
    uint8_t b[IMG_LEN];
    uint8_t *ext = b + QCOW2_HDR_V3_LENGTH;

    build(b);
    store_be64(b + QCOW2_HDR_INCOMPATIBLE_FEATURES, 1ull << 10);
    store_be32(ext + QCOW2_EXT_TYPE, QCOW2_EXT_FEATURE_TABLE);
    store_be32(ext + QCOW2_EXT_LENGTH, QCOW2_FEAT_ENTRY_SIZE);
    ext[QCOW2_EXT_DATA + QCOW2_FEAT_TYPE] = QCOW2_FEAT_TYPE_INCOMPATIBLE;
    ext[QCOW2_EXT_DATA + QCOW2_FEAT_BIT] = 10;
    memcpy(ext + QCOW2_EXT_DATA + QCOW2_FEAT_NAME, "frobnication", 12);
    EXPECT_FAIL(b, ENOTSUP, "t.qcow2: unsupported qcow2 feature: "
                "frobnication");
}

/* A corrupt image opens read-only but not read-write. */
static void test_corrupt_bit(void)
{
    uint8_t b[IMG_LEN];

    build(b);
    store_be64(b + QCOW2_HDR_INCOMPATIBLE_FEATURES, QCOW2_INCOMPAT_CORRUPT);
    struct vimg_image *img = open_buf(b, sizeof b, false);
    CHECK(img != NULL);
    vimg_close(img);
    img = open_buf(b, sizeof b, true);
    CHECK(img == NULL);
    if (!img) {
        CHECK_ERROR(EACCES, "t.qcow2: image is marked corrupt");
    } else {
        vimg_close(img);
    }
}

/* An L2 entry pointing at the L1 table: the write is refused before it
 * lands, the image is marked corrupt on disk, and later writes fail. */
static void test_overlap(void)
{
    uint8_t b[5 * CS];
    char data[CS];

    memset(b, 0, sizeof b);
    build(b);
    store_be64(b + 3 * CS, (4 * CS) | QCOW2_L1E_COPIED);
    store_be64(b + 4 * CS, (3 * CS) | QCOW2_L2E_COPIED);
    store_be16(b + 2 * CS + 4 * 2, 1);
    struct vimg_image *mem = vimg_internal_memory_new("t.qcow2", b, sizeof b,
                                                      sizeof b);
    struct vimg_open_params p = { .format = "qcow2",
                                  .flags = VIMG_OPEN_RDWR };
    struct vimg_image *img = mem ? vimg_internal_open_on(mem, &p) : NULL;
    CHECK(img != NULL);
    if (!img) {
        return;
    }
    memset(data, 0xab, sizeof data);
    CHECK_EQ(vimg_pwrite(img, data, sizeof data, 0, 0), -1);
    CHECK_ERROR(EIO, "t.qcow2: Marking image as corrupt: Preventing invalid "
                "write on metadata (overlaps with active L1 table)");
    size_t len;
    const uint8_t *disk = vimg_internal_memory_data(mem, &len);
    CHECK(load_be64(disk + QCOW2_HDR_INCOMPATIBLE_FEATURES) &
          QCOW2_INCOMPAT_CORRUPT);
    CHECK_EQ(load_be64(disk + 3 * CS), (4 * CS) | QCOW2_L1E_COPIED);
    CHECK_EQ(vimg_pwrite(img, data, sizeof data, 8192, 0), -1);
    CHECK_ERROR(EIO, "t.qcow2: image is marked corrupt");
    vimg_close(img);
}

static void test_refcount_widths(void)
{
    uint8_t block[4096];

    for (uint32_t order = 0; order <= 6; order++) {
        uint64_t bits = 1ull << order;
        uint64_t max = order == 6 ? UINT64_MAX : (1ull << bits) - 1;
        uint64_t n = sizeof block * 8 / bits;
        memset(block, 0, sizeof block);
        for (uint64_t i = 0; i < n; i++) {
            qcow2_refcount_store(block, order, i, (i * 2654435761u) & max);
        }
        for (uint64_t i = 0; i < n; i++) {
            CHECK_EQ(qcow2_refcount_load(block, order, i),
                     (i * 2654435761u) & max);
        }
        /* Neighbours are untouched by a store of the maximum. */
        memset(block, 0, sizeof block);
        qcow2_refcount_store(block, order, 5, max);
        CHECK(qcow2_refcount_load(block, order, 4) == 0);
        CHECK(qcow2_refcount_load(block, order, 6) == 0);
        CHECK(qcow2_refcount_load(block, order, 5) == max);
    }
    /* Sub-byte refcounts are packed from the least significant bit, as
     * QEMU writes them. */
    memset(block, 0, sizeof block);
    qcow2_refcount_store(block, 0, 1, 1);
    CHECK_EQ(block[0], 0x02);
    qcow2_refcount_store(block, 2, 1, 0xa);
    CHECK_EQ(block[0], 0xa2);
}

int main(void)
{
    test_valid();
    test_hostile();
    test_feature_name();
    test_corrupt_bit();
    test_overlap();
    test_refcount_widths();
    TEST_MAIN_END();
}
