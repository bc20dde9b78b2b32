/* vimg compare [-f FMT] [-F FMT] [-T CACHE] [-p] [-q] [-s] [-U] A B
 * Exit 0 identical, 1 different, 2 error (as qemu-img). */
#include <getopt.h>

#include "cli.h"

static int run(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "force-share", no_argument, NULL, 'U' }, { NULL, 0, NULL, 0 },
    };
    const char *fmt_a = NULL, *fmt_b = NULL;
    unsigned flags = 0;
    bool strict = false, quiet = false;
    enum progress_mode pmode = PROGRESS_NONE;
    struct progress prog;
    int c;

    while ((c = getopt_long(argc, argv, "f:F:T:pqsU", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': fmt_a = optarg; break;
        case 'F': fmt_b = optarg; break;
        case 'T':
            if (parse_cache(optarg, &flags)) {
                return 2;
            }
            break;
        case 'p': pmode = PROGRESS_BAR; break;
        case 'q': quiet = true; break;
        case 's': strict = true; break;
        case 'U': flags |= VIMG_OPEN_FORCE_SHARE; break;
        default: return 1; /* getopt named the problem (1, as qemu-img) */
        }
    }
    if (argc - optind != 2) {
        return usage(&cmd_compare, true); /* 1, as qemu-img */
    }
    if (quiet) {
        pmode = PROGRESS_NONE; /* -q wins over -p, as in qemu-img */
    }
    struct vimg_image *a = open_image(argv[optind], fmt_a, flags);
    /* -f names IMAGE1 only; IMAGE2 is probed unless -F names it, as
     * qemu-img does (one -f for a raw and a qcow2 image must work). */
    struct vimg_image *b = a ? open_image(argv[optind + 1], fmt_b, flags)
                             : NULL;
    if (!b) {
        vimg_close(a);
        return 2;
    }
    uint64_t diff = 0;
    uint64_t size_a = (uint64_t)vimg_get_size(a);
    uint64_t size_b = (uint64_t)vimg_get_size(b);
    bool size_mismatch = size_a != size_b;
    if (size_mismatch && strict && !quiet) {
        printf("Strict mode: Image size mismatch!\n");
    }
    progress_init(&prog, pmode);
    int r = vimg_compare(a, b, strict, &diff, progress_update, &prog);
    if (prog.mode == PROGRESS_BAR) {
        progress_finish(&prog); /* the bar's line ends before the verdict */
    }
    /* qemu-img compares the common part first and warns about the sizes
     * only once that part matched, before looking at the longer tail. */
    if (r >= 0 && size_mismatch && !strict && !quiet &&
        (r == 0 || diff >= (size_a < size_b ? size_a : size_b))) {
        printf("Warning: Image size mismatch!\n");
    }
    int rc;
    if (r < 0) {
        fail_lib();
        rc = 2;
    } else if (r == 0) {
        if (!quiet) {
            printf("Images are identical.\n");
        }
        rc = 0;
    } else if (r == 2) {
        if (!quiet) {
            printf("Strict mode: Offset %llu block status mismatch!\n",
                   (unsigned long long)diff);
        }
        rc = 1;
    } else {
        if (!quiet && !(strict && size_mismatch)) {
            printf("Content mismatch at offset %llu!\n",
                   (unsigned long long)diff);
        }
        rc = 1;
    }
    if (prog.mode != PROGRESS_BAR) {
        progress_finish(&prog);
    }
    vimg_close(a);
    vimg_close(b);
    return rc;
}

const struct command cmd_compare = {
    "compare", run, "compare the contents of two images",
    "Usage: vimg compare [-f FMT] [-F FMT] [-T CACHE] [-p] [-q] [-s] [-U] "
    "IMAGE1 IMAGE2\n"
    "Compare what a guest would read from two images of any formats.\n"
    "  -f FMT          format of IMAGE1 (default: probe)\n"
    "  -F FMT          format of IMAGE2 (default: probe, whatever -f says)\n"
    "  -s              strict: images of different sizes or block status\n"
    "                  differ\n"
    "  -p              progress bar; -q quiet; -U force share\n"
    "Without -s, the larger image's extra tail must read as zeros.\n"
    "Exit status: 0 identical, 1 different, 2 error.\n",
};
