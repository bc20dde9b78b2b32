/* The VDI format (VirtualBox), version 1.1: dynamic images (blocks appended
 * as they are first written) and static ones (every block allocated at
 * creation). Differencing and undo images are refused. What QEMU 7.2's
 * block/vdi.c accepts is accepted, new images are laid out as qemu-img
 * lays them out, and check reports what qemu-img check reports. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/checked-overflow.h"
#include "../../common/iszero.h"
#include "../../common/rounding.h"
#include "../../common/uuid.h"
#include "../internal.h"
#include "vdi-ondisk.h"

#define VDI_SECTOR 512u
/* The only block size QEMU (and VirtualBox) uses. */
#define VDI_BLOCK 0x100000u
/* QEMU's limits: 0x3fffffff blocks of 1 MiB. */
#define VDI_QEMU_MAX_BLOCKS 0x3fffffffu
#define VDI_DISK_SIZE_MAX ((uint64_t)VDI_QEMU_MAX_BLOCKS * VDI_BLOCK)
/* Most block map entries read: 16 Mi (a 64 MiB map, a 16 TiB disk). A
 * larger count could only make a hostile header allocate GiBs. */
#define VDI_MAX_BMAP_ENTRIES (16u << 20)
/* What qemu-img writes in the header's text. */
#define VDI_CREATE_TEXT "<<< QEMU VM Virtual Disk Image >>>\n"

struct vdi_state {
    uint8_t header[VDI_HEADER_SIZE]; /* as on disk */
    bool is_static;
    uint64_t offset_bmap, offset_data;
    uint32_t blocks;                 /* block map entries */
    uint32_t blocks_allocated;       /* as the header says */
    uint32_t next_block;             /* where the next allocation goes */
    uint32_t *bmap;                  /* host order */
};

static struct vdi_state *vdi_state(struct vimg_image *img)
{
    return img->opaque;
}

static bool is_allocated(uint32_t entry)
{
    return entry < VDI_DISCARDED;
}

static int vdi_probe(const uint8_t *buf, size_t len, const char *filename)
{
    (void)filename;
    return len >= VDI_HEADER_SIZE &&
           load_le32(buf + VDI_SIGNATURE) == VDI_MAGIC ? 100 : 0;
}

/* ---- Validation -------------------------------------------------------- */

static bool uuid_null(const uint8_t *u)
{
    return is_zero(u, 16);
}

/* Every field of the header at H, for a file of FILE_SIZE bytes; sets the
 * state's geometry and IMG's size. Nothing is allocated here. */
static int validate_header(struct vimg_image *img, const uint8_t *h,
                           uint64_t file_size)
{
    struct vdi_state *s = vdi_state(img);
    uint32_t version = load_le32(h + VDI_VERSION);
    uint32_t type = load_le32(h + VDI_IMAGE_TYPE);
    uint64_t disk_size = load_le64(h + VDI_DISK_SIZE);
    uint32_t block_size = load_le32(h + VDI_BLOCK_SIZE);
    uint32_t sector_size = load_le32(h + VDI_SECTOR_SIZE);
    uint64_t bmap_bytes;

    if (load_le32(h + VDI_SIGNATURE) != VDI_MAGIC) {
        return vimg_internal_img_error(img, EINVAL, "not a VDI image (bad "
                                       "signature %08x)",
                                       load_le32(h + VDI_SIGNATURE));
    }
    if (version != VDI_VERSION_1_1) {
        return vimg_internal_img_error(img, ENOTSUP, "unsupported VDI "
                                       "version %u.%u", version >> 16,
                                       version & 0xffff);
    }
    if (type != VDI_TYPE_DYNAMIC && type != VDI_TYPE_STATIC) {
        return vimg_internal_img_error(img, ENOTSUP, "unsupported VDI image "
                                       "type %u (only dynamic and static "
                                       "images)", type);
    }
    if (!uuid_null(h + VDI_UUID_LINK) || !uuid_null(h + VDI_UUID_PARENT)) {
        return vimg_internal_img_error(img, ENOTSUP, "differencing VDI "
                                       "images (with a parent) are not "
                                       "supported");
    }
    if (disk_size > VDI_DISK_SIZE_MAX) {
        return vimg_internal_img_error(img, ENOTSUP, "unsupported VDI image "
                                       "size 0x%llx (at most 0x%llx)",
                                       (unsigned long long)disk_size,
                                       (unsigned long long)VDI_DISK_SIZE_MAX);
    }
    if (sector_size != VDI_SECTOR) {
        return vimg_internal_img_error(img, ENOTSUP, "unsupported VDI sector "
                                       "size %u (only 512)", sector_size);
    }
    if (block_size != VDI_BLOCK) {
        return vimg_internal_img_error(img, ENOTSUP, "unsupported VDI block "
                                       "size %u (only 1 MiB)", block_size);
    }
    s->is_static = type == VDI_TYPE_STATIC;
    s->offset_bmap = load_le32(h + VDI_OFFSET_BMAP);
    s->offset_data = load_le32(h + VDI_OFFSET_DATA);
    s->blocks = load_le32(h + VDI_BLOCKS_IN_IMAGE);
    s->blocks_allocated = load_le32(h + VDI_BLOCKS_ALLOCATED);
    if (s->offset_bmap % VDI_SECTOR || s->offset_data % VDI_SECTOR) {
        return vimg_internal_img_error(img, ENOTSUP, "unsupported VDI image "
                                       "(block map at 0x%llx or data at "
                                       "0x%llx not sector aligned)",
                                       (unsigned long long)s->offset_bmap,
                                       (unsigned long long)s->offset_data);
    }
    /* 'VBoxManage convertfromraw' writes odd sizes; QEMU rounds them up. */
    disk_size = ROUND_UP(disk_size, VDI_SECTOR);
    if (disk_size > (uint64_t)s->blocks * VDI_BLOCK) {
        return vimg_internal_img_error(img, EINVAL, "block map (%u entries) "
                                       "is too small for the disk size "
                                       "%llu", s->blocks,
                                       (unsigned long long)disk_size);
    }
    if (s->blocks > VDI_MAX_BMAP_ENTRIES) {
        return vimg_internal_img_error(img, EFBIG, "block map is too large "
                                       "(%u entries)", s->blocks);
    }
    bmap_bytes = (uint64_t)s->blocks * 4;
    if (s->offset_bmap < VDI_HEADER_SIZE ||
        range_outside(s->offset_bmap, bmap_bytes, file_size)) {
        return vimg_internal_img_error(img, EINVAL, "block map at 0x%llx "
                                       "(%u entries) lies outside the file "
                                       "or over the header",
                                       (unsigned long long)s->offset_bmap,
                                       s->blocks);
    }
    if (s->offset_data < s->offset_bmap + bmap_bytes) {
        return vimg_internal_img_error(img, EINVAL, "data area at 0x%llx "
                                       "overlaps the block map",
                                       (unsigned long long)s->offset_data);
    }
    img->size = disk_size;
    return 0;
}

/* Allocated entries must name blocks whose bytes are all in the file. */
static int read_bmap(struct vimg_image *img, uint64_t file_size)
{
    struct vdi_state *s = vdi_state(img);
    uint64_t bytes = (uint64_t)s->blocks * 4;
    uint8_t *raw = malloc(bytes ? bytes : 1);
    int r;

    s->bmap = malloc(bytes ? bytes : 1);
    if (!raw || !s->bmap) {
        free(raw);
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    if (bytes &&
        (r = vimg_internal_pread(img->file, raw, bytes, s->offset_bmap)) < 0) {
        free(raw);
        return r;
    }
    s->next_block = s->blocks_allocated;
    for (uint32_t i = 0; i < s->blocks; i++) {
        uint32_t e = load_le32(raw + (uint64_t)i * 4);
        s->bmap[i] = e;
        if (!is_allocated(e)) {
            continue;
        }
        if (range_outside(s->offset_data + (uint64_t)e * VDI_BLOCK, VDI_BLOCK,
                          file_size)) {
            free(raw);
            return vimg_internal_img_error(img, EINVAL, "block map entry %u "
                                           "points at block %u, past the end "
                                           "of the file", i, e);
        }
        /* A header whose count lags its map must not make a new block
         * land on an old one. */
        s->next_block = MAX(s->next_block, e + 1);
    }
    free(raw);
    return 0;
}

static int vdi_open(struct vimg_image *img, const struct vimg_opts *opts)
{
    struct vdi_state *s = vdi_state(img);
    uint64_t file_size;
    int r;

    (void)opts;
    if ((r = vimg_internal_read_header(img, s->header, VDI_HEADER_SIZE,
                                       "a VDI header", &file_size)) < 0 ||
        (r = validate_header(img, s->header, file_size)) < 0 ||
        (r = read_bmap(img, file_size)) < 0) {
        free(s->bmap);
        s->bmap = NULL;
        return r;
    }
    return 0;
}

static int vdi_close(struct vimg_image *img)
{
    struct vdi_state *s = vdi_state(img);
    free(s->bmap);
    s->bmap = NULL;
    return 0;
}

/* ---- Data path --------------------------------------------------------- */

/* The file offset of guest OFFSET, or 0 when its block is not allocated
 * (no block lies at 0: the header is there); *N is how far the block
 * reaches, at most COUNT. */
static uint64_t block_map(struct vdi_state *s, uint64_t offset,
                          uint64_t count, uint64_t *n)
{
    uint64_t idx = offset / VDI_BLOCK, in = offset % VDI_BLOCK;
    uint32_t e = s->bmap[idx];

    *n = MIN(count, VDI_BLOCK - in);
    if (!is_allocated(e)) {
        return 0;
    }
    return s->offset_data + (uint64_t)e * VDI_BLOCK + in;
}

static int vdi_pread(struct vimg_image *img, void *buf, uint64_t count,
                     uint64_t offset)
{
    struct vdi_state *s = vdi_state(img);
    uint8_t *p = buf;

    while (count > 0) {
        uint64_t n, at = block_map(s, offset, count, &n);
        if (!at) {
            memset(p, 0, n);
        } else {
            int r = vimg_internal_pread(img->file, p, n, at);
            if (r < 0) {
                return r;
            }
        }
        p += n;
        offset += n;
        count -= n;
    }
    return 0;
}

/* Make room for a new block at the end of the data area: zeros where old
 * bytes lie, and the file extended (sparsely) to the block's end, as a
 * whole block is what QEMU and VirtualBox expect to find. */
static int reserve_block(struct vimg_image *img, uint64_t *at)
{
    struct vdi_state *s = vdi_state(img);
    uint64_t file_size = (uint64_t)vimg_internal_get_size(img->file);
    int r;

    if (s->next_block >= s->blocks) {
        return vimg_internal_img_error(img, EIO, "no free block left "
                                       "(blocks_allocated %u of %u): the "
                                       "block map is corrupt",
                                       s->next_block, s->blocks);
    }
    *at = s->offset_data + (uint64_t)s->next_block * VDI_BLOCK;
    if (file_size > *at &&
        (r = vimg_internal_zero(img->file, *at,
                                MIN(file_size - *at, VDI_BLOCK), 0)) < 0) {
        return r;
    }
    if (file_size < *at + VDI_BLOCK &&
        (r = vimg_internal_truncate(img->file, *at + VDI_BLOCK, 0,
                                    VIMG_PREALLOC_OFF)) < 0) {
        return r;
    }
    return 0;
}

/* The block's data is written: count it in the header, then point the
 * map at it (a crash between them leaks the block; the other order would
 * hand it out twice). */
static int commit_block(struct vimg_image *img, uint64_t idx)
{
    struct vdi_state *s = vdi_state(img);
    uint32_t block = s->next_block;
    uint8_t entry[4];
    int r;

    store_le32(s->header + VDI_BLOCKS_ALLOCATED, block + 1);
    store_le32(entry, block);
    if ((r = vimg_internal_flush(img->file)) < 0 ||
        (r = vimg_internal_pwrite(img->file,
                                  s->header + VDI_BLOCKS_ALLOCATED, 4,
                                  VDI_BLOCKS_ALLOCATED, 0)) < 0 ||
        (r = vimg_internal_flush(img->file)) < 0 ||
        (r = vimg_internal_pwrite(img->file, entry, 4,
                                  s->offset_bmap + idx * 4, 0)) < 0) {
        return r;
    }
    s->bmap[idx] = block;
    s->blocks_allocated = block + 1;
    s->next_block = block + 1;
    return 0;
}

static int vdi_pwrite(struct vimg_image *img, const void *buf, uint64_t count,
                      uint64_t offset, unsigned flags)
{
    struct vdi_state *s = vdi_state(img);
    const uint8_t *p = buf;
    int r;

    while (count > 0) {
        uint64_t n, at = block_map(s, offset, count, &n);
        bool fresh = !at;
        if (fresh) {
            if ((r = reserve_block(img, &at)) < 0) {
                return r;
            }
            at += offset % VDI_BLOCK;
        }
        if ((r = vimg_internal_pwrite(img->file, p, n, at, flags)) < 0 ||
            (fresh && (r = commit_block(img, offset / VDI_BLOCK)) < 0)) {
            return r;
        }
        p += n;
        offset += n;
        count -= n;
    }
    return 0;
}

/* Unallocated and discarded blocks read as zeros already: zeroing writes
 * only into allocated ones and never grows the image. */
static int vdi_zero(struct vimg_image *img, uint64_t offset, uint64_t count,
                    unsigned flags)
{
    struct vdi_state *s = vdi_state(img);

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

/* As QEMU reports them: unallocated blocks are zeros decided here, blocks
 * are data at their file offset; a static image's blocks also show the
 * file's holes as zeros. */
static int vdi_block_status(struct vimg_image *img, uint64_t offset,
                            uint64_t count, uint64_t *pnum, uint64_t *map,
                            const char **file)
{
    struct vdi_state *s = vdi_state(img);
    uint64_t n, at = block_map(s, offset, count, &n);
    unsigned zero = 0;

    if (!at) {
        *pnum = n;
        while (*pnum < count &&
               !block_map(s, offset + *pnum, count - *pnum, &n)) {
            *pnum += n;
        }
        return VIMG_BS_ZERO | VIMG_BS_ALLOCATED;
    }
    if (s->is_static) {
        struct vimg_extent e;
        int r = vimg_internal_block_status(img->file, at, n, 0, &e);
        if (r < 0) {
            return r;
        }
        n = e.length;
        zero = e.flags & VIMG_BS_ZERO;
    }
    *pnum = n;
    *map = at;
    *file = img->file->filename;
    return (int)(zero | VIMG_BS_DATA | VIMG_BS_ALLOCATED |
                 VIMG_BS_OFFSET_VALID);
}

static int vdi_get_info(struct vimg_image *img, struct vimg_value *info)
{
    (void)img;
    return vimg_internal_value_set_int(info, "cluster-size", VDI_BLOCK);
}

/* qemu-img's checks: map entries past the block count, two entries
 * sharing a block, and the header's count of allocated blocks. Repairs
 * are not offered (QEMU has none either). */
static int vdi_check(struct vimg_image *img, unsigned fix,
                     struct vimg_check_result *res, vimg_report_fn report,
                     void *opaque)
{
    struct vdi_state *s = vdi_state(img);
    uint32_t *owner, counted = 0;
    char msg[128];

    if (fix) {
        return vimg_internal_img_error(img, ENOTSUP, "VDI images cannot be "
                                       "repaired");
    }
    owner = malloc((s->blocks ? s->blocks : 1) * sizeof *owner);
    if (!owner) {
        res->check_errors++;
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    memset(owner, 0xff, (size_t)s->blocks * sizeof *owner);
    for (uint32_t i = 0; i < s->blocks; i++) {
        uint32_t e = s->bmap[i];
        if (!is_allocated(e)) {
            continue;
        }
        if (e >= s->blocks) {
            snprintf(msg, sizeof msg, "ERROR: block index %u too large, "
                     "is %u", i, e);
            res->corruptions++;
        } else if (is_allocated(owner[e])) {
            snprintf(msg, sizeof msg, "ERROR: block index %u also used by "
                     "%u", owner[e], e);
            counted++;
            res->corruptions++;
        } else {
            owner[e] = e;
            counted++;
            continue;
        }
        if (report) {
            report(opaque, msg);
        }
    }
    free(owner);
    if (counted != s->blocks_allocated) {
        snprintf(msg, sizeof msg, "ERROR: allocated blocks mismatch, is %u, "
                 "should be %u", counted, s->blocks_allocated);
        res->corruptions++;
        if (report) {
            report(opaque, msg);
        }
    }
    return 0;
}

/* ---- Create ------------------------------------------------------------ */

static const struct vimg_opt_desc vdi_create_opts[] = {
    { "size", VIMG_OPT_SIZE, "Virtual disk size" },
    { "static", VIMG_OPT_BOOL, "VDI static (pre-allocated) image" },
    { NULL, 0, NULL },
};

/* A random UUID in VirtualBox's byte order (the first three fields
 * little-endian), as QEMU stores it. */
static int vdi_uuid(uint8_t *out)
{
    uint8_t u[16];
    int r = uuid_generate_v4(u);

    if (r < 0) {
        return r;
    }
    static const uint8_t order[16] = { 3, 2, 1, 0, 5, 4, 7, 6,
                                       8, 9, 10, 11, 12, 13, 14, 15 };
    for (int i = 0; i < 16; i++) {
        out[i] = u[order[i]];
    }
    return 0;
}

static int vdi_create(struct vimg_image *file, const struct vimg_create_ctx *c)
{
    uint64_t size = ROUND_UP(c->size, VDI_SECTOR);
    uint8_t h[VDI_HEADER_SIZE];
    bool is_static;
    int r;

    if ((r = vimg_internal_opts_get_bool(c->opts, "static", false,
                                         &is_static)) < 0) {
        return r;
    }
    if (size > VDI_DISK_SIZE_MAX) {
        return vimg_internal_error(ENOTSUP, "%s: unsupported VDI image size "
                                   "(size is 0x%llx, max supported is "
                                   "0x%llx)", c->filename,
                                   (unsigned long long)size,
                                   (unsigned long long)VDI_DISK_SIZE_MAX);
    }
    uint32_t blocks = (uint32_t)DIV_ROUND_UP(size, VDI_BLOCK);
    uint64_t bmap_bytes = ROUND_UP((uint64_t)blocks * 4, VDI_SECTOR);
    uint64_t offset_data = VDI_HEADER_SIZE + bmap_bytes;
    if (offset_data > UINT32_MAX) {
        return vimg_internal_error(ENOTSUP, "%s: the block map of a %llu-byte "
                                   "VDI does not fit a 32-bit offset",
                                   c->filename, (unsigned long long)size);
    }
    memset(h, 0, sizeof h);
    memcpy(h + VDI_TEXT, VDI_CREATE_TEXT, strlen(VDI_CREATE_TEXT));
    store_le32(h + VDI_SIGNATURE, VDI_MAGIC);
    store_le32(h + VDI_VERSION, VDI_VERSION_1_1);
    store_le32(h + VDI_HDR_SIZE, VDI_HDR_SIZE_1_1);
    store_le32(h + VDI_IMAGE_TYPE,
               is_static ? VDI_TYPE_STATIC : VDI_TYPE_DYNAMIC);
    store_le32(h + VDI_OFFSET_BMAP, VDI_HEADER_SIZE);
    store_le32(h + VDI_OFFSET_DATA, (uint32_t)offset_data);
    store_le32(h + VDI_SECTOR_SIZE, VDI_SECTOR);
    store_le64(h + VDI_DISK_SIZE, size);
    store_le32(h + VDI_BLOCK_SIZE, VDI_BLOCK);
    store_le32(h + VDI_BLOCKS_IN_IMAGE, blocks);
    store_le32(h + VDI_BLOCKS_ALLOCATED, is_static ? blocks : 0);
    if ((r = vdi_uuid(h + VDI_UUID_IMAGE)) < 0 ||
        (r = vdi_uuid(h + VDI_UUID_LAST_SNAP)) < 0) {
        return vimg_internal_error(-r, "%s: no random bytes for the image "
                                   "identifiers", c->filename);
    }
    if ((r = vimg_internal_pwrite(file, h, sizeof h, 0, 0)) < 0) {
        return r;
    }
    /* The map in 64 KiB pieces: a static map counts up, a dynamic one is
     * all "unallocated". */
    uint8_t chunk[65536];
    for (uint64_t done = 0; done < bmap_bytes;) {
        uint64_t n = MIN(sizeof chunk, bmap_bytes - done);
        for (uint64_t i = 0; i < n; i += 4) {
            uint64_t idx = (done + i) / 4;
            store_le32(chunk + i, idx >= blocks ? 0
                                  : is_static ? (uint32_t)idx
                                              : VDI_UNALLOCATED);
        }
        if ((r = vimg_internal_pwrite(file, chunk, n, VDI_HEADER_SIZE + done,
                                      0)) < 0) {
            return r;
        }
        done += n;
    }
    if (is_static) {
        return vimg_internal_truncate(file,
                                      offset_data +
                                      (uint64_t)blocks * VDI_BLOCK, 0,
                                      VIMG_PREALLOC_OFF);
    }
    return 0;
}

const struct vimg_driver vimg_driver_vdi = {
    .name = "vdi",
    .kind = VIMG_DRIVER_FORMAT,
    .instance_size = sizeof(struct vdi_state),
    .thread_safe = false,
    .has_zero_init = true,
    .create_opts = vdi_create_opts,
    .probe = vdi_probe,
    .open = vdi_open,
    .close = vdi_close,
    .create = vdi_create,
    .pread = vdi_pread,
    .pwrite = vdi_pwrite,
    .zero = vdi_zero,
    .block_status = vdi_block_status,
    .get_info = vdi_get_info,
    .check = vdi_check,
};
