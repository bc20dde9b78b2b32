/* vimg_rebase's header rewrite (unsafe mode, on images in memory): the
 * backing name and format land where a reader finds them, every other
 * header extension survives byte for byte and in order, a header without
 * room is refused unchanged, and the errors each mistake reports. */
#define _GNU_SOURCE
#include <stdint.h>
#include <string.h>

#include "common/byteswap.h"
#include "internal.h"
#include "../test.h"

#define SIZE (1u << 20)

/* A new image of OPTIONS with an unknown header extension appended (after
 * what qemu-img writes), opened read-write. */
static struct vimg_image *new_image(const char *options, uint32_t cs)
{
    const struct vimg_driver *drv = vimg_internal_find_driver("qcow2");
    struct vimg_opts opts = { 0 };
    struct vimg_image *mem = vimg_internal_memory_new("r.qcow2", NULL, 0,
                                                      8u << 20);
    struct vimg_open_params p = { .format = "qcow2",
                                  .flags = VIMG_OPEN_RDWR };

    CHECK_EQ(vimg_internal_opts_parse(options, drv->create_opts, "qcow2",
                                      &opts), 0);
    struct vimg_create_ctx ctx = { .filename = "r.qcow2", .size = SIZE,
                                   .opts = &opts };
    CHECK_EQ(drv->create(mem, &ctx), 0);
    vimg_internal_opts_free(&opts);
    /* Find the end marker and put an unknown extension before it. */
    uint8_t *h = malloc(cs);
    CHECK_EQ(vimg_internal_pread(mem, h, cs, 0), 0);
    uint32_t off = load_be32(h + 4) == 3 ? load_be32(h + 100) : 72;
    while (load_be32(h + off)) {
        off += 8 + ((load_be32(h + off + 4) + 7) & ~7u);
    }
    store_be32(h + off, 0x7e570001);
    store_be32(h + off + 4, 5);
    memcpy(h + off + 8, "hello\0\0\0", 8);
    memset(h + off + 16, 0, 8);
    CHECK_EQ(vimg_internal_pwrite(mem, h, cs, 0, 0), 0);
    free(h);
    return vimg_internal_open_on(mem, &p);
}

static void test_header(const char *options, uint32_t cs)
{
    struct vimg_image *img = new_image(options, cs);
    struct vimg_rebase_params p = { .backing_file = "../some/base.img",
                                    .backing_format = "raw",
                                    .unsafe = true };
    size_t len;

    CHECK_EQ(vimg_rebase(img, &p), 0);
    CHECK(!strcmp(vimg_get_backing_name(img), "../some/base.img"));
    const uint8_t *d = vimg_internal_memory_data(img->file, &len);
    /* The unknown extension is still there, and the name after the end
     * marker. */
    CHECK(memmem(d, cs, "hello", 5) != NULL);
    uint64_t name_at = load_be64(d + 8);
    CHECK_EQ(load_be32(d + 16), 16);
    CHECK(name_at < cs && !memcmp(d + name_at, "../some/base.img", 16));

    /* Reopened, it names the new file and format (not opened: the
     * buffer's policy follows no references). */
    struct vimg_open_params rp = { .format = "qcow2" };
    struct vimg_image *again = vimg_open_buffer(d, len, "r.qcow2", &rp);
    CHECK(again != NULL);
    if (again) {
        struct vimg_value *info = vimg_get_info(again);
        const struct vimg_value *f = vimg_value_get(info,
                                                    "backing-filename-format");
        CHECK(f && !strcmp(vimg_value_string(f), "raw"));
        vimg_value_free(info);
        vimg_close(again);
    }

    /* Removing it again. */
    p.backing_file = NULL;
    CHECK_EQ(vimg_rebase(img, &p), 0);
    CHECK(vimg_get_backing_name(img) == NULL);
    d = vimg_internal_memory_data(img->file, &len);
    CHECK_EQ(load_be64(d + 8), 0);
    CHECK(memmem(d, cs, "hello", 5) != NULL);
    CHECK_EQ(vimg_close(img), 0);
}

static void test_errors(void)
{
    struct vimg_image *img = new_image("cluster_size=512", 512);
    struct vimg_rebase_params p = { .backing_file = "b.qcow2",
                                    .unsafe = true };
    char name[600];
    size_t len0, len1;

    CHECK_EQ(vimg_rebase(img, &p), -1);
    CHECK_ERROR(EINVAL, "Could not change the backing file to 'b.qcow2': "
                "backing format must be specified");
    p.backing_format = "nosuch";
    CHECK_EQ(vimg_rebase(img, &p), -1);
    CHECK_ERROR(EINVAL, "Invalid format name: 'nosuch'");
    /* 512-byte header cluster: no room for a 599-byte name. */
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = 0;
    p.backing_file = name;
    p.backing_format = "qcow2";
    const uint8_t *d = vimg_internal_memory_data(img->file, &len0);
    uint8_t *before = malloc(512);
    memcpy(before, d, 512);
    CHECK_EQ(vimg_rebase(img, &p), -1);
    CHECK_ERROR(ENOSPC, "r.qcow2: the backing file name does not fit in "
                "the header cluster");
    d = vimg_internal_memory_data(img->file, &len1);
    CHECK(!memcmp(before, d, 512));
    free(before);
    /* Safe mode reads the old chain: not opened here. */
    vimg_close(img);
    img = new_image("cluster_size=65536", 65536);
    p.backing_file = "no-such-dir/b.qcow2";
    p.unsafe = false;
    CHECK_EQ(vimg_rebase(img, &p), -1);
    CHECK_ERROR(ENOENT, "Could not open new backing file "
                "'no-such-dir/b.qcow2': ");
    p.unsafe = true;
    CHECK_EQ(vimg_rebase(img, &p), 0);
    p.unsafe = false;
    p.backing_file = "c.qcow2";
    CHECK_EQ(vimg_rebase(img, &p), -1);
    CHECK_ERROR(EIO, "r.qcow2: backing file 'no-such-dir/b.qcow2' was not "
                "opened");
    vimg_close(img);
}

int main(void)
{
    test_header("cluster_size=65536", 65536);
    test_header("compat=0.10,cluster_size=4096", 4096);
    test_errors();
    TEST_MAIN_END();
}
