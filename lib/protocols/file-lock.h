/* Image locks compatible with QEMU's file-posix: open-file-description
 * read locks on single bytes, 100 + bit for each permission held and
 * 200 + bit for each permission *not* shared with other users. A conflict
 * is another holder of the byte we test. */
#ifndef VIMG_FILE_LOCK_H
#define VIMG_FILE_LOCK_H

#include "../internal.h"

enum {
    FILE_PERM_READ = 1u << 0,      /* QEMU BLK_PERM_CONSISTENT_READ */
    FILE_PERM_WRITE = 1u << 1,
    FILE_PERM_WRITE_UNCHANGED = 1u << 2,
    FILE_PERM_RESIZE = 1u << 3,
    FILE_PERM_ALL = 0xf,
};

/* Take locks on IMG (a file protocol image) for PERM while sharing SHARED,
 * then test for conflicting holders; on conflict the locks are dropped and
 * an error like QEMU's is recorded. */
int vimg_internal_file_lock(struct vimg_image *img, unsigned perm,
                            unsigned shared);
/* The same on a bare descriptor FD (a file being replaced); messages start
 * with NAME. */
int vimg_internal_fd_lock(int fd, const char *name, unsigned perm,
                          unsigned shared);
/* Add PERM to the permissions IMG already holds (a resize on an image
 * opened without resize permission), after checking that no other holder
 * refuses to share them; on conflict nothing changes and QEMU's error is
 * recorded. */
int vimg_internal_file_lock_more(struct vimg_image *img, unsigned perm);
/* The descriptor of a file protocol image, or -1. */
int vimg_internal_file_fd(struct vimg_image *img);

#endif
