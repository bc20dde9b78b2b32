/* vimg create [-q] [-u] [-f FMT] [-b BACKING [-F BACKING_FMT]]
 *             [-o OPTIONS] FILENAME [SIZE] */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "../common/cleanup.h"
#include "cli.h"

static int run(int argc, char **argv)
{
    static const struct option longopts[] = { { NULL, 0, NULL, 0 } };
    struct vimg_create_params p = { .format = "raw",
                                    .refs = cli_ref_policy() };
    CLEANUP_FREE char *options = NULL;
    bool quiet = false;
    int c;

    while ((c = getopt_long(argc, argv, "qf:b:F:o:u", longopts, NULL)) !=
           -1) {
        switch (c) {
        case 'q': quiet = true; break;
        case 'f': p.format = optarg; break;
        case 'b': p.backing_file = optarg; break;
        case 'F': p.backing_format = optarg; break;
        case 'o':
            if (parse_option_list(optarg, &options)) {
                return 1;
            }
            break;
        case 'u': p.unsafe = true; break;
        default: return 1; /* getopt named the problem */
        }
    }
    if (options && has_help_option(options)) {
        return print_options_help(p.format,
                                  optind < argc ? argv[optind] : NULL);
    }
    if (argc - optind < 1 || argc - optind > 2) {
        return usage(&cmd_create, true);
    }
    const char *filename = argv[optind];
    if (argc - optind == 2) {
        if (parse_size_arg("image size", argv[optind + 1], &p.size)) {
            return 1;
        }
        if (has_option_key(options, "size")) {
            return fail("%s: The image size must be specified only once",
                        filename);
        }
        p.size_given = true;
    }
    if (p.backing_format && !p.backing_file &&
        !has_option_key(options, "backing_file")) {
        return fail("-F needs a backing file (-b)");
    }
    p.secrets = cli_secrets(&p.n_secrets);
    p.options = options;
    /* As qemu-img: the line comes once the options, the backing file and
     * the size are known to be right, before the format lays out the
     * file (whose own refusals come after it). */
    if (!quiet) {
        char *line = vimg_create_describe(filename, &p);
        if (!line) {
            return fail_lib();
        }
        printf("Formatting '");
        print_untrusted(stdout, filename);
        printf("', %s\n", line);
        fflush(stdout);
        free(line);
    }
    if (vimg_create(filename, &p) < 0) {
        return fail_lib();
    }
    return 0;
}

const struct command cmd_create = {
    "create", run, "create a new image",
    "Usage: vimg create [-q] [-u] [-f FMT] [-b BACKING [-F BACKING_FMT]] "
    "[-o OPTIONS]\n"
    "         FILENAME [SIZE]\n"
    "Create FILENAME, a new image of SIZE bytes (suffixes k M G T P E), and\n"
    "print qemu-img's \"Formatting 'FILENAME', fmt=...\" line.\n"
    "  -f FMT          format (default raw); see 'vimg --help'\n"
    "  -b BACKING      copy-on-write backing file (size defaults to its size)\n"
    "  -F BACKING_FMT  format of the backing file (required with -b)\n"
    "  -u              unsafe: never open the backing file (give SIZE and -F)\n"
    "  -o OPTIONS      comma-separated format options (several -o add up);\n"
    "                  -o help lists them (raw: preallocation=off|falloc|\n"
    "                  full)\n"
    "  -q              quiet\n"
    "An existing FILENAME is refused while another process holds it, and is\n"
    "replaced (owner and mode kept) only once the new image is complete, so\n"
    "a failed create leaves no file behind; a symbolic link stays a link. A\n"
    "hard-linked file, a device, or a file in a folder you may not create\n"
    "files in is written in place, as qemu-img writes every target.\n",
};
