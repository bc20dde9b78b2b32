/* vimg dd [-U] [-f FMT] [-O FMT] [bs=SIZE] [count=N] [skip=N] if=INPUT
 *         of=OUTPUT: qemu-img dd, through the convert engine with a window
 * of the source, so zero runs stay holes. */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

struct dd {
    const char *in, *out;
    uint64_t bs, count, skip;
    bool has_count, has_skip;
};

/* One "NAME=VALUE" operand, checked as qemu-img checks it. */
static int operand(struct dd *d, const char *arg)
{
    static const char suffixes[] = " You may use k, M, G, T, P or E "
                                   "suffixes for kilobytes, megabytes, "
                                   "gigabytes, terabytes, petabytes and "
                                   "exabytes.";
    const char *eq = strchr(arg, '=');
    const char *v = eq ? eq + 1 : NULL;
    size_t n = eq ? (size_t)(eq - arg) : strlen(arg);

    if (eq && n == 2 && !strncmp(arg, "bs", 2)) {
        if (vimg_parse_size(v, &d->bs) < 0) {
            return fail("Invalid bs specified.%s", suffixes);
        }
        if (d->bs < 1 || d->bs > INT32_MAX) {
            return fail("Invalid bs specified. Must be between 1 and "
                        "2147483647.");
        }
    } else if (eq && n == 5 && !strncmp(arg, "count", 5)) {
        if (vimg_parse_size(v, &d->count) < 0) {
            return fail("Invalid count specified.%s", suffixes);
        }
        d->has_count = true;
    } else if (eq && n == 4 && !strncmp(arg, "skip", 4)) {
        if (vimg_parse_size(v, &d->skip) < 0) {
            return fail("Invalid skip specified.%s", suffixes);
        }
        d->has_skip = true;
    } else if (eq && n == 2 && !strncmp(arg, "if", 2)) {
        d->in = v;
    } else if (eq && n == 2 && !strncmp(arg, "of", 2)) {
        d->out = v;
    } else {
        return fail("unrecognized operand %.*s", (int)n, arg);
    }
    return 0;
}

static int run(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "force-share", no_argument, NULL, 'U' }, { NULL, 0, NULL, 0 },
    };
    const char *fmt = NULL, *out_fmt = "raw";
    struct dd d = { .bs = 512 };
    unsigned flags = 0;
    int c;

    while ((c = getopt_long(argc, argv, "f:O:U", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': fmt = optarg; break;
        case 'O': out_fmt = optarg; break;
        case 'U': flags |= VIMG_OPEN_FORCE_SHARE; break;
        default: return 1; /* getopt named the problem */
        }
    }
    if (optind == argc) {
        return usage(&cmd_dd, true);
    }
    for (int i = optind; i < argc; i++) {
        if (operand(&d, argv[i])) {
            return 1;
        }
    }
    if (!d.in || !d.out) {
        return fail("Must specify both input and output files");
    }

    struct vimg_image *src = open_image(d.in, fmt, flags);
    if (!src) {
        return 1;
    }
    struct vimg_target *t = NULL;
    struct vimg_image *dst = NULL;
    int rc = 1;

    /* qemu-img's arithmetic: count= bounds the input, counted from its
     * start (skipped blocks included); skip= past the end makes an empty
     * image, with a warning, as dd(1) does. */
    uint64_t size = (uint64_t)vimg_get_size(src), start = 0;
    if (d.has_count && d.count <= INT64_MAX / d.bs && d.count * d.bs < size) {
        size = d.count * d.bs;
    }
    if (d.has_skip && (d.skip > INT64_MAX / d.bs || size < d.skip * d.bs)) {
        fail("%s: cannot skip to specified offset", d.in);
        start = size;
    } else {
        start = d.skip * d.bs;
    }
    if (check_not_source(src, d.out)) {
        goto out;
    }
    struct vimg_create_params cp = { .format = out_fmt, .size = size - start,
                                     .size_given = true,
                                     .refs = cli_ref_policy() };
    struct vimg_open_params op = { .format = out_fmt, .flags = VIMG_OPEN_RDWR,
                                   .refs = cli_ref_policy() };
    if (!(t = vimg_target_begin(d.out)) || vimg_target_create(t, &cp) < 0 ||
        !(dst = vimg_target_open(t, &op))) {
        fail_lib();
        goto out;
    }
    struct vimg_convert_params p = { .min_sparse = 4096,
                                     .target_is_new = true,
                                     .src_offset = start,
                                     .length = size - start };
    if (size > start && vimg_convert(src, dst, &p) < 0) {
        fail_lib();
        goto out;
    }
    int closed = vimg_close(dst);
    dst = NULL;
    int committed = closed < 0 ? -1 : vimg_target_commit(t);
    t = NULL;
    if (closed < 0 || committed < 0) {
        fail_lib();
        goto out;
    }
    rc = 0;

out:
    vimg_close(dst);
    vimg_target_abort(t);
    vimg_close(src);
    return rc;
}

const struct command cmd_dd = {
    "dd", run, "copy part of an image, dd-style",
    "Usage: vimg dd [-U] [-f FMT] [-O FMT] [bs=SIZE] [count=BLOCKS] "
    "[skip=BLOCKS]\n"
    "               if=INPUT of=OUTPUT\n"
    "Copy INPUT's guest disk into a new image OUTPUT, as qemu-img dd does;\n"
    "holes and zero runs stay unallocated.\n"
    "  bs=SIZE        block size (default 512; suffixes k M G ...)\n"
    "  count=BLOCKS   copy at most the first BLOCKS blocks of INPUT (the\n"
    "                 skipped ones included, as in qemu-img)\n"
    "  skip=BLOCKS    start BLOCKS blocks into INPUT (past its end: an\n"
    "                 empty OUTPUT and a warning)\n"
    "  -f FMT         INPUT's format (default: probe)\n"
    "  -O FMT         OUTPUT's format (default raw)\n"
    "  -U             read INPUT even if another process has it open\n"
    "OUTPUT is written as convert writes its target: replaced only once\n"
    "complete, nothing left behind on failure.\n",
};
