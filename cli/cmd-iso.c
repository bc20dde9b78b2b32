/* vimg iso ls|extract|cat|create|cidata: ISO 9660 volumes. Reading goes
 * through the image API, so IMAGE may be any format holding an ISO (-f). */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static const struct command iso_ls_cmd = {
    "ls", NULL, "list files",
    "Usage: vimg iso ls [-f FMT] [-l] [-R] [--output=human|json] IMAGE "
    "[PATH]\n"
    "List the directory PATH (default /) of the ISO 9660 volume in IMAGE.\n"
    "  -f FMT        format of IMAGE (default: probe)\n"
    "  -l            long listing: mode, links, owner, size, time, target\n"
    "  -R            recurse into directories\n"
    "  --output=FMT  human (default) or json: an array of {name, path, "
    "type,\n"
    "                size, mode, nlink, uid, gid, mtime, target}\n",
};
static const struct command iso_extract_cmd = {
    "extract", NULL, "copy files out",
    "Usage: vimg iso extract [-f FMT] IMAGE [PATH...] DEST\n"
    "Copy PATHs (default: the whole volume) into the folder DEST (made if\n"
    "missing), keeping Rock Ridge modes, times and symlinks. Entries that\n"
    "would land outside DEST are refused. One regular file and a DEST that\n"
    "does not exist: the file is written as DEST, as cp does.\n"
    "  -f FMT        format of IMAGE (default: probe)\n",
};
static const struct command iso_cat_cmd = {
    "cat", NULL, "write one file to stdout",
    "Usage: vimg iso cat [-f FMT] IMAGE PATH\n"
    "Write the file PATH of the ISO 9660 volume in IMAGE to stdout.\n"
    "  -f FMT        format of IMAGE (default: probe)\n",
};
static const struct command iso_create_cmd = {
    "create", NULL, "make an ISO from a folder", NULL,
};
static const struct command iso_cidata_cmd = {
    "cidata", NULL, "make a cloud-init NoCloud seed ISO", NULL,
};

static const char *type_name(enum vimg_iso_type t)
{
    switch (t) {
    case VIMG_ISO_DIRECTORY: return "directory";
    case VIMG_ISO_SYMLINK: return "symlink";
    case VIMG_ISO_CHARDEV: return "char-device";
    case VIMG_ISO_BLOCKDEV: return "block-device";
    case VIMG_ISO_FIFO: return "fifo";
    case VIMG_ISO_SOCKET: return "socket";
    default: return "file";
    }
}

static void mode_string(uint32_t mode, char out[11])
{
    static const char types[] = "-dlcbps";
    static const mode_t bits[] = { S_IFREG, S_IFDIR, S_IFLNK, S_IFCHR,
                                   S_IFBLK, S_IFIFO, S_IFSOCK };
    out[0] = '?';
    for (int i = 0; i < 7; i++) {
        if ((mode & S_IFMT) == bits[i]) {
            out[0] = types[i];
        }
    }
    const char *rwx = "rwxrwxrwx";
    for (int i = 0; i < 9; i++) {
        out[1 + i] = mode & (0400u >> i) ? rwx[i] : '-';
    }
    if (mode & S_ISUID) {
        out[3] = mode & S_IXUSR ? 's' : 'S';
    }
    if (mode & S_ISGID) {
        out[6] = mode & S_IXGRP ? 's' : 'S';
    }
    if (mode & S_ISVTX) {
        out[9] = mode & S_IXOTH ? 't' : 'T';
    }
    out[10] = '\0';
}

struct ls_ctx {
    bool longfmt;
    enum output_format out;
    size_t prefix;       /* bytes of the listed folder's path to drop */
    bool first;
};

static int ls_entry(void *opaque, const char *path,
                    const struct vimg_iso_stat *st)
{
    struct ls_ctx *c = opaque;
    const char *rel = strlen(path) > c->prefix ? path + c->prefix : st->name;

    if (c->out == OUTPUT_JSON) {
        printf("%s\n    {\"name\": ", c->first ? "" : ",");
        if (print_json_string(stdout, st->name) < 0) {
            return -1;
        }
        printf(", \"path\": ");
        if (print_json_string(stdout, path) < 0) {
            return -1;
        }
        printf(", \"type\": \"%s\", \"size\": %llu, \"mode\": %u, "
               "\"nlink\": %u, \"uid\": %u, \"gid\": %u, \"mtime\": %lld",
               type_name(st->type), (unsigned long long)st->size,
               (unsigned)st->mode, (unsigned)st->nlink, (unsigned)st->uid,
               (unsigned)st->gid, (long long)st->mtime);
        if (st->target) {
            printf(", \"target\": ");
            if (print_json_string(stdout, st->target) < 0) {
                return -1;
            }
        }
        printf("}");
    } else if (c->longfmt) {
        char mode[11], when[32];
        time_t t = (time_t)st->mtime;
        struct tm tm;
        mode_string(st->mode, mode);
        if (!gmtime_r(&t, &tm) ||
            !strftime(when, sizeof when, "%Y-%m-%d %H:%M", &tm)) {
            strcpy(when, "?");
        }
        printf("%s %3u %5u %5u %10llu %s ", mode, (unsigned)st->nlink,
               (unsigned)st->uid, (unsigned)st->gid,
               (unsigned long long)st->size, when);
        print_untrusted(stdout, rel);
        if (st->target) {
            printf(" -> ");
            print_untrusted(stdout, st->target);
        }
        putchar('\n');
    } else {
        print_untrusted(stdout, rel);
        putchar('\n');
    }
    c->first = false;
    return 0;
}

struct opened {
    struct vimg_image *img;
    struct vimg_iso *iso;
};

static int open_iso(const char *file, const char *format, struct opened *o)
{
    if (!(o->img = open_image(file, format, 0))) {
        return 1;
    }
    if (!(o->iso = vimg_iso_open(o->img))) {
        fail_lib();
        vimg_close(o->img);
        return 1;
    }
    return 0;
}

static void close_iso(struct opened *o)
{
    vimg_iso_close(o->iso);
    vimg_close(o->img);
}

static int iso_ls(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "output", required_argument, NULL, 'O' },
        { NULL, 0, NULL, 0 },
    };
    struct ls_ctx c = { .out = OUTPUT_HUMAN, .first = true };
    const char *format = NULL;
    bool recursive = false;
    struct opened o;
    int opt;

    while ((opt = getopt_long(argc, argv, "f:lR", longopts, NULL)) != -1) {
        switch (opt) {
        case 'f': format = optarg; break;
        case 'l': c.longfmt = true; break;
        case 'R': recursive = true; break;
        case 'O':
            if (parse_output(optarg, &c.out)) {
                return 1;
            }
            break;
        default: return 1; /* getopt named the problem */
        }
    }
    if (argc - optind < 1 || argc - optind > 2) {
        return usage(&iso_ls_cmd, true);
    }
    const char *path = argc - optind == 2 ? argv[optind + 1] : "/";
    if (open_iso(argv[optind], format, &o)) {
        return 1;
    }
    /* Names below PATH print relative to it: "sub/file" under -R. The
     * library hands out "/" + PATH without slashes around it. */
    const char *p = path + strspn(path, "/");
    c.prefix = strlen(p);
    while (c.prefix > 0 && p[c.prefix - 1] == '/') {
        c.prefix--;
    }
    c.prefix += c.prefix ? 2 : 1;
    if (c.out == OUTPUT_JSON) {
        printf("[");
    }
    int rc = 0;
    if (vimg_iso_list(o.iso, path, recursive, ls_entry, &c) < 0) {
        rc = 1;
    }
    if (c.out == OUTPUT_JSON) {
        printf("%s]\n", c.first ? "" : "\n");
    }
    if (rc) {
        fflush(stdout);
        fail_lib();
    }
    close_iso(&o);
    return rc;
}

static int iso_extract(int argc, char **argv)
{
    const char *format = NULL;
    struct opened o;
    int opt, rc = 0;

    while ((opt = getopt(argc, argv, "f:")) != -1) {
        switch (opt) {
        case 'f': format = optarg; break;
        default: return 1; /* getopt named the problem */
        }
    }
    if (argc - optind < 2) {
        return usage(&iso_extract_cmd, true);
    }
    const char *dest = argv[argc - 1];
    if (open_iso(argv[optind], format, &o)) {
        return 1;
    }
    /* One file to a DEST that is not a folder: the file is written at
     * DEST, as cp and xorriso -extract do. */
    struct stat dst;
    struct vimg_iso_stat ist;
    if (argc - optind == 3 && stat(dest, &dst) < 0 && errno == ENOENT &&
        vimg_iso_stat(o.iso, argv[optind + 1], &ist) == 0 &&
        ist.type == VIMG_ISO_FILE) {
        rc = vimg_iso_extract_file(o.iso, argv[optind + 1], dest) < 0;
        if (rc) {
            fail_lib();
        }
        close_iso(&o);
        return rc;
    }
    if (mkdir(dest, 0755) < 0 && errno != EEXIST) {
        close_iso(&o);
        return fail("%s: %s", dest, strerror(errno));
    }
    if (argc - optind == 2) {
        rc = vimg_iso_extract(o.iso, "/", dest) < 0;
    }
    for (int i = optind + 1; i < argc - 1 && !rc; i++) {
        rc = vimg_iso_extract(o.iso, argv[i], dest) < 0;
    }
    if (rc) {
        fail_lib();
    }
    close_iso(&o);
    return rc;
}

static int iso_cat(int argc, char **argv)
{
    const char *format = NULL;
    struct opened o;
    int opt, rc = 0;
    size_t size = 1 << 20;
    char *buf;

    while ((opt = getopt(argc, argv, "f:")) != -1) {
        switch (opt) {
        case 'f': format = optarg; break;
        default: return 1; /* getopt named the problem */
        }
    }
    if (argc - optind != 2) {
        return usage(&iso_cat_cmd, true);
    }
    if (!(buf = malloc(size))) {
        return fail("out of memory");
    }
    if (open_iso(argv[optind], format, &o)) {
        free(buf);
        return 1;
    }
    for (uint64_t off = 0;;) {
        int64_t n = vimg_iso_read(o.iso, argv[optind + 1], buf, size, off);
        if (n < 0) {
            rc = fail_lib();
            break;
        }
        if (n == 0) {
            break;
        }
        if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n) {
            rc = fail("writing to stdout: %s", strerror(errno));
            break;
        }
        off += (uint64_t)n;
    }
    if (rc == 0 && fflush(stdout) != 0) {
        rc = fail("writing to stdout: %s", strerror(errno));
    }
    free(buf);
    close_iso(&o);
    return rc;
}

static const struct {
    const struct command *cmd;
    int (*run)(int argc, char **argv);
} subs[] = {
    { &iso_ls_cmd, iso_ls },
    { &iso_extract_cmd, iso_extract },
    { &iso_cat_cmd, iso_cat },
    { &iso_create_cmd, iso_create_main },
    { &iso_cidata_cmd, iso_cidata_main },
};
#define N_SUBS (sizeof subs / sizeof subs[0])

static void help(FILE *f)
{
    fprintf(f, "Usage: vimg iso SUBCOMMAND [OPTIONS] ...\n"
               "Read and write ISO 9660 volumes.\n\nSubcommands:\n");
    for (size_t i = 0; i < N_SUBS; i++) {
        fprintf(f, "  %-10s %s\n", subs[i].cmd->name, subs[i].cmd->synopsis);
    }
    fprintf(f, "\n'vimg iso SUBCOMMAND --help' describes a subcommand.\n");
}

static int run(int argc, char **argv)
{
    if (argc < 2) {
        help(stderr);
        return 1;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        help(stdout);
        return 0;
    }
    for (size_t i = 0; i < N_SUBS; i++) {
        if (strcmp(argv[1], subs[i].cmd->name)) {
            continue;
        }
        /* create and cidata print their own usage. */
        for (int a = 2; a < argc && subs[i].cmd->usage; a++) {
            if (!strcmp(argv[a], "--help") || !strcmp(argv[a], "-h")) {
                return usage(subs[i].cmd, false);
            }
            if (!strcmp(argv[a], "--")) {
                break;
            }
        }
        optind = 1;
        /* getopt's messages then read "vimg: iso ls: ...". */
        char name[64];
        snprintf(name, sizeof name, "vimg: iso %s", subs[i].cmd->name);
        argv[1] = name;
        return subs[i].run(argc - 1, argv + 1);
    }
    fail("unknown iso subcommand '%s'", argv[1]);
    help(stderr);
    return 1;
}

const struct command cmd_iso = {
    "iso", run, "list, extract and create ISO 9660 volumes",
    "Usage: vimg iso ls|extract|cat|create|cidata [OPTIONS] ...\n"
    "  ls       list files (-l long, -R recursive, --output=json)\n"
    "  extract  copy files and trees out, keeping modes, times, symlinks\n"
    "  cat      write one file to stdout\n"
    "  create   make an ISO 9660 image from a folder\n"
    "  cidata   make a cloud-init NoCloud seed ISO\n"
    "'vimg iso SUBCOMMAND --help' describes each.\n",
    .own_help = true,
};
