/* Discard and zeroing on qcow2 overlays never expose the backing file:
 * a compat=0.10 image has no zero flag, so a discarded cluster that the
 * overlay had written must not fall back to the backing data (QEMU's
 * discard does exactly that on v2); v3 images use zero clusters. */
#include <unistd.h>

#include "internal.h"
#include "../test.h"

#define SIZE (1u << 20)

static void run(const char *dir, const char *compat)
{
    char base[512], top[512], opts[64];
    uint8_t *buf = malloc(SIZE);

    snprintf(base, sizeof base, "%s/base.raw", dir);
    snprintf(top, sizeof top, "%s/top-%s.qcow2", dir, compat);
    snprintf(opts, sizeof opts, "compat=%s,cluster_size=4096", compat);
    struct vimg_create_params bp = { .format = "raw", .size = SIZE,
                                     .size_given = true };
    CHECK_EQ(vimg_create(base, &bp), 0);
    struct vimg_open_params rw_raw = { .format = "raw",
                                       .flags = VIMG_OPEN_RDWR };
    struct vimg_image *b = vimg_open(base, &rw_raw);
    CHECK(b != NULL);
    memset(buf, 0xbb, SIZE);
    CHECK_EQ(vimg_pwrite(b, buf, SIZE, 0, 0), 0);
    CHECK_EQ(vimg_close(b), 0);

    struct vimg_create_params tp = { .format = "qcow2", .size = SIZE,
                                     .size_given = true, .options = opts,
                                     .backing_file = base,
                                     .backing_format = "raw" };
    CHECK_EQ(vimg_create(top, &tp), 0);
    struct vimg_open_params rw = { .format = "qcow2",
                                   .flags = VIMG_OPEN_RDWR };
    struct vimg_image *img = vimg_open(top, &rw);
    CHECK(img != NULL);
    if (!img) {
        fprintf(stderr, "%s\n", vimg_get_error());
        free(buf);
        return;
    }
    memset(buf, 0x11, 65536);
    CHECK_EQ(vimg_pwrite(img, buf, 65536, 0, 0), 0);
    /* Whole clusters, part of a cluster, and a never-written range. */
    CHECK_EQ(vimg_discard(img, 8192, 16384), 0);
    CHECK_EQ(vimg_discard(img, 40960 + 512, 1024), 0);
    CHECK_EQ(vimg_zero(img, 49152, 8192, VIMG_ZERO_MAY_UNMAP), 0);
    CHECK_EQ(vimg_discard(img, 131072, 65536), 0);
    CHECK_EQ(vimg_close(img), 0);

    struct vimg_open_params ro = { .format = "qcow2" };
    img = vimg_open(top, &ro);
    CHECK(img != NULL);
    CHECK_EQ(vimg_pread(img, buf, SIZE, 0), 0);
    for (uint64_t i = 0; i < 65536; i++) {
        if (buf[i] != 0x11 && buf[i] != 0) {
            fprintf(stderr, "%s: byte %llu reads 0x%02x after discard\n",
                    compat, (unsigned long long)i, buf[i]);
            test_failures++;
            break;
        }
    }
    for (uint64_t i = 49152; i < 57344; i++) {
        if (buf[i] != 0) {
            fprintf(stderr, "%s: zeroed byte %llu reads 0x%02x\n", compat,
                    (unsigned long long)i, buf[i]);
            test_failures++;
            break;
        }
    }
    /* Never written in the overlay: discard makes it read zeros on v3,
     * as QEMU does, and leaves the backing data on v2 (no zero flag). */
    CHECK_EQ(buf[131072], strcmp(compat, "1.1") == 0 ? 0 : 0xbb);
    CHECK_EQ(buf[196607], strcmp(compat, "1.1") == 0 ? 0 : 0xbb);
    CHECK_EQ(buf[SIZE - 1], 0xbb);
    struct vimg_check_result res;
    CHECK_EQ(vimg_check(img, 0, &res, NULL, NULL), 0);
    CHECK_EQ(res.corruptions, 0);
    CHECK_EQ(res.leaks, 0);
    vimg_close(img);
    free(buf);
}

int main(void)
{
    char dir[] = "/tmp/vimg-test-discard-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    run(dir, "0.10");
    run(dir, "1.1");
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    TEST_MAIN_END();
}
