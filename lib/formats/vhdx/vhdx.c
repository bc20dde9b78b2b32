/* The VHDX format ([MS-VHDX]): probe, the two headers, the region table,
 * the metadata items, the BAT, open and close, reads, block status, info
 * and check. The log is in vhdx-log.c; creation and writes in
 * vhdx-write.c; the parent locator and sector bitmaps of differencing
 * disks in vhdx-parent.c. Dynamic, fixed and differencing disks are read;
 * differencing disks only read (their parent is the backing image). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../../common/checked-overflow.h"
#include "../../../common/crc32c.h"
#include "../../../common/iszero.h"
#include "../../../common/rounding.h"
#include "vhdx.h"

static const uint8_t guid_bat[16] = VHDX_GUID_BAT;
static const uint8_t guid_metadata[16] = VHDX_GUID_METADATA;
static const uint8_t guid_file_params[16] = VHDX_GUID_FILE_PARAMETERS;
static const uint8_t guid_disk_size[16] = VHDX_GUID_VIRTUAL_DISK_SIZE;
static const uint8_t guid_page83[16] = VHDX_GUID_PAGE83;
static const uint8_t guid_logical[16] = VHDX_GUID_LOGICAL_SECTOR;
static const uint8_t guid_physical[16] = VHDX_GUID_PHYSICAL_SECTOR;
static const uint8_t guid_parent[16] = VHDX_GUID_PARENT_LOCATOR;

static int vhdx_probe(const uint8_t *buf, size_t len, const char *filename)
{
    (void)filename;
    return len >= 8 && memcmp(buf, VHDX_FILE_SIGNATURE, 8) == 0 ? 100 : 0;
}

int vhdx_file_read(struct vimg_image *img, void *buf, uint64_t len,
                   uint64_t offset)
{
    struct vhdx_state *s = vhdx_state(img);
    uint8_t *p = buf;
    int r = vimg_internal_pread(img->file, buf, len, offset);

    for (size_t i = 0; r == 0 && i < s->n_overlay; i++) {
        const struct vhdx_overlay *o = &s->overlay[i];
        uint64_t from = MAX(o->offset, offset);
        uint64_t to = MIN(o->offset + o->length, offset + len);
        if (from >= to) {
            continue;
        }
        if (o->data) {
            memcpy(p + (from - offset), o->data + (from - o->offset),
                   to - from);
        } else {
            memset(p + (from - offset), 0, to - from);
        }
    }
    return r;
}

static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    return a < b + blen && b < a + alen;
}

/* ---- Headers (2.2.2) ---------------------------------------------------- */

static bool header_valid(const uint8_t *h)
{
    return memcmp(h + VHDX_HDR_SIGNATURE, "head", 4) == 0 &&
           crc32c_skip(h, VHDX_HEADER_SIZE, VHDX_HDR_CHECKSUM) ==
               load_le32(h + VHDX_HDR_CHECKSUM) &&
           load_le16(h + VHDX_HDR_VERSION) == 1;
}

/* The current header: the valid one with the larger sequence number. */
static int read_headers(struct vimg_image *img)
{
    struct vhdx_state *s = vhdx_state(img);
    uint8_t h[2][VHDX_HEADER_SIZE];
    static const uint64_t at[2] = { VHDX_HEADER1_OFFSET,
                                    VHDX_HEADER2_OFFSET };
    bool ok[2];
    int r;

    for (int i = 0; i < 2; i++) {
        if ((r = vimg_internal_pread(img->file, h[i], VHDX_HEADER_SIZE,
                                     at[i])) < 0) {
            return r;
        }
        ok[i] = header_valid(h[i]);
    }
    if (!ok[0] && !ok[1]) {
        return vimg_internal_img_error(img, EINVAL, "no valid VHDX header "
                                       "(both have a wrong signature, "
                                       "checksum or version)");
    }
    uint64_t seq0 = load_le64(h[0] + VHDX_HDR_SEQUENCE);
    uint64_t seq1 = load_le64(h[1] + VHDX_HDR_SEQUENCE);
    if (ok[0] && ok[1] && seq0 == seq1 &&
        memcmp(h[0], h[1], VHDX_HEADER_SIZE) != 0) {
        /* disk2vhd writes two identical headers; different ones with one
         * sequence number leave no way to choose. */
        return vimg_internal_img_error(img, EINVAL, "both VHDX headers have "
                                       "sequence number %llu but differ",
                                       (unsigned long long)seq0);
    }
    s->cur_header = !ok[0] || (ok[1] && seq1 > seq0);
    memcpy(s->header, h[s->cur_header], VHDX_HEADER_SIZE);
    if (load_le16(s->header + VHDX_HDR_LOG_VERSION) != 0) {
        return vimg_internal_img_error(img, ENOTSUP, "unsupported VHDX log "
                                       "version %u",
                                       load_le16(s->header +
                                                 VHDX_HDR_LOG_VERSION));
    }
    s->log_offset = load_le64(s->header + VHDX_HDR_LOG_OFFSET);
    s->log_length = load_le32(s->header + VHDX_HDR_LOG_LENGTH);
    if (s->log_offset < VHDX_HEADER_SECTION_END ||
        s->log_offset % VHDX_MIB || s->log_length % VHDX_MIB ||
        range_outside(s->log_offset, s->log_length, INT64_MAX)) {
        return vimg_internal_img_error(img, EINVAL, "log at 0x%llx (%u "
                                       "bytes) is not in whole MiB after "
                                       "the header section",
                                       (unsigned long long)s->log_offset,
                                       s->log_length);
    }
    return 0;
}

/* ---- Region table (2.2.3) ------------------------------------------------ */

static int parse_region_table(struct vimg_image *img, const uint8_t *t)
{
    struct vhdx_state *s = vhdx_state(img);
    uint32_t n = load_le32(t + VHDX_RT_ENTRY_COUNT);
    bool have_bat = false, have_md = false;

    if (n > VHDX_RT_MAX_ENTRIES) {
        return vimg_internal_img_error(img, EINVAL, "region table has %u "
                                       "entries (at most 2047)", n);
    }
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *e = t + VHDX_RT_ENTRIES + (size_t)i * VHDX_RTE_SIZE;
        uint64_t off = load_le64(e + VHDX_RTE_FILE_OFFSET);
        uint64_t len = load_le32(e + VHDX_RTE_LENGTH);
        bool required = load_le32(e + VHDX_RTE_REQUIRED) & 1;
        bool is_bat = memcmp(e, guid_bat, 16) == 0;
        bool is_md = memcmp(e, guid_metadata, 16) == 0;

        if (off % VHDX_MIB || len % VHDX_MIB ||
            off < VHDX_HEADER_SECTION_END ||
            range_outside(off, len, s->file_size)) {
            return vimg_internal_img_error(img, EINVAL, "region %u at 0x%llx "
                                           "(%llu bytes) is not whole MiB "
                                           "inside the file", i,
                                           (unsigned long long)off,
                                           (unsigned long long)len);
        }
        if (overlaps(off, len, s->log_offset, s->log_length)) {
            return vimg_internal_img_error(img, EINVAL, "region %u at 0x%llx "
                                           "overlaps the log", i,
                                           (unsigned long long)off);
        }
        for (uint32_t j = 0; j < i; j++) {
            const uint8_t *o = t + VHDX_RT_ENTRIES +
                               (size_t)j * VHDX_RTE_SIZE;
            if (overlaps(off, len, load_le64(o + VHDX_RTE_FILE_OFFSET),
                         load_le32(o + VHDX_RTE_LENGTH))) {
                return vimg_internal_img_error(img, EINVAL, "regions %u and "
                                               "%u overlap", j, i);
            }
        }
        if ((is_bat && have_bat) || (is_md && have_md)) {
            return vimg_internal_img_error(img, EINVAL, "region table names "
                                           "the %s region twice",
                                           is_bat ? "BAT" : "metadata");
        }
        if (is_bat) {
            have_bat = true;
            s->bat_offset = off;
            s->bat_length = len;
        } else if (is_md) {
            have_md = true;
            s->md_offset = off;
            s->md_length = len;
        } else if (required) {
            return vimg_internal_img_error(img, ENOTSUP, "region %u is "
                                           "required but unknown", i);
        }
    }
    if (!have_bat || !have_md) {
        return vimg_internal_img_error(img, EINVAL, "region table lacks the "
                                       "%s region", have_bat ? "metadata"
                                                             : "BAT");
    }
    return 0;
}

/* Table 1, or table 2 when table 1's signature or checksum is wrong. */
static int read_region_table(struct vimg_image *img)
{
    static const uint64_t at[2] = { VHDX_REGION_TABLE1_OFFSET,
                                    VHDX_REGION_TABLE2_OFFSET };
    uint8_t *t = malloc(VHDX_REGION_TABLE_SIZE);
    int r = 0;

    if (!t) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    for (int i = 0; i < 2; i++) {
        if ((r = vhdx_file_read(img, t, VHDX_REGION_TABLE_SIZE, at[i])) < 0) {
            break;
        }
        if (memcmp(t + VHDX_RT_SIGNATURE, "regi", 4) == 0 &&
            crc32c_skip(t, VHDX_REGION_TABLE_SIZE, VHDX_RT_CHECKSUM) ==
                load_le32(t + VHDX_RT_CHECKSUM)) {
            r = parse_region_table(img, t);
            free(t);
            return r;
        }
    }
    free(t);
    return r < 0 ? r : vimg_internal_img_error(img, EINVAL, "no valid "
                                               "region table (both have a "
                                               "wrong signature or "
                                               "checksum)");
}

/* ---- Metadata (2.6) ------------------------------------------------------- */

enum md_item { MD_PARAMS, MD_SIZE, MD_PAGE83, MD_LOGICAL, MD_PHYSICAL,
               MD_PARENT, MD_COUNT };

static int read_item(struct vimg_image *img, const uint8_t *entry,
                     uint32_t need, uint8_t *out)
{
    struct vhdx_state *s = vhdx_state(img);
    uint32_t off = load_le32(entry + VHDX_MDE_OFFSET);
    uint32_t len = load_le32(entry + VHDX_MDE_LENGTH);

    if (len < need || off < VHDX_METADATA_TABLE_SIZE ||
        range_outside(off, len, s->md_length)) {
        return vimg_internal_img_error(img, EINVAL, "metadata item at "
                                       "offset %u (%u bytes) is too short "
                                       "or outside the metadata region",
                                       off, len);
    }
    return vhdx_file_read(img, out, need, s->md_offset + off);
}

static int read_metadata(struct vimg_image *img)
{
    struct vhdx_state *s = vhdx_state(img);
    static const uint8_t *const ids[MD_COUNT] = {
        guid_file_params, guid_disk_size, guid_page83, guid_logical,
        guid_physical, guid_parent,
    };
    const uint8_t *found[MD_COUNT] = { NULL };
    uint8_t params[8], size[8], logical[4], physical[4];
    uint8_t *t = malloc(VHDX_METADATA_TABLE_SIZE);
    int r;

    if (!t) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    if (s->md_length < VHDX_METADATA_TABLE_SIZE) {
        r = vimg_internal_img_error(img, EINVAL, "metadata region is "
                                    "smaller than its table");
        goto out;
    }
    if ((r = vhdx_file_read(img, t, VHDX_METADATA_TABLE_SIZE,
                            s->md_offset)) < 0) {
        goto out;
    }
    uint32_t n = load_le16(t + VHDX_MD_ENTRY_COUNT);
    if (memcmp(t + VHDX_MD_SIGNATURE, "metadata", 8) != 0 ||
        n > VHDX_MD_MAX_ENTRIES) {
        r = vimg_internal_img_error(img, EINVAL, "metadata table at 0x%llx "
                                    "has a wrong signature or %u entries",
                                    (unsigned long long)s->md_offset, n);
        goto out;
    }
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *e = t + VHDX_MD_ENTRIES + (size_t)i * VHDX_MDE_SIZE;
        int k = 0;
        while (k < MD_COUNT && memcmp(e, ids[k], 16) != 0) {
            k++;
        }
        if (k == MD_COUNT) {
            if (load_le32(e + VHDX_MDE_FLAGS) & VHDX_MDE_IS_REQUIRED) {
                r = vimg_internal_img_error(img, ENOTSUP, "metadata item %u "
                                            "is required but unknown", i);
                goto out;
            }
            continue;
        }
        if (found[k]) {
            r = vimg_internal_img_error(img, EINVAL, "metadata item %u "
                                        "appears twice", i);
            goto out;
        }
        found[k] = e;
    }
    for (int k = 0; k < MD_PARENT; k++) {
        if (!found[k]) {
            r = vimg_internal_img_error(img, EINVAL, "a required metadata "
                                        "item is missing");
            goto out;
        }
    }
    if ((r = read_item(img, found[MD_PARAMS], 8, params)) < 0 ||
        (r = read_item(img, found[MD_SIZE], 8, size)) < 0 ||
        (r = read_item(img, found[MD_LOGICAL], 4, logical)) < 0 ||
        (r = read_item(img, found[MD_PHYSICAL], 4, physical)) < 0) {
        goto out;
    }
    uint32_t flags = load_le32(params + VHDX_PARAM_FLAGS);
    s->has_parent = flags & VHDX_PARAM_HAS_PARENT;
    if (s->has_parent && !found[MD_PARENT]) {
        r = vimg_internal_img_error(img, EINVAL, "differencing image (with "
                                    "a parent) has no parent locator");
        goto out;
    }
    /* LeaveBlockAllocated is ignored when HasParent is set (2.6.2.1). */
    s->fixed = !s->has_parent && (flags & VHDX_PARAM_LEAVE_ALLOCATED);
    s->block_size = load_le32(params + VHDX_PARAM_BLOCK_SIZE);
    s->logical_sector = load_le32(logical);
    s->physical_sector = load_le32(physical);
    uint64_t disk_size = load_le64(size);
    if (!is_power_of_2(s->block_size) ||
        s->block_size < VHDX_BLOCK_SIZE_MIN ||
        s->block_size > VHDX_BLOCK_SIZE_MAX) {
        r = vimg_internal_img_error(img, EINVAL, "block size %u is not a "
                                    "power of two from 1 MiB to 256 MiB",
                                    s->block_size);
        goto out;
    }
    if ((s->logical_sector != 512 && s->logical_sector != 4096) ||
        (s->physical_sector != 512 && s->physical_sector != 4096)) {
        r = vimg_internal_img_error(img, EINVAL, "sector sizes %u/%u are "
                                    "not 512 or 4096", s->logical_sector,
                                    s->physical_sector);
        goto out;
    }
    if (disk_size > VHDX_MAX_IMAGE_SIZE || disk_size % s->logical_sector) {
        r = vimg_internal_img_error(img, EINVAL, "virtual disk size %llu is "
                                    "not whole sectors up to 64 TiB",
                                    (unsigned long long)disk_size);
        goto out;
    }
    img->size = disk_size;
    s->chunk_ratio = VHDX_SECTORS_PER_BITMAP * s->logical_sector /
                     s->block_size;
    s->bitmap_bytes = s->block_size / s->logical_sector / 8;
    r = s->has_parent ? vhdx_parent_load(img, found[MD_PARENT]) : 0;
out:
    free(t);
    return r;
}

/* ---- BAT (2.5) ------------------------------------------------------------ */

/* Sector bitmap entry I (value E) of a differencing disk: present ones
 * hold a 1 MiB bitmap block clear of the log, the BAT and the metadata. */
static int check_sb_entry(struct vimg_image *img, uint64_t i, uint64_t e)
{
    struct vhdx_state *s = vhdx_state(img);
    uint64_t off = e & VHDX_BAT_OFFSET_MASK;

    if ((e & VHDX_BAT_STATE_MASK) != VHDX_SB_BLOCK_PRESENT) {
        return 0;
    }
    if (off < VHDX_HEADER_SECTION_END ||
        overlaps(off, VHDX_SB_BLOCK_SIZE, s->log_offset, s->log_length) ||
        overlaps(off, VHDX_SB_BLOCK_SIZE, s->bat_offset, s->bat_length) ||
        overlaps(off, VHDX_SB_BLOCK_SIZE, s->md_offset, s->md_length)) {
        return vimg_internal_img_error(img, EINVAL, "sector bitmap entry "
                                       "%llu at 0x%llx overlaps the headers, "
                                       "the log, the BAT or the metadata",
                                       (unsigned long long)i,
                                       (unsigned long long)off);
    }
    s->data_end = MAX(s->data_end, off + VHDX_SB_BLOCK_SIZE);
    return 0;
}

/* Partially present payload BLOCK (raw BAT at RAW): its chunk's sector
 * bitmap block must be present and hold the block's bits inside the file
 * (a bitmap block may end early at the end of a truncated-looking file
 * only past the bits in use). */
static int check_partial(struct vimg_image *img, const uint8_t *raw,
                         uint64_t block)
{
    struct vhdx_state *s = vhdx_state(img);
    uint64_t idx = vhdx_sb_index(s, block);
    uint64_t sb = idx < s->bat_entries ? load_le64(raw + idx * 8) : 0;
    uint64_t at = (sb & VHDX_BAT_OFFSET_MASK) +
                  (block % s->chunk_ratio) * s->bitmap_bytes;

    if ((sb & VHDX_BAT_STATE_MASK) != VHDX_SB_BLOCK_PRESENT ||
        range_outside(at, s->bitmap_bytes, s->file_size)) {
        return vimg_internal_img_error(img, EINVAL, "payload block %llu is "
                                       "partially present but its sector "
                                       "bitmap is missing or outside the "
                                       "file", (unsigned long long)block);
    }
    return 0;
}

static int read_bat(struct vimg_image *img)
{
    struct vhdx_state *s = vhdx_state(img);
    uint64_t blocks = DIV_ROUND_UP(img->size, s->block_size);
    uint64_t bytes;
    uint8_t *raw;
    int r;

    /* 2.5: a differencing disk's BAT ends with the last chunk's sector
     * bitmap entry; the others' with the last payload entry. */
    if (s->has_parent) {
        s->bat_entries = DIV_ROUND_UP(blocks, s->chunk_ratio) *
                         (s->chunk_ratio + 1);
    } else {
        s->bat_entries = blocks ? blocks + (blocks - 1) / s->chunk_ratio : 0;
    }
    bytes = s->bat_entries * 8;
    if (bytes > s->bat_length) {
        return vimg_internal_img_error(img, EINVAL, "BAT region (%llu bytes) "
                                       "is too small for %llu entries",
                                       (unsigned long long)s->bat_length,
                                       (unsigned long long)s->bat_entries);
    }
    if (bytes > VHDX_MAX_BAT_BYTES) {
        return vimg_internal_img_error(img, EFBIG, "BAT is too large (%llu "
                                       "entries)",
                                       (unsigned long long)s->bat_entries);
    }
    raw = malloc(bytes ? bytes : 1);
    s->bat = malloc(bytes ? bytes : 1);
    if (!raw || !s->bat) {
        free(raw);
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    if (bytes && (r = vhdx_file_read(img, raw, bytes, s->bat_offset)) < 0) {
        free(raw);
        return r;
    }
    s->data_end = MAX(s->bat_offset + s->bat_length,
                      s->md_offset + s->md_length);
    for (uint64_t i = 0; i < s->bat_entries; i++) {
        uint64_t e = load_le64(raw + i * 8);
        s->bat[i] = e;
        if ((i + 1) % (s->chunk_ratio + 1) == 0) {
            /* A sector bitmap entry: used by differencing disks only. */
            if (s->has_parent &&
                (r = check_sb_entry(img, i, e)) < 0) {
                free(raw);
                return r;
            }
            continue;
        }
        unsigned state = e & VHDX_BAT_STATE_MASK;
        uint64_t off = e & VHDX_BAT_OFFSET_MASK;
        if (state == 4 || (state == VHDX_PAYLOAD_PARTIALLY_PRESENT &&
                           !s->has_parent)) {
            free(raw);
            return vimg_internal_img_error(img, EINVAL, "BAT entry %llu has "
                                           "state %u, invalid without a "
                                           "parent", (unsigned long long)i,
                                           state);
        }
        if (state != VHDX_PAYLOAD_FULLY_PRESENT &&
            state != VHDX_PAYLOAD_PARTIALLY_PRESENT) {
            continue;
        }
        /* The last block may be cut at the end of the disk; entries past
         * it only fill a differencing disk's last chunk. */
        uint64_t block = i - i / (s->chunk_ratio + 1);
        if (block >= blocks) {
            continue;
        }
        if (state == VHDX_PAYLOAD_PARTIALLY_PRESENT &&
            (r = check_partial(img, raw, block)) < 0) {
            free(raw);
            return r;
        }
        uint64_t len = MIN(s->block_size,
                           img->size - block * s->block_size);
        if (off < VHDX_HEADER_SECTION_END ||
            range_outside(off, len, s->file_size)) {
            free(raw);
            return vimg_internal_img_error(img, EINVAL, "BAT entry %llu "
                                           "points at 0x%llx, outside the "
                                           "file (truncated?)",
                                           (unsigned long long)i,
                                           (unsigned long long)off);
        }
        if (overlaps(off, s->block_size, s->log_offset, s->log_length) ||
            overlaps(off, s->block_size, s->bat_offset, s->bat_length) ||
            overlaps(off, s->block_size, s->md_offset, s->md_length)) {
            free(raw);
            return vimg_internal_img_error(img, EINVAL, "BAT entry %llu at "
                                           "0x%llx overlaps the log, the BAT "
                                           "or the metadata",
                                           (unsigned long long)i,
                                           (unsigned long long)off);
        }
        s->data_end = MAX(s->data_end, off + s->block_size);
    }
    free(raw);
    return 0;
}

/* ---- Open and close ------------------------------------------------------ */

static void free_state(struct vhdx_state *s)
{
    free(s->bat);
    free(s->dirty);
    vhdx_log_free(s);
    memset(s, 0, sizeof *s);
}

static int vhdx_open(struct vimg_image *img, const struct vimg_opts *opts)
{
    struct vhdx_state *s = vhdx_state(img);
    uint8_t sig[8];
    int r;

    (void)opts;
    s->log_seq = 1;
    s->file_size = (uint64_t)vimg_internal_get_size(img->file);
    if (s->file_size < VHDX_HEADER_SECTION_END) {
        return vimg_internal_img_error(img, EINVAL, "file too small for the "
                                       "VHDX header section");
    }
    if ((r = vimg_internal_pread(img->file, sig, 8, 0)) < 0) {
        return r;
    }
    if (memcmp(sig, VHDX_FILE_SIGNATURE, 8) != 0) {
        return vimg_internal_img_error(img, EINVAL, "not a VHDX image (no "
                                       "'vhdxfile' signature)");
    }
    if ((r = read_headers(img)) < 0 || (r = vhdx_log_load(img)) < 0) {
        goto fail;
    }
    if (img->writable && s->log_length < VHDX_MIB) {
        /* BAT updates go through the log; without one there is no safe
         * way to write. */
        r = vimg_internal_img_error(img, ENOTSUP, "the image has no log, "
                                    "so it can only be opened read-only");
        goto fail;
    }
    if (s->n_overlay && img->writable) {
        if (img->params.flags & VIMG_OPEN_CHECK) {
            /* check -r: the replay is the repair. */
            if ((r = vhdx_log_replay_to_disk(img)) < 0) {
                goto fail;
            }
        } else {
            r = vimg_internal_img_error(img, EPERM, "the image was not "
                                        "closed cleanly and its log must be "
                                        "replayed first: open it read-only "
                                        "(the log is replayed in memory) or "
                                        "replay it with 'vimg check -r all'");
            goto fail;
        }
    }
    if ((r = read_region_table(img)) < 0 || (r = read_metadata(img)) < 0 ||
        (r = read_bat(img)) < 0) {
        goto fail;
    }
    if (s->has_parent && img->writable) {
        r = vimg_internal_img_error(img, ENOTSUP, "differencing VHDX images "
                                    "(with a parent) can only be opened "
                                    "read-only");
        goto fail;
    }
    return 0;

fail:
    free_state(s);
    return r;
}

static int vhdx_close(struct vimg_image *img)
{
    free_state(vhdx_state(img));
    return 0;
}

/* ---- Data path ----------------------------------------------------------- */

enum run { RUN_DATA, RUN_ZERO, RUN_PARENT };

/* What the guest bytes from OFFSET read as: *N of them (at most COUNT,
 * inside one block) are RUN_DATA at file offset *AT, RUN_ZERO, or
 * RUN_PARENT (a differencing disk's parent holds them). Returns the kind
 * or -errno. */
static int classify(struct vimg_image *img, uint64_t offset, uint64_t count,
                    uint64_t *n, uint64_t *at)
{
    struct vhdx_state *s = vhdx_state(img);
    uint64_t block = offset / s->block_size, in = offset % s->block_size;
    uint64_t e = s->bat[vhdx_bat_index(s, block)];

    *n = MIN(count, s->block_size - in);
    *at = (e & VHDX_BAT_OFFSET_MASK) + in;
    switch (e & VHDX_BAT_STATE_MASK) {
    case VHDX_PAYLOAD_FULLY_PRESENT:
        return RUN_DATA;
    case VHDX_PAYLOAD_NOT_PRESENT:
        /* 2.5.1.1: for a differencing disk, the parent's contents. */
        return s->has_parent ? RUN_PARENT : RUN_ZERO;
    case VHDX_PAYLOAD_PARTIALLY_PRESENT: {
        uint64_t ls = s->logical_sector, first = in / ls;
        uint64_t last = DIV_ROUND_UP(in + *n, ls);
        bool present;
        uint64_t run;
        int r = vhdx_bitmap_run(img, block, first, last - first, &present,
                                &run);
        if (r < 0) {
            return r;
        }
        *n = MIN(*n, (first + run) * ls - in);
        return present ? RUN_DATA : RUN_PARENT;
    }
    default:
        /* Zero, undefined and unmapped blocks read as zeros, which the
         * specification allows for each of them. */
        return RUN_ZERO;
    }
}

static int vhdx_pread(struct vimg_image *img, void *buf, uint64_t count,
                      uint64_t offset)
{
    uint8_t *p = buf;

    while (count > 0) {
        uint64_t n, at;
        int r, kind = classify(img, offset, count, &n, &at);
        if (kind < 0) {
            return kind;
        }
        if (kind == RUN_DATA) {
            r = vhdx_file_read(img, p, n, at);
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

/* Present sectors are data at their file offset; zero, undefined and
 * unmapped blocks (and a dynamic disk's absent ones) read as zeros, this
 * layer's answer; the rest of a differencing disk is its parent's (0). */
static int vhdx_block_status(struct vimg_image *img, uint64_t offset,
                             uint64_t count, uint64_t *pnum, uint64_t *map,
                             const char **file)
{
    uint64_t n, at, next;
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
        int k = classify(img, offset + *pnum, count - *pnum, &n, &next);
        if (k < 0) {
            return k;
        }
        if (k != kind) {
            break;
        }
        *pnum += n;
    }
    return kind == RUN_ZERO ? VIMG_BS_ZERO | VIMG_BS_ALLOCATED : 0;
}

static int vhdx_get_info(struct vimg_image *img, struct vimg_value *info)
{
    return vimg_internal_value_set_int(info, "cluster-size",
                                       vhdx_state(img)->block_size);
}

/* Every structure was validated at open, so what is left to report is a
 * log that still waits for its replay (replayed in memory here; a
 * read-write open for repair writes it out, as qemu-img check -r does). */
static int vhdx_check(struct vimg_image *img, unsigned fix,
                      struct vimg_check_result *res, vimg_report_fn report,
                      void *opaque)
{
    struct vhdx_state *s = vhdx_state(img);

    (void)fix;
    if (s->log_entries && !img->writable) {
        res->corruptions++;
        if (report) {
            report(opaque, "The log holds entries that were never replayed "
                   "(they are applied in memory; 'check -r all' writes "
                   "them out)");
        }
    } else if (s->log_entries) {
        res->corruptions_fixed++;
    }
    return 0;
}

const struct vimg_driver vimg_driver_vhdx = {
    .name = "vhdx",
    .kind = VIMG_DRIVER_FORMAT,
    .instance_size = sizeof(struct vhdx_state),
    .thread_safe = false,
    .has_zero_init = true,
    .create_opts = vhdx_create_opts,
    .probe = vhdx_probe,
    .open = vhdx_open,
    .close = vhdx_close,
    .create = vhdx_create,
    .pread = vhdx_pread,
    .pwrite = vhdx_pwrite,
    .zero = vhdx_zero,
    .flush = vhdx_flush,
    .block_status = vhdx_block_status,
    .backing_opened = vhdx_backing_opened,
    .get_info = vhdx_get_info,
    .check = vhdx_check,
};
