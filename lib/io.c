/* The data path: every bounds, alignment and read-only check happens here,
 * once, before a driver sees the request. */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "../common/checked-overflow.h"
#include "../common/rounding.h"
#include "internal.h"
#include "protocols/file-lock.h"

#define LOCK(img)                                                           \
    bool locked_ = !(img)->drv->thread_safe;                                \
    if (locked_) {                                                          \
        pthread_mutex_lock(&(img)->lock);                                   \
    }
#define UNLOCK(img)                                                         \
    if (locked_) {                                                          \
        pthread_mutex_unlock(&(img)->lock);                                 \
    }

int64_t vimg_internal_get_size(struct vimg_image *img)
{
    /* A protocol's size grows under concurrent appends (file.c stores it
     * atomically): read it the same way. */
    return (int64_t)__atomic_load_n(&img->size, __ATOMIC_RELAXED);
}

int vimg_internal_read_header(struct vimg_image *img, void *buf, size_t len,
                              const char *what, uint64_t *file_size)
{
    *file_size = (uint64_t)vimg_internal_get_size(img->file);
    if (*file_size < len) {
        return vimg_internal_img_error(img, EINVAL, "file is too small for "
                                       "%s", what);
    }
    return vimg_internal_pread(img->file, buf, len, 0);
}

/* Formats: the range must lie inside the virtual size. Protocols grow, so
 * only overflow is checked there. */
static int check_range(struct vimg_image *img, uint64_t offset,
                       uint64_t count)
{
    uint64_t limit = img->drv->kind == VIMG_DRIVER_FORMAT ? img->size
                                                          : INT64_MAX;
    if (range_outside(offset, count, limit)) {
        return vimg_internal_img_error(img, EINVAL, "request at offset %llu "
                                       "for %llu bytes is outside the image "
                                       "(%llu bytes)",
                                       (unsigned long long)offset,
                                       (unsigned long long)count,
                                       (unsigned long long)img->size);
    }
    return 0;
}

static int check_writable(struct vimg_image *img)
{
    if (!img->writable) {
        return vimg_internal_img_error(img, EROFS, "image is opened "
                                       "read-only");
    }
    return 0;
}

static bool unaligned(struct vimg_image *img, uint64_t offset,
                      uint64_t count, const void *buf)
{
    uint32_t a = img->request_alignment;
    return a > 1 && (offset % a || count % a || (uintptr_t)buf % a);
}

/* O_DIRECT needs aligned offsets, lengths and memory: go through an aligned
 * bounce buffer covering the request (read-modify-write for writes). */
static int bounce_io(struct vimg_image *img, void *buf, uint64_t count,
                     uint64_t offset, const void *wbuf, unsigned flags)
{
    uint32_t a = img->request_alignment;
    uint64_t start = ROUND_DOWN(offset, a);
    uint64_t len = ROUND_UP(offset + count, a) - start;
    void *bounce;
    int r;

    if (posix_memalign(&bounce, a, len) != 0) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    /* A read-modify-write touches bytes outside the request: two of them
     * sharing a block (parallel convert workers, -W) must not interleave,
     * even on a thread-safe driver. */
    bool locked_ = !img->drv->thread_safe || wbuf;
    if (locked_) {
        pthread_mutex_lock(&img->lock);
    }
    if (!wbuf || start != offset || len != count) {
        r = img->drv->pread(img, bounce, len, start);
    } else {
        r = 0;
    }
    if (r == 0 && wbuf) {
        memcpy((char *)bounce + (offset - start), wbuf, count);
        r = img->drv->pwrite(img, bounce, len, start, flags);
    } else if (r == 0) {
        memcpy(buf, (char *)bounce + (offset - start), count);
    }
    UNLOCK(img);
    free(bounce);
    return r;
}

int vimg_internal_pread(struct vimg_image *img, void *buf, uint64_t count,
                        uint64_t offset)
{
    int r = check_range(img, offset, count);
    if (r < 0 || count == 0) {
        return r;
    }
    if (unaligned(img, offset, count, buf)) {
        return bounce_io(img, buf, count, offset, NULL, 0);
    }
    LOCK(img);
    r = img->drv->pread(img, buf, count, offset);
    UNLOCK(img);
    return r;
}

int vimg_internal_pwrite(struct vimg_image *img, const void *buf,
                         uint64_t count, uint64_t offset, unsigned flags)
{
    int r = check_writable(img);
    if (r < 0 || (r = check_range(img, offset, count)) < 0 || count == 0) {
        return r;
    }
    if (unaligned(img, offset, count, buf)) {
        return bounce_io(img, NULL, count, offset, buf, flags);
    }
    LOCK(img);
    r = img->drv->pwrite(img, buf, count, offset, flags);
    UNLOCK(img);
    return r;
}

static int zero_by_writing(struct vimg_image *img, uint64_t offset,
                           uint64_t count)
{
    uint64_t chunk = MIN(count, (uint64_t)1 << 20);
    void *zeros;
    int r = 0;

    if (posix_memalign(&zeros, 4096, chunk) != 0) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    memset(zeros, 0, chunk);
    while (count > 0 && r == 0) {
        uint64_t n = MIN(count, chunk);
        r = vimg_internal_pwrite(img, zeros, n, offset, 0);
        offset += n;
        count -= n;
    }
    free(zeros);
    return r;
}

int vimg_internal_zero(struct vimg_image *img, uint64_t offset,
                       uint64_t count, unsigned flags)
{
    int r = check_writable(img);
    if (r < 0 || (r = check_range(img, offset, count)) < 0 || count == 0) {
        return r;
    }
    r = -ENOTSUP;
    if (img->drv->zero && !unaligned(img, offset, count, NULL)) {
        LOCK(img);
        r = img->drv->zero(img, offset, count, flags);
        UNLOCK(img);
    }
    if (r != -ENOTSUP) {
        return r;
    }
    if (flags & VIMG_ZERO_NO_FALLBACK) {
        return -ENOTSUP;
    }
    return zero_by_writing(img, offset, count);
}

long vimg_internal_compress_block(struct vimg_image *img, const void *in,
                                  void *out, uint64_t cap)
{
    if (!img->drv->compress) {
        return vimg_internal_img_error(img, ENOTSUP, "the %s format does "
                                       "not support compression",
                                       img->drv->name);
    }
    return img->drv->compress(img, in, out, cap);
}

int vimg_internal_write_block(struct vimg_image *img, uint64_t offset,
                              const void *plain, uint64_t len,
                              const void *cbuf, uint64_t clen)
{
    int r = check_writable(img);
    if (r < 0 || (r = check_range(img, offset, len)) < 0) {
        return r;
    }
    if (!img->drv->write_compressed || !img->compress_unit ||
        offset % img->compress_unit ||
        (len != img->compress_unit && offset + len != img->size)) {
        return vimg_internal_img_error(img, EINVAL, "compressed write at "
                                       "offset %llu for %llu bytes is not "
                                       "one whole block",
                                       (unsigned long long)offset,
                                       (unsigned long long)len);
    }
    if (!cbuf) {
        return vimg_internal_pwrite(img, plain, len, offset, 0);
    }
    LOCK(img);
    r = img->drv->write_compressed(img, offset, cbuf, clen);
    UNLOCK(img);
    return r;
}

int vimg_internal_discard(struct vimg_image *img, uint64_t offset,
                          uint64_t count)
{
    int r = check_writable(img);
    if (r < 0 || (r = check_range(img, offset, count)) < 0 || count == 0 ||
        !img->drv->discard) {
        return r;
    }
    LOCK(img);
    r = img->drv->discard(img, offset, count);
    UNLOCK(img);
    return r;
}

int vimg_internal_flush(struct vimg_image *img)
{
    int r = 0;

    if (!img->writable) {
        return 0;
    }
    /* cache=unsafe skips only the flush to disk (the protocol's
     * fdatasync); formats still write their cached metadata out, in
     * order, as QEMU's flush_to_os does. */
    bool to_disk = img->drv->kind == VIMG_DRIVER_PROTOCOL;
    if (img->drv->flush &&
        !(to_disk && (img->params.flags & VIMG_OPEN_NO_FLUSH))) {
        LOCK(img);
        r = img->drv->flush(img);
        UNLOCK(img);
    }
    if (r == 0 && img->file) {
        r = vimg_internal_flush(img->file);
    }
    return r;
}

int vimg_internal_shrink_refused(struct vimg_image *img, uint64_t size,
                                 int err, const char *how)
{
    int64_t at = vimg_internal_first_data(img, size);

    /* The message this records replaces any from the search. */
    vimg_internal_error_clear();
    if (at < 0) {
        return vimg_internal_img_error(img, err, "shrinking from %llu to "
                                       "%llu bytes would lose data: use %s "
                                       "to allow it",
                                       (unsigned long long)img->size,
                                       (unsigned long long)size, how);
    }
    if ((uint64_t)at < img->size) {
        return vimg_internal_img_error(img, err, "shrinking from %llu to "
                                       "%llu bytes would lose the data at "
                                       "offset %lld and after: use %s to "
                                       "allow it",
                                       (unsigned long long)img->size,
                                       (unsigned long long)size,
                                       (long long)at, how);
    }
    return vimg_internal_img_error(img, err, "shrinking from %llu to %llu "
                                   "bytes needs %s (no data lies past the "
                                   "new end)", (unsigned long long)img->size,
                                   (unsigned long long)size, how);
}

int64_t vimg_internal_first_data(struct vimg_image *img, uint64_t from)
{
    uint64_t off = from;

    while (off < img->size) {
        struct vimg_extent e;
        int r = vimg_internal_block_status(img, off, img->size - off,
                                           VIMG_BS_CHAIN, &e);
        if (r < 0) {
            return r;
        }
        if ((e.flags & VIMG_BS_DATA) && !(e.flags & VIMG_BS_ZERO)) {
            return (int64_t)off;
        }
        off += e.length;
    }
    return (int64_t)img->size;
}

int vimg_internal_truncate(struct vimg_image *img, uint64_t size,
                           unsigned flags, enum vimg_prealloc prealloc)
{
    int r = check_writable(img);
    if (r < 0) {
        return r;
    }
    if (size > INT64_MAX) {
        return vimg_internal_img_error(img, EINVAL, "size too large");
    }
    if (!img->drv->truncate) {
        return vimg_internal_img_error(img, ENOTSUP, "the %s format cannot "
                                       "be resized", img->drv->name);
    }
    if (size < img->size && !(flags & VIMG_TRUNCATE_SHRINK) &&
        img->drv->kind == VIMG_DRIVER_FORMAT) {
        return vimg_internal_shrink_refused(img, size, EINVAL, "--shrink");
    }
    LOCK(img);
    r = img->drv->truncate(img, size, flags, prealloc);
    UNLOCK(img);
    return r;
}

/* Whether IMG's clusters are mostly holes in its file, as a qcow2 made
 * with preallocation=metadata is: QEMU then asks the file about each data
 * extent (qcow2_detect_metadata_preallocation). QEMU counts the clusters
 * with a refcount; here the file's length stands for them, so the test is
 * its length against its allocated bytes, with QEMU's threshold (a tenth
 * more, or two clusters). Decided once per image, as QEMU does. */
static bool sparse_file(struct vimg_image *img)
{
    int v = atomic_load(&img->sparse_file);
    if (v == 0) {
        struct vimg_image *f = img->file;
        uint64_t cluster = img->compress_unit ? img->compress_unit : 65536;
        int64_t len = vimg_internal_get_size(f);
        int64_t alloc = f->drv->allocated_size ? f->drv->allocated_size(f)
                                               : len;
        uint64_t real = alloc > 0 ? (uint64_t)alloc / cluster : 0;
        uint64_t threshold = MAX(real * 10 / 9, real + 2);
        v = len >= 0 && alloc >= 0 &&
                    ((uint64_t)len + cluster - 1) / cluster > threshold
                ? 2 : 1;
        atomic_store(&img->sparse_file, v);
    }
    return v == 2;
}

/* One layer's answer, with the core's defaults filled in. */
static int layer_status(struct vimg_image *img, uint64_t offset,
                        uint64_t count, struct vimg_extent *e)
{
    uint64_t pnum = count, map = 0;
    const char *file = NULL;
    int r;

    if (!img->drv->block_status) {
        r = VIMG_BS_DATA | VIMG_BS_ALLOCATED;
    } else {
        LOCK(img);
        r = img->drv->block_status(img, offset, count, &pnum, &map, &file);
        UNLOCK(img);
        if (r < 0) {
            return r;
        }
        if (pnum == 0 || pnum > count) {
            return vimg_internal_img_error(img, EIO, "driver %s returned a "
                                           "bad block status length",
                                           img->drv->name);
        }
    }
    /* qcow2 clusters preallocated with preallocation=metadata read as
     * zeros where the file has a hole or ends: say so, as QEMU's block
     * layer asks the protocol below for such images (BDRV_BLOCK_RECURSE),
     * so that map reports zero and convert skips them. */
    if ((r & (VIMG_BS_DATA | VIMG_BS_ZERO | VIMG_BS_OFFSET_VALID)) ==
            (VIMG_BS_DATA | VIMG_BS_OFFSET_VALID) &&
        img->drv == &vimg_driver_qcow2 && img->file && file &&
        strcmp(file, img->file->filename) == 0 &&
        img->file->drv->block_status && sparse_file(img)) {
        uint64_t fpnum = pnum, fmap = 0;
        const char *ffile = NULL;
        bool had_error = vimg_internal_error_set();
        LOCK(img->file);
        int fr = img->file->drv->block_status(img->file, map, pnum, &fpnum,
                                              &fmap, &ffile);
        UNLOCK(img->file);
        /* Errors only lose this extra fact, as in QEMU. */
        if (fr >= 0 && fpnum > 0 && fpnum <= pnum) {
            pnum = fpnum;
            r |= fr & VIMG_BS_ZERO;
        } else if (fr < 0 && !had_error) {
            vimg_internal_error_clear();
        }
    }
    e->offset = offset;
    e->length = pnum;
    e->flags = (unsigned)r;
    e->file_offset = map;
    e->file = (r & VIMG_BS_OFFSET_VALID) ? file : NULL;
    return 0;
}

int vimg_internal_block_status(struct vimg_image *img, uint64_t offset,
                               uint64_t count, unsigned flags,
                               struct vimg_extent *ext)
{
    int r = check_range(img, offset, count);
    if (r < 0) {
        return r;
    }
    if (count == 0) {
        return vimg_internal_img_error(img, EINVAL, "block status of an "
                                       "empty range");
    }
    memset(ext, 0, sizeof *ext);
    r = layer_status(img, offset, count, ext);
    if (r < 0 || !(flags & VIMG_BS_CHAIN)) {
        return r;
    }
    /* Walk down the chain until a layer decides, shortening the extent to
     * what every layer above agreed was unallocated. */
    struct vimg_image *layer = img;
    int depth = 0;
    while (!(ext->flags & VIMG_BS_ALLOCATED)) {
        uint64_t len = ext->length;
        if (layer->backing_name && !layer->backing) {
            return vimg_internal_img_error(layer, EIO, "backing file '%s' "
                                           "was not opened",
                                           layer->backing_name);
        }
        if (!layer->backing || offset >= layer->backing->size) {
            /* Nothing below, or past the backing file's end: zeros,
             * decided by this layer (qemu-img map reports its depth, and
             * the host offset of a qcow2 cluster allocated without its
             * subclusters). */
            ext->flags = VIMG_BS_ZERO | (ext->flags & VIMG_BS_OFFSET_VALID);
            ext->depth = depth;
            if (!(ext->flags & VIMG_BS_OFFSET_VALID)) {
                ext->file = NULL;
            }
            return 0;
        }
        layer = layer->backing;
        depth++;
        r = layer_status(layer, offset, MIN(len, layer->size - offset), ext);
        if (r < 0) {
            return r;
        }
    }
    ext->depth = depth;
    return 0;
}

int vimg_internal_read_backing(struct vimg_image *img, void *buf,
                               uint64_t count, uint64_t offset)
{
    struct vimg_image *b = img->backing;

    if (!b) {
        if (img->backing_name) {
            return vimg_internal_img_error(img, EIO, "backing file '%s' was "
                                           "not opened", img->backing_name);
        }
        memset(buf, 0, count);
        return 0;
    }
    uint64_t avail = offset < b->size ? MIN(count, b->size - offset) : 0;
    int r = avail ? vimg_internal_pread(b, buf, avail, offset) : 0;
    if (r == 0 && avail < count) {
        memset((char *)buf + avail, 0, count - avail);
    }
    return r;
}

/* ---- Public wrappers: clear the error slot, then do the work. ---------- */

#define PUBLIC_ENTRY(img)                                                   \
    vimg_internal_error_clear();                                            \
    if (!(img)) {                                                           \
        vimg_internal_error(EINVAL, "no image");                            \
        return -1;                                                          \
    }

static int public_result(struct vimg_image *img, int r)
{
    if (r < 0 && !vimg_internal_error_set()) {
        vimg_internal_img_error(img, r, "%s", strerror(-r));
    }
    return r < 0 ? -1 : r;
}

int vimg_pread(struct vimg_image *img, void *buf, size_t count,
               uint64_t offset)
{
    PUBLIC_ENTRY(img);
    return public_result(img, vimg_internal_pread(img, buf, count, offset));
}

int vimg_pwrite(struct vimg_image *img, const void *buf, size_t count,
                uint64_t offset, unsigned flags)
{
    PUBLIC_ENTRY(img);
    return public_result(img, vimg_internal_pwrite(
                                  img, buf, count, offset,
                                  flags & ~VIMG_INTERNAL_WRITE_METADATA));
}

int vimg_zero(struct vimg_image *img, uint64_t offset, uint64_t count,
              unsigned flags)
{
    PUBLIC_ENTRY(img);
    return public_result(img, vimg_internal_zero(img, offset, count, flags));
}

int vimg_write_compressed(struct vimg_image *img, const void *buf,
                          size_t count, uint64_t offset)
{
    PUBLIC_ENTRY(img);
    uint64_t unit = img->compress_unit;
    uint8_t *block = NULL, *out = NULL;
    int r = 0;

    if (!img->drv->compress || !unit) {
        r = vimg_internal_img_error(img, ENOTSUP, "the %s format does not "
                                    "support compression", img->drv->name);
    } else if (!(block = malloc(unit)) || !(out = malloc(unit))) {
        r = vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    for (uint64_t at = 0; r == 0 && at < count; at += unit) {
        uint64_t n = MIN(unit, count - at);
        memcpy(block, (const uint8_t *)buf + at, n);
        memset(block + n, 0, unit - n);
        /* One byte less than a block, as QEMU: equal size is no gain. */
        long c = vimg_internal_compress_block(img, block, out, unit - 1);
        if (c < 0 && c != -ENOSPC) {
            r = (int)c;
            if (!vimg_internal_error_set()) {
                vimg_internal_img_error(img, -r, "cannot compress a block");
            }
            break;
        }
        r = vimg_internal_write_block(img, offset + at, block, n,
                                      c < 0 ? NULL : out,
                                      c < 0 ? 0 : (uint64_t)c);
    }
    free(block);
    free(out);
    return public_result(img, r);
}

int vimg_discard(struct vimg_image *img, uint64_t offset, uint64_t count)
{
    PUBLIC_ENTRY(img);
    return public_result(img, vimg_internal_discard(img, offset, count));
}

int vimg_flush(struct vimg_image *img)
{
    PUBLIC_ENTRY(img);
    return public_result(img, vimg_internal_flush(img));
}

int vimg_truncate(struct vimg_image *img, uint64_t size, unsigned flags,
                  enum vimg_prealloc prealloc)
{
    PUBLIC_ENTRY(img);
    /* Raw writers open without resize permission (see take_locks). */
    if (img->writable && !(img->params.flags & VIMG_OPEN_NO_LOCK) &&
        vimg_internal_file_lock_more(img->file ? img->file : img,
                                     FILE_PERM_RESIZE) < 0) {
        return -1;
    }
    return public_result(img, vimg_internal_truncate(img, size, flags,
                                                     prealloc));
}

int vimg_block_status(struct vimg_image *img, uint64_t offset,
                      uint64_t count, unsigned flags,
                      struct vimg_extent *extent)
{
    PUBLIC_ENTRY(img);
    return public_result(img, vimg_internal_block_status(img, offset, count,
                                                         flags, extent));
}
