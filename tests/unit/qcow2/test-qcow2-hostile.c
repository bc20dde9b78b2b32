/* Hostile qcow2 headers: each field lies in turn, in an exactly-sized
 * buffer. Every open must fail quickly with the right errno and a message
 * that names the file and the offending structure, without allocating
 * what the header asks for. */
#define _GNU_SOURCE /* strcasestr */
#include <strings.h>
#include <sys/resource.h>
#include <time.h>

#include "formats/qcow2/qcow2-ondisk.h"
#include "internal.h"
#include "../test.h"

/* A valid image: 512-byte clusters, 1 MiB virtual size, v3 (or v2).
 * Cluster 0 header, 1 refcount table, 2 refcount block, 3 L1 table. */
#define CS 512u
#define IMG_SIZE (1u << 20)
#define IMG_CLUSTERS 4u
#define L1_ENTRIES (IMG_SIZE / (CS / 8 * CS))
#define NAME "hostile.qcow2"

struct img {
    uint8_t *buf;
    size_t len;
};

static void build(struct img *im, int version)
{
    im->len = IMG_CLUSTERS * CS;
    im->buf = calloc(1, im->len);
    uint8_t *h = im->buf;
    store_be32(h + QCOW2_HDR_MAGIC, QCOW2_MAGIC);
    store_be32(h + QCOW2_HDR_VERSION, (uint32_t)version);
    store_be32(h + QCOW2_HDR_CLUSTER_BITS, 9);
    store_be64(h + QCOW2_HDR_SIZE, IMG_SIZE);
    store_be32(h + QCOW2_HDR_L1_SIZE, L1_ENTRIES);
    store_be64(h + QCOW2_HDR_L1_TABLE_OFFSET, 3 * CS);
    store_be64(h + QCOW2_HDR_REFCOUNT_TABLE_OFFSET, 1 * CS);
    store_be32(h + QCOW2_HDR_REFCOUNT_TABLE_CLUSTERS, 1);
    if (version >= 3) {
        store_be32(h + QCOW2_HDR_REFCOUNT_ORDER, 4);
        store_be32(h + QCOW2_HDR_HEADER_LENGTH, QCOW2_HDR_V3_LENGTH);
    }
    /* Header extensions end right after the header: type 0 = end. */
    store_be64(h + CS, 2 * CS);
    for (unsigned i = 0; i < IMG_CLUSTERS; i++) {
        store_be16(h + 2 * CS + 2 * i, 1);
    }
}

static size_t ext_start(const struct img *im)
{
    return load_be32(im->buf + QCOW2_HDR_VERSION) >= 3 ?
           QCOW2_HDR_V3_LENGTH : QCOW2_HDR_V2_LENGTH;
}

/* Append a header extension at *POS (8-byte padded) and an end marker. */
static void add_ext(struct img *im, size_t *pos, uint32_t type,
                    uint32_t len, const void *data)
{
    store_be32(im->buf + *pos + QCOW2_EXT_TYPE, type);
    store_be32(im->buf + *pos + QCOW2_EXT_LENGTH, len);
    memcpy(im->buf + *pos + QCOW2_EXT_DATA, data, len);
    *pos += QCOW2_EXT_DATA + ((len + 7) & ~7u);
    memset(im->buf + *pos, 0, 8);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Open IM (exactly sized) read-only and read-write; both must fail with
 * ERR and a message "hostile.qcow2: ..." containing WORD. */
static void expect_refused(const struct img *im, int err, const char *word,
                           int line)
{
    for (int rw = 0; rw < 2; rw++) {
        struct vimg_open_params p = {
            .format = "qcow2", .flags = rw ? VIMG_OPEN_RDWR : 0,
        };
        uint8_t *copy = malloc(im->len);
        memcpy(copy, im->buf, im->len);
        double t0 = now();
        struct vimg_image *img = vimg_open_buffer(copy, im->len, NAME, &p);
        double took = now() - t0;
        free(copy);
        if (img) {
            fprintf(stderr, "line %d: hostile image opened (%s)\n", line,
                    rw ? "rw" : "ro");
            test_failures++;
            vimg_close(img);
            continue;
        }
        const char *m = vimg_get_error();
        if (vimg_get_errno() != err || !m ||
            strncmp(m, NAME ": ", strlen(NAME) + 2) != 0 ||
            !strcasestr(m, word)) {
            fprintf(stderr, "line %d: got errno %d '%s', want errno %d and "
                    "'" NAME ": ...%s...'\n", line, vimg_get_errno(),
                    m ? m : "(null)", err, word);
            test_failures++;
        }
        if (took > 0.5) {
            fprintf(stderr, "line %d: refusing took %.2fs\n", line, took);
            test_failures++;
        }
    }
}
#define REFUSED(im, err, word) expect_refused(im, err, word, __LINE__)

/* Each case starts from a fresh valid image of VERSION. */
#define CASE(version) for (struct img im_ = { 0 }, *im = &im_;              \
                           !im_.buf && (build(&im_, version), 1);           \
                           free(im_.buf))

static void test_valid_images_open(void)
{
    for (int version = 2; version <= 3; version++) {
        CASE(version) {
            struct vimg_open_params p = { .format = "qcow2" };
            struct vimg_image *img = vimg_open_buffer(im->buf, im->len,
                                                      NAME, &p);
            CHECK(img != NULL);
            if (!img) {
                fprintf(stderr, "valid v%d: %s\n", version,
                        vimg_get_error());
                continue;
            }
            CHECK_EQ(vimg_get_size(img), IMG_SIZE);
            uint8_t b[512];
            memset(b, 0xaa, sizeof b);
            CHECK_EQ(vimg_pread(img, b, sizeof b, IMG_SIZE - 512), 0);
            CHECK_EQ(b[0] | b[511], 0);
            vimg_close(img);
        }
    }
}

static void test_basic_fields(void)
{
    CASE(3) {
        store_be32(im->buf + QCOW2_HDR_MAGIC, 0x514649fa);
        REFUSED(im, EINVAL, "qcow2");
    }
    CASE(3) {
        store_be32(im->buf + QCOW2_HDR_VERSION, 4);
        REFUSED(im, ENOTSUP, "version");
    }
    CASE(3) {
        store_be32(im->buf + QCOW2_HDR_VERSION, 1);
        REFUSED(im, ENOTSUP, "version");
    }
    CASE(3) {
        store_be32(im->buf + QCOW2_HDR_CLUSTER_BITS, 8);
        REFUSED(im, EINVAL, "cluster");
    }
    CASE(3) {
        store_be32(im->buf + QCOW2_HDR_CLUSTER_BITS, 22);
        REFUSED(im, EINVAL, "cluster");
    }
    CASE(3) {
        store_be32(im->buf + QCOW2_HDR_CLUSTER_BITS, 0xffffffff);
        REFUSED(im, EINVAL, "cluster");
    }
    CASE(3) {
        store_be32(im->buf + QCOW2_HDR_REFCOUNT_ORDER, 7);
        REFUSED(im, EINVAL, "refcount");
    }
    CASE(3) {
        store_be64(im->buf + QCOW2_HDR_SIZE, (uint64_t)INT64_MAX + 1);
        REFUSED(im, EINVAL, "size");
    }
    CASE(3) {
        store_be64(im->buf + QCOW2_HDR_SIZE, UINT64_MAX);
        REFUSED(im, EINVAL, "size");
    }
    /* Shorter than a header. */
    CASE(3) {
        im->len = QCOW2_HDR_V3_MIN_LENGTH - 1;
        REFUSED(im, EINVAL, "header");
    }
    CASE(2) {
        /* The last header byte is missing; the tables are gone too. */
        im->len = QCOW2_HDR_V2_LENGTH - 1;
        REFUSED(im, EINVAL, "end of the file");
    }
}

static void test_l1(void)
{
    CASE(3) {
        store_be32(im->buf + QCOW2_HDR_L1_SIZE, 0xffffffff);
        REFUSED(im, EFBIG, "L1");
    }
    CASE(3) {
        /* 32 MiB of entries: within QEMU's cap, but past the file end. */
        store_be32(im->buf + QCOW2_HDR_L1_SIZE, 4u << 20);
        store_be64(im->buf + QCOW2_HDR_SIZE, (uint64_t)(4u << 20) * 32768);
        REFUSED(im, EINVAL, "L1");
    }
    CASE(3) {
        store_be64(im->buf + QCOW2_HDR_L1_TABLE_OFFSET, 64 * CS);
        REFUSED(im, EINVAL, "L1");
    }
    CASE(3) {
        store_be64(im->buf + QCOW2_HDR_L1_TABLE_OFFSET, UINT64_MAX - 511);
        REFUSED(im, EINVAL, "L1");
    }
    CASE(3) {
        store_be64(im->buf + QCOW2_HDR_L1_TABLE_OFFSET, 3 * CS + 8);
        REFUSED(im, EINVAL, "L1");
    }
    CASE(3) {
        /* Too few entries for the virtual size. */
        store_be32(im->buf + QCOW2_HDR_L1_SIZE, L1_ENTRIES - 1);
        REFUSED(im, EINVAL, "L1");
    }
}

static void test_refcount_table(void)
{
    CASE(3) {
        store_be64(im->buf + QCOW2_HDR_REFCOUNT_TABLE_OFFSET, 1000 * CS);
        REFUSED(im, EINVAL, "refcount table");
    }
    CASE(3) {
        store_be64(im->buf + QCOW2_HDR_REFCOUNT_TABLE_OFFSET, CS + 16);
        REFUSED(im, EINVAL, "refcount table");
    }
    CASE(3) {
        store_be32(im->buf + QCOW2_HDR_REFCOUNT_TABLE_CLUSTERS, 0xffffffff);
        REFUSED(im, EFBIG, "refcount table");
    }
    CASE(2) {
        /* 512 MiB of table: over the cap, before looking at the file. */
        store_be32(im->buf + QCOW2_HDR_REFCOUNT_TABLE_CLUSTERS, 1u << 20);
        REFUSED(im, EFBIG, "refcount table");
    }
}

static void test_header_length_and_extensions(void)
{
    CASE(3) {
        store_be32(im->buf + QCOW2_HDR_HEADER_LENGTH, CS + 8);
        REFUSED(im, EINVAL, "header");
    }
    CASE(3) {
        store_be32(im->buf + QCOW2_HDR_HEADER_LENGTH, 0xfffffff8);
        REFUSED(im, EINVAL, "header");
    }
    CASE(3) {
        store_be32(im->buf + QCOW2_HDR_HEADER_LENGTH, 100);
        REFUSED(im, EINVAL, "header");
    }
    CASE(3) {
        /* An extension whose length runs past the end of cluster 0. */
        size_t pos = ext_start(im);
        store_be32(im->buf + pos + QCOW2_EXT_TYPE, 0x12345678);
        store_be32(im->buf + pos + QCOW2_EXT_LENGTH, CS);
        REFUSED(im, EINVAL, "extension");
    }
    CASE(3) {
        size_t pos = ext_start(im);
        store_be32(im->buf + pos + QCOW2_EXT_TYPE, QCOW2_EXT_BACKING_FORMAT);
        store_be32(im->buf + pos + QCOW2_EXT_LENGTH, 0xffffffff);
        REFUSED(im, EINVAL, "extension");
    }
}

static void test_backing_name(void)
{
    CASE(3) {
        /* 1024 bytes: one more than QEMU allows. The name itself lies in
         * cluster 1..2 so only its length is wrong. */
        store_be64(im->buf + QCOW2_HDR_BACKING_FILE_OFFSET, 256);
        store_be32(im->buf + QCOW2_HDR_BACKING_FILE_SIZE, 1024);
        REFUSED(im, EINVAL, "backing");
    }
    CASE(3) {
        /* Runs past the end of cluster 0. */
        memcpy(im->buf + CS - 4, "base", 4);
        store_be64(im->buf + QCOW2_HDR_BACKING_FILE_OFFSET, CS - 4);
        store_be32(im->buf + QCOW2_HDR_BACKING_FILE_SIZE, 100);
        REFUSED(im, EINVAL, "backing");
    }
    CASE(3) {
        store_be64(im->buf + QCOW2_HDR_BACKING_FILE_OFFSET, UINT64_MAX - 2);
        store_be32(im->buf + QCOW2_HDR_BACKING_FILE_SIZE, 8);
        REFUSED(im, EINVAL, "backing");
    }
}

static void test_features(void)
{
    CASE(3) {
        store_be64(im->buf + QCOW2_HDR_INCOMPATIBLE_FEATURES, 1ull << 40);
        REFUSED(im, ENOTSUP, "bit 40");
    }
    CASE(3) {
        /* With a feature name table, the message names the feature. */
        uint8_t table[2 * QCOW2_FEAT_ENTRY_SIZE] = { 0 };
        table[QCOW2_FEAT_TYPE] = QCOW2_FEAT_TYPE_INCOMPATIBLE;
        table[QCOW2_FEAT_BIT] = 0;
        memcpy(table + QCOW2_FEAT_NAME, "dirty bit", 9);
        uint8_t *e = table + QCOW2_FEAT_ENTRY_SIZE;
        e[QCOW2_FEAT_TYPE] = QCOW2_FEAT_TYPE_INCOMPATIBLE;
        e[QCOW2_FEAT_BIT] = 40;
        memcpy(e + QCOW2_FEAT_NAME, "warp drive", 10);
        size_t pos = ext_start(im);
        add_ext(im, &pos, QCOW2_EXT_FEATURE_TABLE, sizeof table, table);
        store_be64(im->buf + QCOW2_HDR_INCOMPATIBLE_FEATURES, 1ull << 40);
        REFUSED(im, ENOTSUP, "warp drive");
    }
    CASE(3) {
        /* A feature table entry whose name fills all 46 bytes, without a
         * terminating NUL, must not be read past. */
        uint8_t table[QCOW2_FEAT_ENTRY_SIZE];
        memset(table, 'x', sizeof table);
        table[QCOW2_FEAT_TYPE] = QCOW2_FEAT_TYPE_INCOMPATIBLE;
        table[QCOW2_FEAT_BIT] = 63;
        size_t pos = ext_start(im);
        add_ext(im, &pos, QCOW2_EXT_FEATURE_TABLE, sizeof table, table);
        store_be64(im->buf + QCOW2_HDR_INCOMPATIBLE_FEATURES, 1ull << 63);
        REFUSED(im, ENOTSUP, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    }
}

static void test_snapshots(void)
{
    CASE(3) {
        store_be32(im->buf + QCOW2_HDR_NB_SNAPSHOTS, 0xffffffff);
        store_be64(im->buf + QCOW2_HDR_SNAPSHOTS_OFFSET, 2 * CS);
        REFUSED(im, EFBIG, "snapshot");
    }
    CASE(3) {
        store_be32(im->buf + QCOW2_HDR_NB_SNAPSHOTS, 1);
        store_be64(im->buf + QCOW2_HDR_SNAPSHOTS_OFFSET, 100 * CS);
        REFUSED(im, EINVAL, "snapshot");
    }
}

int main(void)
{
    /* Outside the sanitizers (which reserve huge address ranges), cap the
     * address space so that an allocation sized from a hostile header
     * fails loudly instead of passing unnoticed. */
#if !defined(__SANITIZE_ADDRESS__)
    struct rlimit rl = { 512u << 20, 512u << 20 };
    setrlimit(RLIMIT_AS, &rl);
#endif
    test_valid_images_open();
    test_basic_fields();
    test_l1();
    test_refcount_table();
    test_header_length_and_extensions();
    test_backing_name();
    test_features();
    test_snapshots();
    TEST_MAIN_END();
}
