/* vimg check [-q] [-f FMT] [--output=human|json] [-r leaks|all] [-U]
 *            FILENAME
 * Exit: 0 clean, 1 check failed, 2 corruptions, 3 leaks, 63 unsupported. */
#include <errno.h>
#include <getopt.h>
#include <string.h>

#include "cli.h"

/* Each problem found, on stderr, -q or not (as qemu-img). */
static void report(void *opaque, const char *msg)
{
    (void)opaque;
    print_untrusted(stderr, msg);
    fputc('\n', stderr);
}

static void print_human(const struct vimg_check_result *r,
                        const struct vimg_check_result *fixed)
{
    if (fixed && (fixed->corruptions_fixed || fixed->leaks_fixed)) {
        printf("The following inconsistencies were found and repaired:\n\n"
               "    %lld leaked clusters\n    %lld corruptions\n\n"
               "Double checking the fixed image now...\n",
               (long long)fixed->leaks_fixed,
               (long long)fixed->corruptions_fixed);
    }
    if (!r->corruptions && !r->leaks && !r->check_errors) {
        printf("No errors were found on the image.\n");
    } else {
        if (r->corruptions) {
            printf("\n%lld errors were found on the image.\nData may be "
                   "corrupted, or further writes to the image may corrupt "
                   "it.\n", (long long)r->corruptions);
        }
        if (r->leaks) {
            printf("\n%lld leaked clusters were found on the image.\nThis "
                   "means waste of disk space, but no harm to data.\n",
                   (long long)r->leaks);
        }
        if (r->check_errors) {
            printf("\n%lld internal errors have occurred during the check.\n",
                   (long long)r->check_errors);
        }
    }
    if (r->has_cluster_stats && r->total_clusters && r->allocated_clusters) {
        /* qemu-img gives the fragmented and compressed shares of the
         * allocated clusters, and no line when none are. */
        double a = (double)r->allocated_clusters;
        printf("%lld/%lld = %0.2f%% allocated, %0.2f%% fragmented, "
               "%0.2f%% compressed clusters\n",
               (long long)r->allocated_clusters, (long long)r->total_clusters,
               a * 100.0 / (double)r->total_clusters,
               (double)r->fragmented_clusters * 100.0 / a,
               (double)r->compressed_clusters * 100.0 / a);
    }
    if (r->image_end_offset > 0) {
        printf("Image end offset: %lld\n", (long long)r->image_end_offset);
    }
}

static void print_json_result(const char *file, const char *format,
                              const struct vimg_check_result *r)
{
    printf("{\n");
    if (r->image_end_offset > 0) {
        printf("    \"image-end-offset\": %lld,\n",
               (long long)r->image_end_offset);
    }
#define FIELD(name, v)                                                      \
    if (v) {                                                                \
        printf("    \"" name "\": %lld,\n", (long long)(v));                \
    }
    /* qemu-img omits each cluster count that is zero. */
    if (r->has_cluster_stats) {
        FIELD("total-clusters", r->total_clusters);
        FIELD("allocated-clusters", r->allocated_clusters);
        FIELD("fragmented-clusters", r->fragmented_clusters);
        FIELD("compressed-clusters", r->compressed_clusters);
    }
    FIELD("corruptions", r->corruptions);
    FIELD("leaks", r->leaks);
    FIELD("corruptions-fixed", r->corruptions_fixed);
    FIELD("leaks-fixed", r->leaks_fixed);
#undef FIELD
    printf("    \"check-errors\": %lld,\n", (long long)r->check_errors);
    printf("    \"filename\": ");
    print_json_string(stdout, file);
    printf(",\n    \"format\": ");
    print_json_string(stdout, format);
    printf("\n}\n");
}

static int run(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "output", required_argument, NULL, 'O' },
        { "repair", required_argument, NULL, 'r' },
        { "force-share", no_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    enum output_format out = cli_default_output();
    const char *format = NULL;
    unsigned fix = 0, flags = VIMG_OPEN_NO_IO;
    bool quiet = false;
    int c;

    while ((c = getopt_long(argc, argv, "qf:r:T:U", longopts, NULL)) != -1) {
        switch (c) {
        case 'q': quiet = true; break;
        case 'f': format = optarg; break;
        case 'O':
            if (parse_output(optarg, &out)) {
                return 1;
            }
            break;
        case 'r':
            if (strcmp(optarg, "leaks") == 0) {
                fix = VIMG_CHECK_FIX_LEAKS;
            } else if (strcmp(optarg, "all") == 0) {
                fix = VIMG_CHECK_FIX_LEAKS | VIMG_CHECK_FIX_ERRORS;
            } else {
                return fail("-r must be 'leaks' or 'all', not '%s'", optarg);
            }
            flags |= VIMG_OPEN_RDWR | VIMG_OPEN_CHECK;
            break;
        case 'T':
            if (parse_cache(optarg, &flags)) {
                return 1;
            }
            break;
        case 'U': flags |= VIMG_OPEN_FORCE_SHARE; break;
        default: return 1; /* getopt named the problem */
        }
    }
    if (argc - optind != 1) {
        return usage(&cmd_check, true);
    }
    if ((flags & VIMG_OPEN_RDWR) && (flags & VIMG_OPEN_FORCE_SHARE)) {
        return fail("-U cannot be used with -r");
    }
    const char *file = argv[optind];
    struct vimg_image *img = open_image(file, format,
                                        flags | VIMG_OPEN_NO_BACKING);
    if (!img) {
        return 1;
    }
    struct vimg_check_result first, res;
    bool repaired = false;
    int r = vimg_check(img, fix, &first, report, NULL);
    if (r == 0 && fix) {
        repaired = true;
        r = vimg_check(img, 0, &res, report, NULL);
        res.corruptions_fixed = first.corruptions_fixed;
        res.leaks_fixed = first.leaks_fixed;
    } else {
        res = first;
    }
    if (r < 0) {
        int e = vimg_get_errno();
        if (e == ENOTSUP) {
            fail("%s: This image format does not support checks", file);
            vimg_close(img);
            return 63;
        }
        fail_lib();
        vimg_close(img);
        return 1;
    }
    if (!quiet) {
        if (out == OUTPUT_JSON) {
            print_json_result(file, vimg_get_format(img), &res);
        } else {
            print_human(&res, repaired ? &first : NULL);
        }
    }
    if (vimg_close(img) < 0) {
        return fail_lib();
    }
    if (res.check_errors) {
        return 1;
    }
    if (res.corruptions) {
        return 2;
    }
    return res.leaks ? 3 : 0;
}

const struct command cmd_check = {
    "check", run, "check an image for consistency, and repair it",
    "Usage: vimg check [-q] [-f FMT] [--output=human|json] [-r leaks|all] "
    "[-T CACHE] [-U]\n"
    "         FILENAME\n"
    "Check the image's metadata (refcounts, tables) for corruption and "
    "leaks.\n"
    "  -r leaks   repair leaked clusters; -r all repairs corruptions too\n"
    "  --output=json  qemu-img's field names\n"
    "  -T CACHE   cache mode (writeback, none, ...); -f FMT format; -q quiet\n"
    "  -U         read even if another process has the image open\n"
    "Exit status: 0 no errors, 1 the check could not complete, 2 corruptions,\n"
    "3 leaks only, 63 the format has nothing to check.\n",
};
