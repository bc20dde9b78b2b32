/* vimg resize [-f FMT] [--preallocation=MODE] [-q] [--shrink] FILENAME
 *             [+|-]SIZE */
#include <getopt.h>
#include <string.h>

#include "cli.h"

static int run(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "preallocation", required_argument, NULL, 'P' },
        { "shrink", no_argument, NULL, 'S' },
        { NULL, 0, NULL, 0 },
    };
    static const char *const prealloc_names[] = { "off", "metadata",
                                                  "falloc", "full" };
    enum vimg_prealloc prealloc = VIMG_PREALLOC_OFF;
    const char *format = NULL;
    bool quiet = false;
    unsigned flags = 0;
    int c;

    /* The size is the last argument, taken before getopt sees it, so that
     * "-32M" needs no "--" (qemu-img does the same). */
    if (argc < 3) {
        return usage(&cmd_resize, true);
    }
    const char *arg = argv[--argc];
    while ((c = getopt_long(argc, argv, "f:q", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': format = optarg; break;
        case 'q': quiet = true; break;
        case 'S': flags |= VIMG_TRUNCATE_SHRINK; break;
        case 'P': {
            size_t i;
            for (i = 0; i < 4 && strcmp(optarg, prealloc_names[i]); i++) {
            }
            if (i == 4) {
                return fail("invalid preallocation mode '%s' (use off, "
                            "metadata, falloc or full)", optarg);
            }
            prealloc = (enum vimg_prealloc)i;
            break;
        }
        default: return 1; /* getopt named the problem */
        }
    }
    if (argc - optind != 1) {
        return usage(&cmd_resize, true);
    }
    int sign = 0;
    if (arg[0] == '+' || arg[0] == '-') {
        sign = arg[0] == '+' ? 1 : -1;
        arg++;
    }
    uint64_t n;
    if (parse_size_arg("size", arg, &n)) {
        return 1;
    }
    struct vimg_image *img = open_image(argv[optind], format,
                                        VIMG_OPEN_RDWR);
    if (!img) {
        return 1;
    }
    uint64_t cur = (uint64_t)vimg_get_size(img), size = n;
    if (sign > 0) {
        size = cur + n;
        if (size < cur || size > INT64_MAX) {
            vimg_close(img);
            return fail("%s: new size is too large", argv[optind]);
        }
    } else if (sign < 0) {
        if (n > cur) {
            vimg_close(img);
            return fail("%s: cannot shrink below 0 bytes", argv[optind]);
        }
        size = cur - n;
    }
    int rc = 0;
    if (vimg_truncate(img, size, flags, prealloc) < 0) {
        rc = fail_lib();
    }
    if (vimg_close(img) < 0 && rc == 0) {
        rc = fail_lib();
    }
    if (rc == 0 && !quiet) {
        printf("Image resized.\n");
    }
    return rc;
}

const struct command cmd_resize = {
    "resize", run, "change an image's virtual size",
    "Usage: vimg resize [-f FMT] [--preallocation=MODE] [-q] [--shrink] "
    "FILENAME [+|-]SIZE\n"
    "Set the virtual size to SIZE, or grow/shrink it by +SIZE/-SIZE\n"
    "(SIZE is always the last argument: 'vimg resize --shrink disk.img "
    "-1G').\n"
    "  --shrink              allow a smaller size (data past it is lost)\n"
    "  --preallocation=MODE  off, metadata, falloc or full for the new part\n"
    "  -f FMT                format (required for raw images, which are\n"
    "                        never written when their format was guessed)\n",
};
