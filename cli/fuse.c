/* The FUSE view: an image's guest disk as one regular file (libfuse3),
 * mounted over a file, so losetup, mount, fsck, debugfs or 7z read any
 * format, backing chains included. The view is a single inode: the mount
 * point itself. Reads and writes go to the library, which may run them
 * in parallel (the loop is multi-threaded). */
#define FUSE_USE_VERSION 31
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <linux/falloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

struct view {
    struct vimg_image *img;
    uint64_t size;
    bool rw;
    uid_t uid;
    gid_t gid;
    struct timespec time;
};

static struct view *view(void)
{
    return fuse_get_context()->private_data;
}

/* The library's errno, as FUSE wants it (negative). */
static int lib_errno(void)
{
    int e = vimg_get_errno();
    return -(e ? e : EIO);
}

static int v_getattr(const char *path, struct stat *st,
                     struct fuse_file_info *fi)
{
    struct view *v = view();
    (void)fi;
    if (strcmp(path, "/") != 0) {
        return -ENOENT;
    }
    memset(st, 0, sizeof *st);
    st->st_mode = S_IFREG | (v->rw ? 0600 : 0400);
    st->st_nlink = 1;
    st->st_size = (off_t)v->size;
    st->st_blocks = (blkcnt_t)((v->size + 511) / 512);
    st->st_blksize = 4096;
    st->st_uid = v->uid;
    st->st_gid = v->gid;
    st->st_atim = st->st_mtim = st->st_ctim = v->time;
    return 0;
}

static int v_open(const char *path, struct fuse_file_info *fi)
{
    if (strcmp(path, "/") != 0) {
        return -ENOENT;
    }
    if ((fi->flags & O_ACCMODE) != O_RDONLY && !view()->rw) {
        return -EROFS;
    }
    return 0;
}

static int v_read(const char *path, char *buf, size_t size, off_t off,
                  struct fuse_file_info *fi)
{
    struct view *v = view();
    (void)path;
    (void)fi;
    if (off < 0 || (uint64_t)off >= v->size) {
        return 0;
    }
    if (size > v->size - (uint64_t)off) {
        size = (size_t)(v->size - (uint64_t)off);
    }
    if (vimg_pread(v->img, buf, size, (uint64_t)off) < 0) {
        return lib_errno();
    }
    return (int)size;
}

static int v_write(const char *path, const char *buf, size_t size, off_t off,
                   struct fuse_file_info *fi)
{
    struct view *v = view();
    (void)path;
    if (!v->rw) {
        return -EROFS;
    }
    if (off < 0 || (uint64_t)off >= v->size) {
        return -ENOSPC;
    }
    if (size > v->size - (uint64_t)off) {
        size = (size_t)(v->size - (uint64_t)off);
    }
    unsigned flags = fi && (fi->flags & (O_SYNC | O_DSYNC)) ? VIMG_WRITE_FUA
                                                            : 0;
    if (vimg_pwrite(v->img, buf, size, (uint64_t)off, flags) < 0) {
        return lib_errno();
    }
    return (int)size;
}

static int v_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
    struct view *v = view();
    (void)path;
    (void)datasync;
    (void)fi;
    return v->rw && vimg_flush(v->img) < 0 ? lib_errno() : 0;
}

static int v_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
    (void)path;
    (void)fi;
    /* The disk's size is the image's: only a no-op truncate succeeds
     * (shells open with O_TRUNC only to rewrite files). */
    return (uint64_t)size == view()->size ? 0 : -EPERM;
}

static int v_fallocate(const char *path, int mode, off_t off, off_t len,
                       struct fuse_file_info *fi)
{
    struct view *v = view();
    (void)path;
    (void)fi;
    if (!v->rw) {
        return -EROFS;
    }
    if (off < 0 || len <= 0 || (uint64_t)off >= v->size) {
        return -EINVAL;
    }
    uint64_t n = (uint64_t)len;
    if (n > v->size - (uint64_t)off) {
        n = v->size - (uint64_t)off;
    }
    int r = 0;
    if (mode & FALLOC_FL_PUNCH_HOLE) {
        r = vimg_zero(v->img, (uint64_t)off, n, VIMG_ZERO_MAY_UNMAP);
    } else if (mode & FALLOC_FL_ZERO_RANGE) {
        r = vimg_zero(v->img, (uint64_t)off, n, 0);
    } else if (mode & ~FALLOC_FL_KEEP_SIZE) {
        return -EOPNOTSUPP;
    }
    return r < 0 ? lib_errno() : 0;
}

static int v_statfs(const char *path, struct statvfs *st)
{
    (void)path;
    memset(st, 0, sizeof *st);
    st->f_bsize = st->f_frsize = 4096;
    st->f_blocks = view()->size / 4096;
    st->f_namemax = 255;
    return 0;
}

static const struct fuse_operations ops = {
    .getattr = v_getattr,
    .open = v_open,
    .read = v_read,
    .write = v_write,
    .fsync = v_fsync,
    .truncate = v_truncate,
    .fallocate = v_fallocate,
    .statfs = v_statfs,
};

/* The image as the command line names it: a file and format, or with
 * --image-opts an option list split into the file, the format (driver=)
 * and the format's options. */
struct image_arg {
    const char *name, *format;
    char *name_buf, *format_buf, *options;
};

static int image_arg_parse(const struct fuse_view_opts *o,
                           struct image_arg *a)
{
    memset(a, 0, sizeof *a);
    a->name = o->image;
    a->format = o->format;
    if (!cli_image_opts()) {
        return 0;
    }
    if (cli_parse_image_opts(o->image, &a->name_buf, &a->format_buf,
                             &a->options)) {
        return 1;
    }
    a->name = a->name_buf;
    a->format = a->format_buf ? a->format_buf : o->format;
    return 0;
}

static void image_arg_free(struct image_arg *a)
{
    free(a->name_buf);
    free(a->format_buf);
    free(a->options);
}

/* Open the image A names and mount the view on FILE; messages go to
 * ERR. */
static struct fuse *mount_view(const struct fuse_view_opts *o,
                               const struct image_arg *a, struct view *v,
                               char *err, size_t errlen)
{
    struct vimg_open_params p = { .format = a->format,
                                  .flags = o->rw ? VIMG_OPEN_RDWR : 0,
                                  .refs = cli_ref_policy(),
                                  .options = a->options && *a->options
                                                 ? a->options : NULL };
    struct stat st;

    if (stat(o->file, &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: the mount point must be an existing "
                 "regular file", o->file);
        return NULL;
    }
    /* The secrets of --object; a terminal is asked for a missing key. */
    p.secrets = cli_secrets(&p.n_secrets);
    v->img = cli_open_prompting(a->name, &p);
    if (!v->img) {
        snprintf(err, errlen, "%s", vimg_get_error());
        return NULL;
    }
    v->size = (uint64_t)vimg_get_size(v->img);
    v->rw = o->rw;
    v->uid = getuid();
    v->gid = getgid();
    clock_gettime(CLOCK_REALTIME, &v->time);

    char *argv[] = { "vimg", "-o", o->rw ? "rw" : "ro", NULL };
    struct fuse_args args = FUSE_ARGS_INIT(3, argv);
    struct fuse *f = fuse_new(&args, &ops, sizeof ops, v);
    if (!f) {
        snprintf(err, errlen, "%s: cannot start FUSE", o->file);
    } else if (fuse_mount(f, o->file) != 0) {
        snprintf(err, errlen, "%s: cannot mount the FUSE view (is "
                 "/dev/fuse usable?)", o->file);
        fuse_destroy(f);
        f = NULL;
    }
    if (!f) {
        vimg_close(v->img);
        v->img = NULL;
    }
    return f;
}

/* Serve until unmounted, then close the image (its final flush). */
static int serve_view(struct fuse *f, struct view *v)
{
    struct fuse_session *se = fuse_get_session(f);
    int r = fuse_set_signal_handlers(se) == 0 ? fuse_loop_mt(f, 0) : -1;
    fuse_remove_signal_handlers(se);
    fuse_unmount(f);
    fuse_destroy(f);
    if (vimg_close(v->img) < 0) {
        fprintf(stderr, "vimg: %s\n", vimg_get_error());
        r = -1;
    }
    return r == 0 ? 0 : 1;
}

static int run_view(const struct fuse_view_opts *o,
                    const struct image_arg *a)
{
    struct view v = { 0 };
    char err[1024] = "";

    if (o->foreground) {
        struct fuse *f = mount_view(o, a, &v, err, sizeof err);
        if (!f) {
            return fail("%s", err);
        }
        return serve_view(f, &v);
    }
    /* The child opens, mounts and serves; the parent returns once the
     * view is mounted (or with the child's error), so a caller can use
     * FILE at once. Forking first keeps the image's locks and threads in
     * one process. */
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        return fail("pipe: %s", strerror(errno));
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        return fail("fork: %s", strerror(errno));
    }
    if (pid == 0) {
        close(p[0]);
        setsid();
        struct fuse *f = mount_view(o, a, &v, err, sizeof err);
        if (f && o->pid_file) {
            FILE *pf = fopen(o->pid_file, "w");
            if (!pf || fprintf(pf, "%ld\n", (long)getpid()) < 0 ||
                fclose(pf) != 0) {
                snprintf(err, sizeof err, "%s: %s", o->pid_file,
                         strerror(errno));
                fuse_unmount(f);
                fuse_destroy(f);
                vimg_close(v.img);
                f = NULL;
            }
        }
        char msg[1100];
        int n = snprintf(msg, sizeof msg, "%c%s", f ? 'Y' : 'N', err);
        ssize_t w = write(p[1], msg, (size_t)n);
        (void)w;
        close(p[1]);
        if (!f) {
            _exit(1);
        }
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, 0);
            dup2(null, 1);
            close(null);
        }
        _exit(serve_view(f, &v));
    }
    close(p[1]);
    char msg[1100];
    ssize_t n = read(p[0], msg, sizeof msg - 1);
    close(p[0]);
    if (n > 0 && msg[0] == 'Y') {
        return 0;
    }
    waitpid(pid, NULL, 0);
    msg[n > 0 ? n : 0] = '\0';
    return fail("%s", n > 1 ? msg + 1 : "the FUSE view did not start");
}

int fuse_view_run(const struct fuse_view_opts *o)
{
    struct image_arg a;

    if (image_arg_parse(o, &a)) {
        image_arg_free(&a);
        return 1;
    }
    int rc = run_view(o, &a);
    image_arg_free(&a);
    return rc;
}
