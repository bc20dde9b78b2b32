/* Extracting files and trees from an ISO 9660 volume into a host folder.
 * The image is untrusted: every name is checked before it reaches the file
 * system, every file and folder is created relative to an already-open
 * folder descriptor (openat/mkdirat with O_NOFOLLOW and O_EXCL), so no
 * symlink is ever followed while writing, and symlink targets are limited
 * to ones that cannot resolve outside the destination. */
#define _GNU_SOURCE /* tdestroy */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../common/checked-overflow.h"
#include "../../common/iszero.h"
#include "../../common/rounding.h"
#include "iso-read.h"

#define COPY_BUFFER_SIZE (256u << 10)

/* The first name extracted of a group of hard links: what the group's
 * records share (the data, and the Rock Ridge serial number when PX has
 * one), then the attributes the later names must also have. */
struct link {
    uint64_t offset, size;
    bool has_serial;
    uint32_t serial;
    uint32_t mode, uid, gid, nlink;
    int64_t mtime;
    size_t n_extents;
    char rel[];             /* its path below DEST */
};

struct extract {
    struct vimg_iso *iso;
    uint8_t *buf;
    int destfd;
    struct iso_visited visited;
    void *links;            /* tsearch tree of struct link */
    uint64_t copied;        /* file bytes copied so far */
    uint64_t budget;        /* ... and at most */
    uint64_t created;       /* entries created, for the failure message */
    bool removed_partial;   /* a failed entry was removed again */
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

/* ---- Hard links ---------------------------------------------------- */

/* Rock Ridge files with more than one link that share their data are
 * hard links (xorriso -hardlinks on, genisoimage): the later names become
 * links to the first, as xorriso -osirrox extracts them, and copy nothing.
 * Without a serial number (PX of RRIP 1.09) empty files do not count:
 * they all share "no data". */
static bool may_be_link(const struct iso_node *n)
{
    return n->st.rock_ridge && n->st.nlink > 1 && n->n_extents > 0 &&
           (n->has_serial || n->st.size > 0);
}

static void link_key(const struct iso_node *n, struct link *k)
{
    k->offset = n->extents[0].offset;
    k->size = n->st.size;
    k->has_serial = n->has_serial;
    k->serial = n->serial;
    k->mode = n->st.mode;
    k->uid = n->st.uid;
    k->gid = n->st.gid;
    k->nlink = n->st.nlink;
    k->mtime = n->st.mtime;
    k->n_extents = n->n_extents;
}

#define CMP(a, b) ((a) < (b) ? -1 : (a) > (b))

static int cmp_link(const void *a, const void *b)
{
    const struct link *x = a, *y = b;

    if (x->offset != y->offset) {
        return CMP(x->offset, y->offset);
    }
    if (x->size != y->size) {
        return CMP(x->size, y->size);
    }
    if (x->has_serial != y->has_serial) {
        return CMP(x->has_serial, y->has_serial);
    }
    return CMP(x->serial, y->serial);
}

/* The first name of N's group when it is extracted already and N has the
 * same attributes (a hostile image may share data between files that
 * differ; those are copied). */
static const struct link *find_link(const struct extract *x,
                                    const struct iso_node *n)
{
    struct link key;
    struct link *const *found;

    link_key(n, &key);
    found = tfind(&key, &x->links, cmp_link);
    if (!found || (*found)->mode != key.mode || (*found)->uid != key.uid ||
        (*found)->gid != key.gid || (*found)->nlink != key.nlink ||
        (*found)->mtime != key.mtime ||
        (*found)->n_extents != key.n_extents) {
        return NULL;
    }
    return *found;
}

static int remember_link(struct extract *x, const struct iso_node *n,
                         const char *rel)
{
    size_t len = strlen(rel);
    struct link *l = malloc(sizeof *l + len + 1);
    void **slot;

    if (!l) {
        return iso_error(x->iso, ENOMEM, "out of memory");
    }
    link_key(n, l);
    memcpy(l->rel, rel, len + 1);
    if (!(slot = tsearch(l, &x->links, cmp_link))) {
        free(l);
        return iso_error(x->iso, ENOMEM, "out of memory");
    }
    if (*slot != l) {
        free(l); /* the group's first name differs from N: N was copied */
    }
    return 0;
}

/* ---- Files, symlinks, folders ---------------------------------------- */

/* Remove NAME, which this extraction created in DIRFD but could not
 * finish, so that no half-written entry stays behind; returns R. */
static int discard(struct extract *x, int dirfd, const char *name, int r)
{
    if (unlinkat(dirfd, name, 0) == 0) {
        x->removed_partial = true;
    }
    return r;
}

/* Copy N's data into FD; *HOLE_AT_END when it ends in a skipped zero run. */
static int copy_data(struct extract *x, int fd, const char *path,
                     const struct iso_node *n, bool *hole_at_end)
{
    struct vimg_iso *iso = x->iso;
    int r;

    *hole_at_end = false;
    for (size_t i = 0; i < n->n_extents; i++) {
        const struct iso_extent *e = &n->extents[i];
        for (uint64_t done = 0; done < e->length;) {
            size_t len = (size_t)MIN(COPY_BUFFER_SIZE, e->length - done);
            struct vimg_extent bs;
            /* Zero runs become holes: a sparse 4 GiB file stays sparse,
             * and ranges the image knows to be zero are not even read. */
            if ((r = vimg_internal_block_status(iso->img, e->offset + done,
                                                len, VIMG_BS_CHAIN,
                                                &bs)) < 0) {
                return r;
            }
            bool zero = bs.flags & VIMG_BS_ZERO;
            if (zero) {
                len = (size_t)MIN(len, bs.length);
            } else if ((r = iso_read_at(iso, x->buf, len,
                                        e->offset + done)) < 0) {
                return r;
            }
            if (zero || is_zero(x->buf, len)) {
                if (lseek(fd, (off_t)len, SEEK_CUR) < 0) {
                    return sys_error(iso, path, "seek in");
                }
                *hole_at_end = true;
                done += len;
                continue;
            }
            *hole_at_end = false;
            for (size_t w = 0; w < len;) {
                ssize_t k = write(fd, x->buf + w, len - w);
                if (k < 0 && errno == EINTR) {
                    continue;
                }
                if (k < 0) {
                    return sys_error(iso, path, "write");
                }
                w += (size_t)k;
            }
            done += len;
        }
    }
    return 0;
}

/* File N at PATH in the image, REL below DEST, named n->name in DIRFD: a
 * hard link to an earlier name of it, or a copy within the budget. A copy
 * that fails is removed again: no half-written file stays behind. */
static int extract_file(struct extract *x, int dirfd, const char *path,
                        const char *rel, const struct iso_node *n)
{
    struct vimg_iso *iso = x->iso;
    bool link = may_be_link(n);
    const struct link *first = link ? find_link(x, n) : NULL;
    struct timespec ts[2];
    bool hole_at_end;
    int r;

    if (first && linkat(x->destfd, first->rel, dirfd, n->name, 0) == 0) {
        x->created++;
        return 0;
    }
    /* Otherwise, also when the file system refuses the link, a copy. */
    if (n->st.size > x->budget - x->copied) {
        return iso_error(iso, EINVAL, "%s: extracting it would copy more "
                         "than %" PRIu64 " bytes in all (4 times the image "
                         "size, at least 1 GiB): files share data without "
                         "being hard links", path, x->budget);
    }
    int fd = openat(dirfd, n->name,
                    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                    0644);
    if (fd < 0) {
        return sys_error(iso, path, "create");
    }
    x->copied += n->st.size;
    r = copy_data(x, fd, path, n, &hole_at_end);
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
    if (r < 0) {
        return discard(x, dirfd, n->name, r);
    }
    x->created++;
    return link && !first ? remember_link(x, n, rel) : 0;
}

/* Open directory DIR (at PATH, DEPTH levels below DEST) for extraction:
 * each directory extent is entered once (iso_visit_enter). */
static int enter_dir(struct extract *x, const struct iso_node *dir,
                     const char *path, int depth, struct iso_dir **d,
                     struct iso_entered **entered)
{
    int r;

    *entered = NULL;
    if (!(*d = malloc(sizeof **d))) {
        return iso_error(x->iso, ENOMEM, "out of memory");
    }
    if ((r = iso_dir_open(x->iso, dir, path, *d)) < 0 ||
        (r = iso_visit_enter(&x->visited, *d, depth, entered)) < 0) {
        free(*d);
        *d = NULL;
    }
    return r;
}

static int extract_entries(struct extract *x, int dirfd, struct iso_dir *d,
                           const char *path, const char *rel, int depth);

/* Entry N at PATH in the image, REL below DEST, into DIRFD, which is
 * DEPTH levels below DEST. */
static int extract_node(struct extract *x, int dirfd, const char *path,
                        const char *rel, struct iso_node *n, int depth)
{
    struct vimg_iso *iso = x->iso;
    struct iso_entered *entered;
    struct iso_dir *d;
    struct timespec ts[2];
    int r;

    if (!safe_name(n->name)) {
        return iso_error(iso, EPERM, "%s: refusing to extract an entry "
                         "named \"%s\"", path, n->name);
    }
    times_of(n, ts);
    switch (n->st.type) {
    case VIMG_ISO_FILE:
        return extract_file(x, dirfd, path, rel, n);
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
            return discard(x, dirfd, n->name,
                           sys_error(iso, path, "set the times of"));
        }
        x->created++;
        return 0;
    case VIMG_ISO_FIFO:
        if (mkfifoat(dirfd, n->name, n->st.mode & 07777) < 0) {
            return sys_error(iso, path, "create FIFO");
        }
        if (utimensat(dirfd, n->name, ts, AT_SYMLINK_NOFOLLOW) < 0) {
            return discard(x, dirfd, n->name,
                           sys_error(iso, path, "set the times of"));
        }
        x->created++;
        return 0;
    case VIMG_ISO_DIRECTORY:
        break;
    default:
        return 0; /* device nodes and sockets are not created */
    }
    /* Checked before anything is created for it. */
    if ((r = enter_dir(x, n, path, depth + 1, &d, &entered)) < 0) {
        return r;
    }
    if (mkdirat(dirfd, n->name, 0700) == 0) {
        x->created++;
    } else if (errno != EEXIST) {
        r = sys_error(iso, path, "create directory");
        goto out;
    }
    int fd = openat(dirfd, n->name,
                    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        r = sys_error(iso, path, "open directory");
        goto out;
    }
    r = extract_entries(x, fd, d, path, rel, depth + 1);
    /* Modes and times last: a read-only folder still gets its contents,
     * and writing them does not disturb its mtime. */
    if (r == 0 && n->st.rock_ridge && fchmod(fd, n->st.mode & 07777) < 0) {
        r = sys_error(iso, path, "set the mode of");
    }
    if (r == 0 && futimens(fd, ts) < 0) {
        r = sys_error(iso, path, "set the times of");
    }
    close(fd);
out:
    iso_visit_leave(entered);
    free(d);
    return r;
}

static char *join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 2);

    if (s) {
        memcpy(s, a, la);
        s[la] = '/';
        memcpy(s + la + 1, b, lb + 1);
    }
    return s;
}

static int extract_entries(struct extract *x, int dirfd, struct iso_dir *d,
                           const char *path, const char *rel, int depth)
{
    struct vimg_iso *iso = x->iso;
    struct iso_node *n = calloc(1, sizeof *n);
    char *child = NULL, *child_rel = NULL;
    int r;

    if (!n) {
        return iso_error(iso, ENOMEM, "out of memory");
    }
    while ((r = iso_dir_next(d, n)) == 1) {
        free(child);
        free(child_rel);
        child = join(path, n->name);
        child_rel = *rel ? join(rel, n->name) : strdup(n->name);
        if (!child || !child_rel) {
            r = iso_error(iso, ENOMEM, "out of memory");
            break;
        }
        if ((r = extract_node(x, dirfd, child, child_rel, n, depth)) < 0) {
            break;
        }
    }
    free(child);
    free(child_rel);
    iso_node_reset(n);
    free(n);
    return r;
}

/* After a failure: what the extraction left in DEST, on the same line. */
static void report_left(const struct extract *x, const char *dest)
{
    const char *removed = x->removed_partial ?
                          "removed the incomplete entry; " : "";

    if (x->created == 0) {
        vimg_internal_error_append(" (%snothing %swas extracted)", removed,
                                   *removed ? "else " : "");
    } else {
        vimg_internal_error_append(" (%s%" PRIu64 " entr%s extracted "
                                   "before the error remain%s in %s)",
                                   removed, x->created,
                                   x->created == 1 ? "y" : "ies",
                                   x->created == 1 ? "s" : "", dest);
    }
}

int vimg_iso_extract(struct vimg_iso *iso, const char *path,
                     const char *dest)
{
    struct extract x = { .iso = iso, .destfd = -1 };
    struct iso_node *n = calloc(1, sizeof *n);
    struct iso_entered *entered;
    struct iso_dir *d;
    int r = -ENOMEM;

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
    if ((x.destfd = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        r = sys_error(iso, dest, "open destination folder");
        goto out;
    }
    iso->entries = 0;
    if (CHECKED_MUL(iso->image_size, (uint64_t)ISO_COPY_BUDGET_FACTOR,
                    &x.budget)) {
        x.budget = UINT64_MAX;
    }
    x.budget = MAX(x.budget, ISO_COPY_BUDGET_MIN);
    if (n->name[0] == '\0') {
        /* The root: its entries land in DEST itself. */
        if ((r = enter_dir(&x, n, "", 0, &d, &entered)) == 0) {
            r = extract_entries(&x, x.destfd, d, "", "", 0);
            iso_visit_leave(entered);
            free(d);
        }
    } else {
        r = extract_node(&x, x.destfd, path, n->name, n, 0);
    }
    if (r < 0) {
        report_left(&x, dest);
    }
out:
    if (x.destfd >= 0) {
        close(x.destfd);
    }
    if (n) {
        iso_node_reset(n);
    }
    free(n);
    free(x.buf);
    iso_visit_free(&x.visited);
    tdestroy(x.links, free);
    return r < 0 ? -1 : 0;
}

int vimg_iso_extract_file(struct vimg_iso *iso, const char *path,
                          const char *target)
{
    struct extract x = { .iso = iso, .destfd = -1 };
    struct iso_node *n = calloc(1, sizeof *n);
    char *dir = strdup(target ? target : "");
    int r = -ENOMEM;

    vimg_internal_error_clear();
    if (!n || !dir || !(x.buf = malloc(COPY_BUFFER_SIZE))) {
        iso_error(iso, ENOMEM, "out of memory");
        goto out;
    }
    if ((r = iso_lookup(iso, path ? path : "", n)) < 0) {
        goto out;
    }
    if (n->st.type != VIMG_ISO_FILE) {
        r = iso_error(iso, EINVAL, "%s: not a regular file", path);
        goto out;
    }
    /* TARGET is a host path the caller chose: its folder must exist, the
     * file itself must not (nothing is replaced, as by vimg_iso_extract). */
    char *slash = strrchr(dir, '/');
    const char *base = slash ? slash + 1 : dir;
    if (slash) {
        *slash = '\0';
    }
    if (!*base || !strcmp(base, ".") || !strcmp(base, "..") ||
        strlen(base) >= sizeof n->name) {
        r = iso_error(iso, EINVAL, "%s: not a file name to create", target);
        goto out;
    }
    x.destfd = open(slash ? (*dir ? dir : "/") : ".",
                    O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (x.destfd < 0) {
        r = sys_error(iso, target, "open the folder of");
        goto out;
    }
    /* The same bound as vimg_iso_extract: extents may repeat data. */
    if (CHECKED_MUL(iso->image_size, (uint64_t)ISO_COPY_BUDGET_FACTOR,
                    &x.budget)) {
        x.budget = UINT64_MAX;
    }
    x.budget = MAX(x.budget, ISO_COPY_BUDGET_MIN);
    memcpy(n->name, base, strlen(base) + 1);
    r = extract_file(&x, x.destfd, path, n->name, n);
    if (r < 0) {
        report_left(&x, target);
    }
out:
    if (x.destfd >= 0) {
        close(x.destfd);
    }
    if (n) {
        iso_node_reset(n);
    }
    free(n);
    free(dir);
    free(x.buf);
    tdestroy(x.links, free);
    return r < 0 ? -1 : 0;
}
