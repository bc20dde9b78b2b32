/* vimg snapshot [-U] [-q] [--output=human|json]
 *               [-l | -a SNAPSHOT | -c SNAPSHOT | -d SNAPSHOT] FILENAME
 * (qemu-img snapshot), and the snapshot table info prints. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

/* qemu-img copies IDs and names into fixed buffers before printing them
 * (QEMUSnapshotInfo: 128 and 256 bytes), cutting longer ones. */
#define ID_MAX 127
#define NAME_MAX_SHOWN 255

/* S cut to MAX bytes, as print_untrusted would show it (caller frees). */
static char *shown(const char *s, size_t max)
{
    char *cut = strndup(s, max), *out = NULL;
    size_t len;
    FILE *f = cut ? open_memstream(&out, &len) : NULL;

    if (f) {
        print_untrusted(f, cut);
        fclose(f);
    }
    free(cut);
    return out;
}

void print_snapshot_table(FILE *f, const struct vimg_snapshot *v, size_t n)
{
    fprintf(f, "%-10s%-17s%8s%20s%13s%11s\n", "ID", "TAG", "VM SIZE",
            "DATE", "VM CLOCK", "ICOUNT");
    for (size_t i = 0; i < n; i++) {
        char size[32], date[64] = "", clock[64], icount[32] = "";
        time_t t = (time_t)v[i].date_sec;
        struct tm tm;
        uint64_t secs = v[i].vm_clock_nsec / 1000000000;

        format_size(v[i].vm_state_size, size, sizeof size);
        if (localtime_r(&t, &tm)) {
            strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S", &tm);
        }
        snprintf(clock, sizeof clock, "%02d:%02d:%02d.%03d",
                 (int)(secs / 3600), (int)((secs / 60) % 60),
                 (int)(secs % 60),
                 (int)((v[i].vm_clock_nsec / 1000000) % 1000));
        if (v[i].icount != VIMG_SNAPSHOT_NO_ICOUNT) {
            snprintf(icount, sizeof icount, "%" PRId64,
                     (int64_t)v[i].icount);
        }
        char *id = shown(v[i].id, ID_MAX);
        char *name = shown(v[i].name, NAME_MAX_SHOWN);
        fprintf(f, "%-9s %-16s %8s%20s%13s%11s\n", id ? id : "",
                name ? name : "", size, date, clock, icount);
        free(id);
        free(name);
    }
}

/* One snapshot of info's "snapshots" array as a struct (strings
 * borrowed). */
static struct vimg_snapshot from_value(const struct vimg_value *o)
{
    const struct vimg_value *ic = vimg_value_get(o, "icount");
    struct vimg_snapshot sn = {
        .id = (char *)vimg_value_string(vimg_value_get(o, "id")),
        .name = (char *)vimg_value_string(vimg_value_get(o, "name")),
        .vm_state_size =
            (uint64_t)vimg_value_int(vimg_value_get(o, "vm-state-size")),
        .date_sec = (uint32_t)vimg_value_int(vimg_value_get(o, "date-sec")),
        .date_nsec = (uint32_t)vimg_value_int(vimg_value_get(o,
                                                             "date-nsec")),
        .vm_clock_nsec =
            (uint64_t)vimg_value_int(vimg_value_get(o, "vm-clock-sec")) *
                1000000000 +
            (uint64_t)vimg_value_int(vimg_value_get(o, "vm-clock-nsec")),
        .icount = ic ? (uint64_t)vimg_value_int(ic)
                     : VIMG_SNAPSHOT_NO_ICOUNT,
    };
    return sn;
}

void print_snapshot_values(FILE *f, const struct vimg_value *list)
{
    size_t n = vimg_value_count(list);
    struct vimg_snapshot *v = calloc(n ? n : 1, sizeof *v);

    if (!v) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        v[i] = from_value(vimg_value_at(list, i));
        if (!v[i].id) {
            v[i].id = "";
        }
        if (!v[i].name) {
            v[i].name = "";
        }
    }
    print_snapshot_table(f, v, n);
    free(v);
}

/* The list as JSON, with the members and their order of info's
 * "snapshots" (qemu-img 7.2's snapshot command has no JSON output). */
static void print_json_list(const struct vimg_snapshot *v, size_t n)
{
    printf("[");
    for (size_t i = 0; i < n; i++) {
        printf("%s\n    {\n", i ? "," : "");
        if (v[i].icount != VIMG_SNAPSHOT_NO_ICOUNT) {
            printf("        \"icount\": %" PRId64 ",\n",
                   (int64_t)v[i].icount);
        }
        printf("        \"vm-clock-nsec\": %" PRIu64 ",\n"
               "        \"name\": ", v[i].vm_clock_nsec % 1000000000);
        print_json_string(stdout, v[i].name);
        printf(",\n        \"date-sec\": %" PRIu32 ",\n"
               "        \"date-nsec\": %" PRIu32 ",\n"
               "        \"vm-clock-sec\": %" PRIu64 ",\n"
               "        \"id\": ", v[i].date_sec, v[i].date_nsec,
               v[i].vm_clock_nsec / 1000000000);
        print_json_string(stdout, v[i].id);
        printf(",\n        \"vm-state-size\": %" PRIu64 "\n    }",
               v[i].vm_state_size);
    }
    printf("%s]\n", n ? "\n" : "");
}

/* The snapshot ARG names as qemu-img looks it up: -a and -l try IDs,
 * then names; -d (BY_NAME_ONLY) names only. NULL when none matches. */
static const struct vimg_snapshot *lookup(const struct vimg_snapshot *v,
                                          size_t n, const char *arg,
                                          bool by_name_only)
{
    for (int pass = by_name_only; pass < 2; pass++) {
        for (size_t i = 0; i < n; i++) {
            if (!strcmp(pass ? v[i].name : v[i].id, arg)) {
                return &v[i];
            }
        }
    }
    return NULL;
}

/* The value of one "key=value" item of a QEMU option list ending at END,
 * with ",," unescaped (caller frees). */
static char *item_value(const char *eq, const char *end)
{
    char *v = malloc((size_t)(end - eq));
    size_t n = 0;

    for (const char *p = eq + 1; v && p < end; p++) {
        v[n++] = *p;
        if (*p == ',') {
            p++; /* the second comma of ",," */
        }
    }
    if (v) {
        v[n] = 0;
    }
    return v;
}

/* "snapshot.id=ID,snapshot.name=NAME" into *ID and *NAME (either NULL
 * when left out; the caller frees both); 1 after printing an error. */
static int parse_spec_options(const char *spec, char **id, char **name)
{
    for (const char *p = spec; *p;) {
        const char *end = p;
        while (*end && !(*end == ',' && end[1] != ',')) {
            end += *end == ',' ? 2 : 1;
        }
        const char *eq = memchr(p, '=', (size_t)(end - p));
        size_t klen = eq ? (size_t)(eq - p) : (size_t)(end - p);
        char **slot = NULL;
        if (klen == 11 && !strncmp(p, "snapshot.id", klen)) {
            slot = id;
        } else if (klen == 13 && !strncmp(p, "snapshot.name", klen)) {
            slot = name;
        }
        if (!slot || !eq) {
            return fail("Invalid parameter '%.*s'", (int)klen, p);
        }
        free(*slot);
        if (!(*slot = item_value(eq, end))) {
            return fail("out of memory");
        }
        p = *end ? end + 1 : end;
    }
    return 0;
}

struct vimg_image *open_snapshot_spec(const char *file, const char *format,
                                      unsigned flags, const char *spec)
{
    char *id = NULL, *name = NULL;
    struct vimg_image *img = NULL;

    if (!spec) {
        return open_image(file, format, flags);
    }
    if (!strncmp(spec, "snapshot.", 9)) {
        if (parse_spec_options(spec, &id, &name)) {
            goto out;
        }
        if (!id && !name) {
            fail("Failed to load snapshot: snapshot_id and name are both "
                 "NULL");
            goto out;
        }
    } else {
        /* An ID or a name: look it up as qemu-img does, the ID first. */
        struct vimg_image *probe = open_image(file, format,
                                              VIMG_OPEN_NO_BACKING |
                                                  VIMG_OPEN_NO_IO |
                                                  (flags &
                                                   VIMG_OPEN_FORCE_SHARE));
        struct vimg_snapshot *v = NULL;
        size_t n = 0;
        if (!probe) {
            goto out;
        }
        if (vimg_snapshot_list(probe, &v, &n) < 0) {
            fail_lib();
            vimg_close(probe);
            goto out;
        }
        const struct vimg_snapshot *sn = lookup(v, n, spec, false);
        if (sn && (!(id = strdup(sn->id)) || !(name = strdup(sn->name)))) {
            fail("out of memory");
            free(id);
            id = NULL;
        }
        vimg_snapshot_list_free(v, n);
        vimg_close(probe);
        if (!id) {
            if (sn == NULL) {
                fail("Failed to load snapshot: Can't find snapshot");
            }
            goto out;
        }
    }
    img = open_image_snapshot(file, format, flags, id, name);
out:
    free(id);
    free(name);
    return img;
}

static int run(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "output", required_argument, NULL, 'O' },
        { "force-share", no_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    enum output_format out = OUTPUT_HUMAN;
    const char *arg = NULL;
    char action = 0;
    unsigned flags = VIMG_OPEN_RDWR;
    bool force_share = false;
    int c;

    while ((c = getopt_long(argc, argv, "la:c:d:qU", longopts, NULL)) !=
           -1) {
        switch (c) {
        case 'l':
        case 'a':
        case 'c':
        case 'd':
            if (action) {
                return fail("Cannot mix '-l', '-a', '-c', '-d'");
            }
            action = (char)c;
            arg = optarg;
            break;
        case 'q': break; /* nothing is printed but the list and errors */
        case 'U': force_share = true; break;
        case 'O':
            if (parse_output(optarg, &out)) {
                return 1;
            }
            break;
        default: return 1; /* getopt named the problem */
        }
    }
    if (argc - optind != 1) {
        return usage(&cmd_snapshot, true);
    }
    if (action == 'l') {
        /* Metadata only: an encrypted image lists without its key. */
        flags = VIMG_OPEN_NO_BACKING | VIMG_OPEN_NO_IO;
    }
    if (force_share) {
        flags |= VIMG_OPEN_FORCE_SHARE;
    }
    const char *file = argv[optind];
    struct vimg_image *img = open_image(file, NULL, flags);
    if (!img) {
        return 1;
    }
    struct vimg_snapshot *v = NULL;
    size_t n = 0;
    int rc = 0;
    if (action != 'c' && action && vimg_snapshot_list(img, &v, &n) < 0) {
        rc = fail_lib();
        goto out;
    }
    const struct vimg_snapshot *sn;
    switch (action) {
    case 'l':
        if (out == OUTPUT_JSON) {
            print_json_list(v, n);
        } else if (n) {
            printf("Snapshot list:\n");
            print_snapshot_table(stdout, v, n);
        }
        break;
    case 'c':
        if (vimg_snapshot_create(img, arg) < 0) {
            rc = fail("Could not create snapshot '%s': %s", arg,
                      vimg_get_error());
        }
        break;
    case 'a':
        sn = lookup(v, n, arg, false);
        if (!sn) {
            /* What qemu-img says: a format without snapshots, or none
             * of that name. */
            vimg_snapshot_apply(img, arg, NULL);
            rc = fail("Could not apply snapshot '%s': %s", arg,
                      vimg_get_errno() == ENOTSUP
                          ? "Block driver does not support snapshots"
                          : "Failed to load snapshot: No such file or "
                            "directory");
        } else if (vimg_snapshot_apply(img, sn->id, sn->name) < 0) {
            /* qemu-img checks for bitmaps before it tries. */
            rc = vimg_get_errno() == EBUSY
                     ? fail("Could not apply snapshot '%s': Device has "
                            "active dirty bitmaps", arg)
                     : fail("Could not apply snapshot '%s': Failed to load "
                            "snapshot: %s", arg, vimg_get_error());
        }
        break;
    case 'd':
        sn = lookup(v, n, arg, true);
        if (!sn) {
            rc = fail("Could not delete snapshot '%s': snapshot not found",
                      arg);
        } else if (vimg_snapshot_delete(img, sn->id, sn->name) < 0) {
            rc = fail("Could not delete snapshot '%s': %s", arg,
                      vimg_get_error());
        }
        break;
    default:
        break; /* no action: qemu-img opens the image and does nothing */
    }
out:
    vimg_snapshot_list_free(v, n);
    if (vimg_close(img) < 0 && rc == 0) {
        rc = fail_lib();
    }
    return rc;
}

const struct command cmd_snapshot = {
    "snapshot", run, "list, create, apply or delete internal snapshots",
    "Usage: vimg snapshot [-U] [-q] [--output=human|json] [-l | -a SNAPSHOT "
    "| -c SNAPSHOT | -d SNAPSHOT] FILENAME\n"
    "Manage the internal snapshots of a qcow2 image, as qemu-img snapshot.\n"
    "  -l                 list them (ID TAG VM SIZE DATE VM CLOCK ICOUNT;\n"
    "                     --output=json for the fields of info's JSON)\n"
    "  -c SNAPSHOT        save the current disk as a new snapshot SNAPSHOT\n"
    "  -a SNAPSHOT        revert the disk to SNAPSHOT (an ID or a name)\n"
    "  -d SNAPSHOT        delete the first snapshot named SNAPSHOT\n"
    "  -U, --force-share  list even if another process has the image open\n"
    "  -q                 quiet\n"
    "Each change is written so that a crash leaves the image as it was\n"
    "before or after it.\n",
};
