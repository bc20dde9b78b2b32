/* ESXi seSparse extents, read-only. VMware has not published the format;
 * the layout is the one QEMU's vmdk_open_se_sparse reads (constant and
 * volatile headers, a grain directory of 64-bit entries naming grain
 * tables in the table area, tables of 4096 64-bit entries whose top nibble
 * says whether a grain is unallocated, zero or allocated in the grain
 * area). As QEMU, everything it does not understand is refused: other
 * versions, grain or table sizes, flags, a journal waiting to be
 * replayed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../../common/checked-overflow.h"
#include "../../../common/iszero.h"
#include "../../../common/rounding.h"
#include "vmdk.h"

/* seSparse disks are below 64 TiB (VMware's limit; QEMU sizes its caps
 * for it): 2^37 sectors, so at most 4 Mi grain tables of 16 MiB each.
 * The directory is held as 32-bit table numbers: 16 MiB at most, and read
 * in chunks of SE_GD_CHUNK bytes. */
#define SE_MAX_CAPACITY (1ull << 37)
#define SE_GTES (SE_GT_SECTORS * VMDK_SECTOR / 8)
#define SE_GRAIN_BYTES (SE_GRAIN_SECTORS * VMDK_SECTOR)
#define SE_GT_BYTES (SE_GT_SECTORS * VMDK_SECTOR)
#define SE_GD_CHUNK 65536

struct vmdk_se {
    uint64_t capacity;         /* sectors */
    uint64_t gt_offset;        /* bytes: the grain table area */
    uint64_t grains_offset;    /* bytes: the grain area */
    uint64_t file_size;
    uint32_t gd_entries;
    uint32_t *gd;              /* table number + 1; 0: no table */
    uint64_t *table;           /* the last table read, raw entries */
    uint32_t table_index;      /* its directory index */
    bool table_loaded;
};

void vmdk_se_free(struct vmdk_se *se)
{
    if (se) {
        free(se->gd);
        free(se->table);
        free(se);
    }
}

uint64_t vmdk_se_capacity(const struct vmdk_se *se)
{
    return se->capacity;
}

uint64_t vmdk_se_grain_bytes(const struct vmdk_se *se)
{
    (void)se;
    return SE_GRAIN_BYTES;
}

/* An (offset, size) pair of the constant header, in sectors, that must
 * lie inside the file; *AT gets the offset in bytes. */
static int area(struct vimg_image *img, const uint8_t *h, unsigned field,
                const char *what, uint64_t file_size, uint64_t *at,
                uint64_t *bytes)
{
    uint64_t off = load_le64(h + field), size = load_le64(h + field + 8);

    if (off > file_size / VMDK_SECTOR || size > file_size / VMDK_SECTOR ||
        range_outside(off * VMDK_SECTOR, size * VMDK_SECTOR, file_size)) {
        return vimg_internal_img_error(img, EINVAL, "seSparse %s (%llu "
                                       "sectors at sector %llu) lies "
                                       "outside the file", what,
                                       (unsigned long long)size,
                                       (unsigned long long)off);
    }
    *at = off * VMDK_SECTOR;
    *bytes = size * VMDK_SECTOR;
    return 0;
}

/* Both headers: the one place their fields are checked. */
static int check_headers(struct vimg_image *img, struct vimg_image *file,
                         const uint8_t *h, struct vmdk_se *se,
                         uint64_t *gd_at, uint64_t *gd_bytes,
                         uint64_t *gt_bytes)
{
    uint64_t vol_at, vol_bytes, grains_bytes;
    uint8_t v[VMDK_SECTOR];
    int r;

    if (load_le64(h + SE_HDR_MAGIC) != SE_MAGIC) {
        return vimg_internal_img_error(img, EINVAL, "'%s' is not a seSparse "
                                       "extent", file->filename);
    }
    if (load_le64(h + SE_HDR_VERSION) != SE_VERSION ||
        load_le64(h + SE_HDR_GRAIN_SIZE) != SE_GRAIN_SECTORS ||
        load_le64(h + SE_HDR_GT_SIZE) != SE_GT_SECTORS ||
        load_le64(h + SE_HDR_FLAGS) != 0 ||
        !is_zero(h + SE_HDR_RESERVED, 32) ||
        !is_zero(h + SE_HDR_PAD, VMDK_SECTOR - SE_HDR_PAD)) {
        return vimg_internal_img_error(img, ENOTSUP, "unsupported seSparse "
                                       "header (version 0x%016llx, grains "
                                       "of %llu sectors, tables of %llu, "
                                       "flags, reserved or padding set)",
                                       (unsigned long long)load_le64(
                                           h + SE_HDR_VERSION),
                                       (unsigned long long)load_le64(
                                           h + SE_HDR_GRAIN_SIZE),
                                       (unsigned long long)load_le64(
                                           h + SE_HDR_GT_SIZE));
    }
    se->capacity = load_le64(h + SE_HDR_CAPACITY);
    if (se->capacity > SE_MAX_CAPACITY) {
        return vimg_internal_img_error(img, EFBIG, "seSparse capacity of "
                                       "%llu sectors is beyond the 64 TiB "
                                       "the format holds",
                                       (unsigned long long)se->capacity);
    }
    if ((r = area(img, h, SE_HDR_VOLATILE, "volatile header", se->file_size,
                  &vol_at, &vol_bytes)) < 0 ||
        (r = area(img, h, SE_HDR_GD, "grain directory", se->file_size,
                  gd_at, gd_bytes)) < 0 ||
        (r = area(img, h, SE_HDR_GT, "grain table area", se->file_size,
                  &se->gt_offset, gt_bytes)) < 0 ||
        (r = area(img, h, SE_HDR_GRAINS, "grain area", se->file_size,
                  &se->grains_offset, &grains_bytes)) < 0) {
        return r;
    }
    if (vol_bytes < VMDK_SECTOR) {
        return vimg_internal_img_error(img, EINVAL, "seSparse volatile "
                                       "header is missing");
    }
    if ((r = vimg_internal_pread(file, v, sizeof v, vol_at)) < 0) {
        return r;
    }
    if (load_le64(v + SE_VOL_MAGIC) != SE_VOLATILE_MAGIC) {
        return vimg_internal_img_error(img, EINVAL, "bad seSparse volatile "
                                       "header magic");
    }
    if (load_le64(v + SE_VOL_REPLAY_JOURNAL) != 0) {
        return vimg_internal_img_error(img, ENOTSUP, "seSparse extent is "
                                       "dirty: replaying its journal is not "
                                       "supported");
    }
    if (!is_zero(v + SE_VOL_PAD, VMDK_SECTOR - SE_VOL_PAD)) {
        return vimg_internal_img_error(img, ENOTSUP, "unsupported non-zero "
                                       "seSparse volatile header padding");
    }
    uint64_t tables = DIV_ROUND_UP(se->capacity,
                                   (uint64_t)SE_GRAIN_SECTORS * SE_GTES);
    if (*gd_bytes / 8 < tables) {
        return vimg_internal_img_error(img, EINVAL, "seSparse grain "
                                       "directory of %llu entries is too "
                                       "short for %llu sectors",
                                       (unsigned long long)(*gd_bytes / 8),
                                       (unsigned long long)se->capacity);
    }
    se->gd_entries = (uint32_t)tables;
    return 0;
}

/* Read the directory entries the disk needs, each checked: a table inside
 * the table area. */
static int read_directory(struct vimg_image *img, struct vimg_image *file,
                          struct vmdk_se *se, uint64_t gd_at,
                          uint64_t gt_bytes)
{
    uint8_t *raw = malloc(SE_GD_CHUNK);
    int r = 0;

    se->gd = calloc((size_t)se->gd_entries + 1, sizeof *se->gd);
    if (!raw || !se->gd) {
        free(raw);
        return vimg_internal_img_error(img, ENOMEM, "out of memory for the "
                                       "grain directory");
    }
    for (uint64_t i = 0; r == 0 && i < se->gd_entries; i++) {
        if (i % (SE_GD_CHUNK / 8) == 0) {
            uint64_t n = MIN(SE_GD_CHUNK / 8, se->gd_entries - i);
            if ((r = vimg_internal_pread(file, raw, n * 8,
                                         gd_at + i * 8)) < 0) {
                break;
            }
        }
        uint64_t v = load_le64(raw + (i % (SE_GD_CHUNK / 8)) * 8);
        uint64_t table = v & 0xffffffffu;
        if (v == 0) {
            continue;
        }
        if (v >> 32 != SE_GDE_ALLOCATED ||
            (table + 1) * SE_GT_BYTES > gt_bytes) {
            r = vimg_internal_img_error(img, EINVAL, "seSparse grain "
                                        "directory entry %llu (0x%016llx) "
                                        "names no grain table in the table "
                                        "area", (unsigned long long)i,
                                        (unsigned long long)v);
            break;
        }
        se->gd[i] = (uint32_t)table + 1;
    }
    free(raw);
    return r;
}

int vmdk_se_open(struct vimg_image *img, struct vimg_image *file,
                 bool writable, struct vmdk_se **out)
{
    struct vmdk_se *se = calloc(1, sizeof *se);
    uint64_t gd_at = 0, gd_bytes = 0, gt_bytes = 0;
    uint8_t h[VMDK_SECTOR];
    int r;

    *out = NULL;
    if (!se) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    se->file_size = (uint64_t)vimg_internal_get_size(file);
    if (writable) {
        r = vimg_internal_img_error(img, EROFS, "seSparse extent '%s' can "
                                    "only be opened read-only",
                                    file->filename);
    } else if (se->file_size < VMDK_SECTOR) {
        r = vimg_internal_img_error(img, EINVAL, "seSparse extent '%s' is "
                                    "truncated", file->filename);
    } else if ((r = vimg_internal_pread(file, h, sizeof h, 0)) == 0 &&
               (r = check_headers(img, file, h, se, &gd_at, &gd_bytes,
                                  &gt_bytes)) == 0 &&
               (r = read_directory(img, file, se, gd_at, gt_bytes)) == 0 &&
               !(se->table = malloc(SE_GT_BYTES))) {
        r = vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    if (r < 0) {
        vmdk_se_free(se);
        return r;
    }
    *out = se;
    return 0;
}

/* ---- Grains ----------------------------------------------------------- */

enum se_kind { SE_HOLE, SE_ZERO, SE_DATA };

/* What the entry V says of its grain; *HOST the grain's bytes in the
 * file. -EIO for an entry that cannot be read. */
static int decode(const struct vmdk_se *se, uint64_t v, enum se_kind *kind,
                  uint64_t *host)
{
    switch (SE_GTE_TYPE(v)) {
    case SE_GTE_UNALLOC:
        *kind = SE_HOLE;
        return v == 0 ? 0 : -EIO;
    case SE_GTE_UNMAPPED:
    case SE_GTE_ZERO:
        *kind = SE_ZERO;
        return 0;
    case SE_GTE_ALLOCATED: {
        uint64_t index = SE_GTE_INDEX(v);
        *kind = SE_DATA;
        if (index >= se->file_size / SE_GRAIN_BYTES) {
            return -EIO;
        }
        *host = se->grains_offset + index * SE_GRAIN_BYTES;
        return range_outside(*host, SE_GRAIN_BYTES, se->file_size) ? -EIO
                                                                   : 0;
    }
    default:
        return -EIO;
    }
}

static int load_table(struct vmdk_extent *e, uint32_t index)
{
    struct vmdk_se *se = e->se;
    uint8_t *raw = (uint8_t *)se->table;
    int r;

    if (se->table_loaded && se->table_index == index) {
        return 0;
    }
    se->table_loaded = false;
    r = vimg_internal_pread(e->file, raw, SE_GT_BYTES,
                            se->gt_offset +
                                (uint64_t)(se->gd[index] - 1) * SE_GT_BYTES);
    if (r < 0) {
        return r;
    }
    for (uint32_t i = 0; i < SE_GTES; i++) {
        se->table[i] = load_le64(raw + 8 * i);
    }
    se->table_loaded = true;
    se->table_index = index;
    return 0;
}

/* The run of grains of one kind from OFFSET (extent-relative), at most
 * COUNT bytes, data only where the file holds it back to back. */
static int se_map(struct vimg_image *img, struct vmdk_extent *e,
                  uint64_t offset, uint64_t count, uint64_t *pnum,
                  enum se_kind *kind, uint64_t *host)
{
    struct vmdk_se *se = e->se;
    uint64_t done = 0;
    int r;

    while (done < count) {
        uint64_t off = offset + done;
        uint64_t grain = off / SE_GRAIN_BYTES;
        uint64_t n = MIN(count - done, SE_GRAIN_BYTES - off % SE_GRAIN_BYTES);
        uint32_t index = (uint32_t)(grain / SE_GTES);
        enum se_kind k = SE_HOLE;
        uint64_t h = 0;
        if (se->gd[index]) {
            if ((r = load_table(e, index)) < 0) {
                return r;
            }
            uint64_t v = se->table[grain % SE_GTES];
            if (decode(se, v, &k, &h) < 0) {
                return vimg_internal_img_error(img, EIO, "seSparse grain "
                                               "table entry 0x%016llx of "
                                               "sector %llu in '%s' cannot "
                                               "be read",
                                               (unsigned long long)v,
                                               (unsigned long long)(
                                                   off / VMDK_SECTOR),
                                               e->file->filename);
            }
            h += off % SE_GRAIN_BYTES;
        }
        if (done == 0) {
            *kind = k;
            *host = h;
        } else if (k != *kind || (k == SE_DATA && h != *host + done)) {
            break;
        }
        done += n;
    }
    *pnum = done;
    return 0;
}

int vmdk_se_read(struct vimg_image *img, struct vmdk_extent *e, uint8_t *buf,
                 uint64_t count, uint64_t offset)
{
    while (count) {
        enum se_kind kind;
        uint64_t n, host;
        int r = se_map(img, e, offset, count, &n, &kind, &host);
        if (r == 0) {
            if (kind == SE_DATA) {
                r = vimg_internal_pread(e->file, buf, n, host);
            } else if (kind == SE_ZERO || !img->backing_name) {
                memset(buf, 0, n);
            } else {
                r = vmdk_read_backing(img, e, buf, n, offset);
            }
        }
        if (r < 0) {
            return r;
        }
        buf += n;
        offset += n;
        count -= n;
    }
    return 0;
}

int vmdk_se_block_status(struct vimg_image *img, struct vmdk_extent *e,
                         uint64_t offset, uint64_t count, uint64_t *pnum,
                         uint64_t *map)
{
    enum se_kind kind;
    uint64_t host;
    int r = se_map(img, e, offset, count, pnum, &kind, &host);

    if (r < 0) {
        return r;
    }
    switch (kind) {
    case SE_DATA:
        *map = host;
        return VIMG_BS_DATA | VIMG_BS_ALLOCATED | VIMG_BS_OFFSET_VALID;
    case SE_ZERO:
        return VIMG_BS_ZERO | VIMG_BS_ALLOCATED;
    default:
        return 0;
    }
}

int vmdk_se_check(struct vimg_image *img, struct vmdk_extent *e,
                  struct vimg_check_result *res, vimg_report_fn report,
                  void *opaque)
{
    struct vmdk_se *se = e->se;
    uint64_t grains = DIV_ROUND_UP(e->length, SE_GRAIN_BYTES);
    int r;

    (void)img; /* problems are reported as QEMU reports them */
    for (uint64_t g = 0; g < grains; g++) {
        uint32_t index = (uint32_t)(g / SE_GTES);
        if (!se->gd[index]) {
            g += SE_GTES - 1 - g % SE_GTES;
            continue;
        }
        if ((r = load_table(e, index)) < 0) {
            return r;
        }
        enum se_kind kind;
        uint64_t host;
        if (decode(se, se->table[g % SE_GTES], &kind, &host) < 0) {
            char msg[160];
            snprintf(msg, sizeof msg, "ERROR: cluster offset for sector "
                     "%llu points after EOF",
                     (unsigned long long)((e->start + g * SE_GRAIN_BYTES) /
                                          VMDK_SECTOR));
            if (report) {
                report(opaque, msg);
            }
            /* As QEMU and the hosted extents' check: the first bad grain
             * fails the check. */
            res->corruptions++;
            return -EINVAL;
        }
    }
    return 0;
}
