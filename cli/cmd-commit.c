/* vimg commit [-q] [-f FMT] [-t CACHE] [-b BASE] [-r RATE] [-d] [-p]
 * FILENAME
 * (qemu-img commit) */
#include <getopt.h>

#include "cli.h"

static int run(int argc, char **argv)
{
    static const struct option longopts[] = {
        { NULL, 0, NULL, 0 },
    };
    struct vimg_commit_params p = { 0 };
    const char *format = NULL;
    unsigned flags = VIMG_OPEN_RDWR;
    bool progress = false, quiet = false;
    struct progress prog;
    int c;

    while ((c = getopt_long(argc, argv, "f:t:b:r:dpq", longopts, NULL)) !=
           -1) {
        switch (c) {
        case 'f': format = optarg; break;
        case 't':
            if (parse_cache(optarg, &flags)) {
                return 1;
            }
            break;
        case 'b':
            p.base = optarg;
            p.drop = true; /* as in qemu-img: -b implies -d */
            break;
        case 'r':
            if (parse_rate(optarg, &p.rate_limit)) {
                return 1;
            }
            break;
        case 'd': p.drop = true; break;
        case 'p': progress = true; break;
        case 'q': quiet = true; break;
        default: return 1; /* getopt named the problem */
        }
    }
    if (argc - optind != 1) {
        return usage(&cmd_commit, true);
    }
    struct vimg_image *img = open_image(argv[optind], format, flags);
    if (!img) {
        return 1;
    }
    progress_init(&prog, progress && !quiet ? PROGRESS_BAR : PROGRESS_NONE);
    p.progress = progress_update;
    p.opaque = &prog;
    p.base_flags = flags & (VIMG_OPEN_NOCACHE | VIMG_OPEN_NO_FLUSH);
    /* The base reopens with TOP's backing.* options and these secrets. */
    p.secrets = cli_secrets(&p.n_secrets);
    int rc = 0;
    if (vimg_commit(img, &p) < 0) {
        rc = fail_lib();
    }
    progress_finish(&prog);
    if (vimg_close(img) < 0 && rc == 0) {
        rc = fail_lib();
    }
    if (rc == 0 && !quiet) {
        printf("Image committed.\n");
    }
    return rc;
}

const struct command cmd_commit = {
    "commit", run, "write an overlay's data into its backing file",
    "Usage: vimg commit [-q] [-f FMT] [-t CACHE] [-b BASE] [-r RATE] [-d] "
    "[-p] FILENAME\n"
    "Copy what FILENAME holds (data and zeroed ranges) into its backing\n"
    "file, then empty FILENAME so that it reads everything from there.\n"
    "  -b BASE     commit into BASE, deeper in the backing chain (named as\n"
    "              the chain names it, or by a path to the same file); the\n"
    "              images above BASE are then left as they are (-d)\n"
    "  -d          do not empty FILENAME afterwards\n"
    "  -f FMT      FILENAME's format (default: probe)\n"
    "  -t CACHE    cache mode for the images written (writeback, unsafe,\n"
    "              none, ...)\n"
    "  -r RATE     copy at most RATE bytes of data per second (k, M, G\n"
    "              suffixes)\n"
    "  -p          progress bar on a terminal\n"
    "  -q          quiet\n"
    "The base may be of any format vimg writes, raw included. An\n"
    "encrypted base takes its key as qemu-img's does: --object secret,...\n"
    "and --image-opts ...,backing.encrypt.key-secret=ID (or a prompt).\n",
};
