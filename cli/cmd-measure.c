/* vimg measure [--output=human|json] [-O FMT] [-o OPTIONS]
 *              [--size N | [-f FMT] [-U] [-l SNAPSHOT] FILENAME] */
#include <getopt.h>

#include "../common/cleanup.h"
#include "cli.h"

static int run(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "output", required_argument, NULL, 'J' },
        { "size", required_argument, NULL, 's' },
        { "force-share", no_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    enum output_format out = cli_default_output();
    const char *format = NULL, *out_fmt = "raw";
    CLEANUP_FREE char *options = NULL;
    const char *snapshot = NULL;
    uint64_t size = 0;
    bool have_size = false;
    unsigned flags = 0;
    int c;

    while ((c = getopt_long(argc, argv, "f:O:o:Ul:", longopts, NULL)) !=
           -1) {
        switch (c) {
        case 'l': snapshot = optarg; break;
        case 'f': format = optarg; break;
        case 'O': out_fmt = optarg; break;
        case 'o':
            if (parse_option_list(optarg, &options)) {
                return 1;
            }
            break;
        case 'U': flags |= VIMG_OPEN_FORCE_SHARE; break;
        case 'J':
            if (parse_output(optarg, &out)) {
                return 1;
            }
            break;
        case 's':
            if (parse_size_arg("size", optarg, &size)) {
                return 1;
            }
            have_size = true;
            break;
        default: return 1; /* getopt named the problem */
        }
    }
    if ((!have_size && argc - optind == 0) || argc - optind > 1) {
        return usage(&cmd_measure, true);
    }
    if (have_size == (argc - optind == 1)) {
        return fail("measure needs either --size N or one image file");
    }
    struct vimg_image *src = NULL;
    if (have_size && snapshot) {
        return fail("--image-opts, -f, and -l require a filename argument.");
    }
    if (!have_size && !(src = open_snapshot_spec(argv[optind], format, flags,
                                                 snapshot))) {
        return 1;
    }
    struct vimg_measure m;
    int rc = 0;
    if (vimg_measure(out_fmt, options, size, src, &m) < 0) {
        rc = fail_lib();
    } else if (out == OUTPUT_JSON) {
        printf("{\n");
        if (m.has_bitmaps) {
            printf("    \"bitmaps\": %llu,\n", (unsigned long long)m.bitmaps);
        }
        printf("    \"required\": %llu,\n    \"fully-allocated\": %llu\n}\n",
               (unsigned long long)m.required,
               (unsigned long long)m.fully_allocated);
    } else {
        printf("required size: %llu\nfully allocated size: %llu\n",
               (unsigned long long)m.required,
               (unsigned long long)m.fully_allocated);
        if (m.has_bitmaps) {
            printf("bitmaps size: %llu\n", (unsigned long long)m.bitmaps);
        }
    }
    vimg_close(src);
    return rc;
}

const struct command cmd_measure = {
    "measure", run, "compute the file size an image needs",
    "Usage: vimg measure [--output=human|json] [-O FMT] [-o OPTIONS]\n"
    "                    [--size N | [-f FMT] [-U] [-l SNAPSHOT] FILENAME]\n"
    "Print the file size a new image of format FMT (default raw) needs for\n"
    "the contents of FILENAME, or for an empty image of N bytes, and its\n"
    "size when fully allocated. -l SNAPSHOT measures an internal snapshot\n"
    "(snapshot.id=ID,snapshot.name=NAME, or an ID or a name).\n",
};
