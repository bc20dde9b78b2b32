/* Internal snapshots through the public API on images in memory: list,
 * create, apply, delete and read-only opens of a snapshot, against a model
 * of the guest disk; check after every step; the errors each call
 * reports. */
#include <stdint.h>

#include "internal.h"
#include "../test.h"

#define SIZE (4u << 20)
#define MAX_FILE (32u << 20)

static struct vimg_image *mem;

/* A new image of OPTIONS, open read-write (the memory image stays
 * reachable as img->file). */
static struct vimg_image *new_image(const char *options)
{
    const struct vimg_driver *drv = vimg_internal_find_driver("qcow2");
    struct vimg_opts opts = { 0 };
    struct vimg_open_params p = { .format = "qcow2",
                                  .flags = VIMG_OPEN_RDWR };

    mem = vimg_internal_memory_new("snap.qcow2", NULL, 0, MAX_FILE);
    CHECK_EQ(vimg_internal_opts_parse(options, drv->create_opts, "qcow2",
                                      &opts), 0);
    struct vimg_create_ctx ctx = { .filename = "snap.qcow2", .size = SIZE,
                                   .opts = &opts };
    CHECK_EQ(drv->create(mem, &ctx), 0);
    vimg_internal_opts_free(&opts);
    return vimg_internal_open_on(mem, &p);
}

/* The image's current bytes, reopened with P (caller closes). */
static struct vimg_image *reopen(struct vimg_image *img,
                                 const struct vimg_open_params *p)
{
    size_t len;
    const void *data = vimg_internal_memory_data(img->file, &len);
    return vimg_open_buffer(data, len, "snap.qcow2", p);
}

static void clean(struct vimg_image *img)
{
    struct vimg_check_result res;
    CHECK_EQ(vimg_check(img, 0, &res, NULL, NULL), 0);
    CHECK_EQ(res.corruptions, 0);
    CHECK_EQ(res.leaks, 0);
    CHECK_EQ(res.check_errors, 0);
}

static void same(struct vimg_image *img, const uint8_t *model, size_t size)
{
    uint8_t *buf = malloc(size);
    CHECK_EQ(vimg_get_size(img), size);
    CHECK_EQ(vimg_pread(img, buf, size, 0), 0);
    CHECK(memcmp(buf, model, size) == 0);
    free(buf);
}

static void fill(struct vimg_image *img, uint8_t *model, uint64_t off,
                 uint64_t len, uint8_t byte)
{
    memset(model + off, byte, len);
    CHECK_EQ(vimg_pwrite(img, model + off, len, off, 0), 0);
}

static void test_lifecycle(const char *options)
{
    uint8_t *m0 = calloc(1, SIZE), *m1 = calloc(1, SIZE);
    uint8_t *now = calloc(1, SIZE);
    struct vimg_image *img = new_image(options);
    struct vimg_snapshot *v;
    size_t n;

    fill(img, now, 0, 300000, 0x11);
    fill(img, now, 3u << 20, 65536, 0x12);
    memcpy(m0, now, SIZE);
    CHECK_EQ(vimg_snapshot_create(img, "zero"), 0);
    clean(img);
    fill(img, now, 100000, 500000, 0x21);
    CHECK_EQ(vimg_zero(img, 3u << 20, 4096, VIMG_ZERO_MAY_UNMAP), 0);
    memset(now + (3u << 20), 0, 4096);
    memcpy(m1, now, SIZE);
    CHECK_EQ(vimg_snapshot_create(img, "one"), 0);
    fill(img, now, 0, 8192, 0x31);
    clean(img);

    CHECK_EQ(vimg_snapshot_list(img, &v, &n), 0);
    CHECK_EQ(n, 2);
    if (n == 2) {
        CHECK(!strcmp(v[0].id, "1") && !strcmp(v[0].name, "zero"));
        CHECK(!strcmp(v[1].id, "2") && !strcmp(v[1].name, "one"));
        CHECK_EQ(v[1].disk_size, SIZE);
        CHECK_EQ(v[1].vm_state_size, 0);
        CHECK_EQ(v[1].icount, 0);
    }
    vimg_snapshot_list_free(v, n);

    /* Read-only opens of each snapshot. */
    struct vimg_open_params p = { .format = "qcow2", .snapshot_id = "1" };
    struct vimg_image *ro = reopen(img, &p);
    CHECK(ro != NULL);
    if (ro) {
        same(ro, m0, SIZE);
        vimg_close(ro);
    }
    p.snapshot_id = NULL;
    p.snapshot_name = "one";
    if ((ro = reopen(img, &p))) {
        same(ro, m1, SIZE);
        vimg_close(ro);
    }
    p.snapshot_name = "none";
    CHECK(reopen(img, &p) == NULL);
    CHECK_ERROR(ENOENT, "snap.qcow2: no snapshot with name 'none'");
    p.snapshot_name = "one";
    p.flags = VIMG_OPEN_RDWR;
    CHECK(reopen(img, &p) == NULL);
    CHECK_ERROR(EINVAL, "snap.qcow2: an internal snapshot can only be "
                "opened read-only");

    CHECK_EQ(vimg_snapshot_apply(img, NULL, "zero"), 0);
    same(img, m0, SIZE);
    clean(img);
    fill(img, m0, 2u << 20, 70000, 0x41);
    CHECK_EQ(vimg_snapshot_delete(img, "2", "one"), 0);
    same(img, m0, SIZE);
    clean(img);
    CHECK_EQ(vimg_snapshot_apply(img, "1", NULL), 0);
    CHECK_EQ(vimg_snapshot_delete(img, NULL, "zero"), 0);
    clean(img);
    CHECK_EQ(vimg_snapshot_list(img, &v, &n), 0);
    CHECK_EQ(n, 0);
    CHECK(v == NULL);

    /* The next ID follows the largest, as in QEMU. */
    CHECK_EQ(vimg_snapshot_create(img, "again"), 0);
    CHECK_EQ(vimg_snapshot_list(img, &v, &n), 0);
    CHECK(n == 1 && !strcmp(v[0].id, "1"));
    vimg_snapshot_list_free(v, n);

    /* Errors. */
    CHECK_EQ(vimg_snapshot_apply(img, "7", NULL), -1);
    CHECK_ERROR(ENOENT, "snap.qcow2: no snapshot with ID '7'");
    CHECK_EQ(vimg_snapshot_delete(img, "1", "other"), -1);
    CHECK_ERROR(ENOENT, "snap.qcow2: no snapshot with ID '1' and name "
                "'other'");
    CHECK_EQ(vimg_snapshot_delete(img, NULL, NULL), -1);
    CHECK_ERROR(EINVAL, "snap.qcow2: no snapshot named");
    struct vimg_open_params rp = { .format = "qcow2" };
    if ((ro = reopen(img, &rp))) {
        CHECK_EQ(vimg_snapshot_create(ro, "x"), -1);
        CHECK_ERROR(EROFS, "snap.qcow2: image is opened read-only");
        vimg_close(ro);
    }
    CHECK_EQ(vimg_close(img), 0);
    free(m0);
    free(m1);
    free(now);
}

static void test_refcount_width(void)
{
    struct vimg_image *img = new_image("refcount_bits=1");
    uint8_t *now = calloc(1, SIZE);
    size_t len0, len1;

    fill(img, now, 0, 65536, 0x51);
    CHECK_EQ(vimg_flush(img), 0);
    vimg_internal_memory_data(img->file, &len0);
    CHECK_EQ(vimg_snapshot_create(img, "s"), -1);
    CHECK_ERROR(ERANGE, "snap.qcow2: the refcount of cluster");
    /* Nothing the image uses changed. */
    clean(img);
    same(img, now, SIZE);
    vimg_internal_memory_data(img->file, &len1);
    CHECK(len1 >= len0);
    CHECK_EQ(vimg_close(img), 0);
    free(now);
}

static void test_raw(void)
{
    uint8_t buf[4096] = { 0 };
    struct vimg_open_params p = { .format = "raw", .flags = VIMG_OPEN_RDWR };
    struct vimg_image *img = vimg_open_buffer(buf, sizeof buf, "r.img", &p);
    struct vimg_snapshot *v = (void *)1;
    size_t n = 1;

    CHECK_EQ(vimg_snapshot_list(img, &v, &n), 0);
    CHECK(v == NULL && n == 0);
    CHECK_EQ(vimg_snapshot_create(img, "s"), -1);
    CHECK_ERROR(ENOTSUP, "r.img: the raw format does not support internal "
                "snapshots");
    vimg_close(img);
    p.flags = 0;
    p.snapshot_name = "s";
    CHECK(vimg_open_buffer(buf, sizeof buf, "r.img", &p) == NULL);
    CHECK_ERROR(ENOTSUP, "r.img: the raw format does not support internal "
                "snapshots");
}

int main(void)
{
    test_lifecycle("cluster_size=65536");
    test_lifecycle("compat=0.10,cluster_size=4096");
    test_lifecycle("cluster_size=512,refcount_bits=8");
    /* Partial writes and zero writes into clusters shared with a
     * snapshot, by the subcluster. */
    test_lifecycle("extended_l2=on");
    test_lifecycle("extended_l2=on,cluster_size=16384");
    test_refcount_width();
    test_raw();
    TEST_MAIN_END();
}
