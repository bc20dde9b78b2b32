/* vimg iso create and vimg iso cidata: ISO 9660 images from a folder, and
 * the cloud-init NoCloud seed. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char create_usage[] =
    "Usage: vimg iso create -o OUT.iso [-V VOLID] [-b BOOTIMG [-c CATALOG]\n"
    "         [--boot-load-size N] [--no-boot-info-table] [--floppy-emul]]\n"
    "         [-e EFIIMG] [--no-rock-ridge] [--no-joliet] [--publisher X]\n"
    "         [--preparer X] [--application X] [--system X] [--volset X] "
    "DIR\n"
    "Write an ISO 9660 image (level 3, Rock Ridge, Joliet) of the folder "
    "DIR.\n"
    "  -o OUT.iso            output; built beside it and renamed over it "
    "when\n"
    "                        complete (a device is written in place)\n"
    "  -V VOLID              volume id, 1 to 32 characters (default "
    "CDROM)\n"
    "  -b BOOTIMG            El Torito BIOS boot image, a path inside DIR\n"
    "                        (no emulation; boot info table patched in)\n"
    "  -c CATALOG            boot catalog path inside DIR (default "
    "boot.cat)\n"
    "  --boot-load-size N    512-byte sectors the BIOS loads (default 4)\n"
    "  --no-boot-info-table  do not patch the table at byte 8 of BOOTIMG\n"
    "  --floppy-emul         emulate a floppy (1.2/1.44/2.88 MB BOOTIMG)\n"
    "  -e EFIIMG             UEFI boot image (platform 0xEF) inside DIR\n"
    "  --no-rock-ridge       no POSIX names, modes, symlinks or devices\n"
    "  --no-joliet           no Joliet (Windows) names\n"
    "  --publisher, --preparer, --application, --system, --volset X\n"
    "                        volume descriptor texts\n"
    "With SOURCE_DATE_EPOCH set, every date is that time and later file\n"
    "times are clamped to it: the same folder gives the same bytes.\n";

static const char cidata_usage[] =
    "Usage: vimg iso cidata -o seed.iso USER-DATA META-DATA "
    "[NETWORK-CONFIG]\n"
    "Write a cloud-init NoCloud seed: volume id 'cidata', Rock Ridge and\n"
    "Joliet, holding the given files as user-data, meta-data and\n"
    "network-config whatever they are called on the host.\n";

/* SOURCE_DATE_EPOCH: decimal seconds, as reproducible-builds.org defines
 * it; a malformed value is an error rather than silently "now". */
static int source_date_epoch(int64_t *out)
{
    const char *s = getenv("SOURCE_DATE_EPOCH");
    char *end;
    *out = -1;
    if (!s || !*s) {
        return 0;
    }
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < 0 || s[0] < '0' || s[0] > '9') {
        return fail("SOURCE_DATE_EPOCH must be a number of seconds, not "
                    "'%s'", s);
    }
    *out = v;
    return 0;
}

static int run_create(const char *out, const char *dir,
                      struct vimg_iso_create_params *p)
{
    if (source_date_epoch(&p->source_date_epoch)) {
        return 1;
    }
    /* Past `ulimit -f` a write must fail with EFBIG and be reported, not
     * kill us. */
    signal(SIGXFSZ, SIG_IGN);
    if (vimg_iso_create(out, dir, p) < 0) {
        return fail_lib();
    }
    return 0;
}

static int bad_usage(const char *text)
{
    fprintf(stderr, "%s", text);
    return 1;
}

int iso_create_main(int argc, char **argv)
{
    enum { O_LOAD = 256, O_NO_TABLE, O_FLOPPY, O_NO_RR, O_NO_JOLIET,
           O_PUBLISHER, O_PREPARER, O_APPLICATION, O_SYSTEM, O_VOLSET };
    static const struct option longopts[] = {
        { "boot-load-size", required_argument, NULL, O_LOAD },
        { "no-boot-info-table", no_argument, NULL, O_NO_TABLE },
        { "floppy-emul", no_argument, NULL, O_FLOPPY },
        { "no-rock-ridge", no_argument, NULL, O_NO_RR },
        { "no-joliet", no_argument, NULL, O_NO_JOLIET },
        { "publisher", required_argument, NULL, O_PUBLISHER },
        { "preparer", required_argument, NULL, O_PREPARER },
        { "application", required_argument, NULL, O_APPLICATION },
        { "system", required_argument, NULL, O_SYSTEM },
        { "volset", required_argument, NULL, O_VOLSET },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct vimg_iso_create_params p;
    const char *out = NULL;
    int c;

    vimg_iso_create_params_init(&p);
    optind = 0;
    while ((c = getopt_long(argc, argv, "o:V:b:c:e:h", longopts, NULL)) !=
           -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'V': p.volume_id = optarg; break;
        case 'b': p.bios_boot = optarg; break;
        case 'c': p.boot_catalog = optarg; break;
        case 'e': p.efi_boot = optarg; break;
        case O_LOAD: {
            char *end;
            errno = 0;
            unsigned long n = strtoul(optarg, &end, 10);
            if (errno || *end || !*optarg || n < 1 || n > 65535) {
                return fail("--boot-load-size must be 1 to 65535, not '%s'",
                            optarg);
            }
            p.boot_load_size = (unsigned)n;
            break;
        }
        case O_NO_TABLE: p.boot_info_table = false; break;
        case O_FLOPPY: p.no_emul_boot = false; break;
        case O_NO_RR: p.rock_ridge = false; break;
        case O_NO_JOLIET: p.joliet = false; break;
        case O_PUBLISHER: p.publisher = optarg; break;
        case O_PREPARER: p.preparer = optarg; break;
        case O_APPLICATION: p.application = optarg; break;
        case O_SYSTEM: p.system_id = optarg; break;
        case O_VOLSET: p.volume_set = optarg; break;
        case 'h': printf("%s", create_usage); return 0;
        default: return bad_usage(create_usage);
        }
    }
    if (argc - optind != 1 || !out) {
        return bad_usage(create_usage);
    }
    if (p.boot_catalog && !p.bios_boot && !p.efi_boot) {
        return fail("-c needs a boot image (-b or -e)");
    }
    return run_create(out, argv[optind], &p);
}

int iso_cidata_main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    static const char *const names[] = { "user-data", "meta-data",
                                         "network-config" };
    struct vimg_iso_create_params p;
    struct vimg_iso_graft grafts[3];
    const char *out = NULL;
    int c;

    optind = 0;
    while ((c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'h': printf("%s", cidata_usage); return 0;
        default: return bad_usage(cidata_usage);
        }
    }
    int n = argc - optind;
    if (n < 2 || n > 3 || !out) {
        return bad_usage(cidata_usage);
    }
    for (int i = 0; i < n; i++) {
        grafts[i].name = names[i];
        grafts[i].host_path = argv[optind + i];
    }
    vimg_iso_create_params_init(&p);
    p.volume_id = "cidata";
    p.grafts = grafts;
    p.n_grafts = (size_t)n;
    return run_create(out, NULL, &p);
}
