#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>

#include "file-lock.h"

#define LOCK_PERM_BASE 100
#define LOCK_SHARED_BASE 200

static const char *const perm_names[] = { "consistent read", "write",
                                          "write unchanged", "resize" };

static int lock_byte(int fd, int byte, short type)
{
    struct flock fl = { .l_whence = SEEK_SET, .l_start = byte, .l_len = 1,
                        .l_type = type };
    return fcntl(fd, F_OFD_SETLK, &fl);
}

/* True when another open file description holds a lock on BYTE. */
static bool byte_held(int fd, int byte)
{
    struct flock fl = { .l_whence = SEEK_SET, .l_start = byte, .l_len = 1,
                        .l_type = F_WRLCK };
    return fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
}

int vimg_internal_file_lock_more(struct vimg_image *img, unsigned perm)
{
    int fd = vimg_internal_file_fd(img);

    if (fd < 0) {
        return 0;
    }
    for (int bit = 0; bit < 4; bit++) {
        if (((perm >> bit) & 1) && byte_held(fd, LOCK_SHARED_BASE + bit)) {
            return vimg_internal_img_error(img, EAGAIN, "Failed to get \"%s\""
                                           " lock: is another process using "
                                           "the image?", perm_names[bit]);
        }
    }
    for (int bit = 0; bit < 4; bit++) {
        if (((perm >> bit) & 1) &&
            lock_byte(fd, LOCK_PERM_BASE + bit, F_RDLCK) < 0 &&
            errno != EINVAL && errno != ENOTSUP && errno != ENOLCK) {
            return vimg_internal_img_error(img, errno, "lock: %s",
                                           strerror(errno));
        }
    }
    return 0;
}

int vimg_internal_file_lock(struct vimg_image *img, unsigned perm,
                            unsigned shared)
{
    int fd = vimg_internal_file_fd(img);

    if (fd < 0) {
        return 0; /* not a file: nothing to lock */
    }
    return vimg_internal_fd_lock(fd, img->filename, perm, shared);
}

int vimg_internal_fd_lock(int fd, const char *name, unsigned perm,
                          unsigned shared)
{
    for (int bit = 0; bit < 4; bit++) {
        if (((perm >> bit) & 1) &&
            lock_byte(fd, LOCK_PERM_BASE + bit, F_RDLCK) < 0) {
            goto failed;
        }
        if (!((shared >> bit) & 1) &&
            lock_byte(fd, LOCK_SHARED_BASE + bit, F_RDLCK) < 0) {
            goto failed;
        }
    }
    for (int bit = 0; bit < 4; bit++) {
        if (((perm >> bit) & 1) && byte_held(fd, LOCK_SHARED_BASE + bit)) {
            struct flock all = { .l_whence = SEEK_SET, .l_type = F_UNLCK };
            fcntl(fd, F_OFD_SETLK, &all);
            return vimg_internal_error(EAGAIN, "%s: Failed to get \"%s\" "
                                       "lock: is another process using the "
                                       "image?", name, perm_names[bit]);
        }
        if (!((shared >> bit) & 1) && byte_held(fd, LOCK_PERM_BASE + bit)) {
            struct flock all = { .l_whence = SEEK_SET, .l_type = F_UNLCK };
            fcntl(fd, F_OFD_SETLK, &all);
            return vimg_internal_error(EAGAIN, "%s: Failed to get shared "
                                       "\"%s\" lock: is another process "
                                       "using the image?%s", name,
                                       perm_names[bit],
                                       perm & FILE_PERM_WRITE
                                           ? ""
                                           : " (-U reads it anyway)");
        }
    }
    return 0;

failed:
    if (errno == EINVAL || errno == ENOTSUP || errno == ENOLCK) {
        return 0; /* file system without OFD locks, as QEMU tolerates */
    }
    return vimg_internal_error(errno, "%s: lock: %s", name, strerror(errno));
}
