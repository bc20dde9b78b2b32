/* The raw format: the guest disk byte for byte, thin through the file's
 * holes. Everything passes to the protocol below. */
#include <errno.h>

#include "../../common/rounding.h"
#include "../internal.h"
#include "../protocols/file-lock.h"

/* qemu-img sizes raw images in whole 512-byte sectors. */
#define SECTOR 512

static const struct vimg_opt_desc raw_create_opts[] = {
    { "size", VIMG_OPT_SIZE, "Virtual disk size" },
    { "preallocation", VIMG_OPT_STRING,
      "Preallocation mode (allowed values: off, falloc, full)" },
    { NULL, 0, NULL },
};

static int raw_probe(const uint8_t *buf, size_t len, const char *filename)
{
    (void)buf;
    (void)len;
    (void)filename;
    return 1; /* anything is raw, as a last resort */
}

static int raw_open(struct vimg_image *img, const struct vimg_opts *opts)
{
    (void)opts;
    /* Whole sectors, as QEMU sees a raw file: a 5000-byte file is a
     * 5120-byte disk whose last 120 bytes read as zeros (the protocol
     * reads past the end of a file as zeros). */
    img->size = ROUND_UP((uint64_t)vimg_internal_get_size(img->file),
                         SECTOR);
    return 0;
}

static int raw_create(struct vimg_image *file, const struct vimg_create_ctx *c)
{
    enum vimg_prealloc prealloc;
    int r = vimg_internal_opts_get_prealloc(c->opts, &prealloc);

    if (r < 0) {
        return r;
    }
    if (prealloc == VIMG_PREALLOC_METADATA) {
        return vimg_internal_error(EINVAL, "%s: preallocation mode "
                                   "'metadata' is not supported by raw",
                                   c->filename);
    }
    r = vimg_internal_truncate(file, ROUND_UP(c->size, SECTOR), 0, prealloc);
    if (r < 0 || prealloc == VIMG_PREALLOC_FULL || c->size == 0 ||
        vimg_internal_file_fd(file) < 0) {
        return r;
    }
    /* Like qemu-img's file protocol, write the first block (up to 4 KiB)
     * of a sparse or fallocated file, so that its disk usage and map
     * match qemu-img's own files and O_DIRECT users can probe the
     * alignment from it. Other protocols (rbd) stay untouched. */
    static const char zeros[4096];
    return vimg_internal_pwrite(file, zeros,
                                MIN(ROUND_UP(c->size, SECTOR), sizeof zeros),
                                0, 0);
}

static int raw_pread(struct vimg_image *img, void *buf, uint64_t count,
                     uint64_t offset)
{
    return vimg_internal_pread(img->file, buf, count, offset);
}

static int raw_pwrite(struct vimg_image *img, const void *buf, uint64_t count,
                      uint64_t offset, unsigned flags)
{
    return vimg_internal_pwrite(img->file, buf, count, offset, flags);
}

static int raw_zero(struct vimg_image *img, uint64_t offset, uint64_t count,
                    unsigned flags)
{
    return vimg_internal_zero(img->file, offset, count, flags);
}

static int raw_discard(struct vimg_image *img, uint64_t offset,
                       uint64_t count)
{
    return vimg_internal_discard(img->file, offset, count);
}

static int raw_truncate(struct vimg_image *img, uint64_t size, unsigned flags,
                        enum vimg_prealloc prealloc)
{
    if (prealloc == VIMG_PREALLOC_METADATA) {
        return vimg_internal_img_error(img, EINVAL, "preallocation mode "
                                       "'metadata' is not supported by raw");
    }
    int r = vimg_internal_truncate(img->file, size, flags, prealloc);
    if (r == 0) {
        img->size = size;
    }
    return r;
}

static int raw_block_status(struct vimg_image *img, uint64_t offset,
                            uint64_t count, uint64_t *pnum, uint64_t *map,
                            const char **file)
{
    struct vimg_extent e;
    int r = vimg_internal_block_status(img->file, offset, count, 0, &e);

    if (r < 0) {
        return r;
    }
    *pnum = e.length;
    *map = e.file_offset;
    *file = e.file;
    return (int)(e.flags | VIMG_BS_ALLOCATED);
}

/* The protocol's facts (an RBD image's object size as "cluster-size"),
 * as QEMU's raw format passes bdrv_get_info on to its file. */
static int raw_get_info(struct vimg_image *img, struct vimg_value *info)
{
    return img->file->drv->get_info ? img->file->drv->get_info(img->file,
                                                               info)
                                    : 0;
}

/* As qemu-img: a raw file needs its whole virtual size, holes or not
 * (qemu-img cannot know the target file system keeps them), rounded up to
 * whole sectors. */
static int raw_measure(const struct vimg_opts *opts, uint64_t size,
                       struct vimg_image *src, struct vimg_measure *out)
{
    enum vimg_prealloc prealloc;
    int r = vimg_internal_opts_get_prealloc(opts, &prealloc);

    if (r < 0) {
        return r;
    }
    if (src) {
        size = (uint64_t)vimg_internal_get_size(src);
    }
    if (size > INT64_MAX) {
        return vimg_internal_error(EINVAL, "measure: size %llu is too large",
                                   (unsigned long long)size);
    }
    out->required = ROUND_UP(size, SECTOR);
    out->fully_allocated = out->required;
    return 0;
}

const struct vimg_driver vimg_driver_raw = {
    .name = "raw",
    .kind = VIMG_DRIVER_FORMAT,
    .instance_size = 0,
    .thread_safe = true,
    .has_zero_init = true,
    .create_opts = raw_create_opts,
    .probe = raw_probe,
    .open = raw_open,
    .create = raw_create,
    .pread = raw_pread,
    .pwrite = raw_pwrite,
    .zero = raw_zero,
    .discard = raw_discard,
    .truncate = raw_truncate,
    .block_status = raw_block_status,
    .get_info = raw_get_info,
    .measure = raw_measure,
};
