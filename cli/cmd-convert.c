/* vimg convert [-p] [-q] [-n] [-c] [-C] [-W] [-U] [-f FMT] [-l SNAPSHOT]
 *   [-O FMT] [-o OPTIONS] [-B BACKING [-F FMT]] [-S SIZE] [-m N] [-r RATE]
 *   [-t CACHE] [-T CACHE] [--salvage] [--target-is-zero]
 *   [--progress=json] SOURCE... TARGET */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../common/cleanup.h"
#include "cli.h"

int check_not_source(struct vimg_image *src, const char *target)
{
    struct stat t, st;

    if (stat(target, &t) < 0) {
        return 0;
    }
    for (struct vimg_image *l = src; l; l = vimg_get_backing(l)) {
        const char *name = vimg_get_filename(l);
        if (stat(name, &st) == 0 && st.st_dev == t.st_dev &&
            st.st_ino == t.st_ino) {
            if (l == src) {
                return fail("%s: cannot convert into the source itself",
                            target);
            }
            return fail("%s: cannot convert into the source's backing file "
                        "%s", target, name);
        }
    }
    return 0;
}

/* The items of the -o list OPTIONS whose name ends in "key-secret"
 * (qemu-img's img_add_key_secrets), as a new option list. */
static char *key_secret_options(const char *options)
{
    char *out = calloc(1, strlen(options) + 1);
    size_t used = 0;

    for (const char *p = options; out && *p;) {
        const char *end = p;
        while (*end && !(*end == ',' && end[1] != ',')) {
            end += *end == ',' ? 2 : 1;
        }
        const char *eq = memchr(p, '=', (size_t)(end - p));
        if (eq && eq - p >= 10 && !memcmp(eq - 10, "key-secret", 10)) {
            if (used) {
                out[used++] = ',';
            }
            memcpy(out + used, p, (size_t)(end - p));
            used += (size_t)(end - p);
        }
        p = *end ? end + 1 : end;
    }
    return out;
}

/* --salvage: each sector that could not be read, as qemu-img warns. */
static void report_read_error(void *opaque, size_t source, uint64_t offset,
                              int err)
{
    (void)opaque;
    (void)source;
    fprintf(stderr, "vimg: warning: error while reading offset %llu: %s\n",
            (unsigned long long)offset, strerror(err));
}

struct convert_cli {
    struct progress prog;
    bool quiet;
};

static void convert_progress(void *opaque, uint64_t done, uint64_t total)
{
    progress_update(&((struct convert_cli *)opaque)->prog, done, total);
}

static void convert_read_error(void *opaque, size_t source, uint64_t offset,
                               int err)
{
    if (!((struct convert_cli *)opaque)->quiet) {
        report_read_error(opaque, source, offset, err);
    }
}

/* -S: qemu-img's bounds, multiples of 512 bytes up to 16 MiB. */
static int parse_min_sparse(const char *arg, uint64_t *out)
{
    if (vimg_parse_size(arg, out) < 0) {
        return fail("Invalid buffer size for sparse output specified. You "
                    "may use k, M, G, T, P or E suffixes for kilobytes, "
                    "megabytes, gigabytes, terabytes, petabytes and "
                    "exabytes.");
    }
    if (*out % 512 || *out > 16 * 1024 * 1024) {
        return fail("Invalid buffer size for sparse output specified. Valid "
                    "sizes are multiples of 512 up to 16777216. Select 0 to "
                    "disable sparse detection (fully allocates output).");
    }
    return 0;
}

static int run(int argc, char **argv)
{
    enum { OPT_SALVAGE = 256, OPT_TARGET_IS_ZERO };
    static const struct option longopts[] = {
        { "progress", required_argument, NULL, 'P' },
        { "force-share", no_argument, NULL, 'U' },
        { "target-image-opts", no_argument, NULL, 'I' },
        { "bitmaps", no_argument, NULL, 'b' },
        { "skip-broken-bitmaps", no_argument, NULL, 'k' },
        { "salvage", no_argument, NULL, OPT_SALVAGE },
        { "target-is-zero", no_argument, NULL, OPT_TARGET_IS_ZERO },
        { NULL, 0, NULL, 0 },
    };
    const char *src_fmt = NULL, *out_fmt = "raw";
    CLEANUP_FREE char *options = NULL;
    const char *snapshot = NULL;
    struct vimg_create_params cp = { .refs = cli_ref_policy() };
    struct vimg_convert_params p = { .min_sparse = 4096 };
    struct convert_cli cli = { .quiet = false };
    enum progress_mode pmode = PROGRESS_NONE;
    unsigned src_flags = 0;
    /* qemu-img convert writes its target with cache=unsafe by default:
     * no flushes, the copy can be redone after a crash. */
    unsigned dst_flags = VIMG_OPEN_RDWR | VIMG_OPEN_NO_FLUSH;
    bool no_create = false, target_opts = false, sparse_given = false;
    uint64_t n;
    int c;

    while ((c = getopt_long(argc, argv, "pqncCWUf:O:o:B:F:S:m:t:T:r:l:s:",
                            longopts, NULL)) != -1) {
        switch (c) {
        case 'l': /* snapshot.id=ID,snapshot.name=NAME or ID_OR_NAME */
        case 's': /* the old spelling of -l ID_OR_NAME */
            snapshot = optarg;
            break;
        case 'p': pmode = PROGRESS_BAR; break;
        case 'q': cli.quiet = true; break;
        case 'n': no_create = true; break;
        case 'c': p.compress = true; break;
        case 'C': p.copy_offload = true; break;
        case 'W': p.out_of_order = true; break;
        case 'b': p.bitmaps = true; break;
        case 'k': p.skip_broken_bitmaps = true; break;
        case 'I': target_opts = true; break;
        case 'U': src_flags |= VIMG_OPEN_FORCE_SHARE; break;
        case 'f': src_fmt = optarg; break;
        case 'O': out_fmt = optarg; break;
        case 'o':
            if (parse_option_list(optarg, &options)) {
                return 1;
            }
            break;
        case 'B': cp.backing_file = optarg; break;
        case 'F': cp.backing_format = optarg; break;
        case 'S':
            if (parse_min_sparse(optarg, &p.min_sparse)) {
                return 1;
            }
            sparse_given = true;
            break;
        case 'm':
            if (vimg_parse_size(optarg, &n) < 0 || n < 1 || n > 64 ||
                strpbrk(optarg, "kKmMgGtTpPeEbB.")) {
                return fail("-m needs a number of workers from 1 to 64");
            }
            p.workers = (int)n;
            break;
        case 'r':
            if (parse_rate(optarg, &p.rate_limit)) {
                return 1;
            }
            break;
        case 't':
            if (parse_cache(optarg, &dst_flags)) {
                return 1;
            }
            break;
        case 'T':
            if (parse_cache(optarg, &src_flags)) {
                return 1;
            }
            break;
        case 'P':
            if (strcmp(optarg, "json") == 0) {
                pmode = PROGRESS_JSON;
            } else if (strcmp(optarg, "bar") == 0) {
                pmode = PROGRESS_BAR;
            } else {
                return fail("--progress must be 'bar' or 'json'");
            }
            break;
        case OPT_SALVAGE: p.salvage = true; break;
        case OPT_TARGET_IS_ZERO: p.target_is_zero = true; break;
        default: return 1; /* getopt named the problem */
        }
    }
    /* The checks qemu-img makes before opening anything, in its order. */
    if (p.compress && p.copy_offload) {
        return fail("Cannot enable copy offloading when -c is used");
    }
    if (sparse_given && p.copy_offload) {
        return fail("Cannot enable copy offloading when -S is used");
    }
    if (p.copy_offload && p.salvage) {
        return fail("Cannot use copy offloading in salvaging mode");
    }
    if (p.target_is_zero && !no_create) {
        return fail("--target-is-zero requires use of -n flag");
    }
    if (options && has_help_option(options)) {
        return print_options_help(out_fmt, argc - optind >= 2
                                               ? argv[argc - 1] : NULL);
    }
    if (argc - optind < 2) {
        return usage(&cmd_convert, true);
    }
    size_t n_src = (size_t)(argc - optind - 1);
    char *const *sources = argv + optind;
    const char *target = argv[argc - 1];
    if (cp.backing_format && !cp.backing_file) {
        return fail("-F needs a backing file (-B)");
    }
    if (target_opts && !no_create) {
        return fail("--target-image-opts needs -n");
    }
    if (p.skip_broken_bitmaps && !p.bitmaps) {
        return fail("Use of --skip-broken-bitmaps requires --bitmaps");
    }
    if (no_create && cp.backing_file) {
        return fail("-B cannot be used with -n");
    }
    if (no_create && options) {
        return fail("-o has no effect when skipping image creation");
    }
    if (cli.quiet) {
        pmode = PROGRESS_NONE; /* -q wins over -p, as in qemu-img */
    }

    /* An nbd:// target exists already (a server exports it): write into
     * it, as qemu-img does for protocols that cannot create images. */
    bool url = vimg_is_url(target);
    if (url && (cp.backing_file || options)) {
        return fail("-B and -o cannot be used with an nbd:// target");
    }
    no_create |= url;

    if (snapshot && n_src != 1) {
        return fail("-l needs exactly one source image");
    }
    struct vimg_image **src = calloc(n_src, sizeof *src);
    if (!src) {
        return fail("out of memory");
    }
    struct vimg_target *t = NULL;
    struct vimg_image *dst = NULL;
    char *key_opts = NULL, *t_name = NULL, *t_fmt = NULL, *t_opts = NULL;
    uint64_t total = 0;
    int rc = 1;

    for (size_t i = 0; i < n_src; i++) {
        if (!(src[i] = snapshot ? open_snapshot_spec(sources[i], src_fmt,
                                                     src_flags, snapshot)
                                : open_image(sources[i], src_fmt,
                                             src_flags)) ||
            check_not_source(src[i], target)) {
            goto out;
        }
        total += (uint64_t)vimg_get_size(src[i]);
    }
    struct vimg_open_params op = { .format = out_fmt, .flags = dst_flags,
                                   .refs = cli_ref_policy() };
    op.secrets = cli_secrets(&op.n_secrets);
    cp.secrets = op.secrets;
    cp.n_secrets = op.n_secrets;
    /* As qemu-img: the key-secret options of a new target open it. */
    if (options && !(key_opts = key_secret_options(options))) {
        fail("out of memory");
        goto out;
    }
    op.options = key_opts && *key_opts ? key_opts : NULL;
    if (!no_create) {
        cp.format = out_fmt;
        cp.size = total;
        cp.size_given = true;
        cp.options = options;
        cp.no_flush = dst_flags & VIMG_OPEN_NO_FLUSH;
        if (!(t = vimg_target_begin(target)) ||
            vimg_target_create(t, &cp) < 0 ||
            !(dst = vimg_target_open(t, &op))) {
            fail_lib();
            goto out;
        }
        p.target_is_new = true;
        /* A backing file from -B or from -o backing_file=: only what
         * differs from it is written. */
        p.target_backing = vimg_get_backing(dst);
    } else if (target_opts) {
        /* driver=FMT,file.filename=PATH,... as qemu-img takes it. */
        if (cli_parse_image_opts(target, &t_name, &t_fmt, &t_opts)) {
            goto out;
        }
        op.format = t_fmt ? t_fmt : out_fmt;
        op.options = *t_opts ? t_opts : NULL;
        if (!(dst = vimg_open(t_name, &op))) {
            fail_lib();
            goto out;
        }
    } else if (!(dst = vimg_open(target, &op))) {
        fail_lib();
        goto out;
    }
    if (p.target_is_zero && vimg_get_backing_name(dst)) {
        fail("Cannot use --target-is-zero when the destination image has a "
             "backing file");
        goto out;
    }
    progress_init(&cli.prog, pmode);
    p.progress = convert_progress;
    p.read_error = convert_read_error;
    p.opaque = &cli;
    if (vimg_convert_sources(src, n_src, dst, &p) < 0) {
        progress_finish(&cli.prog);
        fail_lib();
        goto out;
    }
    progress_finish(&cli.prog);
    int closed = vimg_close(dst);
    dst = NULL;
    if (closed < 0) {
        fail_lib();
        goto out;
    }
    if (t) {
        int committed = vimg_target_commit(t); /* frees T either way */
        t = NULL;
        if (committed < 0) {
            fail_lib();
            goto out;
        }
    }
    rc = 0;

out:
    free(key_opts);
    free(t_name);
    free(t_fmt);
    free(t_opts);
    vimg_close(dst);
    vimg_target_abort(t);
    for (size_t i = 0; i < n_src; i++) {
        vimg_close(src[i]);
    }
    free(src);
    return rc;
}

const struct command cmd_convert = {
    "convert", run, "copy an image into another format",
    "Usage: vimg convert [-p|--progress=json] [-q] [-n] [-c] [-C] [-W] [-U] "
    "[-f FMT]\n"
    "         [-l SNAPSHOT] [-O FMT] [-o OPTIONS] [-B BACKING [-F FMT]] "
    "[-S SIZE] [-m N]\n"
    "         [-r RATE] [-t CACHE] [-T CACHE] [--salvage] [--target-is-zero]\n"
    "         [--bitmaps [--skip-broken-bitmaps]]\n"
    "         SOURCE [SOURCE2 ...] TARGET\n"
    "Copy the guest-visible contents of SOURCE (through its backing chain)\n"
    "into TARGET, keeping holes and zero runs unallocated. Several sources\n"
    "are copied one after the other, as one disk.\n"
    "  -f FMT             source format (default: probe)\n"
    "  -O FMT             target format (default raw)\n"
    "  -o OPTIONS         target format options, as for create; -o help\n"
    "                     lists them\n"
    "  -B BACKING         make TARGET an overlay of BACKING, writing only what\n"
    "                     differs from it; -F gives BACKING's format\n"
    "                     (required, as for create); -o backing_file= and\n"
    "                     backing_fmt= do the same\n"
    "  -S SIZE            zero runs of SIZE bytes stay sparse (default 4k; a\n"
    "                     multiple of 512 up to 16M; 0 allocates everything)\n"
    "  -n                 TARGET exists already: do not create it\n"
    "  --target-is-zero   with -n: TARGET reads as zeros, skip writing them\n"
    "  --target-image-opts  (with -n) TARGET is driver=FMT,file.filename=\n"
    "                     PATH[,OPTIONS], e.g. encrypt.key-secret=ID\n"
    "  -c                 compress the data (qcow2: -o compression_type=\n"
    "                     zlib|zstd); blocks that do not shrink stay plain\n"
    "  -C                 copy data with copy_file_range where a raw file\n"
    "                     target allows it (not with -c, -S or --salvage)\n"
    "  --salvage          go on past read errors: each unreadable 512-byte\n"
    "                     sector is reported and written as zeros\n"
    "  -m N               parallel workers (default 8, at most 64)\n"
    "  -r RATE            copy at most RATE bytes of data per second\n"
    "  -W                 allow out-of-order writes\n"
    "  --bitmaps          copy SOURCE's persistent bitmaps (qcow2 to qcow2)\n"
    "  --skip-broken-bitmaps  (with --bitmaps) leave inconsistent bitmaps\n"
    "                     out instead of failing\n"
    "  -t/-T CACHE        target/source cache mode: writeback, unsafe (the\n"
    "                     target's default: no flush), none (O_DIRECT), ...\n"
    "  -l SNAPSHOT        convert SOURCE's internal snapshot: snapshot.id=ID,\n"
    "                     snapshot.name=NAME, or an ID or a name (-s NAME\n"
    "                     is the old spelling)\n"
    "  -U, --force-share  read SOURCE even if another process has it open\n"
    "  -p                 progress: a bar while stdout is a terminal, else\n"
    "                     qemu-img's '    (NN.NN/100%)' lines on stdout\n"
    "  --progress=json    one JSON line per update on stdout\n"
    "  -q                 quiet\n"
    "An existing TARGET is refused while another process holds it. The new\n"
    "image is built without a name beside TARGET and renamed over it when\n"
    "complete, keeping its owner and mode, so a failed or interrupted\n"
    "convert keeps the old file; a symbolic link stays a link. A hard-linked\n"
    "file, a device, or a file in a folder you may not create files in is\n"
    "written in place, as qemu-img writes every target.\n",
};
