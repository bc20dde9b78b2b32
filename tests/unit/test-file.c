/* The file protocol on real files: block status from SEEK_DATA/SEEK_HOLE,
 * zeroing by punching holes or by ZERO_RANGE, the fallback to written
 * zeros when the file system refuses (tmpfs has no ZERO_RANGE), truncate
 * with each preallocation mode, and errors that name the file. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "test.h"

#define MiB (1u << 20)

static char dir[] = "/tmp/vimg-test-file.XXXXXX";

static char *path(const char *name)
{
    static char buf[256];
    snprintf(buf, sizeof buf, "%s/%s", dir, name);
    return buf;
}

static int64_t blocks_kib(const char *file)
{
    struct stat st;
    return stat(file, &st) == 0 ? (int64_t)st.st_blocks / 2 : -1;
}

static struct vimg_image *open_rw(const char *file)
{
    struct vimg_open_params p = { .format = "raw", .flags = VIMG_OPEN_RDWR };
    struct vimg_image *img = vimg_open(file, &p);
    CHECK(img != NULL);
    return img;
}

static bool reads_zero(struct vimg_image *img, uint64_t off, size_t n)
{
    char *buf = malloc(n);
    bool zero = vimg_pread(img, buf, n, off) == 0;
    for (size_t i = 0; zero && i < n; i++) {
        zero = buf[i] == 0;
    }
    free(buf);
    return zero;
}

/* 16 MiB sparse file with data at [4 MiB, 5 MiB). */
static void test_block_status(void)
{
    const char *f = path("holes.img");
    int fd = open(f, O_CREAT | O_RDWR | O_TRUNC, 0644);
    char data[65536];
    memset(data, 0x42, sizeof data);
    CHECK(ftruncate(fd, 16 * MiB) == 0);
    for (unsigned off = 4 * MiB; off < 5 * MiB; off += sizeof data) {
        CHECK(pwrite(fd, data, sizeof data, off) == (ssize_t)sizeof data);
    }
    CHECK(fsync(fd) == 0);
    close(fd);

    struct vimg_image *img = vimg_open(f, &(struct vimg_open_params){
                                              .format = "raw" });
    struct vimg_extent e;
    CHECK_EQ(vimg_block_status(img, 0, 16 * MiB, VIMG_BS_CHAIN, &e), 0);
    CHECK_EQ(e.offset, 0);
    CHECK_EQ(e.length, 4 * MiB);
    CHECK(e.flags & VIMG_BS_ZERO);
    CHECK(!(e.flags & VIMG_BS_DATA));
    CHECK_EQ(vimg_block_status(img, 4 * MiB, 12 * MiB, VIMG_BS_CHAIN, &e), 0);
    CHECK_EQ(e.length, 1 * MiB);
    CHECK(e.flags & VIMG_BS_DATA);
    CHECK(e.flags & VIMG_BS_OFFSET_VALID);
    CHECK_EQ(e.file_offset, 4 * MiB);
    /* Inside the data, clamped to the count asked for. */
    CHECK_EQ(vimg_block_status(img, 4 * MiB + 4096, 8192, VIMG_BS_CHAIN,
                               &e), 0);
    CHECK_EQ(e.length, 8192);
    CHECK(e.flags & VIMG_BS_DATA);
    /* The hole after the last data runs to the end. */
    CHECK_EQ(vimg_block_status(img, 5 * MiB, 11 * MiB, VIMG_BS_CHAIN, &e), 0);
    CHECK_EQ(e.length, 11 * MiB);
    CHECK(e.flags & VIMG_BS_ZERO);
    /* Past the end is an error naming the file. */
    CHECK_EQ(vimg_block_status(img, 16 * MiB, 1, 0, &e), -1);
    CHECK_ERROR(EINVAL, f);
    vimg_close(img);
}

static void test_zero(void)
{
    const char *f = path("zero.img");
    char data[MiB];
    memset(data, 0x17, sizeof data);
    struct vimg_create_params cp = { .format = "raw", .size = 8 * MiB,
                                     .size_given = true };
    CHECK_EQ(vimg_create(f, &cp), 0);
    struct vimg_image *img = open_rw(f);
    for (unsigned off = 0; off < 8 * MiB; off += MiB) {
        CHECK_EQ(vimg_pwrite(img, data, MiB, off, 0), 0);
    }
    CHECK_EQ(vimg_flush(img), 0);
    CHECK(blocks_kib(f) >= 8 * 1024);

    /* MAY_UNMAP punches a hole: zeros, and the space is freed. */
    CHECK_EQ(vimg_zero(img, 2 * MiB, 4 * MiB, VIMG_ZERO_MAY_UNMAP), 0);
    CHECK(reads_zero(img, 2 * MiB, 4 * MiB));
    CHECK(!reads_zero(img, 2 * MiB - 1, 1));
    CHECK(!reads_zero(img, 6 * MiB, 1));
    CHECK(blocks_kib(f) <= 4 * 1024 + 64);
    struct vimg_extent e;
    CHECK_EQ(vimg_block_status(img, 2 * MiB, 4 * MiB, 0, &e), 0);
    CHECK(e.flags & VIMG_BS_ZERO);
    CHECK_EQ(e.length, 4 * MiB);

    /* Without MAY_UNMAP the range still reads as zeros. */
    CHECK_EQ(vimg_zero(img, 7 * MiB, 4096, 0), 0);
    CHECK(reads_zero(img, 7 * MiB, 4096));
    CHECK(!reads_zero(img, 7 * MiB + 4096, 1));
    /* Unaligned ranges too. */
    CHECK_EQ(vimg_zero(img, 1000, 3000, VIMG_ZERO_MAY_UNMAP), 0);
    CHECK(reads_zero(img, 1000, 3000));
    CHECK(!reads_zero(img, 999, 1));
    CHECK(!reads_zero(img, 4000, 1));
    CHECK_EQ(vimg_get_size(img), 8 * MiB);
    /* Out of range. */
    CHECK_EQ(vimg_zero(img, 8 * MiB - 4096, 8192, 0), -1);
    CHECK_ERROR(EINVAL, f);
    vimg_close(img);
}

/* tmpfs has no FALLOC_FL_ZERO_RANGE: the driver says ENOTSUP once and the
 * core falls back to writing zeros, unless told not to. */
static void test_zero_fallback(void)
{
    char shm[] = "/dev/shm/vimg-test-file.XXXXXX";
    int fd = mkstemp(shm);
    if (fd < 0) {
        fprintf(stderr, "no /dev/shm: fallback test skipped\n");
        return;
    }
    char data[65536];
    memset(data, 0x99, sizeof data);
    CHECK(pwrite(fd, data, sizeof data, 0) == (ssize_t)sizeof data);
    close(fd);
    struct vimg_image *img = open_rw(shm);
    if (img) {
        int r = vimg_zero(img, 4096, 8192, VIMG_ZERO_NO_FALLBACK);
        if (r < 0) {
            CHECK_EQ(vimg_get_errno(), ENOTSUP);
            CHECK(!reads_zero(img, 4096, 8192));
        }
        CHECK_EQ(vimg_zero(img, 4096, 8192, 0), 0);
        CHECK(reads_zero(img, 4096, 8192));
        CHECK(!reads_zero(img, 4095, 1));
        CHECK(!reads_zero(img, 12288, 1));
        vimg_close(img);
    }
    unlink(shm);
}

static void test_truncate(void)
{
    const char *f = path("trunc.img");
    struct vimg_create_params cp = { .format = "raw", .size = MiB,
                                     .size_given = true };
    CHECK_EQ(vimg_create(f, &cp), 0);
    struct vimg_image *img = open_rw(f);
    int64_t before = blocks_kib(f);

    CHECK_EQ(vimg_truncate(img, 4 * MiB, 0, VIMG_PREALLOC_OFF), 0);
    CHECK_EQ(vimg_get_size(img), 4 * MiB);
    CHECK(blocks_kib(f) == before);
    CHECK_EQ(vimg_truncate(img, 8 * MiB, 0, VIMG_PREALLOC_FALLOC), 0);
    CHECK(blocks_kib(f) >= before + 4 * 1024);
    CHECK_EQ(vimg_truncate(img, 12 * MiB, 0, VIMG_PREALLOC_FULL), 0);
    CHECK(blocks_kib(f) >= before + 8 * 1024);
    CHECK(reads_zero(img, 4 * MiB, 8 * MiB));
    CHECK_EQ(vimg_truncate(img, 12 * MiB, 0, VIMG_PREALLOC_METADATA), -1);
    CHECK_ERROR(EINVAL, f);

    /* Shrinking needs the flag; with it, data past the end is gone. */
    CHECK_EQ(vimg_truncate(img, MiB, 0, VIMG_PREALLOC_OFF), -1);
    CHECK_ERROR(EINVAL, f);
    CHECK_EQ(vimg_get_size(img), 12 * MiB);
    CHECK_EQ(vimg_truncate(img, MiB, VIMG_TRUNCATE_SHRINK,
                           VIMG_PREALLOC_OFF), 0);
    CHECK_EQ(vimg_get_size(img), MiB);
    struct stat st;
    CHECK(stat(f, &st) == 0 && st.st_size == MiB);
    char c;
    CHECK_EQ(vimg_pread(img, &c, 1, MiB), -1);
    CHECK_ERROR(EINVAL, f);
    vimg_close(img);

    /* A read-only image refuses every write-like call. */
    img = vimg_open(f, &(struct vimg_open_params){ .format = "raw" });
    CHECK_EQ(vimg_truncate(img, 2 * MiB, 0, VIMG_PREALLOC_OFF), -1);
    CHECK_ERROR(EROFS, f);
    CHECK_EQ(vimg_zero(img, 0, 512, 0), -1);
    CHECK_ERROR(EROFS, f);
    CHECK_EQ(vimg_pwrite(img, &c, 1, 0, 0), -1);
    CHECK_ERROR(EROFS, f);
    vimg_close(img);
}

/* With O_DIRECT, writes smaller than a block are read-modify-write of the
 * whole block: eight threads writing interleaved 512-byte pieces of the
 * same blocks must not lose each other's bytes. */
#define PIECES 2048
#define THREADS 8

struct piece_writer {
    struct vimg_image *img;
    int id;
};

static void *write_pieces(void *arg)
{
    struct piece_writer *w = arg;
    char piece[512];
    memset(piece, w->id + 1, sizeof piece);
    for (int k = w->id; k < PIECES; k += THREADS) {
        if (vimg_pwrite(w->img, piece, sizeof piece,
                        (uint64_t)k * sizeof piece, 0) < 0) {
            return (void *)1;
        }
    }
    return NULL;
}

static void test_direct_rmw(void)
{
    const char *f = path("direct.img");
    struct vimg_create_params cp = { .format = "raw",
                                     .size = PIECES * 512,
                                     .size_given = true };
    CHECK_EQ(vimg_create(f, &cp), 0);
    struct vimg_open_params p = { .format = "raw",
                                  .flags = VIMG_OPEN_RDWR |
                                           VIMG_OPEN_NOCACHE };
    struct vimg_image *img = vimg_open(f, &p);
    if (!img) {
        fprintf(stderr, "no O_DIRECT in %s: test skipped\n", dir);
        return;
    }
    pthread_t t[THREADS];
    struct piece_writer w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct piece_writer){ img, i };
        CHECK(pthread_create(&t[i], NULL, write_pieces, &w[i]) == 0);
    }
    for (int i = 0; i < THREADS; i++) {
        void *ret;
        pthread_join(t[i], &ret);
        CHECK(ret == NULL);
    }
    char *all = malloc(PIECES * 512);
    CHECK_EQ(vimg_pread(img, all, PIECES * 512, 0), 0);
    int lost = 0;
    for (int k = 0; k < PIECES; k++) {
        lost += all[k * 512] != (char)(k % THREADS + 1) ||
                all[k * 512 + 511] != (char)(k % THREADS + 1);
    }
    CHECK_EQ(lost, 0);
    free(all);
    vimg_close(img);
    unlink(f);
}

static void test_open_errors(void)
{
    CHECK(vimg_open(path("missing.img"), NULL) == NULL);
    CHECK_ERROR(ENOENT, path("missing.img"));
    CHECK(vimg_open(dir, NULL) == NULL);
    CHECK_ERROR(EISDIR, dir);
    CHECK(vimg_open("/dev/null", NULL) == NULL);
    CHECK_ERROR(EINVAL, "/dev/null: not a regular file or block device");
    /* A guessed raw format is never opened for writing. */
    CHECK(vimg_open(path("trunc.img"),
                    &(struct vimg_open_params){ .flags = VIMG_OPEN_RDWR })
          == NULL);
    CHECK_ERROR(EPERM, path("trunc.img"));
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_block_status();
    test_zero();
    test_zero_fallback();
    test_truncate();
    test_direct_rmw();
    test_open_errors();
    unlink(path("holes.img"));
    unlink(path("zero.img"));
    unlink(path("trunc.img"));
    rmdir(dir);
    TEST_MAIN_END();
}
