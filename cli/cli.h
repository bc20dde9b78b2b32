/* Shared pieces of the vimg command-line tool. The CLI uses only the public
 * header, like any other client of libvimg. */
#ifndef VIMG_CLI_H
#define VIMG_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "vimg/vimg.h"

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *synopsis;   /* one line for `vimg --help` */
    const char *usage;      /* full text for `vimg COMMAND --help` */
    bool own_help;          /* has subcommands that answer --help */
};

extern const struct command cmd_create, cmd_info, cmd_convert, cmd_compare,
    cmd_map, cmd_resize, cmd_check, cmd_measure, cmd_dd, cmd_bench, cmd_iso,
    cmd_serve, cmd_fuse, cmd_mount, cmd_umount, cmd_bitmap, cmd_amend,
    cmd_snapshot, cmd_commit, cmd_rebase;

/* `vimg iso create` and `vimg iso cidata` (cli/cmd-iso-create.c); ARGV[0]
 * is the subcommand name. */
int iso_create_main(int argc, char **argv);
int iso_cidata_main(int argc, char **argv);

/* The FUSE view (cli/fuse.c): IMAGE's guest disk as the regular file
 * FILE. */
struct fuse_view_opts {
    const char *image, *format; /* opened under the global policy */
    const char *file;           /* an existing regular file to mount on */
    const char *pid_file;       /* the serving process's id, or NULL */
    bool rw;                    /* writes go to the image */
    bool foreground;            /* serve here until unmounted */
};
/* Mount the view. In the foreground, serve until FILE is unmounted, then
 * close the image. Otherwise return 0 once FILE is mounted, a background
 * process serving it until it is unmounted. Prints errors; 1 on failure. */
int fuse_view_run(const struct fuse_view_opts *o);

/* S on a terminal: control characters (C0, DEL, C1) and bytes that are not
 * UTF-8 as \xNN, so that names from an image cannot move the cursor,
 * change colours or fake extra lines. Other text as it is. */
void print_untrusted(FILE *f, const char *s);
/* S as a JSON string (vimg_json_quote); -1 when out of memory. */
int print_json_string(FILE *f, const char *s);
/* "vimg: MESSAGE" on stderr, MESSAGE as print_untrusted shows it; returns
 * 1 for `return fail(...)`. */
int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The library's last error as a one-line message; returns 1. */
int fail_lib(void);
/* Print a command's usage for --help (stdout), or, for a call with the
 * wrong number of arguments, an error line and the whole usage on stderr
 * (returns 1). */
int usage(const struct command *c, bool error);
/* "vimg: PROBLEM" and the whole usage on stderr (a wrong number of
 * arguments that qemu-img words its own way); returns 1. */
int usage_error(const struct command *c, const char *problem);

enum output_format { OUTPUT_HUMAN, OUTPUT_JSON };
int parse_output(const char *arg, enum output_format *out);
/* -t/-T cache modes: none and directsync bypass the page cache; unsafe
 * skips flushes. Replaces the cache bits already in *OPEN_FLAGS. */
int parse_cache(const char *arg, unsigned *open_flags);
int parse_size_arg(const char *what, const char *arg, uint64_t *out);
/* -r RATE (convert, commit): bytes per second, with qemu-img's message
 * for a bad one. */
int parse_rate(const char *arg, uint64_t *out);
/* An -o argument: refuses an empty or malformed one (returns 1); several
 * -o join into one list in *ACC (malloc'd; the caller frees it), as
 * qemu-img joins them. */
int parse_option_list(const char *arg, char **acc);
/* Whether the -o list OPTS (NULL for none) has an item KEY or KEY=...;
 * has_help_option: whether it asks for help ("help" or "?"). */
bool has_option_key(const char *opts, const char *key);
bool has_help_option(const char *opts);
/* qemu-img's -o help for FORMAT: "Supported FORMAT options:" with a note
 * on protocol options, or "Supported options:" when the command names a
 * FILENAME. Returns the exit code. */
int print_options_help(const char *format, const char *filename);

/* qemu-img's human sizes: "1 MiB", "1.5 GiB", "196 KiB". */
void format_size(uint64_t bytes, char *buf, size_t len);
/* Print V as qemu-img prints format-specific data: nested "key: value"
 * lines, '-' in keys shown as ' '. */
void print_human_value(FILE *f, const struct vimg_value *v, int indent);
/* JSON to stdout followed by a newline. */
int print_json(const struct vimg_value *v);

/* Refuse (print, return 1) a TARGET that is SRC or a file of its backing
 * chain, naming it: its open would otherwise fail on our own lock, blamed
 * on "another process", or replace the file being read. */
int check_not_source(struct vimg_image *src, const char *target);
/* qemu-img's snapshot table (cli/cmd-snapshot.c): the column header,
 * then one line per snapshot of V[0..N), dates in local time. */
void print_snapshot_table(FILE *f, const struct vimg_snapshot *v, size_t n);
/* The same for info's "snapshots" array LIST. */
void print_snapshot_values(FILE *f, const struct vimg_value *list);

/* The global open policy (--refs/--untrusted). */
enum vimg_ref_policy cli_ref_policy(void);
/* The global --output given before the command (OUTPUT_HUMAN if none). */
enum output_format cli_default_output(void);
/* Open FILE for a command; prints the error and returns NULL on failure. */
struct vimg_image *open_image(const char *file, const char *format,
                              unsigned flags);
/* The same, reading the internal snapshot SN_ID/SN_NAME (see
 * vimg_open_params). */
struct vimg_image *open_image_snapshot(const char *file, const char *format,
                                       unsigned flags, const char *sn_id,
                                       const char *sn_name);
/* Open FILE read-only at the snapshot SPEC names as qemu-img's -l takes
 * it: "snapshot.id=ID,snapshot.name=NAME" (either may be left out), or an
 * ID or name (the ID first); NULL SPEC opens the current disk. Prints
 * the error and returns NULL on failure (cli/cmd-snapshot.c). */
struct vimg_image *open_snapshot_spec(const char *file, const char *format,
                                      unsigned flags, const char *spec);

/* cli/secrets.c: --object secret,... and --image-opts, taken out of ARGV
 * wherever they are (before "--") for every command. Returns the new argc,
 * or -1 after printing an error. */
int cli_take_global_args(int argc, char **argv);
/* The secrets given with --object (borrowed). */
const struct vimg_secret *cli_secrets(size_t *n);
/* --image-opts was given: image arguments are option lists. */
bool cli_image_opts(void);
/* Split an --image-opts list into the file name, the format (driver=)
 * and the format's runtime options (all three the caller frees); prints
 * the error and returns 1 when malformed. */
int cli_parse_image_opts(const char *text, char **filename, char **format,
                         char **options);
/* vimg_open, and when stdin is a terminal, ask there for the passphrase
 * of each encrypted image of the chain that no key-secret option names
 * ("Password for FILE: "), once per file: the callback stays in P and
 * with the image for commit and rebase. */
struct vimg_image *cli_open_prompting(const char *file,
                                      struct vimg_open_params *p);

/* Progress (-p): a bar on stderr while stdout is a terminal, else
 * qemu-img's "    (NN.NN/100%)\r" lines on stdout; --progress=json: one
 * JSON line per update. progress_finish ends the text lines with qemu-img's
 * newline: call it once the command's own output is printed. */
enum progress_mode { PROGRESS_NONE, PROGRESS_BAR, PROGRESS_TEXT,
                     PROGRESS_JSON };
struct progress {
    enum progress_mode mode;
    double start, last, last_percent;
    int last_permille;
};
void progress_init(struct progress *p, enum progress_mode mode);
void progress_update(void *opaque, uint64_t done, uint64_t total);
void progress_finish(struct progress *p);

#endif
