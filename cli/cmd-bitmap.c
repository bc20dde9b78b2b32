/* vimg bitmap (--merge SOURCE | --add | --remove | --clear | --enable |
 *              --disable)... [-b SOURCE_FILE [-F SOURCE_FMT]]
 *              [-g GRANULARITY] [-f FMT] FILENAME BITMAP
 * qemu-img bitmap's syntax, checks and messages: the actions run in the
 * order given, each written to the image before the next; the first that
 * fails stops the rest. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

enum { OPT_ADD = 256, OPT_REMOVE, OPT_CLEAR, OPT_ENABLE, OPT_DISABLE,
       OPT_MERGE };

struct action {
    enum vimg_bitmap_op op;
    const char *source; /* --merge */
};

static const char *const op_names[] = {
    [VIMG_BITMAP_ADD] = "add", [VIMG_BITMAP_REMOVE] = "remove",
    [VIMG_BITMAP_CLEAR] = "clear", [VIMG_BITMAP_ENABLE] = "enable",
    [VIMG_BITMAP_DISABLE] = "disable", [VIMG_BITMAP_MERGE] = "merge",
};

/* "FILE: Operation OP on bitmap NAME failed: PROBLEM", the file name
 * moved in front of qemu-img's wording. */
static int op_failed(const char *file, enum vimg_bitmap_op op,
                     const char *name)
{
    const char *m = vimg_get_error();
    size_t n = strlen(file);

    if (!m) {
        m = "unknown error";
    }
    if (!strncmp(m, file, n) && !strncmp(m + n, ": ", 2)) {
        return fail("%s: Operation %s on bitmap %s failed: %s", file,
                    op_names[op], name, m + n + 2);
    }
    return fail("Operation %s on bitmap %s failed: %s", op_names[op], name,
                m);
}

static int run(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "add", no_argument, NULL, OPT_ADD },
        { "remove", no_argument, NULL, OPT_REMOVE },
        { "clear", no_argument, NULL, OPT_CLEAR },
        { "enable", no_argument, NULL, OPT_ENABLE },
        { "disable", no_argument, NULL, OPT_DISABLE },
        { "merge", required_argument, NULL, OPT_MERGE },
        { "granularity", required_argument, NULL, 'g' },
        { "source-file", required_argument, NULL, 'b' },
        { "source-format", required_argument, NULL, 'F' },
        { NULL, 0, NULL, 0 },
    };
    const char *format = NULL, *src_file = NULL, *src_format = NULL;
    uint64_t granularity = 0;
    bool add = false, merge = false;
    struct action *acts = NULL;
    size_t n = 0;
    int c, rc = 1;

    while ((c = getopt_long(argc, argv, "b:f:F:g:", longopts, NULL)) != -1) {
        struct action a = { 0 };
        switch (c) {
        case 'b': src_file = optarg; continue;
        case 'f': format = optarg; continue;
        case 'F': src_format = optarg; continue;
        case 'g':
            if (parse_size_arg("granularity", optarg, &granularity)) {
                free(acts);
                return 1;
            }
            continue;
        case OPT_ADD: a.op = VIMG_BITMAP_ADD; add = true; break;
        case OPT_REMOVE: a.op = VIMG_BITMAP_REMOVE; break;
        case OPT_CLEAR: a.op = VIMG_BITMAP_CLEAR; break;
        case OPT_ENABLE: a.op = VIMG_BITMAP_ENABLE; break;
        case OPT_DISABLE: a.op = VIMG_BITMAP_DISABLE; break;
        case OPT_MERGE:
            a.op = VIMG_BITMAP_MERGE;
            a.source = optarg;
            merge = true;
            break;
        default:
            free(acts);
            return 1; /* getopt named the problem */
        }
        struct action *p = realloc(acts, (n + 1) * sizeof *p);
        if (!p) {
            free(acts);
            return fail("out of memory");
        }
        acts = p;
        acts[n++] = a;
    }
    if (argc - optind == 0) {
        usage(&cmd_bitmap, true); /* the whole usage, as every command */
    } else if (n == 0) {
        fail("Need at least one of --add, --remove, --clear, --enable, "
             "--disable, or --merge");
    } else if (granularity && !add) {
        fail("granularity only supported with --add");
    } else if (src_format && !src_file) {
        fail("-F only supported with -b");
    } else if (src_file && !merge) {
        fail("Merge bitmap source file only supported with --merge");
    } else if (argc - optind != 2) {
        usage_error(&cmd_bitmap, "Expecting filename and bitmap name");
    } else {
        rc = 0;
    }
    if (rc) {
        free(acts);
        return rc;
    }
    const char *file = argv[optind], *name = argv[optind + 1];
    /* The bitmaps are changed in this image only: its contents and
     * backing file do not matter. */
    struct vimg_image *img = open_image(file, format,
                                        VIMG_OPEN_RDWR |
                                        VIMG_OPEN_NO_BACKING);
    struct vimg_image *src = NULL;
    if (!img) {
        free(acts);
        return 1;
    }
    if (src_file && !(src = open_image(src_file, src_format,
                                       VIMG_OPEN_NO_BACKING))) {
        rc = 1;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        struct vimg_bitmap_params p = {
            .op = acts[i].op, .name = name, .granularity = granularity,
            .source = acts[i].source, .source_image = src,
        };
        if (vimg_bitmap(img, &p) < 0) {
            rc = op_failed(file, acts[i].op, name);
        }
    }
    if (vimg_close(src) < 0 && rc == 0) {
        rc = fail_lib();
    }
    if (vimg_close(img) < 0 && rc == 0) {
        rc = fail("Error while closing the image: %s", vimg_get_error());
    }
    free(acts);
    return rc;
}

const struct command cmd_bitmap = {
    "bitmap", run, "add, remove, clear, enable, disable or merge persistent "
    "bitmaps",
    "Usage: vimg bitmap (--merge SOURCE | --add | --remove | --clear |\n"
    "                    --enable | --disable)... [-b SOURCE_FILE "
    "[-F SOURCE_FMT]]\n"
    "                   [-g GRANULARITY] [-f FMT] FILENAME BITMAP\n"
    "Change the persistent dirty bitmap BITMAP of a qcow2 v3 image; the\n"
    "actions run in the order given.\n"
    "  --add              create BITMAP, empty and enabled\n"
    "  --remove           delete BITMAP (inconsistent ones too)\n"
    "  --clear            reset every bit of BITMAP\n"
    "  --enable           make BITMAP record writes\n"
    "  --disable          stop BITMAP recording writes\n"
    "  --merge SOURCE     set in BITMAP the bits bitmap SOURCE has set\n"
    "  -b SOURCE_FILE     the image holding SOURCE (default: FILENAME)\n"
    "  -F SOURCE_FMT      SOURCE_FILE's format\n"
    "  -g GRANULARITY     bytes per bit for --add (a power of two from\n"
    "                     512; default: the cluster size within 4k..64k)\n"
    "  -f FMT             FILENAME's format\n",
};
