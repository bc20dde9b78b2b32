/* vimg rebase [-U] [-q] [-f FMT] [-t CACHE] [-T CACHE] [-p] [-u]
 *             -b BACKING [-F FMT] FILENAME  (qemu-img rebase) */
#include <getopt.h>

#include "cli.h"

static int run(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "force-share", no_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    struct vimg_rebase_params p = { 0 };
    const char *format = NULL;
    unsigned flags = VIMG_OPEN_RDWR, src_flags = 0;
    bool progress = false, quiet = false;
    struct progress prog;
    int c;

    while ((c = getopt_long(argc, argv, "f:F:b:upt:T:qU", longopts, NULL)) !=
           -1) {
        switch (c) {
        case 'f': format = optarg; break;
        case 'F': p.backing_format = optarg; break;
        case 'b': p.backing_file = optarg; break;
        case 'u': p.unsafe = true; break;
        case 'p': progress = true; break;
        case 'q': quiet = true; break;
        case 'U': p.force_share = true; break;
        case 't':
            if (parse_cache(optarg, &flags)) {
                return 1;
            }
            break;
        case 'T':
            if (parse_cache(optarg, &src_flags)) {
                return 1;
            }
            break;
        default: return 1; /* getopt named the problem */
        }
    }
    if (argc - optind != 1) {
        return usage(&cmd_rebase, true);
    }
    if (!p.unsafe && !p.backing_file) {
        return fail("Must specify backing file (-b) or use unsafe mode (-u)");
    }
    /* An unsafe rebase may mend a reference to a file that is gone. */
    if (p.unsafe) {
        flags |= VIMG_OPEN_NO_BACKING;
    }
    p.backing_flags = src_flags;
    struct vimg_image *img = open_image(argv[optind], format, flags);
    if (!img) {
        return 1;
    }
    progress_init(&prog, progress && !quiet ? PROGRESS_BAR : PROGRESS_NONE);
    p.progress = progress_update;
    p.opaque = &prog;
    int rc = 0;
    if (vimg_rebase(img, &p) < 0) {
        rc = fail_lib();
    }
    progress_finish(&prog);
    if (vimg_close(img) < 0 && rc == 0) {
        rc = fail_lib();
    }
    return rc;
}

const struct command cmd_rebase = {
    "rebase", run, "change an overlay's backing file",
    "Usage: vimg rebase [-U] [-q] [-f FMT] [-t CACHE] [-T CACHE] [-p] [-u] "
    "-b BACKING [-F FMT] FILENAME\n"
    "Make BACKING the backing file of FILENAME without changing what it\n"
    "reads: where FILENAME holds nothing itself and the old and new chains\n"
    "differ, the old data is first copied into it. -b \"\" removes the\n"
    "backing file (FILENAME then holds everything).\n"
    "  -F FMT      BACKING's format (required with a backing file)\n"
    "  -u          unsafe: only rewrite the backing file name and format\n"
    "              (to mend a renamed or moved backing file)\n"
    "  -f FMT      FILENAME's format (default: probe)\n"
    "  -t CACHE    FILENAME's cache mode; -T CACHE the backing files'\n"
    "  -U, --force-share  open BACKING even if another process has it\n"
    "  -p          progress bar on a terminal\n"
    "  -q          quiet\n"
    "A relative BACKING is taken relative to FILENAME's folder. It takes\n"
    "no options (as in qemu-img): an encrypted BACKING outside the old\n"
    "chain needs its passphrase typed on a terminal, or -u.\n",
};
