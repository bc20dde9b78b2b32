/* Bochs growing images (bximage -imgmode=growing), read-only as in QEMU
 * 7.2's block/bochs.c: the "Growing" redolog subtype with a version 1 or
 * version 2 header. A sector reads from its extent when the catalog names
 * the extent and the extent's bitmap marks the sector; otherwise it reads
 * as zeros. Undoable and volatile redologs are overlays of another image
 * and are refused, as QEMU refuses them. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/checked-overflow.h"
#include "../../common/rounding.h"
#include "../internal.h"
#include "bochs-ondisk.h"

#define BOCHS_SECTOR 512u
/* QEMU's caps. The catalog: 1 Mi entries (4 MiB of memory), which is what
 * the largest image bximage makes needs. The extent: 8 MiB, and at least a
 * sector, a power of two (bximage writes 32 KiB and up). */
#define BOCHS_MAX_CATALOG 0x100000u
#define BOCHS_MAX_EXTENT 0x800000u
/* Bitmap bytes one extent may have: one bit per sector of the largest
 * extent. A larger bitmap could only be a lie. */
#define BOCHS_MAX_BITMAP (BOCHS_MAX_EXTENT / BOCHS_SECTOR / 8)

struct bochs_state {
    uint32_t *catalog;          /* host order */
    uint32_t catalog_size;
    uint32_t extent_size;       /* bytes of data per extent */
    uint64_t data_offset;       /* the first extent */
    uint64_t bitmap_bytes;      /* bitmap area before each extent's data */
    uint64_t stride;            /* bitmap area + data of one extent */
};

static struct bochs_state *bochs_state(struct vimg_image *img)
{
    return img->opaque;
}

/* A NUL-terminated text field equal to S (strcmp on the field, as QEMU
 * compares them). */
static bool field_is(const uint8_t *field, size_t size, const char *s)
{
    size_t n = strlen(s) + 1;
    return n <= size && memcmp(field, s, n) == 0;
}

static int bochs_probe(const uint8_t *buf, size_t len, const char *filename)
{
    (void)filename;
    if (len < BOCHS_HEADER_SIZE) {
        return 0;
    }
    uint32_t version = load_le32(buf + BOCHS_VERSION);
    return field_is(buf + BOCHS_MAGIC, 32, BOCHS_MAGIC_TEXT) &&
           field_is(buf + BOCHS_TYPE, 16, BOCHS_TYPE_REDOLOG) &&
           field_is(buf + BOCHS_SUBTYPE, 16, BOCHS_SUBTYPE_GROWING) &&
           (version == BOCHS_VERSION_1 || version == BOCHS_VERSION_2)
           ? 100 : 0;
}

/* Every header field, for a file of FILE_SIZE bytes: sets the state's
 * geometry and IMG's size. Nothing is allocated here. */
static int validate_header(struct vimg_image *img, const uint8_t *h,
                           uint64_t file_size)
{
    struct bochs_state *s = bochs_state(img);
    uint32_t version = load_le32(h + BOCHS_VERSION);
    uint32_t header = load_le32(h + BOCHS_HEADER);
    uint32_t bitmap = load_le32(h + BOCHS_BITMAP);
    uint64_t disk;
    char subtype[17];

    if (!field_is(h + BOCHS_MAGIC, 32, BOCHS_MAGIC_TEXT) ||
        !field_is(h + BOCHS_TYPE, 16, BOCHS_TYPE_REDOLOG)) {
        return vimg_internal_img_error(img, EINVAL, "Image not in Bochs "
                                       "format (no redolog header)");
    }
    if (!field_is(h + BOCHS_SUBTYPE, 16, BOCHS_SUBTYPE_GROWING)) {
        memcpy(subtype, h + BOCHS_SUBTYPE, 16);
        subtype[16] = '\0';
        for (char *c = subtype; *c; c++) {
            if (*c < 0x20 || *c > 0x7e) {
                *c = '?';
            }
        }
        return vimg_internal_img_error(img, ENOTSUP, "unsupported Bochs "
                                       "redolog subtype '%s' (only Growing "
                                       "images)", subtype);
    }
    if (version != BOCHS_VERSION_1 && version != BOCHS_VERSION_2) {
        return vimg_internal_img_error(img, ENOTSUP, "unsupported Bochs "
                                       "header version 0x%08x", version);
    }
    disk = load_le64(h + (version == BOCHS_VERSION_1 ? BOCHS_V1_DISK
                                                      : BOCHS_V2_DISK));
    s->catalog_size = load_le32(h + BOCHS_CATALOG);
    s->extent_size = load_le32(h + BOCHS_EXTENT);
    if (s->catalog_size > BOCHS_MAX_CATALOG) {
        return vimg_internal_img_error(img, EFBIG, "Catalog size is too "
                                       "large (%u entries, at most %u)",
                                       s->catalog_size, BOCHS_MAX_CATALOG);
    }
    if (s->extent_size < BOCHS_SECTOR ||
        !is_power_of_2(s->extent_size) ||
        s->extent_size > BOCHS_MAX_EXTENT) {
        return vimg_internal_img_error(img, EINVAL, "Extent size %u is not "
                                       "a power of two from 512 to %u",
                                       s->extent_size, BOCHS_MAX_EXTENT);
    }
    /* One bit for each sector of an extent. */
    if (bitmap < DIV_ROUND_UP(s->extent_size / BOCHS_SECTOR, 8) ||
        bitmap > BOCHS_MAX_BITMAP) {
        return vimg_internal_img_error(img, EINVAL, "bitmap size %u does "
                                       "not fit extents of %u bytes",
                                       bitmap, s->extent_size);
    }
    /* QEMU counts whole sectors and drops a partial one. */
    img->size = ROUND_DOWN(disk, BOCHS_SECTOR);
    if (DIV_ROUND_UP(img->size, s->extent_size) > s->catalog_size) {
        return vimg_internal_img_error(img, EINVAL, "Catalog size is too "
                                       "small for this disk size (%u "
                                       "entries of %u bytes, %llu bytes)",
                                       s->catalog_size, s->extent_size,
                                       (unsigned long long)img->size);
    }
    if (header < BOCHS_HEADER_SIZE ||
        range_outside(header, (uint64_t)s->catalog_size * 4, file_size)) {
        return vimg_internal_img_error(img, EINVAL, "catalog at 0x%x (%u "
                                       "entries) lies over the header or "
                                       "past the end of the file", header,
                                       s->catalog_size);
    }
    s->data_offset = header + (uint64_t)s->catalog_size * 4;
    s->bitmap_bytes = ROUND_UP((uint64_t)bitmap, BOCHS_SECTOR);
    s->stride = s->bitmap_bytes + s->extent_size;
    return 0;
}

/* Each entry must name an extent whose bitmap and data are in the file. */
static int read_catalog(struct vimg_image *img, uint64_t header,
                        uint64_t file_size)
{
    struct bochs_state *s = bochs_state(img);
    uint64_t bytes = (uint64_t)s->catalog_size * 4;
    int r;

    s->catalog = malloc(bytes ? bytes : 1);
    if (!s->catalog) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    if (bytes && (r = vimg_internal_pread(img->file, s->catalog, bytes,
                                          header)) < 0) {
        return r;
    }
    for (uint32_t i = 0; i < s->catalog_size; i++) {
        uint32_t e = load_le32(&s->catalog[i]);
        s->catalog[i] = e;
        /* Entries past the disk's end are never read. */
        if (e == BOCHS_UNALLOCATED ||
            (uint64_t)i * s->extent_size >= img->size) {
            continue;
        }
        if (range_outside(s->data_offset + (uint64_t)e * s->stride,
                          s->stride, file_size)) {
            return vimg_internal_img_error(img, EINVAL, "catalog entry %u "
                                           "points at extent %u, past the "
                                           "end of the file", i, e);
        }
    }
    return 0;
}

static int bochs_open(struct vimg_image *img, const struct vimg_opts *opts)
{
    struct bochs_state *s = bochs_state(img);
    uint64_t file_size;
    uint8_t h[BOCHS_HEADER_SIZE];
    int r;

    (void)opts;
    if ((r = vimg_internal_read_header(img, h, sizeof h, "a Bochs header",
                                       &file_size)) < 0 ||
        (r = validate_header(img, h, file_size)) < 0 ||
        (r = read_catalog(img, load_le32(h + BOCHS_HEADER), file_size)) < 0) {
        free(s->catalog);
        s->catalog = NULL;
        return r;
    }
    return 0;
}

static int bochs_close(struct vimg_image *img)
{
    struct bochs_state *s = bochs_state(img);
    free(s->catalog);
    s->catalog = NULL;
    return 0;
}

/* Read [OFFSET, OFFSET+COUNT) of one extent whose bitmap and data begin at
 * file offset AT: each run of sectors the bitmap marks comes from the
 * file, the rest is zeros. */
static int read_extent(struct vimg_image *img, uint64_t at, uint8_t *buf,
                       uint64_t count, uint64_t offset)
{
    struct bochs_state *s = bochs_state(img);
    uint64_t first = offset / BOCHS_SECTOR;
    uint64_t last = (offset + count - 1) / BOCHS_SECTOR;
    uint8_t bits[BOCHS_MAX_BITMAP];
    uint64_t end = offset + count;
    int r;

    if ((r = vimg_internal_pread(img->file, bits, last / 8 - first / 8 + 1,
                                 at + first / 8)) < 0) {
        return r;
    }
    while (offset < end) {
        uint64_t sector = offset / BOCHS_SECTOR;
        bool set = bits[sector / 8 - first / 8] >> (sector % 8) & 1;
        uint64_t run_end = MIN(end, (sector + 1) * BOCHS_SECTOR);
        /* Extend the run over the following sectors with the same bit. */
        while (run_end < end) {
            uint64_t next = run_end / BOCHS_SECTOR;
            if ((bool)(bits[next / 8 - first / 8] >> (next % 8) & 1) != set) {
                break;
            }
            run_end = MIN(end, (next + 1) * BOCHS_SECTOR);
        }
        uint64_t n = run_end - offset;
        if (!set) {
            memset(buf, 0, n);
        } else if ((r = vimg_internal_pread(img->file, buf, n,
                                            at + s->bitmap_bytes +
                                            offset)) < 0) {
            return r;
        }
        buf += n;
        offset += n;
    }
    return 0;
}

static int bochs_pread(struct vimg_image *img, void *buf, uint64_t count,
                       uint64_t offset)
{
    struct bochs_state *s = bochs_state(img);
    uint8_t *p = buf;

    while (count > 0) {
        uint64_t idx = offset / s->extent_size;
        uint64_t in = offset % s->extent_size;
        uint64_t n = MIN(count, s->extent_size - in);
        uint32_t e = s->catalog[idx];
        if (e == BOCHS_UNALLOCATED) {
            memset(p, 0, n);
        } else {
            int r = read_extent(img, s->data_offset + (uint64_t)e * s->stride,
                                p, n, in);
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

/* Read-only (no pwrite, no create), and like QEMU no block status: every
 * byte is reported as data. */
const struct vimg_driver vimg_driver_bochs = {
    .name = "bochs",
    .kind = VIMG_DRIVER_FORMAT,
    .instance_size = sizeof(struct bochs_state),
    .thread_safe = false,
    .probe = bochs_probe,
    .open = bochs_open,
    .close = bochs_close,
    .pread = bochs_pread,
};
