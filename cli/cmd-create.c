/* vimg create [-q] [-f FMT] [-b BACKING [-F BACKING_FMT]] [-o OPTIONS]
 *             FILENAME [SIZE] */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static int run(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
    };
    struct vimg_create_params p = { .format = "raw",
                                    .refs = cli_ref_policy() };
    bool quiet = false;
    int c;

    while ((c = getopt_long(argc, argv, "qf:b:F:o:u", longopts, NULL)) != -1) {
        switch (c) {
        case 'q': quiet = true; break;
        case 'f': p.format = optarg; break;
        case 'b': p.backing_file = optarg; break;
        case 'F': p.backing_format = optarg; break;
        case 'o':
            if (optarg && strcmp(optarg, "help") == 0) {
                char *h = vimg_create_options_help(p.format);
                if (!h) {
                    return fail_lib();
                }
                printf("Supported options for %s:\n%s", p.format, h);
                free(h);
                return 0;
            }
            if (parse_option_list(optarg, &p.options)) {
                return 1;
            }
            break;
        case 'u': break; /* unsafe: accepted for qemu-img compatibility */
        default: return 1; /* getopt named the problem */
        }
    }
    if (argc - optind < 1 || argc - optind > 2) {
        return usage(&cmd_create, true);
    }
    const char *filename = argv[optind];
    if (argc - optind == 2) {
        if (parse_size_arg("image size", argv[optind + 1], &p.size)) {
            return 1;
        }
        p.size_given = true;
    }
    if (p.backing_format && !p.backing_file) {
        return fail("-F needs a backing file (-b)");
    }
    if (vimg_create(filename, &p) < 0) {
        return fail_lib();
    }
    if (!quiet) {
        printf("Formatting '%s', fmt=%s", filename, p.format);
        if (p.backing_file) {
            printf(" backing_file=%s", p.backing_file);
        }
        if (p.backing_format) {
            printf(" backing_fmt=%s", p.backing_format);
        }
        if (p.options) {
            printf(" %s", p.options);
        }
        if (p.size_given) {
            printf(" size=%llu", (unsigned long long)p.size);
        }
        printf("\n");
    }
    return 0;
}

const struct command cmd_create = {
    "create", run, "create a new image",
    "Usage: vimg create [-q] [-f FMT] [-b BACKING [-F BACKING_FMT]] "
    "[-o OPTIONS] FILENAME [SIZE]\n"
    "Create FILENAME, a new image of SIZE bytes (suffixes k M G T P E).\n"
    "  -f FMT          format (default raw); see 'vimg --help'\n"
    "  -b BACKING      copy-on-write backing file (size defaults to its size)\n"
    "  -F BACKING_FMT  format of the backing file (required with -b)\n"
    "  -o OPTIONS      comma-separated format options; -o help lists them\n"
    "                  (raw: preallocation=off|falloc|full)\n"
    "  -q              quiet\n"
    "An existing FILENAME is refused while another process holds it, and is\n"
    "replaced (owner and mode kept) only once the new image is complete, so\n"
    "a failed create leaves no file behind; a symbolic link stays a link. A\n"
    "hard-linked file, a device, or a file in a folder you may not create\n"
    "files in is written in place, as qemu-img writes every target.\n",
};
