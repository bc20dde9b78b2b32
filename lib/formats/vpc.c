/* The VHD format, QEMU's "vpc" (Microsoft's "Virtual Hard Disk Image
 * Format Specification" 1.0): fixed disks (the guest's bytes, then a
 * 512-byte footer) and dynamic disks (a footer copy, the dynamic header,
 * the block allocation table, then blocks of a sector bitmap and data, and
 * the footer at the end), and differencing disks (a dynamic disk whose
 * sector bitmaps say which sectors are the parent's; read-only, the parent
 * opened by the core as the backing image). The virtual size
 * comes from the CHS geometry or from the footer's current size, chosen by
 * the creator application exactly as QEMU 7.2's block/vpc.c chooses, and
 * new images are laid out as qemu-img lays them out. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "../../common/checked-overflow.h"
#include "../../common/rounding.h"
#include "../../common/utf16.h"
#include "../../common/uuid.h"
#include "../internal.h"
#include "parent-path.h"
#include "vpc-ondisk.h"

/* The largest virtual size QEMU accepts (2040 GiB, in sectors): beyond it
 * the 32-bit sector numbers in the BAT cannot reach every block. */
#define VPC_MAX_SECTORS 0xff000000ull
/* Largest block accepted. Real images use 2 MiB (512 KiB for some
 * tools); the cap bounds the bitmap written per block to 64 KiB. */
#define VPC_MAX_BLOCK_SIZE (256u << 20)
/* Most BAT entries read: 16 Mi entries (a 64 MiB table) map the largest
 * disk with 128 KiB blocks. More only lets a header make us allocate
 * GiBs. */
#define VPC_MAX_BAT_ENTRIES (16u << 20)
/* Bytes of one parent locator read: a Windows path is at most 32 Ki
 * UTF-16 units; more only costs memory. */
#define VPC_MAX_LOCATOR (64u << 10)
/* The block size qemu-img creates (it has no option for another). */
#define VPC_CREATE_BLOCK_SIZE (2u << 20)
/* Offsets of a new dynamic disk's structures, as qemu-img writes them. */
#define VPC_CREATE_DYN_OFFSET 512u
#define VPC_CREATE_BAT_OFFSET 1536u

struct vpc_state {
    uint8_t footer[VPC_FOOTER_SIZE]; /* as on disk, with a valid checksum */
    bool fixed;
    uint32_t block_size;
    uint32_t bitmap_size;            /* bytes of sector bitmap per block */
    uint32_t bat_entries;
    uint32_t *bat;                   /* host order */
    uint64_t bat_offset;
    uint64_t free_offset;            /* where the next block goes */
    uint8_t *bitmap;                 /* all ones, for new blocks */
    bool differencing;               /* sectors may be the parent's */
    uint8_t parent_id[16];           /* the parent footer's unique id */
};

static struct vpc_state *vpc_state(struct vimg_image *img)
{
    return img->opaque;
}

/* One's complement of the byte sum, the checksum field (at CSUM_OFF)
 * counted as zero. */
static uint32_t vpc_checksum(const uint8_t *buf, size_t len, size_t csum_off)
{
    uint32_t sum = 0;

    for (size_t i = 0; i < len; i++) {
        if (i < csum_off || i >= csum_off + 4) {
            sum += buf[i];
        }
    }
    return ~sum;
}

static bool footer_checksum_ok(const uint8_t *f)
{
    return vpc_checksum(f, VPC_FOOTER_SIZE, VPC_FTR_CHECKSUM) ==
           load_be32(f + VPC_FTR_CHECKSUM);
}

/* ---- Geometry and sizes (QEMU 7.2 block/vpc.c) ------------------------ */

/* The specification's CHS algorithm, with QEMU's clamp to the largest
 * geometry. It may round TOTAL down. */
static void chs_for_sectors(uint64_t total, uint16_t *cyls, uint8_t *heads,
                            uint8_t *spt)
{
    uint64_t cth;

    total = MIN(total, VPC_MAX_GEOMETRY);
    if (total >= 65535ull * 16 * 63) {
        *spt = 255;
        *heads = 16;
        cth = total / *spt;
    } else {
        *spt = 17;
        cth = total / *spt;
        *heads = (uint8_t)MAX(DIV_ROUND_UP(cth, 1024), 4);
        if (cth >= *heads * 1024u || *heads > 16) {
            *spt = 31;
            *heads = 16;
            cth = total / *spt;
        }
        if (cth >= *heads * 1024u) {
            *spt = 63;
            *heads = 16;
            cth = total / *spt;
        }
    }
    *cyls = (uint16_t)(cth / *heads);
}

/* The geometry and sector count of a new image of SIZE bytes (a multiple
 * of 512). Without FORCE_SIZE the size grows to the first geometry that
 * holds it; sizes past the largest geometry (and FORCE_SIZE images) carry
 * the largest geometry, which tells readers to use the footer's size. */
static int create_geometry(const char *filename, uint64_t size,
                           bool force_size, uint16_t *cyls, uint8_t *heads,
                           uint8_t *spt, uint64_t *sectors)
{
    uint64_t want = size / VPC_SECTOR;

    *cyls = 0;
    *heads = 0;
    *spt = 0;
    if (force_size) {
        *cyls = VPC_CHS_MAX_C;
        *heads = VPC_CHS_MAX_H;
        *spt = VPC_CHS_MAX_S;
    } else {
        uint64_t target = MIN(VPC_MAX_GEOMETRY, want);
        for (uint64_t i = 0; target > (uint64_t)*cyls * *heads * *spt; i++) {
            chs_for_sectors(target + i, cyls, heads, spt);
        }
    }
    if ((uint64_t)*cyls * *heads * *spt == VPC_MAX_GEOMETRY) {
        if (want > VPC_MAX_SECTORS) {
            return vimg_internal_error(EFBIG, "%s: disk size is too large, "
                                       "max size is 2040 GiB", filename);
        }
        *sectors = want;
    } else {
        *sectors = (uint64_t)*cyls * *heads * *spt;
    }
    return 0;
}

/* Virtual PC and QEMU before the "qem2" creator sized disks by their
 * geometry; Hyper-V, disk2vhd, XenServer, XenConverter and qemu-img with
 * force_size by the footer's current size. */
static bool creator_uses_current_size(const uint8_t *f)
{
    static const char apps[][4] = { "win ", "qem2", "d2v ", "CTXS",
                                    { 't', 'a', 'p', 0 } };
    for (size_t i = 0; i < sizeof apps / sizeof apps[0]; i++) {
        if (memcmp(f + VPC_FTR_CREATOR_APP, apps[i], 4) == 0) {
            return true;
        }
    }
    return false;
}

enum size_calc { SIZE_AUTO, SIZE_CHS, SIZE_CURRENT };

static uint64_t footer_sectors(const uint8_t *f, enum size_calc calc)
{
    uint64_t chs = (uint64_t)load_be16(f + VPC_FTR_CYLINDERS) *
                   f[VPC_FTR_HEADS] * f[VPC_FTR_SECTORS];
    bool use_chs = !creator_uses_current_size(f) || calc == SIZE_CHS;

    if (!use_chs || chs == VPC_MAX_GEOMETRY || calc == SIZE_CURRENT) {
        return load_be64(f + VPC_FTR_CURRENT_SIZE) / VPC_SECTOR;
    }
    return chs;
}

/* ---- Probing ----------------------------------------------------------- */

static int vpc_probe(const uint8_t *buf, size_t len, const char *filename)
{
    (void)filename;
    return len >= 8 && memcmp(buf, VPC_COOKIE, 8) == 0 ? 100 : 0;
}

/* A fixed VHD has no header, only a footer in its last sector, which any
 * raw disk's guest could write. So the footer counts only when it is
 * whole (checksum), says fixed, sizes the file exactly (data + footer)
 * and the file is named like a VHD. */
static int vpc_probe_tail(const uint8_t *tail, size_t len, uint64_t file_size,
                          const char *filename)
{
    const char *dot = filename ? strrchr(filename, '.') : NULL;

    if (len != VPC_FOOTER_SIZE || !dot ||
        (strcasecmp(dot, ".vhd") != 0 && strcasecmp(dot, ".vpc") != 0) ||
        memcmp(tail, VPC_COOKIE, 8) != 0 || !footer_checksum_ok(tail) ||
        load_be32(tail + VPC_FTR_DISK_TYPE) != VPC_TYPE_FIXED ||
        load_be64(tail + VPC_FTR_CURRENT_SIZE) != file_size - len) {
        return 0;
    }
    return 100;
}

/* ---- Validation -------------------------------------------------------- */

static int validate_footer(struct vimg_image *img, const uint8_t *f,
                           uint64_t at)
{
    uint32_t stored = load_be32(f + VPC_FTR_CHECKSUM);
    uint32_t computed = vpc_checksum(f, VPC_FOOTER_SIZE, VPC_FTR_CHECKSUM);

    if (memcmp(f, VPC_COOKIE, 8) != 0) {
        return vimg_internal_img_error(img, EINVAL, "no VHD footer (cookie "
                                       "'conectix') at the start or the end "
                                       "of the file");
    }
    if (stored != computed) {
        return vimg_internal_img_error(img, EINVAL, "VHD footer at 0x%llx "
                                       "has checksum 0x%08x, expected 0x%08x",
                                       (unsigned long long)at, stored,
                                       computed);
    }
    return 0;
}

static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    return a < b + blen && b < a + alen;
}

/* The path parent locator L (an entry of dynamic header H) holds,
 * converted for the open policy, or NULL (with *ERR 0) when it has none
 * usable here. */
static char *read_locator(struct vimg_image *img, const uint8_t *l,
                          uint64_t file_size, int *err)
{
    uint32_t code = load_be32(l + VPC_PL_PLATFORM_CODE);
    uint32_t len = load_be32(l + VPC_PL_DATA_LENGTH);
    uint64_t at = load_be64(l + VPC_PL_DATA_OFFSET);
    bool utf16 = code == VPC_PLATFORM_W2RU || code == VPC_PLATFORM_W2KU;
    char *text, *path = NULL;
    uint8_t *raw;

    *err = 0;
    if (!utf16 && code != VPC_PLATFORM_MACX) {
        return NULL; /* none, Mac OS aliases, or the old Wi2r/Wi2k */
    }
    if (len == 0 || len > VPC_MAX_LOCATOR || range_outside(at, len,
                                                           file_size)) {
        *err = vimg_internal_img_error(img, EINVAL, "parent locator of "
                                       "%u bytes at 0x%llx lies outside "
                                       "the file or is too long", len,
                                       (unsigned long long)at);
        return NULL;
    }
    raw = malloc(len);
    text = malloc((size_t)len * 2 + 1);
    if (!raw || !text) {
        *err = vimg_internal_error(ENOMEM, "out of memory");
    } else if ((*err = vimg_internal_pread(img->file, raw, len, at)) == 0) {
        if (utf16 && utf16_to_utf8(raw, len & ~1u, false, text,
                                   (size_t)len * 2 + 1) < 0) {
            *err = vimg_internal_img_error(img, EINVAL, "parent locator at "
                                           "0x%llx is not UTF-16",
                                           (unsigned long long)at);
        } else if (!utf16) {
            memcpy(text, raw, len);
            text[len] = '\0';
        }
        if (*err == 0) {
            path = parent_path_convert(text, err);
        }
    }
    free(raw);
    free(text);
    return path;
}

/* A differencing disk's parent, from dynamic header H: the locators in
 * the order relative (W2ru), absolute (W2ku), file URL (MacX), then the
 * parent's name, which Virtual PC stores without a folder. */
static int find_parent(struct vimg_image *img, const uint8_t *h,
                       uint64_t file_size)
{
    static const uint32_t order[] = { VPC_PLATFORM_W2RU, VPC_PLATFORM_W2KU,
                                      VPC_PLATFORM_MACX };
    char *names[VPC_PL_COUNT + 1] = { NULL };
    char name[VPC_DYN_PARENT_LOCATORS - VPC_DYN_PARENT_NAME];
    size_t n = 0;
    int r = 0;

    memcpy(vpc_state(img)->parent_id, h + VPC_DYN_PARENT_UUID, 16);
    for (size_t o = 0; o < sizeof order / sizeof order[0] && r == 0; o++) {
        for (int i = 0; i < VPC_PL_COUNT && r == 0; i++) {
            const uint8_t *l = h + VPC_DYN_PARENT_LOCATORS + i * VPC_PL_SIZE;
            if (load_be32(l + VPC_PL_PLATFORM_CODE) == order[o]) {
                names[n] = read_locator(img, l, file_size, &r);
                n += names[n] != NULL;
            }
        }
    }
    /* UTF-16BE, NUL padded; 512 bytes make at most 768 of UTF-8, but the
     * name only serves when it fits a path buffer of its own size. */
    if (r == 0 && utf16_to_utf8(h + VPC_DYN_PARENT_NAME, sizeof name, true,
                                name, sizeof name) == 0) {
        names[n] = parent_path_convert(name, &r);
        n += names[n] != NULL;
    }
    if (r == 0) {
        r = parent_path_choose(img, names, n, "differencing VHD");
    }
    if (r == 0 && !(img->backing_format = strdup("vpc"))) {
        r = vimg_internal_error(ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        free(names[i]);
    }
    return r;
}

/* Read and check the dynamic header at DYN_OFFSET and the BAT it points
 * at; every size and offset is bounded before anything is allocated. */
static int open_dynamic(struct vimg_image *img, uint64_t dyn_offset,
                        uint64_t file_size)
{
    struct vpc_state *s = vpc_state(img);
    uint8_t h[VPC_DYN_SIZE];
    uint64_t bat_bytes, bat_end, needed;
    int r;

    if (dyn_offset < VPC_FOOTER_SIZE ||
        range_outside(dyn_offset, VPC_DYN_SIZE, file_size)) {
        return vimg_internal_img_error(img, EINVAL, "dynamic disk header "
                                       "offset 0x%llx lies outside the file",
                                       (unsigned long long)dyn_offset);
    }
    if ((r = vimg_internal_pread(img->file, h, sizeof h, dyn_offset)) < 0) {
        return r;
    }
    if (memcmp(h, VPC_DYN_COOKIE_STR, 8) != 0) {
        return vimg_internal_img_error(img, EINVAL, "no dynamic disk header "
                                       "(cookie 'cxsparse') at 0x%llx",
                                       (unsigned long long)dyn_offset);
    }
    uint32_t stored = load_be32(h + VPC_DYN_CHECKSUM);
    uint32_t computed = vpc_checksum(h, sizeof h, VPC_DYN_CHECKSUM);
    if (stored != computed) {
        return vimg_internal_img_error(img, EINVAL, "dynamic disk header at "
                                       "0x%llx has checksum 0x%08x, "
                                       "expected 0x%08x",
                                       (unsigned long long)dyn_offset,
                                       stored, computed);
    }
    if (s->differencing && (r = find_parent(img, h, file_size)) < 0) {
        return r;
    }
    s->block_size = load_be32(h + VPC_DYN_BLOCK_SIZE);
    s->bat_entries = load_be32(h + VPC_DYN_MAX_TABLE_ENTRIES);
    s->bat_offset = load_be64(h + VPC_DYN_TABLE_OFFSET);
    if (!is_power_of_2(s->block_size) || s->block_size < VPC_SECTOR ||
        s->block_size > VPC_MAX_BLOCK_SIZE) {
        return vimg_internal_img_error(img, EINVAL, "block size %u is not a "
                                       "power of two from 512 B to 256 MiB",
                                       s->block_size);
    }
    /* One bit per sector, in whole sectors. */
    s->bitmap_size = ROUND_UP(DIV_ROUND_UP(s->block_size / VPC_SECTOR, 8),
                              VPC_SECTOR);
    needed = DIV_ROUND_UP(img->size, s->block_size);
    if (s->bat_entries < needed) {
        return vimg_internal_img_error(img, EINVAL, "block allocation table "
                                       "(%u entries) is too small for the "
                                       "virtual size", s->bat_entries);
    }
    if (s->bat_entries > VPC_MAX_BAT_ENTRIES) {
        return vimg_internal_img_error(img, EFBIG, "block allocation table "
                                       "is too large (%u entries)",
                                       s->bat_entries);
    }
    bat_bytes = (uint64_t)s->bat_entries * 4;
    if (range_outside(s->bat_offset, bat_bytes, file_size) ||
        overlaps(s->bat_offset, bat_bytes, 0, VPC_FOOTER_SIZE) ||
        overlaps(s->bat_offset, bat_bytes, dyn_offset, VPC_DYN_SIZE)) {
        return vimg_internal_img_error(img, EINVAL, "block allocation table "
                                       "at 0x%llx lies outside the file or "
                                       "over the headers",
                                       (unsigned long long)s->bat_offset);
    }
    uint8_t *raw = malloc(bat_bytes ? bat_bytes : 1);
    s->bat = malloc(bat_bytes ? bat_bytes : 1);
    s->bitmap = malloc(s->bitmap_size);
    if (!raw || !s->bat || !s->bitmap) {
        free(raw);
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    memset(s->bitmap, 0xff, s->bitmap_size);
    if (bat_bytes &&
        (r = vimg_internal_pread(img->file, raw, bat_bytes,
                                 s->bat_offset)) < 0) {
        free(raw);
        return r;
    }
    bat_end = ROUND_UP(s->bat_offset + bat_bytes, VPC_SECTOR);
    s->free_offset = MAX(bat_end, dyn_offset + VPC_DYN_SIZE);
    uint64_t span = (uint64_t)s->bitmap_size + s->block_size;
    for (uint32_t i = 0; i < s->bat_entries; i++) {
        uint32_t e = load_be32(raw + (uint64_t)i * 4);
        uint64_t start = (uint64_t)e * VPC_SECTOR;
        s->bat[i] = e;
        if (e == VPC_BAT_UNUSED) {
            continue;
        }
        if (range_outside(start, span, file_size)) {
            free(raw);
            return vimg_internal_img_error(img, EINVAL, "block %u at 0x%llx "
                                           "lies past the end of the file "
                                           "(the image was truncated?)", i,
                                           (unsigned long long)start);
        }
        if (overlaps(start, span, 0, VPC_FOOTER_SIZE) ||
            overlaps(start, span, dyn_offset, VPC_DYN_SIZE) ||
            overlaps(start, span, s->bat_offset, bat_bytes)) {
            free(raw);
            return vimg_internal_img_error(img, EINVAL, "block %u at 0x%llx "
                                           "overlaps the VHD headers or "
                                           "the block allocation table", i,
                                           (unsigned long long)start);
        }
        s->free_offset = MAX(s->free_offset, start + span);
    }
    free(raw);
    return 0;
}

/* ---- Open and close ---------------------------------------------------- */

static const struct vimg_opt_desc vpc_runtime_opts[] = {
    { "force_size_calc", VIMG_OPT_STRING,
      "Force disk size calculation to use either CHS geometry, or use the "
      "disk current_size specified in the VHD footer. {chs, current_size}" },
    { NULL, 0, NULL },
};

static void free_state(struct vpc_state *s)
{
    free(s->bat);
    free(s->bitmap);
    memset(s, 0, sizeof *s);
}

static int vpc_open(struct vimg_image *img, const struct vimg_opts *opts)
{
    struct vpc_state *s = vpc_state(img);
    uint64_t file_size = (uint64_t)vimg_internal_get_size(img->file);
    uint64_t footer_at = 0, sectors;
    const char *calc_name = vimg_internal_opts_get(opts, "force_size_calc",
                                                   NULL);
    enum size_calc calc = SIZE_AUTO;
    uint32_t type;
    int r;

    if (calc_name && strcmp(calc_name, "chs") == 0) {
        calc = SIZE_CHS;
    } else if (calc_name && strcmp(calc_name, "current_size") == 0) {
        calc = SIZE_CURRENT;
    } else if (calc_name) {
        return vimg_internal_img_error(img, EINVAL, "invalid size "
                                       "calculation mode: '%s'", calc_name);
    }
    if (file_size < VPC_FOOTER_SIZE) {
        return vimg_internal_img_error(img, EINVAL, "file too small for a "
                                       "VHD footer");
    }
    /* Dynamic disks start with a copy of the footer; fixed disks have it
     * only at the end. */
    if ((r = vimg_internal_pread(img->file, s->footer, VPC_FOOTER_SIZE,
                                 0)) < 0) {
        return r;
    }
    if (memcmp(s->footer, VPC_COOKIE, 8) != 0) {
        footer_at = file_size - VPC_FOOTER_SIZE;
        if ((r = vimg_internal_pread(img->file, s->footer, VPC_FOOTER_SIZE,
                                     footer_at)) < 0) {
            return r;
        }
    }
    if ((r = validate_footer(img, s->footer, footer_at)) < 0) {
        return r;
    }
    type = load_be32(s->footer + VPC_FTR_DISK_TYPE);
    s->differencing = type == VPC_TYPE_DIFFERENCING;
    if (s->differencing && img->writable) {
        return vimg_internal_img_error(img, ENOTSUP, "differencing VHD "
                                       "images (with a parent) can only be "
                                       "opened read-only");
    }
    if (footer_at == 0 ? type != VPC_TYPE_DYNAMIC && !s->differencing
                       : type != VPC_TYPE_FIXED) {
        return vimg_internal_img_error(img, EINVAL, "VHD footer at 0x%llx "
                                       "has disk type %u, which does not "
                                       "match its place",
                                       (unsigned long long)footer_at, type);
    }
    sectors = footer_sectors(s->footer, calc);
    if (sectors > VPC_MAX_SECTORS) {
        return vimg_internal_img_error(img, EFBIG, "virtual size of %llu "
                                       "sectors exceeds 2040 GiB",
                                       (unsigned long long)sectors);
    }
    img->size = sectors * VPC_SECTOR;
    s->fixed = type == VPC_TYPE_FIXED;
    if (s->fixed) {
        /* Guest writes must never reach the footer. */
        if (img->size > footer_at) {
            return vimg_internal_img_error(img, EINVAL, "virtual size %llu "
                                           "runs into the footer at 0x%llx",
                                           (unsigned long long)img->size,
                                           (unsigned long long)footer_at);
        }
        return 0;
    }
    r = open_dynamic(img, load_be64(s->footer + VPC_FTR_DATA_OFFSET),
                     file_size);
    if (r < 0) {
        free_state(s);
    }
    return r;
}

static int vpc_close(struct vimg_image *img)
{
    free_state(vpc_state(img));
    return 0;
}

/* ---- Data path --------------------------------------------------------- */

/* The file offset of guest OFFSET in an allocated block, or 0 when its
 * block is not allocated; *N is how far the same block reaches (at most
 * COUNT). */
static uint64_t block_map(struct vpc_state *s, uint64_t offset,
                          uint64_t count, uint64_t *n)
{
    uint64_t idx = offset / s->block_size;
    uint64_t in = offset % s->block_size;

    *n = MIN(count, s->block_size - in);
    if (idx >= s->bat_entries || s->bat[idx] == VPC_BAT_UNUSED) {
        return 0;
    }
    return (uint64_t)s->bat[idx] * VPC_SECTOR + s->bitmap_size + in;
}

enum run { RUN_DATA, RUN_ZERO, RUN_PARENT };

/* From guest OFFSET of a dynamic or differencing disk, *N bytes (at most
 * COUNT, inside one block) read as RUN_DATA at file offset *AT, RUN_ZERO
 * or RUN_PARENT. Returns the kind or -errno. */
static int classify(struct vimg_image *img, uint64_t offset, uint64_t count,
                    uint64_t *n, uint64_t *at)
{
    struct vpc_state *s = vpc_state(img);
    uint8_t bits[512];

    *at = block_map(s, offset, count, n);
    if (!*at) {
        return s->differencing ? RUN_PARENT : RUN_ZERO;
    }
    if (!s->differencing) {
        return RUN_DATA;
    }
    /* The block's bitmap, most significant bit first: a set bit is a
     * sector of this file. Read only the part this request needs. */
    uint64_t in = offset % s->block_size, first = in / VPC_SECTOR;
    uint64_t last = DIV_ROUND_UP(in + *n, VPC_SECTOR);
    uint64_t base = first - first % 8;
    uint64_t bytes = MIN(DIV_ROUND_UP(last - base, 8), sizeof bits);
    uint64_t map = (uint64_t)s->bat[offset / s->block_size] * VPC_SECTOR;
    int r = vimg_internal_pread(img->file, bits, bytes, map + base / 8);
    if (r < 0) {
        return r;
    }
    uint64_t end = MIN(last, base + bytes * 8), i = first;
    bool present = bits[0] >> (7 - first % 8) & 1;
    while (i < end &&
           (bool)(bits[(i - base) / 8] >> (7 - (i - base) % 8) & 1) ==
               present) {
        i++;
    }
    *n = MIN(*n, i * VPC_SECTOR - in);
    return present ? RUN_DATA : RUN_PARENT;
}

static int vpc_pread(struct vimg_image *img, void *buf, uint64_t count,
                     uint64_t offset)
{
    struct vpc_state *s = vpc_state(img);
    uint8_t *p = buf;

    if (s->fixed) {
        return vimg_internal_pread(img->file, buf, count, offset);
    }
    while (count > 0) {
        uint64_t n, at;
        int r, kind = classify(img, offset, count, &n, &at);
        if (kind < 0) {
            return kind;
        }
        if (kind == RUN_DATA) {
            r = vimg_internal_pread(img->file, p, n, at);
        } else if (kind == RUN_PARENT) {
            r = vimg_internal_read_backing(img, p, n, offset);
        } else {
            memset(p, 0, n);
            r = 0;
        }
        if (r < 0) {
            return r;
        }
        p += n;
        offset += n;
        count -= n;
    }
    return 0;
}

/* Append block IDX at the end of the file: its bitmap (every sector
 * marked present, as QEMU does), zeros where old bytes lie, the footer
 * after it, and only then, once those are on disk, the BAT entry. */
static int alloc_block(struct vimg_image *img, uint64_t idx)
{
    struct vpc_state *s = vpc_state(img);
    uint64_t start = s->free_offset;
    uint64_t data = start + s->bitmap_size;
    uint64_t end = data + s->block_size;
    uint64_t file_size = (uint64_t)vimg_internal_get_size(img->file);
    uint8_t entry[4];
    int r;

    if (start / VPC_SECTOR >= VPC_BAT_UNUSED) {
        return vimg_internal_img_error(img, EFBIG, "no room for another "
                                       "block: BAT entries cannot point "
                                       "past 2 TiB");
    }
    if ((r = vimg_internal_pwrite(img->file, s->bitmap, s->bitmap_size,
                                  start, 0)) < 0) {
        return r;
    }
    if (file_size > data &&
        (r = vimg_internal_zero(img->file, data, MIN(end, file_size) - data,
                                0)) < 0) {
        return r;
    }
    store_be32(entry, (uint32_t)(start / VPC_SECTOR));
    if ((r = vimg_internal_pwrite(img->file, s->footer, VPC_FOOTER_SIZE, end,
                                  0)) < 0 ||
        (r = vimg_internal_flush(img->file)) < 0 ||
        (r = vimg_internal_pwrite(img->file, entry, 4,
                                  s->bat_offset + idx * 4, 0)) < 0) {
        return r;
    }
    s->bat[idx] = (uint32_t)(start / VPC_SECTOR);
    s->free_offset = end;
    return 0;
}

static int vpc_pwrite(struct vimg_image *img, const void *buf, uint64_t count,
                      uint64_t offset, unsigned flags)
{
    struct vpc_state *s = vpc_state(img);
    const uint8_t *p = buf;
    int r;

    if (s->fixed) {
        return vimg_internal_pwrite(img->file, buf, count, offset, flags);
    }
    while (count > 0) {
        uint64_t n, at = block_map(s, offset, count, &n);
        if (!at) {
            if ((r = alloc_block(img, offset / s->block_size)) < 0) {
                return r;
            }
            at = block_map(s, offset, count, &n);
        }
        if ((r = vimg_internal_pwrite(img->file, p, n, at, flags)) < 0) {
            return r;
        }
        p += n;
        offset += n;
        count -= n;
    }
    return 0;
}

/* Unallocated blocks already read as zeros: only allocated ones are
 * written, so zeroing never grows a dynamic disk. */
static int vpc_zero(struct vimg_image *img, uint64_t offset, uint64_t count,
                    unsigned flags)
{
    struct vpc_state *s = vpc_state(img);

    if (s->fixed) {
        return vimg_internal_zero(img->file, offset, count, flags);
    }
    while (count > 0) {
        uint64_t n, at = block_map(s, offset, count, &n);
        if (at) {
            int r = vimg_internal_zero(img->file, at, n, flags);
            if (r < 0) {
                return r;
            }
        }
        offset += n;
        count -= n;
    }
    return 0;
}

/* As QEMU reports them: a fixed disk is data where its file is (zero in
 * the file's holes); a dynamic disk's unallocated blocks read as zeros
 * and are this layer's answer, and its blocks are data. */
static int vpc_block_status(struct vimg_image *img, uint64_t offset,
                            uint64_t count, uint64_t *pnum, uint64_t *map,
                            const char **file)
{
    struct vpc_state *s = vpc_state(img);
    uint64_t n, at;

    if (s->fixed) {
        struct vimg_extent e;
        int r = vimg_internal_block_status(img->file, offset, count, 0, &e);
        if (r < 0) {
            return r;
        }
        *pnum = e.length;
        *map = offset;
        *file = img->file->filename;
        return (int)((e.flags & VIMG_BS_ZERO) | VIMG_BS_DATA |
                     VIMG_BS_ALLOCATED | VIMG_BS_OFFSET_VALID);
    }
    int kind = classify(img, offset, count, &n, &at);
    if (kind < 0) {
        return kind;
    }
    *pnum = n;
    if (kind == RUN_DATA) {
        *map = at;
        *file = img->file->filename;
        return VIMG_BS_DATA | VIMG_BS_ALLOCATED | VIMG_BS_OFFSET_VALID;
    }
    while (*pnum < count) {
        uint64_t next;
        int k = classify(img, offset + *pnum, count - *pnum, &n, &next);
        if (k < 0) {
            return k;
        }
        if (k != kind) {
            break;
        }
        *pnum += n;
    }
    /* A differencing disk's unallocated sectors are the parent's (0). */
    return kind == RUN_ZERO ? VIMG_BS_ZERO | VIMG_BS_ALLOCATED : 0;
}

/* The parent must be the disk this one was made from: its footer's unique
 * id is the one the dynamic header records (the specification's check;
 * the time stamp beside it changes with every copy, so it is not). */
static int vpc_backing_opened(struct vimg_image *img)
{
    struct vpc_state *s = vpc_state(img);
    const uint8_t *id;

    if (img->backing->drv != &vimg_driver_vpc) {
        return 0;
    }
    id = vpc_state(img->backing)->footer + VPC_FTR_UNIQUE_ID;
    if (memcmp(id, s->parent_id, 16) != 0) {
        return vimg_internal_img_error(img, EINVAL, "parent '%s' has unique "
                                       "id %02x%02x%02x%02x..., not the "
                                       "%02x%02x%02x%02x... this image was "
                                       "made from", img->backing_name, id[0],
                                       id[1], id[2], id[3], s->parent_id[0],
                                       s->parent_id[1], s->parent_id[2],
                                       s->parent_id[3]);
    }
    return 0;
}

static int vpc_get_info(struct vimg_image *img, struct vimg_value *info)
{
    struct vpc_state *s = vpc_state(img);

    if (s->fixed) {
        return 0;
    }
    return vimg_internal_value_set_int(info, "cluster-size", s->block_size);
}

/* ---- Create ------------------------------------------------------------ */

static const struct vimg_opt_desc vpc_create_opts[] = {
    { "size", VIMG_OPT_SIZE, "Virtual disk size" },
    { "subformat", VIMG_OPT_STRING,
      "Type of virtual hard disk format. Supported formats are "
      "{dynamic (default) | fixed} " },
    { "force_size", VIMG_OPT_BOOL,
      "Force disk size calculation to use the actual size specified, "
      "rather than using the nearest CHS-based calculation" },
    { NULL, 0, NULL },
};

static int build_footer(const char *filename, uint8_t *f, uint64_t size,
                        bool fixed, bool force_size, uint16_t cyls,
                        uint8_t heads, uint8_t spt)
{
    time_t now = time(NULL);
    int r;

    memset(f, 0, VPC_FOOTER_SIZE);
    memcpy(f + VPC_FTR_COOKIE, VPC_COOKIE, 8);
    store_be32(f + VPC_FTR_FEATURES, VPC_FEATURES_RESERVED);
    store_be32(f + VPC_FTR_VERSION, VPC_VERSION_1_0);
    store_be64(f + VPC_FTR_DATA_OFFSET,
               fixed ? VPC_NO_DATA_OFFSET : VPC_CREATE_DYN_OFFSET);
    store_be32(f + VPC_FTR_TIMESTAMP,
               (uint32_t)(now - VPC_TIMESTAMP_BASE));
    /* Readers (QEMU among them) size a disk by its geometry or by its
     * current size according to this field: qemu-img's two values keep
     * vimg's images read at the size they were made. */
    memcpy(f + VPC_FTR_CREATOR_APP, force_size ? "qem2" : "qemu", 4);
    store_be32(f + VPC_FTR_CREATOR_VERSION, 0x00050003); /* Virtual PC 2007 */
    memcpy(f + VPC_FTR_CREATOR_OS, "Wi2k", 4);
    store_be64(f + VPC_FTR_ORIGINAL_SIZE, size);
    store_be64(f + VPC_FTR_CURRENT_SIZE, size);
    store_be16(f + VPC_FTR_CYLINDERS, cyls);
    f[VPC_FTR_HEADS] = heads;
    f[VPC_FTR_SECTORS] = spt;
    store_be32(f + VPC_FTR_DISK_TYPE,
               fixed ? VPC_TYPE_FIXED : VPC_TYPE_DYNAMIC);
    if ((r = uuid_generate_v4(f + VPC_FTR_UNIQUE_ID)) < 0) {
        return vimg_internal_error(-r, "%s: no random bytes for the disk "
                                   "identifier", filename);
    }
    store_be32(f + VPC_FTR_CHECKSUM,
               vpc_checksum(f, VPC_FOOTER_SIZE, VPC_FTR_CHECKSUM));
    return 0;
}

static int create_dynamic(struct vimg_image *file, const uint8_t *footer,
                          uint64_t sectors)
{
    uint64_t entries = DIV_ROUND_UP(sectors,
                                    VPC_CREATE_BLOCK_SIZE / VPC_SECTOR);
    uint64_t bat_bytes = ROUND_UP(entries * 4, VPC_SECTOR);
    uint8_t h[VPC_DYN_SIZE];
    uint8_t chunk[65536];
    int r;

    memset(h, 0, sizeof h);
    memcpy(h + VPC_DYN_COOKIE, VPC_DYN_COOKIE_STR, 8);
    /* The specification says 0xFFFFFFFF; Microsoft's tools want all 64
     * bits set, as QEMU writes it. */
    store_be64(h + VPC_DYN_DATA_OFFSET, UINT64_MAX);
    store_be64(h + VPC_DYN_TABLE_OFFSET, VPC_CREATE_BAT_OFFSET);
    store_be32(h + VPC_DYN_VERSION, VPC_VERSION_1_0);
    store_be32(h + VPC_DYN_MAX_TABLE_ENTRIES, (uint32_t)entries);
    store_be32(h + VPC_DYN_BLOCK_SIZE, VPC_CREATE_BLOCK_SIZE);
    store_be32(h + VPC_DYN_CHECKSUM,
               vpc_checksum(h, sizeof h, VPC_DYN_CHECKSUM));
    if ((r = vimg_internal_pwrite(file, footer, VPC_FOOTER_SIZE, 0, 0)) < 0 ||
        (r = vimg_internal_pwrite(file, h, sizeof h, VPC_CREATE_DYN_OFFSET,
                                  0)) < 0) {
        return r;
    }
    memset(chunk, 0xff, sizeof chunk);
    for (uint64_t done = 0; done < bat_bytes;) {
        uint64_t n = MIN(sizeof chunk, bat_bytes - done);
        if ((r = vimg_internal_pwrite(file, chunk, n,
                                      VPC_CREATE_BAT_OFFSET + done, 0)) < 0) {
            return r;
        }
        done += n;
    }
    return vimg_internal_pwrite(file, footer, VPC_FOOTER_SIZE,
                                VPC_CREATE_BAT_OFFSET + bat_bytes, 0);
}

static int vpc_create(struct vimg_image *file, const struct vimg_create_ctx *c)
{
    const char *sub = vimg_internal_opts_get(c->opts, "subformat", "dynamic");
    uint8_t footer[VPC_FOOTER_SIZE];
    uint64_t size = ROUND_UP(c->size, VPC_SECTOR), sectors = 0;
    bool force_size, fixed;
    uint16_t cyls;
    uint8_t heads, spt;
    int r;

    if ((r = vimg_internal_opts_get_bool(c->opts, "force_size", false,
                                         &force_size)) < 0) {
        return r;
    }
    if (strcmp(sub, "dynamic") != 0 && strcmp(sub, "fixed") != 0) {
        return vimg_internal_error(EINVAL, "%s: invalid subformat '%s' "
                                   "(dynamic or fixed)", c->filename, sub);
    }
    fixed = strcmp(sub, "fixed") == 0;
    if ((r = create_geometry(c->filename, size, force_size, &cyls, &heads,
                             &spt, &sectors)) < 0) {
        return r;
    }
    /* Without force_size the disk is as large as its geometry. */
    if (!force_size) {
        size = sectors * VPC_SECTOR;
    }
    if ((r = build_footer(c->filename, footer, size, fixed, force_size, cyls,
                          heads, spt)) < 0) {
        return r;
    }
    if (!fixed) {
        return create_dynamic(file, footer, sectors);
    }
    if ((r = vimg_internal_truncate(file, size + VPC_FOOTER_SIZE, 0,
                                    VIMG_PREALLOC_OFF)) < 0) {
        return r;
    }
    return vimg_internal_pwrite(file, footer, VPC_FOOTER_SIZE, size, 0);
}

const struct vimg_driver vimg_driver_vpc = {
    .name = "vpc",
    .kind = VIMG_DRIVER_FORMAT,
    .instance_size = sizeof(struct vpc_state),
    .thread_safe = false,
    .has_zero_init = true,
    .create_opts = vpc_create_opts,
    .runtime_opts = vpc_runtime_opts,
    .probe = vpc_probe,
    .probe_tail = vpc_probe_tail,
    .open = vpc_open,
    .close = vpc_close,
    .create = vpc_create,
    .pread = vpc_pread,
    .pwrite = vpc_pwrite,
    .zero = vpc_zero,
    .block_status = vpc_block_status,
    .backing_opened = vpc_backing_opened,
    .get_info = vpc_get_info,
};
