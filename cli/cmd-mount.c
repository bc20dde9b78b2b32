/* vimg mount IMAGE DIR and vimg umount DIR: the FUSE view of an image, a
 * loop device with partition scan over it, and a mount of the whole disk
 * or one partition; umount undoes all three. Every failure undoes what
 * was done before it, so no loop device or FUSE mount is left behind.
 *
 * The view's file lives in a folder of its own (/run/vimg-XXXXXX, with
 * the serving process's pid file beside it); umount finds it again from
 * the mount table and the loop device's backing file, so no other state
 * is kept. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define STATE_PREFIX "vimg-mount-"

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
    nanosleep(&ts, NULL);
}

/* Run ARGV, its stdout into OUT (may be NULL); 0 when it exits 0. Its
 * stderr goes to ours, so the tool's own message explains a failure. */
static int run_tool(char *const argv[], char *out, size_t outlen)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(p[1], 1);
        execvp(argv[0], argv);
        fprintf(stderr, "vimg: %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(p[1]);
    size_t n = 0;
    ssize_t r;
    char sink[256];
    while ((r = read(p[0], out && n + 1 < outlen ? out + n : sink,
                     out && n + 1 < outlen ? outlen - 1 - n
                                           : sizeof sink)) > 0) {
        if (out && n + 1 < outlen) {
            n += (size_t)r;
        }
    }
    close(p[0]);
    if (out && outlen) {
        out[n] = '\0';
        out[strcspn(out, "\n")] = '\0';
    }
    int status;
    if (waitpid(pid, &status, 0) < 0) {
        return -1;
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* Unmount the view on STATE/disk, wait for its process to close the
 * image (its final flush), and remove the folder. */
static int undo_view(const char *state)
{
    char file[PATH_MAX], pidf[PATH_MAX];
    int rc = 0;

    snprintf(file, sizeof file, "%s/disk", state);
    snprintf(pidf, sizeof pidf, "%s/pid", state);
    long pid = 0;
    FILE *f = fopen(pidf, "r");
    if (f) {
        if (fscanf(f, "%ld", &pid) != 1) {
            pid = 0;
        }
        fclose(f);
    }
    /* The loop device lets go of the file shortly after it is detached. */
    int i;
    for (i = 0; i < 100 && umount2(file, 0) < 0 && errno == EBUSY; i++) {
        sleep_ms(50);
    }
    if (i == 100 && umount2(file, MNT_DETACH) < 0) {
        rc = fail("%s: cannot unmount the FUSE view: %s", file,
                  strerror(errno));
    }
    /* When a failed mount undoes its own view, the process is our child:
     * reap it, or it would live on as a zombie. */
    for (i = 0; pid > 0 && i < 600 && kill((pid_t)pid, 0) == 0 &&
         waitpid((pid_t)pid, NULL, WNOHANG) != (pid_t)pid; i++) {
        sleep_ms(50);
    }
    if (pid > 0 && kill((pid_t)pid, 0) == 0) {
        rc = fail("the FUSE view's process %ld is still running", pid);
    }
    unlink(pidf);
    if (rc == 0) {
        unlink(file);
        rmdir(state);
    }
    return rc;
}

static int detach_loop(const char *loop)
{
    char *argv[] = { "losetup", "-d", (char *)loop, NULL };
    return run_tool(argv, NULL, 0) == 0 ? 0
           : fail("%s: cannot detach the loop device", loop);
}

static int need_root(const char *cmd)
{
    if (geteuid() != 0) {
        return fail("%s needs root (loop devices and mount); as a user, "
                    "'vimg fuse IMAGE FILE' gives the disk as a file", cmd);
    }
    return 0;
}

/* The device of partition PART: LOOP's partition node once the kernel
 * has scanned the table, else (kernels or containers that do not scan)
 * a loop device of its own over the partition's bytes, as partx reads
 * the table. LOOP is detached when it is not the answer. */
static int partition_device(const struct fuse_view_opts *o, const char *file,
                            char *loop, uint64_t part, char *dev, size_t len)
{
    char num[32], range[128] = "";
    snprintf(num, sizeof num, "%llu", (unsigned long long)part);
    char *px[] = { "partx", "-g", "-n", num, "-o", "START,SECTORS", (char *)file,
                   NULL };
    unsigned long long start, sectors;
    if (run_tool(px, range, sizeof range) != 0 ||
        sscanf(range, "%llu %llu", &start, &sectors) != 2 || sectors == 0) {
        detach_loop(loop);
        return fail("%s: no partition %s", o->image, num);
    }
    snprintf(dev, len, "%sp%s", loop, num);
    for (int i = 0; i < 40 && access(dev, F_OK) < 0; i++) {
        sleep_ms(50);
    }
    if (access(dev, F_OK) == 0) {
        return 0;
    }
    if (detach_loop(loop)) {
        return 1;
    }
    char off[32], size[32];
    snprintf(off, sizeof off, "%llu", start * 512);
    snprintf(size, sizeof size, "%llu", sectors * 512);
    char *ls[] = { "losetup", "--find", "--show", "--offset", off,
                   "--sizelimit", size, (char *)file,
                   o->rw ? NULL : "--read-only", NULL };
    if (run_tool(ls, loop, 64) != 0 || strncmp(loop, "/dev/", 5)) {
        return fail("%s: cannot set up a loop device for partition %s",
                    o->image, num);
    }
    snprintf(dev, len, "%s", loop);
    return 0;
}

static int mount_run(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "format", required_argument, NULL, 'f' },
        { "rw", no_argument, NULL, 'w' },
        { "partition", required_argument, NULL, 'P' },
        { "options", required_argument, NULL, 'o' },
        { NULL, 0, NULL, 0 },
    };
    struct fuse_view_opts o = { 0 };
    const char *mopts = NULL;
    uint64_t part = 0;
    int c;

    while ((c = getopt_long(argc, argv, "f:o:", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': o.format = optarg; break;
        case 'w': o.rw = true; break;
        case 'o': mopts = optarg; break;
        case 'P':
            if (vimg_parse_size(optarg, &part) < 0 || part < 1 ||
                part > 256 || strpbrk(optarg, "kKmMgGtTpPeEbB.")) {
                return fail("--partition needs a number from 1 to 256");
            }
            break;
        default: return 1;
        }
    }
    if (argc - optind != 2) {
        return usage(&cmd_mount, true);
    }
    const char *dir = argv[optind + 1];
    struct stat st;
    if (need_root("vimg mount")) {
        return 1;
    }
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        return fail("%s: not a directory", dir);
    }
    char state[] = "/run/" STATE_PREFIX "XXXXXX";
    char file[PATH_MAX], pidf[PATH_MAX];
    if (!mkdtemp(state)) {
        return fail("%s: %s", state, strerror(errno));
    }
    snprintf(file, sizeof file, "%s/disk", state);
    snprintf(pidf, sizeof pidf, "%s/pid", state);
    int fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        fail("%s: %s", file, strerror(errno));
        rmdir(state);
        return 1;
    }
    close(fd);
    o.image = argv[optind];
    o.file = file;
    o.pid_file = pidf;
    if (fuse_view_run(&o) != 0) {
        unlink(file);
        rmdir(state);
        return 1;
    }
    char loop[64] = "";
    char *ls[] = { "losetup", "--find", "--show", "--partscan", file,
                   o.rw ? NULL : "--read-only", NULL };
    if (run_tool(ls, loop, sizeof loop) != 0 || strncmp(loop, "/dev/", 5)) {
        fail("%s: cannot set up a loop device", o.image);
        undo_view(state);
        return 1;
    }
    char dev[96];
    snprintf(dev, sizeof dev, "%s", loop);
    if (part && partition_device(&o, file, loop, part, dev, sizeof dev)) {
        undo_view(state);
        return 1;
    }
    char optbuf[1024];
    snprintf(optbuf, sizeof optbuf, "%s%s%s", o.rw ? "rw" : "ro",
             mopts ? "," : "", mopts ? mopts : "");
    char *mt[] = { "mount", "-o", optbuf, dev, (char *)dir, NULL };
    if (run_tool(mt, NULL, 0) != 0) {
        fail("%s: cannot mount %s on %s", o.image, dev, dir);
        detach_loop(loop);
        undo_view(state);
        return 1;
    }
    return 0;
}

/* The source device of the file system mounted on the real path DIR (the
 * last mount there), from /proc/self/mountinfo. */
static int mounted_source(const char *dir, char *src, size_t len)
{
    FILE *f = fopen("/proc/self/mountinfo", "r");
    char line[8192];
    int found = -1;

    if (!f) {
        return -1;
    }
    while (fgets(line, sizeof line, f)) {
        char mp[4096], source[4096];
        const char *sep = strstr(line, " - ");
        if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) != 1 || !sep ||
            sscanf(sep + 3, "%*s %4095s", source) != 1) {
            continue;
        }
        if (strcmp(mp, dir) == 0) {
            snprintf(src, len, "%s", source);
            found = 0;
        }
    }
    fclose(f);
    return found;
}

static int umount_run(int argc, char **argv)
{
    if (argc != 2 || argv[1][0] == '-') {
        return usage(&cmd_umount, true);
    }
    if (need_root("vimg umount")) {
        return 1;
    }
    char real[PATH_MAX], src[4096];
    if (!realpath(argv[1], real)) {
        return fail("%s: %s", argv[1], strerror(errno));
    }
    if (mounted_source(real, src, sizeof src) < 0) {
        return fail("%s: nothing is mounted there", argv[1]);
    }
    if (umount2(real, 0) < 0) {
        return fail("%s: cannot unmount: %s", argv[1], strerror(errno));
    }
    /* /dev/loopN or /dev/loopNpM: the loop device and the file it reads. */
    unsigned n;
    char loop[64], backing[PATH_MAX] = "";
    if (sscanf(src, "/dev/loop%u", &n) != 1) {
        return 0; /* not ours: nothing more to undo */
    }
    snprintf(loop, sizeof loop, "/dev/loop%u", n);
    char sys[128];
    snprintf(sys, sizeof sys, "/sys/block/loop%u/loop/backing_file", n);
    FILE *f = fopen(sys, "r");
    if (f) {
        if (!fgets(backing, sizeof backing, f)) {
            backing[0] = '\0';
        }
        backing[strcspn(backing, "\n")] = '\0';
        fclose(f);
    }
    int rc = detach_loop(loop);
    /* Only a view that vimg mount made: /run/vimg-mount-XXXXXX/disk. */
    size_t plen = strlen("/run/" STATE_PREFIX);
    if (!strncmp(backing, "/run/" STATE_PREFIX, plen) &&
        !strcmp(backing + plen + 6, "/disk")) {
        backing[plen + 6] = '\0';
        if (undo_view(backing) != 0) {
            rc = 1;
        }
    }
    return rc;
}

const struct command cmd_mount = {
    "mount", mount_run, "mount a file system inside an image (root)",
    "Usage: vimg mount [-f FMT] [--rw] [--partition N] [-o OPTIONS] "
    "IMAGE DIR\n"
    "Mount the file system on IMAGE's guest disk (any format, through its\n"
    "backing chain) on DIR: a FUSE view of the disk, a loop device with\n"
    "partition scan over it, then mount. Needs root. 'vimg umount DIR'\n"
    "undoes all of it; a failed step undoes the ones before it.\n"
    "  -f FMT             image format (default: probe)\n"
    "  --rw               mount read-write; writes go to IMAGE\n"
    "  --partition N      mount partition N (default: the whole disk)\n"
    "  -o OPTIONS         more mount options (ro/rw come from --rw)\n",
};

const struct command cmd_umount = {
    "umount", umount_run, "undo vimg mount (root)",
    "Usage: vimg umount DIR\n"
    "Unmount DIR, detach its loop device and end the FUSE view that\n"
    "vimg mount made, waiting until the image is closed.\n",
};
