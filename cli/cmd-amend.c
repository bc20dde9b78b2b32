/* vimg amend [-p|--progress=json] [-q] [-f FMT] [-t CACHE] [--force]
 *            -o OPTIONS FILENAME
 * qemu-img amend's syntax: change format options of an existing image in
 * place; -o help lists them. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* -o help: the format's amend options, as create's -o help shows its
 * create options. */
static int help_options(const char *format, const char *file)
{
    char *text;
    const char *name = format;

    if (!name && file) {
        struct vimg_image *img = open_image(file, NULL,
                                            VIMG_OPEN_NO_BACKING |
                                            VIMG_OPEN_NO_IO);
        if (!img) {
            return 1;
        }
        text = vimg_amend_options_help(vimg_get_format(img));
        vimg_close(img);
    } else if (name) {
        text = vimg_amend_options_help(name);
    } else {
        return fail("-o help needs a format (-f) or an image");
    }
    if (!text) {
        return fail_lib();
    }
    printf("Amend options:\n");
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        char *t1 = strchr(line, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
        if (!t2) {
            continue;
        }
        *t1 = *t2 = '\0';
        char opt[128];
        snprintf(opt, sizeof opt, "%s=<%s>", line, t1 + 1);
        printf("  %-22s - %s\n", opt, t2 + 1);
    }
    free(text);
    return 0;
}

static int run(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "progress", required_argument, NULL, 'P' },
        { "force", no_argument, NULL, 'F' },
        { NULL, 0, NULL, 0 },
    };
    const char *format = NULL;
    char *options = NULL;
    enum progress_mode pmode = PROGRESS_NONE;
    bool quiet = false;
    unsigned flags = VIMG_OPEN_RDWR | VIMG_OPEN_NO_BACKING;
    struct vimg_amend_params ap = { 0 };
    int c;

    while ((c = getopt_long(argc, argv, "o:f:t:pq", longopts, NULL)) != -1) {
        switch (c) {
        case 'o': {
            /* Several -o add up, as in qemu-img. */
            size_t n = options ? strlen(options) + 1 : 0;
            char *joined = realloc(options, n + strlen(optarg) + 1);
            if (!joined || !*optarg) {
                free(joined ? joined : options);
                return joined ? fail("Invalid option list: ")
                              : fail("out of memory");
            }
            if (n) {
                joined[n - 1] = ',';
            }
            strcpy(joined + n, optarg);
            options = joined;
            break;
        }
        case 'f': format = optarg; break;
        case 't':
            if (parse_cache(optarg, &flags)) {
                free(options);
                return 1;
            }
            break;
        case 'p': pmode = PROGRESS_BAR; break;
        case 'q': quiet = true; break;
        case 'P':
            if (strcmp(optarg, "json")) {
                free(options);
                return fail("--progress takes 'json'");
            }
            pmode = PROGRESS_JSON;
            break;
        case 'F': ap.force = true; break;
        default:
            free(options);
            return 1; /* getopt named the problem */
        }
    }
    if (argc - optind == 0) {
        free(options);
        return usage(&cmd_amend, true); /* the whole usage, as every command */
    }
    if (!options) {
        return fail("Must specify options (-o)");
    }
    if (!strcmp(options, "help") || !strcmp(options, "?")) {
        int rc = help_options(format, optind < argc ? argv[optind] : NULL);
        free(options);
        return rc;
    }
    if (argc - optind != 1) {
        free(options);
        return usage_error(&cmd_amend, "Expecting one image file name");
    }
    if (quiet) {
        pmode = PROGRESS_NONE;
    }
    struct vimg_image *img = open_image(argv[optind], format, flags);
    if (!img) {
        free(options);
        return 1;
    }
    struct progress prog;
    progress_init(&prog, pmode);
    int rc = 0;
    ap.secrets = cli_secrets(&ap.n_secrets);
    ap.progress = progress_update;
    ap.opaque = &prog;
    if (vimg_amend_with(img, options, &ap) < 0) {
        rc = fail_lib();
    } else {
        progress_update(&prog, 1, 1);
    }
    progress_finish(&prog);
    if (vimg_close(img) < 0 && rc == 0) {
        rc = fail_lib();
    }
    free(options);
    return rc;
}

const struct command cmd_amend = {
    "amend", run, "change format options of an image in place",
    "Usage: vimg amend [-p|--progress=json] [-q] [-f FMT] [-t CACHE] "
    "[--force]\n"
    "                  -o OPTIONS FILENAME\n"
    "Change the format options of FILENAME in place, as qemu-img amend "
    "does.\n"
    "qcow2: compat=0.10|1.1 (a downgrade turns zero clusters into data and\n"
    "refuses what version 2 cannot hold), refcount_bits=1..64 (rebuilds the\n"
    "refcount structure), lazy_refcounts=on|off, backing_file=NAME and\n"
    "backing_fmt=FMT (the header fields only; backing_file= removes them),\n"
    "data_file=NAME, data_file_raw=off, size=SIZE (growing only),\n"
    "LUKS key slots with encrypt.state=active,encrypt.new-secret=ID\n"
    "[,encrypt.keyslot=N][,encrypt.iter-time=MS] (add a passphrase) or\n"
    "encrypt.state=inactive,encrypt.old-secret=ID|encrypt.keyslot=N (erase);\n"
    "luks: the same options without 'encrypt.'. Every option is checked\n"
    "before anything changes.\n"
    "  --force       overwrite an active key slot, erase the last one\n"
    "  -o OPTIONS    the options; repeatable; -o help lists them\n"
    "  -f FMT        format (default: probe)\n"
    "  -t CACHE      cache mode: writeback (default), unsafe, none, ...\n"
    "  -p            progress bar on a terminal; --progress=json: JSON "
    "lines\n"
    "  -q            quiet\n",
};
