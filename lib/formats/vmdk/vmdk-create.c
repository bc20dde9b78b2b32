/* Creating VMDK images: monolithicSparse, monolithicFlat,
 * twoGbMaxExtentSparse, twoGbMaxExtentFlat (laid out as qemu-img lays them
 * out, so that either tool's images look alike) and streamOptimized (laid
 * out as VMware's open-vmdk writes it, since VMware's importers are its
 * readers: see docs/vmdk.md). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "../../../common/rounding.h"
#include "vmdk.h"

/* VMware splits twoGbMaxExtent disks into extents of 2 GiB. */
#define SPLIT_BYTES 0x80000000ull
/* Grains of 64 KiB, tables of 512 entries: what VMware, QEMU and
 * open-vmdk all write. */
#define GRAIN_SECTORS 128
#define GTES 512
/* The embedded descriptor: 20 sectors from sector 1. */
#define DESC_SECTOR 1
#define DESC_SECTORS 20

const struct vimg_opt_desc vmdk_create_opts[] = {
    { "size", VIMG_OPT_SIZE, "Virtual disk size" },
    { "adapter_type", VIMG_OPT_STRING,
      "Virtual adapter type, can be one of ide (default; lsilogic for "
      "streamOptimized), lsilogic, buslogic or legacyESX" },
    { "backing_file", VIMG_OPT_STRING, "File name of a base image" },
    { "backing_fmt", VIMG_OPT_STRING, "Must be 'vmdk' if present" },
    { "compat6", VIMG_OPT_BOOL, "VMDK version 6 image" },
    { "hwversion", VIMG_OPT_STRING, "VMDK hardware version" },
    { "toolsversion", VIMG_OPT_STRING, "VMware guest tools version" },
    { "subformat", VIMG_OPT_STRING,
      "VMDK flat extent format, can be one of {monolithicSparse (default) | "
      "monolithicFlat | twoGbMaxExtentSparse | twoGbMaxExtentFlat | "
      "streamOptimized}" },
    { "zeroed_grain", VIMG_OPT_BOOL,
      "Enable efficient zero writes using the zeroed-grain GTE feature" },
    { NULL, 0, NULL },
};

enum subformat { MONO_SPARSE, MONO_FLAT, SPLIT_SPARSE, SPLIT_FLAT, STREAM };
static const char *const subformats[] = {
    "monolithicSparse", "monolithicFlat", "twoGbMaxExtentSparse",
    "twoGbMaxExtentFlat", "streamOptimized",
};

struct plan {
    const struct vimg_create_ctx *c;
    enum subformat sub;
    bool flat, split, zeroed_grain, no_flush;
    const char *adapter, *hwversion, *toolsversion;
    uint32_t parent_cid;
    char *prefix, *postfix;    /* "disk", ".vmdk" */
};

void vmdk_layout(uint64_t capacity, uint64_t grain_sectors, uint32_t gtes,
                 uint64_t *gd_sectors, uint64_t *gt_count,
                 uint64_t *gt_sectors)
{
    uint64_t grains = DIV_ROUND_UP(capacity, grain_sectors);
    *gt_count = DIV_ROUND_UP(grains, gtes);
    *gt_sectors = DIV_ROUND_UP((uint64_t)gtes * 4, VMDK_SECTOR);
    *gd_sectors = DIV_ROUND_UP(*gt_count * 4, VMDK_SECTOR);
}

static uint32_t random_u32(void)
{
    uint32_t v = 0;
    while (getrandom(&v, sizeof v, 0) != sizeof v) {
    }
    return v;
}

/* A content ID: random, but never the values meaning "no parent". */
static uint32_t new_cid(void)
{
    uint32_t cid;
    do {
        cid = random_u32();
    } while (cid == 0xffffffffu || cid == 0xfffffffeu);
    return cid;
}

/* Values that go into the descriptor between quotes. */
static bool safe_value(const char *v)
{
    if (!*v || strlen(v) > 64) {
        return false;
    }
    for (const char *p = v; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || *p == '.' || *p == '-' ||
              *p == '_')) {
            return false;
        }
    }
    return true;
}

static void header_common(uint8_t *h, uint32_t version, uint32_t flags,
                          uint64_t capacity)
{
    memset(h, 0, VMDK_HDR_SIZE);
    store_le32(h + VMDK_HDR_MAGIC, VMDK4_MAGIC);
    store_le32(h + VMDK_HDR_VERSION, version);
    store_le32(h + VMDK_HDR_FLAGS, flags);
    store_le64(h + VMDK_HDR_CAPACITY, capacity);
    store_le64(h + VMDK_HDR_GRAIN_SIZE, GRAIN_SECTORS);
    store_le64(h + VMDK_HDR_DESC_OFFSET, DESC_SECTOR);
    store_le64(h + VMDK_HDR_DESC_SIZE, DESC_SECTORS);
    store_le32(h + VMDK_HDR_NUM_GTES, GTES);
    h[VMDK_HDR_NL_SINGLE] = '\n';
    h[VMDK_HDR_NL_NON] = ' ';
    h[VMDK_HDR_NL_DOUBLE1] = '\r';
    h[VMDK_HDR_NL_DOUBLE2] = '\n';
}

/* A grain directory at GD whose tables follow it back to back. */
static int write_directory(struct vimg_image *f, uint64_t gd,
                           uint64_t gd_sectors, uint64_t gt_count,
                           uint64_t gt_sectors)
{
    uint64_t bytes = gd_sectors * VMDK_SECTOR;
    uint8_t *buf = calloc(1, bytes ? bytes : 1);
    int r;

    if (!buf) {
        return vimg_internal_error(ENOMEM, "out of memory");
    }
    for (uint64_t i = 0; i < gt_count; i++) {
        store_le32(buf + 4 * i,
                   (uint32_t)(gd + gd_sectors + i * gt_sectors));
    }
    r = bytes ? vimg_internal_pwrite(f, buf, bytes, gd * VMDK_SECTOR, 0) : 0;
    free(buf);
    return r;
}

/* A hosted sparse extent as QEMU's vmdk_init_extent lays it out: header,
 * room for a descriptor, redundant directory and tables, directory and
 * tables, then grains from the next 64 KiB boundary. */
static int init_sparse(struct vimg_image *f, uint64_t bytes, bool zeroed)
{
    uint8_t h[VMDK_HDR_SIZE];
    uint64_t capacity = bytes / VMDK_SECTOR, gd_sectors, gt_count, gt_sectors;
    int r;

    vmdk_layout(capacity, GRAIN_SECTORS, GTES, &gd_sectors, &gt_count,
                &gt_sectors);
    uint64_t tables = gd_sectors + gt_count * gt_sectors;
    uint64_t rgd = DESC_SECTOR + DESC_SECTORS, gd = rgd + tables;
    uint64_t overhead = ROUND_UP(gd + tables, GRAIN_SECTORS);
    header_common(h, zeroed ? 2 : 1,
                  VMDK_FLAG_NL_DETECT | VMDK_FLAG_RGD |
                      (zeroed ? VMDK_FLAG_ZERO_GRAIN : 0), capacity);
    store_le64(h + VMDK_HDR_RGD_OFFSET, rgd);
    store_le64(h + VMDK_HDR_GD_OFFSET, gd);
    store_le64(h + VMDK_HDR_OVERHEAD, overhead);
    if ((r = vimg_internal_pwrite(f, h, sizeof h, 0, 0)) < 0 ||
        (r = vimg_internal_truncate(f, overhead * VMDK_SECTOR, 0,
                                    VIMG_PREALLOC_OFF)) < 0 ||
        (r = write_directory(f, rgd, gd_sectors, gt_count, gt_sectors)) <
            0) {
        return r;
    }
    return write_directory(f, gd, gd_sectors, gt_count, gt_sectors);
}

/* A stream as open-vmdk's StreamOptimized_Create lays it out: header
 * (version 3, compressed, markers), descriptor in sectors 1-20, the grain
 * directory from sector 21 with every table right after it, then grains,
 * then an end-of-stream marker. No redundant directory, no footer: the
 * directory is in front, where a reader finds it first. */
static int init_stream(struct vimg_image *f, uint64_t bytes)
{
    static const uint8_t eos[VMDK_SECTOR];
    uint8_t h[VMDK_HDR_SIZE];
    uint64_t capacity = bytes / VMDK_SECTOR, gd_sectors, gt_count, gt_sectors;
    int r;

    vmdk_layout(capacity, GRAIN_SECTORS, GTES, &gd_sectors, &gt_count,
                &gt_sectors);
    uint64_t gd = DESC_SECTOR + DESC_SECTORS;
    uint64_t overhead = gd + gd_sectors + gt_count * gt_sectors;
    header_common(h, 3,
                  VMDK_FLAG_NL_DETECT | VMDK_FLAG_COMPRESSED |
                      VMDK_FLAG_MARKERS, capacity);
    store_le64(h + VMDK_HDR_GD_OFFSET, gd);
    store_le64(h + VMDK_HDR_OVERHEAD, overhead);
    store_le16(h + VMDK_HDR_COMPRESS_ALGO, VMDK_COMPRESS_DEFLATE);
    if ((r = vimg_internal_pwrite(f, h, sizeof h, 0, 0)) < 0 ||
        (r = vimg_internal_truncate(f, overhead * VMDK_SECTOR, 0,
                                    VIMG_PREALLOC_OFF)) < 0 ||
        (r = write_directory(f, gd, gd_sectors, gt_count, gt_sectors)) <
            0) {
        return r;
    }
    return vimg_internal_pwrite(f, eos, sizeof eos, overhead * VMDK_SECTOR,
                                0);
}

/* ---- Descriptor text -------------------------------------------------- */

static char *extent_name(const struct plan *p, int idx)
{
    char *n = NULL;
    int r;
    if (idx == 0) {
        r = asprintf(&n, "%s%s", p->prefix, p->postfix);
    } else if (p->split) {
        r = asprintf(&n, "%s-%c%03d%s", p->prefix, p->flat ? 'f' : 's', idx,
                     p->postfix);
    } else {
        r = asprintf(&n, "%s-flat%s", p->prefix, p->postfix);
    }
    return r < 0 ? NULL : n;
}

/* qemu-img's descriptor, so that its images and ours read alike. */
static char *qemu_descriptor(const struct plan *p, const char *extents)
{
    const struct vimg_create_ctx *c = p->c;
    uint32_t heads = strcmp(p->adapter, "ide") ? 255 : 16;
    char *parent = NULL, *d = NULL;

    if (c->backing_file && asprintf(&parent, "parentFileNameHint=\"%s\"\n",
                                    c->backing_file) < 0) {
        return NULL;
    }
    if (asprintf(&d,
                 "# Disk DescriptorFile\n"
                 "version=1\n"
                 "CID=%08x\n"
                 "parentCID=%08x\n"
                 "createType=\"%s\"\n"
                 "%s"
                 "\n"
                 "# Extent description\n"
                 "%s"
                 "\n"
                 "# The Disk Data Base\n"
                 "#DDB\n"
                 "\n"
                 "ddb.virtualHWVersion = \"%s\"\n"
                 "ddb.geometry.cylinders = \"%llu\"\n"
                 "ddb.geometry.heads = \"%u\"\n"
                 "ddb.geometry.sectors = \"63\"\n"
                 "ddb.adapterType = \"%s\"\n"
                 "ddb.toolsVersion = \"%s\"\n",
                 new_cid(), p->parent_cid, subformats[p->sub],
                 parent ? parent : "", extents, p->hwversion,
                 (unsigned long long)(ROUND_UP(c->size, VMDK_SECTOR) /
                                       (63ull * heads * 512)),
                 heads, p->adapter, p->toolsversion) < 0) {
        d = NULL;
    }
    free(parent);
    return d;
}

/* open-vmdk's descriptor for streams: with the encoding, a long content ID
 * and the tools install type VMware's importers look for. */
static char *stream_descriptor(const struct plan *p, const char *name)
{
    const struct vimg_create_ctx *c = p->c;
    uint64_t capacity = c->size / VMDK_SECTOR;
    uint32_t heads = strcmp(p->adapter, "ide") ? 255 : 16;
    uint64_t cylinders = MIN(DIV_ROUND_UP(capacity, heads * 63ull), 65535);
    uint32_t cid = new_cid();
    char *parent = NULL, *d = NULL;

    if (c->backing_file && asprintf(&parent, "parentFileNameHint=\"%s\"\n",
                                    c->backing_file) < 0) {
        return NULL;
    }
    if (asprintf(&d,
                 "# Disk DescriptorFile\n"
                 "version=1\n"
                 "encoding=\"UTF-8\"\n"
                 "CID=%08x\n"
                 "parentCID=%08x\n"
                 "createType=\"streamOptimized\"\n"
                 "%s"
                 "\n"
                 "# Extent description\n"
                 "RW %llu SPARSE \"%s\"\n"
                 "\n"
                 "# The Disk Data Base\n"
                 "#DDB\n"
                 "\n"
                 "ddb.longContentID = \"%08x%08x%08x%08x\"\n"
                 "ddb.virtualHWVersion = \"%s\"\n"
                 "ddb.geometry.cylinders = \"%llu\"\n"
                 "ddb.geometry.heads = \"%u\"\n"
                 "ddb.geometry.sectors = \"63\"\n"
                 "ddb.adapterType = \"%s\"\n"
                 "ddb.toolsInstallType = \"4\"\n"
                 "ddb.toolsVersion = \"%s\"\n",
                 cid, p->parent_cid, parent ? parent : "",
                 (unsigned long long)capacity, name, random_u32(),
                 random_u32(), random_u32(), cid, p->hwversion,
                 (unsigned long long)cylinders, heads, p->adapter,
                 p->toolsversion) < 0) {
        d = NULL;
    }
    free(parent);
    return d;
}

/* ---- Options ---------------------------------------------------------- */

static int parse_plan(struct plan *p)
{
    const struct vimg_create_ctx *c = p->c;
    const char *f = c->filename;
    const char *sub = vimg_internal_opts_get(c->opts, "subformat",
                                             "monolithicSparse");
    bool compat6;
    int r;

    size_t i = 0;
    while (i < 5 && strcmp(sub, subformats[i])) {
        i++;
    }
    if (i == 5) {
        return vimg_internal_error(EINVAL, "%s: invalid subformat '%s' (use "
                                   "monolithicSparse, monolithicFlat, "
                                   "twoGbMaxExtentSparse, twoGbMaxExtentFlat "
                                   "or streamOptimized)", f, sub);
    }
    p->sub = (enum subformat)i;
    p->flat = p->sub == MONO_FLAT || p->sub == SPLIT_FLAT;
    p->split = p->sub == SPLIT_SPARSE || p->sub == SPLIT_FLAT;
    p->adapter = vimg_internal_opts_get(c->opts, "adapter_type",
                                        p->sub == STREAM ? "lsilogic"
                                                         : "ide");
    if (strcmp(p->adapter, "ide") && strcmp(p->adapter, "lsilogic") &&
        strcmp(p->adapter, "buslogic") && strcmp(p->adapter, "legacyESX")) {
        return vimg_internal_error(EINVAL, "%s: invalid adapter type '%s' "
                                   "(use ide, lsilogic, buslogic or "
                                   "legacyESX)", f, p->adapter);
    }
    p->hwversion = vimg_internal_opts_get(c->opts, "hwversion", NULL);
    if (p->hwversion && !strcmp(p->hwversion, "undefined")) {
        p->hwversion = NULL;
    }
    if ((r = vimg_internal_opts_get_bool(c->opts, "compat6", false,
                                         &compat6)) < 0 ||
        (r = vimg_internal_opts_get_bool(c->opts, "zeroed_grain", false,
                                         &p->zeroed_grain)) < 0) {
        return r;
    }
    if (compat6 && p->hwversion) {
        return vimg_internal_error(EINVAL, "%s: compat6 cannot be enabled "
                                   "with hwversion set", f);
    }
    p->hwversion = compat6 ? "6" : p->hwversion ? p->hwversion : "4";
    p->toolsversion = vimg_internal_opts_get(c->opts, "toolsversion",
                                             "2147483647");
    if (!safe_value(p->hwversion) || !safe_value(p->toolsversion)) {
        return vimg_internal_error(EINVAL, "%s: hwversion and toolsversion "
                                   "take letters, digits, '.', '-' and "
                                   "'_'", f);
    }
    if (p->flat && c->backing_file) {
        return vimg_internal_error(ENOTSUP, "%s: Flat image can't have "
                                   "backing file", f);
    }
    if (p->flat && p->zeroed_grain) {
        return vimg_internal_error(ENOTSUP, "%s: Flat image can't enable "
                                   "zeroed grain", f);
    }
    if (c->backing_format && strcmp(c->backing_format, "vmdk")) {
        return vimg_internal_error(EINVAL, "%s: backing_file must be a vmdk "
                                   "image", f);
    }
    if (strchr(c->backing_file ? c->backing_file : "", '"') ||
        strchr(c->backing_file ? c->backing_file : "", '\n')) {
        return vimg_internal_error(EINVAL, "%s: the backing file name cannot "
                                   "hold quotes or newlines", f);
    }
    /* Extent files are named after the image: disk.vmdk, disk-s001.vmdk,
     * disk-flat.vmdk (QEMU's filename_decompose). */
    const char *base = strrchr(f, '/');
    base = base ? base + 1 : f;
    const char *dot = strrchr(base, '.');
    p->prefix = strndup(base, dot ? (size_t)(dot - base) : strlen(base));
    p->postfix = strdup(dot ? dot : "");
    if (!p->prefix || !p->postfix) {
        return vimg_internal_error(ENOMEM, "out of memory");
    }
    return 0;
}

/* The parent's CID, read from the parent itself (QEMU does the same). */
static int parent_cid(struct plan *p)
{
    const struct vimg_create_ctx *c = p->c;
    struct vimg_image probe = { .filename = (char *)c->filename };
    char *path = NULL;
    int r;

    p->parent_cid = 0xffffffffu;
    if (!c->backing_file) {
        return 0;
    }
    if ((r = vimg_internal_resolve_reference(&probe, c->backing_file,
                                             &path)) < 0) {
        return r;
    }
    struct vimg_open_params op = { .flags = VIMG_OPEN_NO_BACKING |
                                            VIMG_OPEN_FORCE_SHARE,
                                   .refs = VIMG_REFS_NEVER };
    struct vimg_image *b = vimg_open(path, &op);
    free(path);
    if (!b) {
        return -vimg_get_errno();
    }
    const struct vimg_driver *drv = b->drv;
    p->parent_cid = drv == &vimg_driver_vmdk ? vmdk_state(b)->desc.cid : 0;
    vimg_internal_close(b);
    if (drv != &vimg_driver_vmdk) {
        return vimg_internal_error(EINVAL, "%s: Invalid backing file format: "
                                   "%s. Must be vmdk", c->filename,
                                   drv->name);
    }
    return 0;
}

/* ---- Create ----------------------------------------------------------- */

static int make_extent(struct plan *p, int idx, uint64_t bytes,
                       char **line_out)
{
    char *name = extent_name(p, idx);
    struct vimg_image *f = NULL;
    int r;

    if (!name) {
        return vimg_internal_error(ENOMEM, "out of memory");
    }
    /* Made through the target: unseen until the image is committed, and
     * gone if it is not. */
    if ((r = vimg_internal_create_file(p->c, name, p->no_flush, &f)) < 0) {
        free(name);
        return r;
    }
    r = p->flat ? vimg_internal_truncate(f, bytes, 0, VIMG_PREALLOC_OFF)
                : init_sparse(f, bytes, p->zeroed_grain);
    int r2 = vimg_internal_close(f);
    if (r == 0) {
        r = r2;
    }
    char *line = NULL;
    if (r == 0 &&
        asprintf(&line, p->flat ? "RW %llu FLAT \"%s\" 0\n"
                                : "RW %llu SPARSE \"%s\"\n",
                 (unsigned long long)(bytes / VMDK_SECTOR), name) < 0) {
        r = vimg_internal_error(ENOMEM, "out of memory");
    }
    *line_out = line;
    free(name);
    return r;
}

static int append(char **all, const char *line)
{
    size_t n = *all ? strlen(*all) : 0;
    char *s = realloc(*all, n + strlen(line) + 1);
    if (!s) {
        return vimg_internal_error(ENOMEM, "out of memory");
    }
    strcpy(s + n, line);
    *all = s;
    return 0;
}

static int create_files(struct vimg_image *file, struct plan *p)
{
    const struct vimg_create_ctx *c = p->c;
    uint64_t size = ROUND_UP(c->size, VMDK_SECTOR);
    char *extents = NULL, *desc = NULL, *self = extent_name(p, 0);
    int r = 0;

    if (!self) {
        return vimg_internal_error(ENOMEM, "out of memory");
    }
    if (p->sub == MONO_SPARSE || p->sub == STREAM) {
        char *line = NULL;
        r = p->sub == STREAM ? init_stream(file, size)
                             : init_sparse(file, size, p->zeroed_grain);
        if (r == 0 && p->sub == MONO_SPARSE &&
            asprintf(&line, "RW %llu SPARSE \"%s\"\n",
                     (unsigned long long)(size / VMDK_SECTOR), self) < 0) {
            r = vimg_internal_error(ENOMEM, "out of memory");
        }
        if (r == 0) {
            desc = p->sub == STREAM ? stream_descriptor(p, self)
                                    : qemu_descriptor(p, line);
        }
        free(line);
    } else {
        uint64_t chunk = p->split ? SPLIT_BYTES : size;
        for (uint64_t done = 0, idx = 1; r == 0 && done < size; idx++) {
            uint64_t n = MIN(chunk, size - done);
            char *line = NULL;
            if ((r = make_extent(p, (int)idx, n, &line)) == 0) {
                r = append(&extents, line);
            }
            free(line);
            done += n;
        }
        if (r == 0 && size == 0) {
            r = vimg_internal_error(EINVAL, "%s: a %s image needs a size "
                                    "above zero", c->filename,
                                    subformats[p->sub]);
        }
        if (r == 0) {
            desc = qemu_descriptor(p, extents);
        }
    }
    if (r == 0 && !desc) {
        r = vimg_internal_error(ENOMEM, "out of memory");
    }
    if (r == 0) {
        uint64_t at = p->sub == MONO_SPARSE || p->sub == STREAM
                          ? DESC_SECTOR * VMDK_SECTOR : 0;
        r = vimg_internal_pwrite(file, desc, strlen(desc), at, 0);
    }
    free(self);
    free(extents);
    free(desc);
    return r;
}

int vmdk_create(struct vimg_image *file, const struct vimg_create_ctx *c)
{
    struct plan p = { .c = c,
                      .no_flush = file->params.flags & VIMG_OPEN_NO_FLUSH };
    int r;

    if ((r = parse_plan(&p)) == 0 && (r = parent_cid(&p)) == 0) {
        r = create_files(file, &p);
    }
    free(p.prefix);
    free(p.postfix);
    return r;
}
