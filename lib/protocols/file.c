/* The file protocol: regular files and block devices through pread/pwrite,
 * fallocate, SEEK_DATA/SEEK_HOLE, and QEMU-compatible image locks. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../internal.h"
#include "file-lock.h"

struct file_state {
    int fd;
    bool is_device;              /* block or character device */
    _Atomic uint64_t size;       /* grows as formats append */
    _Atomic bool no_zero_range;  /* kernel said ENOTSUP once: stop asking */
    _Atomic bool no_punch_hole;
    _Atomic bool no_seek_data;
};

static int file_open_fd(struct vimg_image *img);

static int file_open(struct vimg_image *img, const struct vimg_opts *opts)
{
    struct file_state *s = img->opaque;
    (void)opts;
    int r = file_open_fd(img);
    if (r < 0 && s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
    }
    return r;
}

/* Everything after the descriptor is open: what the file is, its size,
 * blocking mode and O_DIRECT alignment. FLAGS are the open flags. */
static int file_setup(struct vimg_image *img, int flags)
{
    struct file_state *s = img->opaque;
    struct stat st;

    if (fstat(s->fd, &st) < 0) {
        return vimg_internal_img_error(img, errno, "stat: %s",
                                       strerror(errno));
    }
    if (S_ISDIR(st.st_mode)) {
        return vimg_internal_img_error(img, EISDIR, "Is a directory, not "
                                       "an image");
    }
    if (S_ISBLK(st.st_mode)) {
        uint64_t bytes;
        if (ioctl(s->fd, BLKGETSIZE64, &bytes) < 0) {
            return vimg_internal_img_error(img, errno, "BLKGETSIZE64: %s",
                                           strerror(errno));
        }
        s->is_device = true;
        atomic_store(&s->size, bytes);
    } else if (S_ISREG(st.st_mode)) {
        atomic_store(&s->size, (uint64_t)st.st_size);
    } else if (S_ISCHR(st.st_mode) && img->writable) {
        /* A character device is only ever an output (qemu-img accepts
         * /dev/null as a target): its size is what seeking to its end
         * says, 0 for /dev/null. Read as an image it has no contents. */
        off_t end = lseek(s->fd, 0, SEEK_END);
        s->is_device = true;
        atomic_store(&s->size, end > 0 ? (uint64_t)end : 0);
    } else {
        return vimg_internal_img_error(img, EINVAL, "not a regular file or "
                                       "block device");
    }
    if (fcntl(s->fd, F_SETFL, flags & ~O_NONBLOCK) < 0) {
        return vimg_internal_img_error(img, errno, "fcntl: %s",
                                       strerror(errno));
    }
    img->size = atomic_load(&s->size);
    if (flags & O_DIRECT) {
        /* Logical block size for O_DIRECT; 4096 is always safe for files. */
        unsigned int bs = 4096;
        if (S_ISBLK(st.st_mode) && ioctl(s->fd, BLKSSZGET, &bs) < 0) {
            bs = 4096;
        }
        img->request_alignment = bs;
    }
    return 0;
}

static int file_open_fd(struct vimg_image *img)
{
    struct file_state *s = img->opaque;
    /* O_NONBLOCK: opening a FIFO must fail below, not wait for a writer;
     * it is cleared once the file is known to be a file or a disk. */
    int flags = O_CLOEXEC | O_NOCTTY | O_NONBLOCK |
                (img->writable ? O_RDWR : O_RDONLY);

    s->fd = -1;
    if (img->params.flags & VIMG_OPEN_NOCACHE) {
        flags |= O_DIRECT;
    }
    s->fd = open(img->filename, flags);
    if (s->fd < 0 && errno == EINVAL && (flags & O_DIRECT)) {
        return vimg_internal_img_error(img, EINVAL, "this file system does "
                                       "not support O_DIRECT (-t/-T none)");
    }
    if (s->fd < 0) {
        return vimg_internal_img_error(img, errno, "Could not open: %s",
                                       strerror(errno));
    }
    return file_setup(img, flags);
}

int vimg_internal_file_adopt(struct vimg_image *img, int fd)
{
    struct file_state *s = img->opaque;
    int flags;

    s->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (s->fd < 0 || (flags = fcntl(s->fd, F_GETFL)) < 0) {
        int e = errno;
        if (s->fd >= 0) {
            close(s->fd);
            s->fd = -1;
        }
        return vimg_internal_img_error(img, e, "Could not open: %s",
                                       strerror(e));
    }
    if ((img->params.flags & VIMG_OPEN_NOCACHE) && !(flags & O_DIRECT)) {
        flags |= O_DIRECT;
        if (fcntl(s->fd, F_SETFL, flags) < 0) {
            close(s->fd);
            s->fd = -1;
            return vimg_internal_img_error(img, EINVAL, "this file system "
                                           "does not support O_DIRECT "
                                           "(-t/-T none)");
        }
    }
    int r = file_setup(img, flags);
    if (r < 0) {
        close(s->fd);
        s->fd = -1;
    }
    return r;
}

/* Write the file's data to the disk. A character device (/dev/null)
 * says EINVAL: it has nothing to synchronise. */
static int file_sync(struct vimg_image *img)
{
    struct file_state *s = img->opaque;

    if (fdatasync(s->fd) < 0 && !(s->is_device && errno == EINVAL)) {
        return vimg_internal_img_error(img, errno, "flush: %s",
                                       strerror(errno));
    }
    return 0;
}

static int file_close(struct vimg_image *img)
{
    struct file_state *s = img->opaque;
    int r = 0;

    if (s->fd >= 0 && img->writable &&
        !(img->params.flags & VIMG_OPEN_NO_FLUSH)) {
        r = file_sync(img);
    }
    if (s->fd >= 0 && close(s->fd) < 0 && r == 0) {
        r = vimg_internal_img_error(img, errno, "close: %s",
                                    strerror(errno));
    }
    return r;
}

/* Formats on top read img->size (vimg_internal_get_size) to find the end
 * of the file they append to, so keep it current too. */
static void grow_size(struct vimg_image *img, struct file_state *s,
                      uint64_t end)
{
    uint64_t cur = atomic_load(&s->size);
    while (end > cur && !atomic_compare_exchange_weak(&s->size, &cur, end)) {
    }
    __atomic_store_n(&img->size, atomic_load(&s->size), __ATOMIC_RELAXED);
}

static int file_pread(struct vimg_image *img, void *buf, uint64_t count,
                      uint64_t offset)
{
    struct file_state *s = img->opaque;
    char *p = buf;

    while (count > 0) {
        ssize_t n = pread(s->fd, p, count, (off_t)offset);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return vimg_internal_img_error(img, errno, "read at offset "
                                           "%llu: %s",
                                           (unsigned long long)offset,
                                           strerror(errno));
        }
        if (n == 0) {
            /* Past the end of the file reads as zeros, as formats that
             * append clusters expect. */
            memset(p, 0, count);
            return 0;
        }
        p += n;
        offset += (uint64_t)n;
        count -= (uint64_t)n;
    }
    return 0;
}

static int file_pwrite(struct vimg_image *img, const void *buf,
                       uint64_t count, uint64_t offset, unsigned flags)
{
    struct file_state *s = img->opaque;
    const char *p = buf;
    uint64_t end = offset + count;

    while (count > 0) {
        ssize_t n = pwrite(s->fd, p, count, (off_t)offset);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return vimg_internal_img_error(img, errno, "write at offset "
                                           "%llu: %s",
                                           (unsigned long long)offset,
                                           strerror(errno));
        }
        p += n;
        offset += (uint64_t)n;
        count -= (uint64_t)n;
    }
    grow_size(img, s, end);
    return (flags & VIMG_WRITE_FUA) ? file_sync(img) : 0;
}

static int try_fallocate(struct vimg_image *img, int mode, uint64_t offset,
                         uint64_t count, _Atomic bool *unsupported)
{
    struct file_state *s = img->opaque;

    if (atomic_load(unsupported)) {
        return -ENOTSUP;
    }
    for (;;) {
        if (fallocate(s->fd, mode, (off_t)offset, (off_t)count) == 0) {
            return 0;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EOPNOTSUPP || errno == ENOSYS || errno == EINVAL) {
            atomic_store(unsupported, true);
            return -ENOTSUP;
        }
        return vimg_internal_img_error(img, errno, "fallocate at offset "
                                       "%llu: %s",
                                       (unsigned long long)offset,
                                       strerror(errno));
    }
}

static int file_zero(struct vimg_image *img, uint64_t offset, uint64_t count,
                     unsigned flags)
{
    struct file_state *s = img->opaque;
    int r;

    if (s->is_device) {
        /* Devices: let the core write zeroed buffers. */
        return -ENOTSUP;
    }
    if (flags & VIMG_ZERO_MAY_UNMAP) {
        r = try_fallocate(img, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                          offset, count, &s->no_punch_hole);
        if (r != -ENOTSUP) {
            if (r == 0 && offset + count > atomic_load(&s->size)) {
                /* Punching keeps the size: extend explicitly. */
                if (ftruncate(s->fd, (off_t)(offset + count)) < 0) {
                    return vimg_internal_img_error(img, errno, "truncate: %s",
                                                   strerror(errno));
                }
                grow_size(img, s, offset + count);
            }
            return r;
        }
    }
    r = try_fallocate(img, FALLOC_FL_ZERO_RANGE, offset, count,
                      &s->no_zero_range);
    if (r == 0) {
        grow_size(img, s, offset + count);
    }
    return r;
}

static int file_discard(struct vimg_image *img, uint64_t offset,
                        uint64_t count)
{
    struct file_state *s = img->opaque;
    int r;

    if (s->is_device) {
        uint64_t range[2] = { offset, count };
        (void)ioctl(s->fd, BLKDISCARD, range); /* only a hint */
        return 0;
    }
    r = try_fallocate(img, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                      offset, count, &s->no_punch_hole);
    return r == -ENOTSUP ? 0 : r;
}

static int file_flush(struct vimg_image *img)
{
    return file_sync(img);
}

static int write_zero_buffers(struct vimg_image *img, uint64_t from,
                              uint64_t to)
{
    static const char zeros[65536];
    while (from < to) {
        uint64_t n = to - from < sizeof zeros ? to - from : sizeof zeros;
        int r = file_pwrite(img, zeros, n, from, 0);
        if (r < 0) {
            return r;
        }
        from += n;
    }
    return 0;
}

static int file_truncate(struct vimg_image *img, uint64_t size,
                         unsigned flags, enum vimg_prealloc prealloc)
{
    struct file_state *s = img->opaque;
    uint64_t old = atomic_load(&s->size);
    int r;

    (void)flags;
    if (s->is_device) {
        if (size > old) {
            return vimg_internal_img_error(img, EINVAL, "cannot grow a "
                                           "device");
        }
        return 0;
    }
    if (size > old && prealloc == VIMG_PREALLOC_FALLOC) {
        r = posix_fallocate(s->fd, (off_t)old, (off_t)(size - old));
        if (r != 0) {
            r = vimg_internal_img_error(img, r, "preallocation: %s",
                                        strerror(r));
        }
    } else if (size > old && prealloc == VIMG_PREALLOC_FULL) {
        r = write_zero_buffers(img, old, size);
    } else {
        r = 0;
    }
    if (r < 0) {
        /* A preallocation that ran out of space has grown the file as far
         * as it got: give the space back and keep the old length, so that
         * a failed resize leaves the file as it was. */
        (void)ftruncate(s->fd, (off_t)old);
        atomic_store(&s->size, old);
        img->size = old;
        return r;
    }
    if (ftruncate(s->fd, (off_t)size) < 0) {
        return vimg_internal_img_error(img, errno, "truncate to %llu bytes: "
                                       "%s", (unsigned long long)size,
                                       strerror(errno));
    }
    atomic_store(&s->size, size);
    img->size = size;
    return 0;
}

static int file_block_status(struct vimg_image *img, uint64_t offset,
                             uint64_t count, uint64_t *pnum, uint64_t *map,
                             const char **file)
{
    struct file_state *s = img->opaque;
    off_t data, hole;

    *map = offset;
    *file = img->filename;
    *pnum = count;
    if (s->is_device || atomic_load(&s->no_seek_data)) {
        return VIMG_BS_DATA | VIMG_BS_OFFSET_VALID;
    }
    data = lseek(s->fd, (off_t)offset, SEEK_DATA);
    if (data < 0) {
        if (errno == ENXIO) {
            /* Past the last data: a hole up to the end of the file. */
            return VIMG_BS_ZERO | VIMG_BS_OFFSET_VALID;
        }
        atomic_store(&s->no_seek_data, true);
        return VIMG_BS_DATA | VIMG_BS_OFFSET_VALID;
    }
    if ((uint64_t)data > offset) {
        uint64_t n = (uint64_t)data - offset;
        *pnum = n < count ? n : count;
        return VIMG_BS_ZERO | VIMG_BS_OFFSET_VALID;
    }
    hole = lseek(s->fd, (off_t)offset, SEEK_HOLE);
    if (hole < 0 || (uint64_t)hole <= offset) {
        return VIMG_BS_DATA | VIMG_BS_OFFSET_VALID;
    }
    uint64_t n = (uint64_t)hole - offset;
    *pnum = n < count ? n : count;
    return VIMG_BS_DATA | VIMG_BS_OFFSET_VALID;
}

static int64_t file_allocated_size(struct vimg_image *img)
{
    struct file_state *s = img->opaque;
    struct stat st;

    if (fstat(s->fd, &st) < 0) {
        return vimg_internal_img_error(img, errno, "stat: %s",
                                       strerror(errno));
    }
    return (int64_t)st.st_blocks * 512;
}

int vimg_internal_file_copy_range(struct vimg_image *src, uint64_t src_offset,
                                  struct vimg_image *dst, uint64_t dst_offset,
                                  uint64_t count)
{
    struct file_state *ss = src->opaque, *ds = dst->opaque;
    off_t in = (off_t)src_offset, out = (off_t)dst_offset;

    if (src->drv != &vimg_driver_file || dst->drv != &vimg_driver_file) {
        return -ENOTSUP;
    }
    while (count > 0) {
        ssize_t n = copy_file_range(ss->fd, &in, ds->fd, &out, count, 0);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            /* The kernel or a file system that cannot copy between
             * these files (another file system, O_DIRECT, a device):
             * the caller copies through memory instead. */
            if (errno == EXDEV || errno == EINVAL || errno == ENOSYS ||
                errno == EOPNOTSUPP || errno == EBADF) {
                return -ENOTSUP;
            }
            return vimg_internal_img_error(dst, errno, "copy_file_range "
                                           "at offset %llu: %s",
                                           (unsigned long long)out,
                                           strerror(errno));
        }
        if (n == 0) {
            /* The source ends first (it reads as zeros past its end,
             * which the kernel does not copy). */
            return -ENODATA;
        }
        count -= (uint64_t)n;
    }
    grow_size(dst, ds, (uint64_t)out);
    return 0;
}

int vimg_internal_file_fd(struct vimg_image *img)
{
    struct file_state *s = img->opaque;
    return img->drv == &vimg_driver_file ? s->fd : -1;
}

const struct vimg_driver vimg_driver_file = {
    .name = "file",
    .kind = VIMG_DRIVER_PROTOCOL,
    .instance_size = sizeof(struct file_state),
    .thread_safe = true,
    .has_zero_init = true,
    .open = file_open,
    .close = file_close,
    .pread = file_pread,
    .pwrite = file_pwrite,
    .zero = file_zero,
    .discard = file_discard,
    .flush = file_flush,
    .truncate = file_truncate,
    .block_status = file_block_status,
    .allocated_size = file_allocated_size,
};
