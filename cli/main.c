/* vimg: the command table and global options. */
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

#ifndef VIMG_VERSION
#define VIMG_VERSION "unknown"
#endif

static const struct command *const commands[] = {
    &cmd_create, &cmd_info, &cmd_convert, &cmd_compare, &cmd_map,
    &cmd_resize, &cmd_check, &cmd_measure, &cmd_dd, &cmd_bench, &cmd_iso,
    &cmd_serve, &cmd_fuse, &cmd_mount, &cmd_umount, &cmd_bitmap, &cmd_amend,
    &cmd_snapshot, &cmd_commit, &cmd_rebase,
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

/* What image metadata may make vimg open (global --refs/--untrusted). */
static enum vimg_ref_policy ref_policy = VIMG_REFS_FOLLOW;

static void help(FILE *f)
{
    fprintf(f, "Usage: vimg [--untrusted | --refs=POLICY] [--output=FMT] "
               "COMMAND [OPTIONS] ...\n"
               "vimg: create, inspect, convert and check virtual-machine disk "
               "images.\n\nCommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++) {
        fprintf(f, "  %-10s %s\n", commands[i]->name, commands[i]->synopsis);
    }
    fprintf(f, "\nFormats:");
    for (const char *const *n = vimg_list_formats(); *n; n++) {
        fprintf(f, " %s", *n);
    }
    fprintf(f, "\n\nGlobal options:\n"
               "  --refs=POLICY  which files named inside an image (backing "
               "files,\n"
               "                 data files) may be opened: follow (default), "
               "same-dir\n"
               "                 (only inside the image's folder) or never\n"
               "  --untrusted    same as --refs=never: for images from "
               "elsewhere;\n"
               "                 info reports references without opening "
               "them\n"
               "  --object secret,id=ID,file=PATH|data=TEXT[,format=base64]\n"
               "                 a passphrase that encrypt.key-secret=ID "
               "(qcow2)\n"
               "                 or key-secret=ID (luks) names; any "
               "command, repeatable\n"
               "  --image-opts   image arguments are driver=FMT,"
               "file.filename=PATH,...\n"
               "  --output=FMT   human or json: the default --output of info,\n"
               "                 map, check and measure\n"
               "These options may also come after COMMAND.\n"
               "\n'vimg COMMAND --help' describes a command; 'man vimg' "
               "has everything.\n");
}

struct vimg_image *open_image(const char *file, const char *format,
                              unsigned flags)
{
    return open_image_snapshot(file, format, flags, NULL, NULL);
}

struct vimg_image *open_image_snapshot(const char *file, const char *format,
                                       unsigned flags, const char *sn_id,
                                       const char *sn_name)
{
    struct vimg_open_params p = { .format = format, .flags = flags,
                                  .refs = ref_policy,
                                  .snapshot_id = sn_id,
                                  .snapshot_name = sn_name };
    char *name = NULL, *fmt = NULL, *opts = NULL;
    struct vimg_image *img = NULL;

    p.secrets = cli_secrets(&p.n_secrets);
    if (cli_image_opts()) {
        if (cli_parse_image_opts(file, &name, &fmt, &opts)) {
            goto out;
        }
        file = name;
        p.format = fmt ? fmt : format;
        p.options = *opts ? opts : NULL;
    }
    if (!(img = cli_open_prompting(file, &p))) {
        fail_lib();
    }
out:
    free(name);
    free(fmt);
    free(opts);
    return img;
}

enum vimg_ref_policy cli_ref_policy(void)
{
    return ref_policy;
}

/* --output before the command: the default of commands that take it. */
static enum output_format default_output = OUTPUT_HUMAN;

enum output_format cli_default_output(void)
{
    return default_output;
}

/* Whether ARGV[I] is a global option; if so, apply it and return how many
 * arguments it took (1 or 2), or -1 after printing an error. OUTPUT says
 * whether --output counts (before the command only: after it, the
 * commands that take --output parse it themselves). */
static int global_option(int argc, char **argv, int i, bool output)
{
    const char *a = argv[i];
    if (!strcmp(a, "--untrusted")) {
        ref_policy = VIMG_REFS_NEVER;
        return 1;
    }
    if (!strncmp(a, "--refs=", 7)) {
        const char *v = a + 7;
        if (!strcmp(v, "follow")) {
            ref_policy = VIMG_REFS_FOLLOW;
        } else if (!strcmp(v, "same-dir")) {
            ref_policy = VIMG_REFS_SAME_DIR;
        } else if (!strcmp(v, "never")) {
            ref_policy = VIMG_REFS_NEVER;
        } else {
            fail("--refs must be follow, same-dir or never, not '%s'", v);
            return -1;
        }
        return 1;
    }
    if (output && !strncmp(a, "--output=", 9)) {
        return parse_output(a + 9, &default_output) ? -1 : 1;
    }
    if (output && !strcmp(a, "--output") && i + 1 < argc) {
        return parse_output(argv[i + 1], &default_output) ? -1 : 2;
    }
    return 0;
}

/* Global options before the command; returns how many were consumed, or
 * -1 after printing an error. */
static int global_options(int argc, char **argv)
{
    int i = 1, n;
    while (i < argc && (n = global_option(argc, argv, i, true)) != 0) {
        if (n < 0) {
            return -1;
        }
        i += n;
    }
    return i - 1;
}

/* Global options among a command's arguments (up to "--"), taken out of
 * ARGV (the command's arguments from ARGV[1]) so that its own parsing
 * never sees them; returns the new ARGC, or -1 after an error. */
static int command_global_options(int argc, char **argv)
{
    int out = 1;
    for (int i = 1; i < argc; i++) {
        int n = strcmp(argv[i], "--") ? global_option(argc, argv, i, false)
                                       : 0;
        if (n < 0) {
            return -1;
        }
        if (n == 0 && !strcmp(argv[i], "--")) {
            while (i < argc) {
                argv[out++] = argv[i++];
            }
            break;
        }
        if (n == 0) {
            argv[out++] = argv[i];
        }
    }
    argv[out] = NULL;
    return out;
}

/* A signal that waits for the command to stop (see on_fatal_signal). */
static volatile sig_atomic_t deferred_signal;

/* Ctrl-C, kill, a closed terminal: remove the named temporary of a file
 * being written (an O_TMPFILE one vanishes by itself), then die of the
 * same signal so the caller sees how we ended. An image being made in a
 * cluster (rbd) can only be removed by the command itself: it is told to
 * stop, and the signal is raised again once it has; a second signal does
 * not wait. */
static void on_fatal_signal(int sig)
{
    vimg_target_remove_temporaries();
    if (!deferred_signal && vimg_target_images_pending()) {
        deferred_signal = sig;
        vimg_cancel();
        return;
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

/* The command's status, or death by the signal it was stopped for. */
static int finish(int status)
{
    if (deferred_signal) {
        signal(deferred_signal, SIG_DFL);
        raise(deferred_signal);
    }
    return status;
}

static void catch_fatal_signals(void)
{
    static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };
    struct sigaction sa = { .sa_handler = on_fatal_signal };

    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction old;
        /* A signal ignored by whoever started us (nohup) stays ignored. */
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler != SIG_IGN) {
            sigaction(sigs[i], &sa, NULL);
        }
    }
}

int main(int argc, char **argv)
{
    /* Past RLIMIT_FSIZE, write() must fail with EFBIG so the error is
     * reported and the partial output removed, rather than the kernel
     * killing us mid-write. */
    signal(SIGXFSZ, SIG_IGN);
    catch_fatal_signals();
    if ((argc = cli_take_global_args(argc, argv)) < 0) {
        return 1;
    }
    int skip = global_options(argc, argv);
    if (skip < 0) {
        return 1;
    }
    argv[skip] = argv[0];
    argc -= skip;
    argv += skip;
    if (argc < 2) {
        help(stderr);
        return 1;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        help(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
        printf("vimg version %s\n", VIMG_VERSION);
        return 0;
    }
    for (size_t i = 0; i < N_COMMANDS; i++) {
        if (strcmp(argv[1], commands[i]->name) == 0) {
            for (int a = 2; a < argc && !commands[i]->own_help; a++) {
                if (!strcmp(argv[a], "--help") || !strcmp(argv[a], "-h")) {
                    return usage(commands[i], false);
                }
                if (!strcmp(argv[a], "--")) {
                    break;
                }
            }
            int cargc = command_global_options(argc - 1, argv + 1);
            if (cargc < 0) {
                return 1;
            }
            /* getopt prefixes its messages with argv[0]: make them read
             * "vimg: COMMAND: unrecognized option ...". */
            char name[64];
            snprintf(name, sizeof name, "vimg: %s", commands[i]->name);
            argv[1] = name;
            return finish(commands[i]->run(cargc, argv + 1));
        }
    }
    fail("unknown command '%s'", argv[1]);
    fprintf(stderr, "Try 'vimg --help' for the list of commands.\n");
    return 1;
}
