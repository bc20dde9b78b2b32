/* Files a command writes (create, convert, iso create): the existing
 * target's image lock is taken first and held, the new file is built
 * where nobody sees it (an O_TMPFILE without a name, else a named
 * temporary that signal handlers remove) with the old file's owner and
 * mode, and it is published by one rename only when complete. Where a
 * rename cannot be right (hard links, devices, a folder we may not
 * create files in, an owner we cannot give) the file is written in
 * place, as qemu-img writes every target. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../common/cleanup.h"
#include "internal.h"
#include "protocols/file-lock.h"

/* As the kernel bounds symlink resolution (MAXSYMLINKS). */
#define MAX_LINK_HOPS 40
/* Names tried for a temporary before giving up: a clash needs another
 * process to pick the same 32 random bits. */
#define TEMP_TRIES 100
/* Named temporaries alive at once that a signal handler can remove. One
 * per target being written; a process writes one or a few at a time. */
#define MAX_NAMED 16

/* The handler below reads the registry at any moment: it needs atomics
 * that never take a lock. */
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "lock-free int atomics");

enum target_how {
    TARGET_NEW,      /* no file had the name: link the new one there */
    TARGET_REPLACE,  /* rename the new file over the old one */
    TARGET_IN_PLACE, /* the old file (or device) itself is written */
};

struct vimg_target {
    char *name;         /* as the caller gave it, for messages */
    char *path;         /* NAME with symlinks of its last part followed */
    char *dir;          /* PATH's folder: temporaries go there */
    char *base;         /* PATH's last component */
    enum target_how how;
    int fd;             /* the file being written */
    int old_fd;         /* TARGET_REPLACE: the file replaced, locked */
    struct stat old;    /* its owner and mode (valid with old_fd) */
    char *temp;         /* path of the named temporary, or NULL */
    int slot;           /* TEMP's registry slot, or -1 */
    /* A protocol that makes images in a store of its own (rbd), or NULL
     * for files. Its new image has a hidden name until committed. */
    const struct vimg_driver *proto;
    char *image;        /* PROTO's hidden name for the new image, or NULL */
    struct vimg_opts image_opts; /* the options IMAGE opens with */
    /* Files written with this one (VMDK extents), each a target of its
     * own: committed first, dropped with it. */
    struct vimg_target **companions;
    size_t n_companions;
};

/* Paths of named temporaries, in static storage so that a signal handler
 * needs no allocator. A slot goes FREE -> FILLING (its owner copies the
 * path) -> ARMED; the handler takes an ARMED slot (REMOVING), unlinks the
 * path and frees the slot; an owner ending its target frees an ARMED slot
 * itself, or waits while a handler on another thread is removing it. */
enum { SLOT_FREE, SLOT_FILLING, SLOT_ARMED, SLOT_REMOVING };
static _Atomic int slot_state[MAX_NAMED];
static char slot_path[MAX_NAMED][PATH_MAX];

/* Targets holding an image in a store (rbd): a handler cannot remove it. */
static _Atomic int images_pending;

bool vimg_target_images_pending(void)
{
    return atomic_load(&images_pending) > 0;
}

void vimg_target_remove_temporaries(void)
{
    for (int i = 0; i < MAX_NAMED; i++) {
        int armed = SLOT_ARMED;
        if (atomic_compare_exchange_strong(&slot_state[i], &armed,
                                           SLOT_REMOVING)) {
            unlink(slot_path[i]);
            atomic_store(&slot_state[i], SLOT_FREE);
        }
    }
}

/* Record PATH for the signal handler; the slot, or -1 when all are taken
 * or PATH is too long (the temporary then survives a signal). */
static int register_temp(const char *path)
{
    if (strlen(path) >= PATH_MAX) {
        return -1;
    }
    for (int i = 0; i < MAX_NAMED; i++) {
        int free_slot = SLOT_FREE;
        if (atomic_compare_exchange_strong(&slot_state[i], &free_slot,
                                           SLOT_FILLING)) {
            strcpy(slot_path[i], path);
            atomic_store(&slot_state[i], SLOT_ARMED);
            return i;
        }
    }
    return -1;
}

static void unregister_temp(int *slot)
{
    if (*slot < 0) {
        return;
    }
    for (;;) {
        int armed = SLOT_ARMED;
        if (atomic_compare_exchange_strong(&slot_state[*slot], &armed,
                                           SLOT_FREE) ||
            armed == SLOT_FREE) {
            break; /* ours to free, or a handler removed it already */
        }
        sched_yield(); /* a handler on another thread is unlinking it */
    }
    *slot = -1;
}

/* A fresh candidate name for a temporary beside the target:
 * DIR/.BASE.vimg-XXXXXXXX, hidden and naming what it will become. */
static char *temp_candidate(const struct vimg_target *t)
{
    static _Atomic unsigned counter;
    unsigned rnd;
    char *s;

    if (getrandom(&rnd, sizeof rnd, GRND_NONBLOCK) != sizeof rnd) {
        rnd = (unsigned)getpid() * 2654435761u ^ (unsigned)time(NULL) ^
              atomic_fetch_add(&counter, 1) * 40503u;
    }
    if (asprintf(&s, "%s/.%s.vimg-%08x", t->dir, t->base, rnd) < 0) {
        return NULL;
    }
    return s;
}

/* Follow symlinks of the last component, so the link stays a link and
 * the file it names is written; a dangling link yields the name it points
 * to, which is then created (qemu-img's open(O_CREAT) does the same). */
static int follow_links(struct vimg_target *t)
{
    char *path = strdup(t->name);
    struct stat st;

    for (int hops = 0; path; hops++) {
        if (lstat(path, &st) < 0 || !S_ISLNK(st.st_mode)) {
            t->path = path;
            return 0;
        }
        if (hops == MAX_LINK_HOPS) {
            free(path);
            return vimg_internal_error(ELOOP, "%s: %s", t->name,
                                       strerror(ELOOP));
        }
        size_t cap = st.st_size > 0 ? (size_t)st.st_size + 1 : PATH_MAX;
        CLEANUP_FREE char *link = malloc(cap);
        ssize_t n = link ? readlink(path, link, cap) : -1;
        if (n < 0 || (size_t)n >= cap) {
            int e = n < 0 && link ? errno : ENAMETOOLONG;
            free(path);
            return vimg_internal_error(link ? e : ENOMEM, "%s: cannot read "
                                       "the symbolic link: %s", t->name,
                                       strerror(link ? e : ENOMEM));
        }
        link[n] = '\0';
        char *next = NULL;
        if (link[0] == '/') {
            next = strdup(link);
        } else {
            char *slash = strrchr(path, '/');
            int dlen = slash ? (int)(slash - path) + 1 : 0;
            if (asprintf(&next, "%.*s%s", dlen, path, link) < 0) {
                next = NULL;
            }
        }
        free(path);
        path = next;
    }
    return vimg_internal_error(ENOMEM, "out of memory");
}

static int split_path(struct vimg_target *t)
{
    CLEANUP_FREE char *d = strdup(t->path);
    CLEANUP_FREE char *b = strdup(t->path);

    if (!d || !b || !(t->dir = strdup(dirname(d))) ||
        !(t->base = strdup(basename(b)))) {
        return vimg_internal_error(ENOMEM, "out of memory");
    }
    return 0;
}

/* Open the file the target names, if any, and take the locks a writer
 * that resizes takes: another process holding the image (qemu-io,
 * qemu-nbd, a VM) makes this fail as qemu-img fails. The lock is held
 * until the target ends, so nobody can start using the old file while
 * it is being replaced. */
static int open_existing(struct vimg_target *t)
{
    /* O_NONBLOCK: a FIFO must be refused, not waited on. */
    int fd = open(t->path, O_RDWR | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    int r;

    if (fd < 0 && errno == ENOENT) {
        return 0;
    }
    if (fd < 0 && errno == EISDIR) {
        return vimg_internal_error(EISDIR, "%s: Is a directory", t->name);
    }
    if (fd < 0) {
        return vimg_internal_error(errno, "%s: Could not open: %s", t->name,
                                   strerror(errno));
    }
    if (fstat(fd, &t->old) < 0) {
        r = vimg_internal_error(errno, "%s: stat: %s", t->name,
                                strerror(errno));
    } else if (!S_ISREG(t->old.st_mode) && !S_ISBLK(t->old.st_mode) &&
               !S_ISCHR(t->old.st_mode)) {
        r = vimg_internal_error(EINVAL, "%s: not a regular file or block "
                                "device", t->name);
    } else if (fcntl(fd, F_SETFL, 0) < 0) { /* blocking from now on */
        r = vimg_internal_error(errno, "%s: fcntl: %s", t->name,
                                strerror(errno));
    } else {
        r = vimg_internal_fd_lock(fd, t->name,
                                  FILE_PERM_READ | FILE_PERM_WRITE |
                                      FILE_PERM_RESIZE,
                                  FILE_PERM_READ |
                                      FILE_PERM_WRITE_UNCHANGED);
    }
    if (r < 0) {
        close(fd);
        return r;
    }
    t->old_fd = fd;
    return 0;
}

/* Write the old file itself from now on. */
static void use_in_place(struct vimg_target *t)
{
    t->how = TARGET_IN_PLACE;
    t->fd = t->old_fd;
    t->old_fd = -1;
}

/* Close the new file and remove its name, if it has one. */
static void drop_temp(struct vimg_target *t)
{
    if (t->fd >= 0) {
        close(t->fd);
        t->fd = -1;
    }
    if (t->temp) {
        unlink(t->temp);
        unregister_temp(&t->slot);
        free(t->temp);
        t->temp = NULL;
    }
}

/* The folder refused a new file with E. With an old file to write in
 * place instead that is no error: 1 tells the caller so. */
static int refused(struct vimg_target *t, int e)
{
    if (t->old_fd >= 0 && (e == EACCES || e == EPERM || e == EROFS)) {
        return 1;
    }
    return vimg_internal_error(e, "%s: cannot create: %s", t->name,
                               strerror(e));
}

/* A new file in the target's folder: without a name when the kernel and
 * file system allow (nothing survives any kind of exit), else under a
 * hidden name the signal handlers know. Returns 1 when the folder refuses
 * new files and the old file can be written in place instead. */
static int create_temp(struct vimg_target *t)
{
    /* A new file gets 0666 less the umask, as qemu-img gives it; a
     * replacement is private until it has the old file's mode. */
    mode_t mode = t->old_fd >= 0 ? 0600 : 0666;

    if (access("/proc/self/fd", X_OK) == 0) {
        t->fd = open(t->dir, O_TMPFILE | O_RDWR | O_CLOEXEC, mode);
        if (t->fd >= 0) {
            return 0;
        }
        if (errno != EISDIR && errno != EOPNOTSUPP && errno != EINVAL) {
            return refused(t, errno);
        }
        /* EISDIR: a kernel without O_TMPFILE; EOPNOTSUPP, EINVAL: a file
         * system without it. Then a named temporary. */
    }
    for (int i = 0; i < TEMP_TRIES; i++) {
        if (!(t->temp = temp_candidate(t))) {
            return vimg_internal_error(ENOMEM, "out of memory");
        }
        /* Registered before it exists, so no signal finds it unknown (a
         * signal before the O_EXCL open fails on a clash could remove the
         * other file of that random name: another vimg's temporary). */
        t->slot = register_temp(t->temp);
        t->fd = open(t->temp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode);
        if (t->fd >= 0) {
            return 0;
        }
        int e = errno;
        unregister_temp(&t->slot);
        free(t->temp);
        t->temp = NULL;
        if (e != EEXIST) {
            return refused(t, e);
        }
    }
    return vimg_internal_error(EEXIST, "%s: cannot create a temporary file "
                               "beside it: %s", t->name, strerror(EEXIST));
}

/* Give the new file the old one's owner, group and mode. Returns 1 when
 * the owner cannot be given (the caller writes in place). */
static int copy_owner_mode(struct vimg_target *t)
{
    struct stat st;

    if (fstat(t->fd, &st) < 0) {
        return vimg_internal_error(errno, "%s: stat: %s", t->name,
                                   strerror(errno));
    }
    if ((st.st_uid != t->old.st_uid || st.st_gid != t->old.st_gid) &&
        fchown(t->fd, t->old.st_uid, t->old.st_gid) < 0) {
        if (errno == EPERM) {
            return 1;
        }
        return vimg_internal_error(errno, "%s: cannot keep the owner: %s",
                                   t->name, strerror(errno));
    }
    /* After the chown, which clears set-user-ID bits. */
    if (fchmod(t->fd, t->old.st_mode & 07777) < 0) {
        return vimg_internal_error(errno, "%s: cannot keep the mode: %s",
                                   t->name, strerror(errno));
    }
    return 0;
}

static void target_free(struct vimg_target *t)
{
    for (size_t i = 0; i < t->n_companions; i++) {
        target_free(t->companions[i]);
    }
    free(t->companions);
    if (t->image) {
        (void)t->proto->remove_image(t->image);
        atomic_fetch_sub(&images_pending, 1);
        free(t->image);
    }
    vimg_internal_opts_free(&t->image_opts);
    drop_temp(t);
    if (t->old_fd >= 0) {
        close(t->old_fd);
    }
    free(t->name);
    free(t->path);
    free(t->dir);
    free(t->base);
    free(t);
}

/* vimg_target_begin without clearing the error slot; FILE_ONLY for a
 * companion, which is a file beside its target whatever its name. */
static struct vimg_target *target_new(const char *filename, bool file_only)
{
    struct vimg_target *t;
    int r;

    if (!filename || !*filename) {
        vimg_internal_error(EINVAL, "no target file name given");
        return NULL;
    }
    t = calloc(1, sizeof *t);
    if (!t || !(t->name = strdup(filename))) {
        free(t);
        vimg_internal_error(ENOMEM, "out of memory");
        return NULL;
    }
    t->fd = t->old_fd = t->slot = -1;
    t->proto = file_only ? NULL : vimg_internal_network_protocol(filename);
    if (t->proto && !t->proto->create_image) {
        vimg_internal_error(ENOTSUP, "%s: images cannot be created there; "
                            "write into an existing one (convert -n)",
                            filename);
        target_free(t);
        return NULL;
    }
    if (t->proto) {
        return t; /* made by the protocol in vimg_target_create */
    }
    r = follow_links(t);
    if (r == 0) {
        r = split_path(t);
    }
    if (r == 0) {
        r = open_existing(t);
    }
    if (r < 0) {
        target_free(t);
        return NULL;
    }
    t->how = t->old_fd >= 0 ? TARGET_REPLACE : TARGET_NEW;
    /* A rename would cut a hard link off its other names, and cannot
     * replace a device. */
    if (t->old_fd >= 0 && (!S_ISREG(t->old.st_mode) ||
                           t->old.st_nlink > 1)) {
        use_in_place(t);
        return t;
    }
    r = create_temp(t);
    if (r == 0 && t->how == TARGET_REPLACE) {
        r = copy_owner_mode(t);
    }
    if (r == 1) {
        drop_temp(t);
        use_in_place(t);
        r = 0;
    }
    if (r < 0) {
        target_free(t);
        return NULL;
    }
    return t;
}

struct vimg_target *vimg_target_begin(const char *filename)
{
    vimg_internal_error_clear();
    return target_new(filename, false);
}

/* NAME in the folder of the name BESIDE, as references resolve. */
static char *path_beside(const char *beside, const char *name)
{
    CLEANUP_FREE char *copy = strdup(beside);
    char *path = NULL;

    if (!copy) {
        return NULL;
    }
    if (name[0] == '/' || !strchr(beside, '/')) {
        return strdup(name);
    }
    return asprintf(&path, "%s/%s", dirname(copy), name) < 0 ? NULL : path;
}

int vimg_internal_target_find_companion(struct vimg_target *t,
                                        const char *name)
{
    CLEANUP_FREE char *path = path_beside(t->name, name);

    for (size_t i = 0; path && i < t->n_companions; i++) {
        if (strcmp(t->companions[i]->name, path) == 0) {
            return t->companions[i]->fd;
        }
    }
    return -ENOENT;
}

int vimg_internal_target_companion(struct vimg_target *t, const char *name)
{
    int fd = vimg_internal_target_find_companion(t, name);

    if (fd >= 0) {
        return fd;
    }
    if (t->proto) {
        return vimg_internal_error(ENOTSUP, "%s: no file '%s' can be made "
                                   "beside this image", t->name, name);
    }
    CLEANUP_FREE char *path = path_beside(t->name, name);
    struct vimg_target **v = path ? realloc(t->companions,
                                            (t->n_companions + 1) *
                                                sizeof *v)
                                  : NULL;
    if (!v) {
        return vimg_internal_error(ENOMEM, "out of memory");
    }
    t->companions = v;
    struct vimg_target *c = target_new(path, true);
    if (!c) {
        return -vimg_get_errno();
    }
    t->companions[t->n_companions++] = c;
    return vimg_internal_target_fd(c, true);
}

/* Give the nameless new file a name: straight at the target when no file
 * had it, else a temporary one renamed over the old file. */
static int publish_anonymous(struct vimg_target *t)
{
    char proc[64];

    snprintf(proc, sizeof proc, "/proc/self/fd/%d", t->fd);
    if (t->how == TARGET_NEW) {
        if (linkat(AT_FDCWD, proc, AT_FDCWD, t->path,
                   AT_SYMLINK_FOLLOW) == 0) {
            return 0;
        }
        if (errno == EEXIST) {
            /* Its lock was never checked: leave it to its owner. */
            return vimg_internal_error(EEXIST, "%s: cannot create: another "
                                       "process created the file meanwhile",
                                       t->name);
        }
        return vimg_internal_error(errno, "%s: cannot create: %s", t->name,
                                   strerror(errno));
    }
    for (int i = 0; i < TEMP_TRIES && !t->temp; i++) {
        if (!(t->temp = temp_candidate(t))) {
            return vimg_internal_error(ENOMEM, "out of memory");
        }
        t->slot = register_temp(t->temp);
        if (linkat(AT_FDCWD, proc, AT_FDCWD, t->temp,
                   AT_SYMLINK_FOLLOW) < 0) {
            int e = errno;
            unregister_temp(&t->slot);
            free(t->temp);
            t->temp = NULL;
            if (e != EEXIST) {
                return vimg_internal_error(e, "%s: cannot create: %s",
                                           t->name, strerror(e));
            }
        }
    }
    if (!t->temp) {
        return vimg_internal_error(EEXIST, "%s: cannot create a temporary "
                                   "file beside it: %s", t->name,
                                   strerror(EEXIST));
    }
    return 0;
}

/* Publish a file target's new file under its name (T stays allocated). */
static int commit_file(struct vimg_target *t)
{
    int r = 0;

    if (t->how != TARGET_IN_PLACE && !t->temp) {
        r = publish_anonymous(t);
    }
    if (r == 0 && t->temp && rename(t->temp, t->path) < 0) {
        r = vimg_internal_error(errno, "%s: cannot replace it: %s", t->name,
                                strerror(errno));
    }
    if (r == 0 && t->temp) {
        /* Renamed: the name is the target's now, not ours to remove. */
        unregister_temp(&t->slot);
        free(t->temp);
        t->temp = NULL;
    }
    return r;
}

int vimg_target_commit(struct vimg_target *t)
{
    int r = 0;

    vimg_internal_error_clear();
    if (!t) {
        vimg_internal_error(EINVAL, "no target given");
        return -1;
    }
    /* Companions first: the file naming them appears (or changes) only
     * when they are all in place. */
    for (size_t i = 0; r == 0 && i < t->n_companions; i++) {
        r = commit_file(t->companions[i]);
    }
    if (r < 0) {
        target_free(t);
        return -1;
    }
    if (t->proto) {
        r = t->image ? t->proto->publish_image(t->image, t->name)
                     : vimg_internal_error(EINVAL, "%s: no image was made",
                                           t->name);
        if (r == 0) {
            free(t->image);
            t->image = NULL; /* published: not ours to remove */
            atomic_fetch_sub(&images_pending, 1);
        }
        target_free(t);
        return r < 0 ? -1 : 0;
    }
    r = commit_file(t);
    target_free(t);
    return r < 0 ? -1 : 0;
}

void vimg_target_abort(struct vimg_target *t)
{
    if (t) {
        target_free(t);
    }
}

bool vimg_target_in_place(const struct vimg_target *t)
{
    return !t->proto && t->how == TARGET_IN_PLACE;
}

const struct vimg_driver *vimg_internal_target_protocol(
    const struct vimg_target *t)
{
    return t->proto;
}

int vimg_internal_target_make_image(struct vimg_target *t,
                                    const struct vimg_create_ctx *c,
                                    const char **image)
{
    int r = 0;

    if (!t->image) {
        struct vimg_create_ctx pc = *c;
        pc.filename = t->name;
        r = vimg_internal_opts_pick(c->opts, t->proto->runtime_opts, NULL,
                                    &t->image_opts);
        if (r == 0) {
            r = t->proto->create_image(&pc, &t->image);
        }
        if (t->image) {
            atomic_fetch_add(&images_pending, 1);
        }
    }
    *image = t->image;
    return r;
}

const struct vimg_opts *vimg_internal_target_image_opts(
    const struct vimg_target *t)
{
    return &t->image_opts;
}

const char *vimg_internal_target_image(const struct vimg_target *t)
{
    return t->image;
}

const char *vimg_internal_target_name(const struct vimg_target *t)
{
    return t->name;
}

int vimg_internal_target_fd(struct vimg_target *t, bool empty)
{
    struct stat st;

    /* A file written in place starts empty, as a new one would, so that
     * nothing of the old contents shows through what is not written. */
    if (empty && t->how == TARGET_IN_PLACE && fstat(t->fd, &st) == 0 &&
        S_ISREG(st.st_mode) && st.st_size > 0 && ftruncate(t->fd, 0) < 0) {
        return vimg_internal_error(errno, "%s: truncate: %s", t->name,
                                   strerror(errno));
    }
    return t->fd;
}
