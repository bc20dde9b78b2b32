/* vimg fuse [-f FMT] [--rw] [--foreground] IMAGE FILE: the guest disk of
 * IMAGE as the regular file FILE (cli/fuse.c). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static int run(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "format", required_argument, NULL, 'f' },
        { "rw", no_argument, NULL, 'w' },
        { "foreground", no_argument, NULL, 'F' },
        { "pid-file", required_argument, NULL, 'P' },
        { NULL, 0, NULL, 0 },
    };
    struct fuse_view_opts o = { 0 };
    int c;

    while ((c = getopt_long(argc, argv, "f:", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': o.format = optarg; break;
        case 'w': o.rw = true; break;
        case 'F': o.foreground = true; break;
        case 'P': o.pid_file = optarg; break;
        default: return 1;
        }
    }
    if (argc - optind != 2) {
        return usage(&cmd_fuse, true);
    }
    o.image = argv[optind];
    o.file = argv[optind + 1];
    /* FUSE mounts over an existing file: make an empty one if needed. */
    int fd = open(o.file, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        return fail("%s: %s", o.file, strerror(errno));
    }
    close(fd);
    return fuse_view_run(&o);
}

const struct command cmd_fuse = {
    "fuse", run, "show an image's guest disk as a file (FUSE)",
    "Usage: vimg fuse [-f FMT] [--rw] [--foreground] [--pid-file=FILE] "
    "IMAGE FILE\n"
    "Mount the guest disk of IMAGE (any format, through its backing chain)\n"
    "over the regular file FILE (created empty if missing), so losetup,\n"
    "mount, fsck, debugfs or 7z can read it. Returns once FILE is mounted;\n"
    "a background process serves it until `fusermount3 -u FILE` or\n"
    "`umount FILE`, then closes the image.\n"
    "  -f FMT             image format (default: probe; --rw on a raw image\n"
    "                     needs -f raw)\n"
    "  --rw               writes to FILE go to IMAGE (default: read-only)\n"
    "  --foreground       serve in this process until unmounted\n"
    "  --pid-file=FILE    write the serving process's id to FILE\n",
};
