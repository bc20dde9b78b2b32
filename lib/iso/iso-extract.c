/* Extracting files and trees from an ISO 9660 volume into a host folder.
 * The image is untrusted: every name is checked before it reaches the file
 * system, every file and folder is created relative to an already-open
 * folder descriptor (openat/mkdirat with O_NOFOLLOW and O_EXCL), so no
 * symlink is ever followed while writing, and symlink targets are limited
 * to ones that cannot resolve outside the destination. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../common/iszero.h"
#include "../../common/rounding.h"
#include "iso-read.h"

#define COPY_BUFFER_SIZE (256u << 10)

struct extract {
    struct vimg_iso *iso;
    uint8_t *buf;
    uint64_t ancestors[ISO_MAX_DEPTH + 1];
};

static int sys_error(struct vimg_iso *iso, const char *path, const char *op)
{
    int e = errno;
    return iso_error(iso, e, "%s: cannot %s: %s", path, op, strerror(e));
}

static bool safe_name(const char *name)
{
    return name[0] && strcmp(name, ".") && strcmp(name, "..") &&
           !strchr(name, '/');
}

/* A target is safe when it is relative, and after its leading ".."
 * components (at most DEPTH of them: the link's folder depth below the
 * destination) only descends. Links it passes through obey the same rule,
 * so by induction no path through extracted links leaves the folder. */
static bool safe_target(const char *target, int depth)
{
    bool descending = false;
    const char *p = target;

    if (target[0] == '/' || target[0] == '\0') {
        return false;
    }
    while (*p) {
        size_t n = strcspn(p, "/");
        if (n == 2 && !strncmp(p, "..", 2)) {
            if (descending || --depth < 0) {
                return false;
            }
        } else if (n > 0 && !(n == 1 && p[0] == '.')) {
            descending = true;
        }
        p += n;
        p += *p == '/';
    }
    return true;
}

static void times_of(const struct iso_node *n, struct timespec ts[2])
{
    ts[0] = (struct timespec){ .tv_sec = n->st.atime };
    ts[1] = (struct timespec){ .tv_sec = n->st.mtime };
}

static int extract_file(struct extract *x, int dirfd, const char *path,
                        const struct iso_node *n)
{
    struct vimg_iso *iso = x->iso;
    struct timespec ts[2];
    bool hole_at_end = false;
    int r = 0;
    int fd = openat(dirfd, n->name,
                    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                    0644);

    if (fd < 0) {
        return sys_error(iso, path, "create");
    }
    for (size_t i = 0; i < n->n_extents && r == 0; i++) {
        const struct iso_extent *e = &n->extents[i];
        for (uint64_t done = 0; done < e->length;) {
            size_t len = (size_t)MIN(COPY_BUFFER_SIZE, e->length - done);
            struct vimg_extent bs;
            /* Zero runs become holes: a sparse 4 GiB file stays sparse,
             * and ranges the image knows to be zero are not even read. */
            if ((r = vimg_internal_block_status(iso->img, e->offset + done,
                                                len, VIMG_BS_CHAIN,
                                                &bs)) < 0) {
                break;
            }
            bool zero = bs.flags & VIMG_BS_ZERO;
            if (zero) {
                len = (size_t)MIN(len, bs.length);
            } else if ((r = iso_read_at(iso, x->buf, len,
                                        e->offset + done)) < 0) {
                break;
            }
            if (zero || is_zero(x->buf, len)) {
                if (lseek(fd, (off_t)len, SEEK_CUR) < 0) {
                    r = sys_error(iso, path, "seek in");
                    break;
                }
                hole_at_end = true;
                done += len;
                continue;
            }
            hole_at_end = false;
            for (size_t w = 0; w < len;) {
                ssize_t k = write(fd, x->buf + w, len - w);
                if (k < 0 && errno == EINTR) {
                    continue;
                }
                if (k < 0) {
                    r = sys_error(iso, path, "write");
                    break;
                }
                w += (size_t)k;
            }
            if (r < 0) {
                break;
            }
            done += len;
        }
    }
    times_of(n, ts);
    if (r == 0 && hole_at_end && ftruncate(fd, (off_t)n->st.size) < 0) {
        r = sys_error(iso, path, "set the size of"); /* a trailing hole */
    }
    if (r == 0 && n->st.rock_ridge &&
        fchmod(fd, n->st.mode & 07777) < 0) {
        r = sys_error(iso, path, "set the mode of");
    }
    if (r == 0 && futimens(fd, ts) < 0) {
        r = sys_error(iso, path, "set the times of");
    }
    if (close(fd) < 0 && r == 0) {
        r = sys_error(iso, path, "write");
    }
    return r;
}

static int extract_dir(struct extract *x, int dirfd, const struct iso_node *dir,
                       const char *path, int depth);

static int extract_node(struct extract *x, int dirfd, const char *path,
                        struct iso_node *n, int depth)
{
    struct vimg_iso *iso = x->iso;
    struct timespec ts[2];
    int r = 0;

    if (!safe_name(n->name)) {
        return iso_error(iso, EPERM, "%s: refusing to extract an entry "
                         "named \"%s\"", path, n->name);
    }
    times_of(n, ts);
    switch (n->st.type) {
    case VIMG_ISO_FILE:
        return extract_file(x, dirfd, path, n);
    case VIMG_ISO_SYMLINK:
        if (!n->has_target || !safe_target(n->target, depth)) {
            return iso_error(iso, EPERM, "%s: refusing symlink to \"%s\" "
                             "that leads outside the destination", path,
                             n->has_target ? n->target : "");
        }
        if (symlinkat(n->target, dirfd, n->name) < 0) {
            return sys_error(iso, path, "create symlink");
        }
        if (utimensat(dirfd, n->name, ts, AT_SYMLINK_NOFOLLOW) < 0) {
            return sys_error(iso, path, "set the times of");
        }
        return 0;
    case VIMG_ISO_FIFO:
        if (mkfifoat(dirfd, n->name, n->st.mode & 07777) < 0 ||
            utimensat(dirfd, n->name, ts, AT_SYMLINK_NOFOLLOW) < 0) {
            return sys_error(iso, path, "create FIFO");
        }
        return 0;
    case VIMG_ISO_DIRECTORY:
        break;
    default:
        return 0; /* device nodes and sockets are not created */
    }
    for (int i = 0; i <= depth; i++) {
        if (x->ancestors[i] == n->extents[0].offset) {
            return iso_error(iso, EINVAL, "directory %s points back at an "
                             "ancestor (directory loop)", path);
        }
    }
    if (mkdirat(dirfd, n->name, 0700) < 0 && errno != EEXIST) {
        return sys_error(iso, path, "create directory");
    }
    int fd = openat(dirfd, n->name,
                    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        return sys_error(iso, path, "open directory");
    }
    r = extract_dir(x, fd, n, path, depth + 1);
    /* Modes and times last: a read-only folder still gets its contents,
     * and writing them does not disturb its mtime. */
    if (r == 0 && n->st.rock_ridge && fchmod(fd, n->st.mode & 07777) < 0) {
        r = sys_error(iso, path, "set the mode of");
    }
    if (r == 0 && futimens(fd, ts) < 0) {
        r = sys_error(iso, path, "set the times of");
    }
    close(fd);
    return r;
}

static int extract_dir(struct extract *x, int dirfd, const struct iso_node *dir,
                       const char *path, int depth)
{
    struct vimg_iso *iso = x->iso;
    struct iso_dir *d = malloc(sizeof *d);
    struct iso_node *n = calloc(1, sizeof *n);
    char *child = NULL;
    int r;

    if (!d || !n) {
        r = iso_error(iso, ENOMEM, "out of memory");
        goto out;
    }
    if (depth > ISO_MAX_DEPTH) {
        r = iso_error(iso, EINVAL, "directories nest more than %d levels "
                      "deep: %s", ISO_MAX_DEPTH, path);
        goto out;
    }
    x->ancestors[depth] = dir->extents[0].offset;
    if ((r = iso_dir_open(iso, dir, path, d)) < 0) {
        goto out;
    }
    while ((r = iso_dir_next(d, n)) == 1) {
        free(child);
        if (!(child = malloc(strlen(path) + strlen(n->name) + 2))) {
            r = iso_error(iso, ENOMEM, "out of memory");
            goto out;
        }
        sprintf(child, "%s/%s", path, n->name);
        if ((r = extract_node(x, dirfd, child, n, depth)) < 0) {
            goto out;
        }
    }
out:
    free(child);
    if (n) {
        iso_node_reset(n);
    }
    free(n);
    free(d);
    return r;
}

int vimg_iso_extract(struct vimg_iso *iso, const char *path,
                     const char *dest)
{
    struct extract x = { .iso = iso };
    struct iso_node *n = calloc(1, sizeof *n);
    int r = -ENOMEM, fd = -1;

    vimg_internal_error_clear();
    if (!path) {
        path = "/";
    }
    if (!n || !(x.buf = malloc(COPY_BUFFER_SIZE))) {
        iso_error(iso, ENOMEM, "out of memory");
        goto out;
    }
    if ((r = iso_lookup(iso, path, n)) < 0) {
        goto out;
    }
    if ((fd = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        r = sys_error(iso, dest, "open destination folder");
        goto out;
    }
    iso->entries = 0;
    if (n->name[0] == '\0') {
        /* The root: its entries land in DEST itself. */
        r = extract_dir(&x, fd, n, "", 0);
    } else {
        x.ancestors[0] = UINT64_MAX;
        r = extract_node(&x, fd, path, n, 0);
    }
out:
    if (fd >= 0) {
        close(fd);
    }
    if (n) {
        iso_node_reset(n);
    }
    free(n);
    free(x.buf);
    return r < 0 ? -1 : 0;
}
