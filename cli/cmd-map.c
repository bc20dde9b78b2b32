/* vimg map [-f FMT] [--output=human|json] [--start-offset=N]
 *          [--max-length=N] [-U] FILENAME */
#include <getopt.h>
#include <string.h>

#include "cli.h"

struct entry {
    uint64_t start, length, offset;
    int depth;
    unsigned flags;
    const char *file;
};

static bool mergeable(const struct entry *a, const struct entry *b)
{
    bool same_file = a->file == b->file ||
                     (a->file && b->file && !strcmp(a->file, b->file));
    if (a->flags != b->flags || a->depth != b->depth || !same_file) {
        return false;
    }
    return !(a->flags & VIMG_BS_OFFSET_VALID) ||
           a->offset + a->length == b->offset;
}

/* Print one extent; 1 when the human map cannot show it. */
static int print_entry(const char *name, const struct entry *e,
                       enum output_format out, bool first)
{
    if (out == OUTPUT_JSON) {
        printf("%s{ \"start\": %llu, \"length\": %llu, \"depth\": %d, "
               "\"present\": %s, \"zero\": %s, \"data\": %s",
               first ? "[" : ",\n", (unsigned long long)e->start,
               (unsigned long long)e->length, e->depth,
               e->flags & VIMG_BS_ALLOCATED ? "true" : "false",
               e->flags & VIMG_BS_ZERO ? "true" : "false",
               e->flags & VIMG_BS_DATA ? "true" : "false");
        if (e->flags & VIMG_BS_OFFSET_VALID) {
            printf(", \"offset\": %llu", (unsigned long long)e->offset);
        }
        printf("}");
        return 0;
    }
    /* qemu-img's human map lists data that does not read as zeros. */
    if ((e->flags & (VIMG_BS_DATA | VIMG_BS_ZERO)) != VIMG_BS_DATA) {
        return 0;
    }
    /* As qemu-img: data without a place in a file it can name (compressed,
     * encrypted, or in a data file the open policy refused) has no line
     * of its own here. */
    if (!(e->flags & VIMG_BS_OFFSET_VALID)) {
        fflush(stdout);
        return fail("%s: file contains external, encrypted or compressed "
                    "clusters (guest offset %#llx); --output=json lists "
                    "them", name, (unsigned long long)e->start);
    }
    /* As qemu-img: data that reads as zeros (a hole under a fixed VHD's
     * data) is not listed. */
    if (e->flags & VIMG_BS_ZERO) {
        return 0;
    }
    printf("%#-16llx%#-16llx%#-16llx", (unsigned long long)e->start,
           (unsigned long long)e->length, (unsigned long long)e->offset);
    print_untrusted(stdout, e->file ? e->file : "");
    putchar('\n');
    return 0;
}

static int run(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "output", required_argument, NULL, 'O' },
        { "start-offset", required_argument, NULL, 's' },
        { "max-length", required_argument, NULL, 'l' },
        { "force-share", no_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    enum output_format out = cli_default_output();
    const char *format = NULL;
    /* Block status needs no key, so an encrypted image maps without. */
    unsigned flags = VIMG_OPEN_NO_IO;
    uint64_t start = 0, max_len = UINT64_MAX;
    int c;

    while ((c = getopt_long(argc, argv, "f:U", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': format = optarg; break;
        case 'O':
            if (parse_output(optarg, &out)) {
                return 1;
            }
            break;
        case 's':
            if (parse_size_arg("start offset", optarg, &start)) {
                return 1;
            }
            break;
        case 'l':
            if (parse_size_arg("maximum length", optarg, &max_len)) {
                return 1;
            }
            break;
        case 'U': flags |= VIMG_OPEN_FORCE_SHARE; break;
        default: return 1; /* getopt named the problem */
        }
    }
    if (argc - optind != 1) {
        return usage(&cmd_map, true);
    }
    struct vimg_image *img = open_image(argv[optind], format, flags);
    if (!img) {
        return 1;
    }
    uint64_t size = (uint64_t)vimg_get_size(img);
    uint64_t end = start < size ? (max_len < size - start ? start + max_len
                                                          : size)
                                : start;
    struct entry cur = { 0 };
    bool have = false, first = true;
    int rc = 0;

    if (out == OUTPUT_HUMAN) {
        printf("%-16s%-16s%-16s%s\n", "Offset", "Length", "Mapped to",
               "File");
    }
    for (uint64_t off = start; off < end;) {
        struct vimg_extent e;
        if (vimg_block_status(img, off, end - off, VIMG_BS_CHAIN, &e) < 0) {
            rc = fail_lib();
            break;
        }
        struct entry next = { off, e.length, e.file_offset, e.depth,
                              e.flags & (VIMG_BS_DATA | VIMG_BS_ZERO |
                                         VIMG_BS_ALLOCATED |
                                         VIMG_BS_OFFSET_VALID),
                              e.file };
        if (have && mergeable(&cur, &next)) {
            cur.length += next.length;
        } else {
            if (have) {
                if ((rc = print_entry(argv[optind], &cur, out, first))) {
                    break;
                }
                first = false;
            }
            cur = next;
            have = true;
        }
        off += e.length;
    }
    if (rc == 0 && !have) {
        /* An empty range: qemu-img shows one empty, absent extent. */
        cur = (struct entry){ .start = start };
        have = true;
    }
    if (rc == 0) {
        rc = print_entry(argv[optind], &cur, out, first);
    }
    if (out == OUTPUT_JSON && rc == 0) {
        printf("]\n");
    }
    vimg_close(img);
    return rc;
}

const struct command cmd_map = {
    "map", run, "show where an image's data lives",
    "Usage: vimg map [-f FMT] [--output=human|json] [--start-offset=N] "
    "[--max-length=N] [-U] FILENAME\n"
    "List the image's extents: which are data, which read as zeros, which\n"
    "layer of the backing chain holds them, and where in which file.\n"
    "  --output=json  one object per extent with qemu-img's fields: start,\n"
    "                 length, depth, present, zero, data, offset\n",
};
