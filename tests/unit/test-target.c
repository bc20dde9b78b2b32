/* Targets (lib/target.c): a new file appears only on commit and without a
 * name before it; an abort or failure keeps the old file; owner and mode
 * are kept; symlinks are written through; hard links, devices, read-only
 * folders and owners we cannot give are written in place; a held image is
 * refused; companion files (VMDK extents) follow their target; and the
 * named fallback (a file system without O_TMPFILE,
 * emulated by the open64 below) leaves a temporary only until
 * vimg_target_remove_temporaries or the target's end. */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "test.h"

static char dir[] = "/tmp/vimg-test-target.XXXXXX";
/* Make open(O_TMPFILE) fail as a file system without it does. */
static bool no_tmpfile;

/* The library calls open64 (the build uses 64-bit file offsets); this
 * definition in the program comes before the C library's. */
int open64(const char *file, int flags, ...)
{
    static int (*real)(const char *, int, ...);
    int mode = 0;

    if ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE) {
        va_list ap;
        va_start(ap, flags);
        mode = va_arg(ap, int);
        va_end(ap);
    }
    if (no_tmpfile && (flags & O_TMPFILE) == O_TMPFILE) {
        errno = EOPNOTSUPP;
        return -1;
    }
    if (!real) {
        real = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, "open64");
    }
    return real(file, flags, mode);
}

static char *path(const char *name)
{
    static char buf[4][256];
    static int next;
    char *b = buf[next++ % 4];
    snprintf(b, sizeof buf[0], "%s/%s", dir, name);
    return b;
}

/* Entries of the test folder (hidden ones included); the first hidden
 * name goes to HIDDEN when given. */
static int entries(char *hidden, size_t len)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    if (hidden) {
        hidden[0] = '\0';
    }
    while (d && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            n++;
            if (hidden && e->d_name[0] == '.' && !hidden[0]) {
                snprintf(hidden, len, "%s", e->d_name);
            }
        }
    }
    if (d) {
        closedir(d);
    }
    return n;
}

static void put(const char *file, const char *text)
{
    int fd = open(file, O_CREAT | O_WRONLY | O_TRUNC, 0644);
    CHECK(fd >= 0);
    CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
}

static bool holds(const char *file, const char *text)
{
    char buf[64] = { 0 };
    int fd = open(file, O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    if (fd >= 0) {
        close(fd);
    }
    return n == (ssize_t)strlen(text) && memcmp(buf, text, (size_t)n) == 0;
}

static ino_t inode(const char *file)
{
    struct stat st;
    return stat(file, &st) == 0 ? st.st_ino : 0;
}

static off_t size_of(const char *file)
{
    struct stat st;
    return stat(file, &st) == 0 ? st.st_size : -1;
}

static void clean(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s/* %s/.[!.]*", dir, dir);
    CHECK(system(cmd) == 0);
}

/* Create a raw image of SIZE bytes at NAME through a target. */
static int make_raw(const char *name, uint64_t size, bool commit)
{
    struct vimg_create_params cp = { .format = "raw", .size = size,
                                     .size_given = true };
    struct vimg_target *t = vimg_target_begin(name);
    if (!t) {
        return -1;
    }
    if (vimg_target_create(t, &cp) < 0 || !commit) {
        vimg_target_abort(t);
        return commit ? -1 : 0;
    }
    return vimg_target_commit(t);
}

static void test_new_file(void)
{
    struct vimg_create_params cp = { .format = "raw", .size = 65536,
                                     .size_given = true };
    struct vimg_target *t = vimg_target_begin(path("new.img"));
    CHECK(t != NULL);
    CHECK(!vimg_target_in_place(t));
    CHECK_EQ(vimg_target_create(t, &cp), 0);
    /* Built without a name: nothing in the folder yet. */
    CHECK_EQ(entries(NULL, 0), 0);
    CHECK_EQ(vimg_target_commit(t), 0);
    CHECK(vimg_get_error() == NULL);
    CHECK_EQ(size_of(path("new.img")), 65536);
    struct stat st;
    CHECK(stat(path("new.img"), &st) == 0 && (st.st_mode & 0777) == 0644);
    CHECK_EQ(entries(NULL, 0), 1);
    clean();
}

static void test_abort_keeps_old(void)
{
    put(path("a.img"), "old");
    ino_t ino = inode(path("a.img"));
    CHECK_EQ(make_raw(path("a.img"), 1 << 20, false), 0);
    CHECK(holds(path("a.img"), "old"));
    CHECK_EQ(inode(path("a.img")), ino);
    CHECK_EQ(entries(NULL, 0), 1);
    /* A failing create (a bad option) keeps it too. */
    struct vimg_create_params cp = { .format = "raw", .size = 512,
                                     .size_given = true,
                                     .options = "nonsense=1" };
    CHECK_EQ(vimg_create(path("a.img"), &cp), -1);
    CHECK_EQ(vimg_get_errno(), EINVAL);
    CHECK(holds(path("a.img"), "old"));
    CHECK_EQ(entries(NULL, 0), 1);
    clean();
}

static void test_replace_keeps_owner_and_mode(void)
{
    bool root = geteuid() == 0;
    struct stat st;

    put(path("a.img"), "old");
    CHECK(chmod(path("a.img"), 0604) == 0);
    if (root) {
        CHECK(chown(path("a.img"), 65534, 65534) == 0);
    }
    ino_t ino = inode(path("a.img"));
    CHECK_EQ(make_raw(path("a.img"), 4096, true), 0);
    CHECK(stat(path("a.img"), &st) == 0);
    CHECK(st.st_ino != ino);
    CHECK_EQ(st.st_size, 4096);
    CHECK_EQ(st.st_mode & 07777, 0604);
    if (root) {
        CHECK_EQ(st.st_uid, 65534);
        CHECK_EQ(st.st_gid, 65534);
    }
    CHECK_EQ(entries(NULL, 0), 1);
    clean();
}

static void test_symlinks(void)
{
    struct stat st;

    put(path("real.img"), "old");
    CHECK(symlink("real.img", path("link.img")) == 0);
    CHECK_EQ(make_raw(path("link.img"), 8192, true), 0);
    CHECK(lstat(path("link.img"), &st) == 0 && S_ISLNK(st.st_mode));
    CHECK_EQ(size_of(path("real.img")), 8192);
    /* A dangling link creates what it names; a chain of links too. */
    CHECK(symlink("made.img", path("dangling.img")) == 0);
    CHECK(symlink("dangling.img", path("chain.img")) == 0);
    CHECK_EQ(make_raw(path("chain.img"), 1024, true), 0);
    CHECK(lstat(path("dangling.img"), &st) == 0 && S_ISLNK(st.st_mode));
    CHECK(lstat(path("chain.img"), &st) == 0 && S_ISLNK(st.st_mode));
    CHECK_EQ(size_of(path("made.img")), 1024);
    CHECK_EQ(entries(NULL, 0), 5);
    /* A loop of links. */
    CHECK(symlink("loop2", path("loop1")) == 0);
    CHECK(symlink("loop1", path("loop2")) == 0);
    CHECK(vimg_target_begin(path("loop1")) == NULL);
    CHECK_EQ(vimg_get_errno(), ELOOP);
    clean();
}

static void test_hard_link_in_place(void)
{
    put(path("h1"), "old");
    CHECK(link(path("h1"), path("h2")) == 0);
    ino_t ino = inode(path("h1"));
    struct vimg_target *t = vimg_target_begin(path("h1"));
    CHECK(t != NULL && vimg_target_in_place(t));
    vimg_target_abort(t);
    CHECK(holds(path("h2"), "old")); /* nothing written yet */
    CHECK_EQ(make_raw(path("h1"), 2048, true), 0);
    CHECK_EQ(inode(path("h1")), ino);
    CHECK_EQ(inode(path("h2")), ino);
    CHECK_EQ(size_of(path("h2")), 2048);
    clean();
}

static void test_held_image_refused(void)
{
    put(path("held.img"), "old");
    struct vimg_open_params p = { .format = "raw", .flags = VIMG_OPEN_RDWR };
    struct vimg_image *img = vimg_open(path("held.img"), &p);
    CHECK(img != NULL);
    CHECK(vimg_target_begin(path("held.img")) == NULL);
    CHECK_ERROR(EAGAIN, path("held.img"));
    CHECK(strstr(vimg_get_error(), ": Failed to get \"write\" lock") != NULL);
    /* Through a symlink, the message names the link as given. */
    CHECK(symlink("held.img", path("l.img")) == 0);
    CHECK(vimg_target_begin(path("l.img")) == NULL);
    CHECK_ERROR(EAGAIN, path("l.img"));
    CHECK(holds(path("held.img"), "old"));
    vimg_close(img);
    /* Held by the target while it is written: a writer is refused. */
    struct vimg_target *t = vimg_target_begin(path("held.img"));
    CHECK(t != NULL);
    CHECK(vimg_open(path("held.img"), &p) == NULL);
    CHECK_EQ(vimg_get_errno(), EAGAIN);
    vimg_target_abort(t);
    clean();
}

static void test_errors(void)
{
    CHECK(vimg_target_begin(dir) == NULL);
    CHECK_ERROR(EISDIR, dir);
    CHECK(mkfifo(path("fifo"), 0600) == 0);
    CHECK(vimg_target_begin(path("fifo")) == NULL);
    CHECK_ERROR(EINVAL, path("fifo"));
    CHECK(strstr(vimg_get_error(), "not a regular file or block device"));
    CHECK(vimg_target_begin("") == NULL);
    CHECK_EQ(vimg_get_errno(), EINVAL);
    CHECK(vimg_target_begin(path("nodir/x.img")) == NULL);
    CHECK_ERROR(ENOENT, path("nodir/x.img"));
    CHECK(strstr(vimg_get_error(), "cannot create") != NULL);
    CHECK_EQ(vimg_target_commit(NULL), -1);
    vimg_target_abort(NULL);
    clean();
}

/* The image opened on a target is written, and appears on commit. */
static void test_open(void)
{
    struct vimg_create_params cp = { .format = "qcow2", .size = 1 << 20,
                                     .size_given = true };
    struct vimg_open_params op = { .format = "qcow2" };
    char buf[512], back[512];

    memset(buf, 0x5a, sizeof buf);
    put(path("q.img"), "old");
    struct vimg_target *t = vimg_target_begin(path("q.img"));
    CHECK(t != NULL);
    CHECK_EQ(vimg_target_create(t, &cp), 0);
    struct vimg_image *img = vimg_target_open(t, &op);
    CHECK(img != NULL);
    CHECK(vimg_is_writable(img));
    CHECK_EQ(strcmp(vimg_get_filename(img), path("q.img")), 0);
    CHECK_EQ(vimg_pwrite(img, buf, sizeof buf, 4096, 0), 0);
    CHECK_EQ(vimg_close(img), 0);
    CHECK(holds(path("q.img"), "old"));
    CHECK_EQ(vimg_target_commit(t), 0);
    img = vimg_open(path("q.img"), &op);
    CHECK(img != NULL);
    CHECK(img && vimg_pread(img, back, sizeof back, 4096) == 0 &&
          memcmp(buf, back, sizeof buf) == 0);
    vimg_close(img);
    clean();
}

static void test_devices(void)
{
    struct vimg_create_params cp = { .format = "raw", .size = 0,
                                     .size_given = true };
    struct vimg_target *t = vimg_target_begin("/dev/null");
    CHECK(t != NULL && vimg_target_in_place(t));
    CHECK_EQ(vimg_target_create(t, &cp), 0);
    struct vimg_open_params op = { .format = "raw" };
    struct vimg_image *img = vimg_target_open(t, &op);
    CHECK(img != NULL);
    CHECK_EQ(vimg_get_size(img), 0);
    vimg_close(img);
    CHECK_EQ(vimg_target_commit(t), 0);
    struct stat st;
    CHECK(stat("/dev/null", &st) == 0 && S_ISCHR(st.st_mode));
    /* A device does not grow. */
    cp.size = 1 << 20;
    CHECK_EQ(vimg_create("/dev/null", &cp), -1);
    CHECK_ERROR(EINVAL, "/dev/null: cannot grow a device");
    /* Read as an image, a character device is refused as before. */
    CHECK(vimg_open("/dev/null", NULL) == NULL);
    CHECK_EQ(vimg_get_errno(), EINVAL);
}

static void test_named_fallback(void)
{
    char hidden[256];

    no_tmpfile = true;
    put(path("a.img"), "old");
    struct vimg_target *t = vimg_target_begin(path("a.img"));
    CHECK(t != NULL);
    CHECK_EQ(entries(hidden, sizeof hidden), 2);
    CHECK(strncmp(hidden, ".a.img.vimg-", 12) == 0);
    /* What the CLI's SIGINT handler does. */
    vimg_target_remove_temporaries();
    CHECK_EQ(entries(NULL, 0), 1);
    vimg_target_abort(t);
    CHECK(holds(path("a.img"), "old"));
    CHECK_EQ(entries(NULL, 0), 1);

    CHECK_EQ(make_raw(path("a.img"), 1 << 20, false), 0);
    CHECK(holds(path("a.img"), "old"));
    CHECK_EQ(entries(NULL, 0), 1);
    CHECK_EQ(make_raw(path("a.img"), 1 << 20, true), 0);
    CHECK_EQ(size_of(path("a.img")), 1 << 20);
    CHECK_EQ(make_raw(path("b.img"), 512, true), 0);
    CHECK_EQ(size_of(path("b.img")), 512);
    CHECK_EQ(entries(NULL, 0), 2);
    no_tmpfile = false;
    clean();
}

/* A VMDK split image's extents are companions of its descriptor: unseen
 * until the commit, gone after an abort (with O_TMPFILE and with named
 * temporaries), the old extents kept until then; a companion asked for
 * twice is one file, and its descriptor is found by name. */
static void test_companions(void)
{
    struct vimg_create_params cp = { .format = "vmdk", .size = 3ull << 30,
                                     .size_given = true,
                                     .options = "subformat="
                                                "twoGbMaxExtentSparse" };
    char hidden[256];

    for (int named = 0; named < 2; named++) {
        no_tmpfile = named;
        put(path("d-s001.vmdk"), "old");
        struct vimg_target *t = vimg_target_begin(path("d.vmdk"));
        CHECK(t != NULL);
        CHECK_EQ(vimg_target_create(t, &cp), 0);
        CHECK(holds(path("d-s001.vmdk"), "old"));
        /* The old extent, and named temporaries: the new descriptor and
         * its two extents. */
        CHECK_EQ(entries(hidden, sizeof hidden), named ? 4 : 1);
        int fd = vimg_internal_target_find_companion(t, "d-s002.vmdk");
        CHECK(fd >= 0);
        CHECK_EQ(vimg_internal_target_companion(t, "d-s002.vmdk"), fd);
        CHECK_EQ(vimg_internal_target_find_companion(t, "x.vmdk"),
                 -ENOENT);
        vimg_target_abort(t);
        CHECK(holds(path("d-s001.vmdk"), "old"));
        CHECK_EQ(entries(NULL, 0), 1);

        t = vimg_target_begin(path("d.vmdk"));
        CHECK(t != NULL);
        CHECK_EQ(vimg_target_create(t, &cp), 0);
        CHECK_EQ(vimg_target_commit(t), 0);
        CHECK(!holds(path("d-s001.vmdk"), "old"));
        CHECK_EQ(entries(NULL, 0), 3);
        struct vimg_image *img = vimg_open(path("d.vmdk"), NULL);
        CHECK(img != NULL);
        CHECK_EQ(vimg_get_size(img), (int64_t)(3ull << 30));
        vimg_close(img);
        clean();
    }
    no_tmpfile = false;
}

/* As a user who may not create files in the folder, or may not give the
 * owner: the file is written in place (root only: needs a second user). */
static int in_place_as_nobody(const char *file)
{
    if (setgid(65534) < 0 || setuid(65534) < 0) {
        return 2;
    }
    ino_t ino = inode(file);
    struct vimg_target *t = vimg_target_begin(file);
    if (!t || !vimg_target_in_place(t)) {
        fprintf(stderr, "%s: %s\n", file, t ? "replaced" : vimg_get_error());
        vimg_target_abort(t);
        return 1;
    }
    struct vimg_create_params cp = { .format = "raw", .size = 1024,
                                     .size_given = true };
    if (vimg_target_create(t, &cp) < 0 || vimg_target_commit(t) < 0) {
        fprintf(stderr, "%s: %s\n", file, vimg_get_error());
        return 1;
    }
    return inode(file) == ino && size_of(file) == 1024 ? 0 : 1;
}

static void test_in_place_for_other_users(void)
{
    if (geteuid() != 0) {
        return;
    }
    CHECK(chmod(dir, 0755) == 0);
    CHECK(mkdir(path("ro"), 0755) == 0);
    put(path("ro/f.img"), "old");
    CHECK(chmod(path("ro/f.img"), 0666) == 0);
    CHECK(chown(path("ro/f.img"), 65534, 65534) == 0);
    CHECK(chmod(path("ro"), 0555) == 0);
    CHECK(mkdir(path("rw"), 0777) == 0);
    CHECK(chmod(path("rw"), 0777) == 0);
    put(path("rw/root.img"), "old");
    CHECK(chmod(path("rw/root.img"), 0666) == 0);
    const char *files[] = { path("ro/f.img"), path("rw/root.img") };
    for (int i = 0; i < 2; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            _exit(in_place_as_nobody(files[i]));
        }
        int status;
        CHECK(waitpid(pid, &status, 0) == pid);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    struct stat st;
    CHECK(stat(path("rw/root.img"), &st) == 0 && st.st_uid == 0);
    CHECK(chmod(path("ro"), 0755) == 0);
    clean();
}

int main(void)
{
    umask(022);
    CHECK(mkdtemp(dir) != NULL);
    test_new_file();
    test_abort_keeps_old();
    test_replace_keeps_owner_and_mode();
    test_symlinks();
    test_hard_link_in_place();
    test_held_image_refused();
    test_errors();
    test_open();
    test_devices();
    test_named_fallback();
    test_companions();
    test_in_place_for_other_users();
    CHECK(rmdir(dir) == 0);
    TEST_MAIN_END();
}
