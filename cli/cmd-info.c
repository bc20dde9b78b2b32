/* vimg info [-f FMT] [--output=human|json] [--backing-chain] [-U] FILENAME */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void print_human(const struct vimg_value *info)
{
    const struct vimg_value *v;
    char size[32];

    printf("image: ");
    print_untrusted(stdout, vimg_value_string(vimg_value_get(info,
                                                             "filename")));
    printf("\nfile format: %s\n",
           vimg_value_string(vimg_value_get(info, "format")));
    int64_t vs = vimg_value_int(vimg_value_get(info, "virtual-size"));
    format_size((uint64_t)vs, size, sizeof size);
    printf("virtual size: %s (%lld bytes)\n", size, (long long)vs);
    if ((v = vimg_value_get(info, "actual-size"))) {
        format_size((uint64_t)vimg_value_int(v), size, sizeof size);
        printf("disk size: %s\n", size);
    } else {
        printf("disk size: unavailable\n");
    }
    if ((v = vimg_value_get(info, "encrypted")) && vimg_value_bool(v)) {
        printf("encrypted: yes\n");
    }
    if ((v = vimg_value_get(info, "cluster-size"))) {
        printf("cluster_size: %lld\n", (long long)vimg_value_int(v));
    }
    if ((v = vimg_value_get(info, "backing-filename"))) {
        const struct vimg_value *full = vimg_value_get(info,
                                                       "full-backing-filename");
        printf("backing file: ");
        print_untrusted(stdout, vimg_value_string(v));
        if (full && strcmp(vimg_value_string(full), vimg_value_string(v))) {
            printf(" (actual path: ");
            print_untrusted(stdout, vimg_value_string(full));
            printf(")");
        }
        printf("\n");
        if ((v = vimg_value_get(info, "backing-filename-format"))) {
            printf("backing file format: ");
            print_untrusted(stdout, vimg_value_string(v));
            printf("\n");
        }
    }
    if ((v = vimg_value_get(info, "dirty-flag")) && vimg_value_bool(v)) {
        printf("cleanly shut down: no\n");
    }
    if ((v = vimg_value_get(info, "snapshots")) && vimg_value_count(v)) {
        printf("Snapshot list:\n");
        print_snapshot_values(stdout, v);
    }
    if ((v = vimg_value_get(info, "format-specific"))) {
        /* A raw image holding an ISO 9660 volume says so: its facts are
         * the volume's (qemu-img has nothing to print for raw). */
        const struct vimg_value *type = vimg_value_get(v, "type");
        bool iso = type && vimg_value_type(type) == VIMG_VALUE_STRING &&
                   strcmp(vimg_value_string(type), "iso9660") == 0;
        printf("%s:\n", iso ? "ISO 9660 volume" : "Format specific "
                                                   "information");
        const struct vimg_value *data = vimg_value_get(v, "data");
        print_human_value(stdout, data ? data : v, 4);
    }
    /* An ISO 9660 volume inside a format that has facts of its own. */
    if ((v = vimg_value_get(info, "iso9660"))) {
        printf("ISO 9660 volume:\n");
        print_human_value(stdout, v, 4);
    }
}

static int run(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "output", required_argument, NULL, 'O' },
        { "backing-chain", no_argument, NULL, 'B' },
        { "force-share", no_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    enum output_format out = cli_default_output();
    const char *format = NULL;
    bool chain = false;
    unsigned flags = VIMG_OPEN_NO_BACKING | VIMG_OPEN_NO_IO;
    int c;

    while ((c = getopt_long(argc, argv, "f:U", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': format = optarg; break;
        case 'O':
            if (parse_output(optarg, &out)) {
                return 1;
            }
            break;
        case 'B': chain = true; break;
        case 'U': flags |= VIMG_OPEN_FORCE_SHARE; break;
        default: return 1; /* getopt named the problem */
        }
    }
    if (argc - optind != 1) {
        return usage(&cmd_info, true);
    }
    if (chain) {
        flags &= ~(unsigned)VIMG_OPEN_NO_BACKING;
    }
    struct vimg_image *img = open_image(argv[optind], format, flags);
    if (!img) {
        return 1;
    }
    int rc = 0;
    bool first = true;
    if (chain && out == OUTPUT_JSON) {
        printf("[\n");
    }
    for (struct vimg_image *layer = img; layer;
         layer = chain ? vimg_get_backing(layer) : NULL) {
        struct vimg_value *info = vimg_get_info(layer);
        if (!info) {
            rc = fail_lib();
            break;
        }
        if (out == OUTPUT_JSON) {
            char *s = vimg_value_to_json(info);
            if (!s) {
                vimg_value_free(info);
                rc = fail_lib();
                break;
            }
            printf("%s%s", first ? "" : ",\n", s);
            free(s);
            if (!chain) {
                printf("\n");
            }
        } else {
            if (!first) {
                printf("\n");
            }
            print_human(info);
        }
        first = false;
        vimg_value_free(info);
    }
    if (chain && out == OUTPUT_JSON) {
        printf("\n]\n");
    }
    vimg_close(img);
    return rc;
}

const struct command cmd_info = {
    "info", run, "describe an image",
    "Usage: vimg info [-f FMT] [--output=human|json] [--backing-chain] [-U] "
    "FILENAME\n"
    "Show the format, virtual size, disk usage and format-specific facts.\n"
    "  -f FMT             format (default: probe)\n"
    "  --output=FMT       human (default) or json (qemu-img's field names)\n"
    "  --backing-chain    describe every image of the backing chain\n"
    "  -U, --force-share  read even if another process has the image open\n",
};
