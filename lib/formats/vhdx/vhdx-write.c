/* VHDX creation and writes. New images are laid out as qemu-img 7.2 lays
 * them out (log at 1 MiB, then the BAT and metadata regions, data 5 MiB
 * after the BAT). Writes append whole blocks at the end of the file; the
 * BAT entries that point at them are kept in memory and committed on
 * flush through the log ([MS-VHDX] 2.3: metadata changes go through the
 * log), so a crash leaves either the old BAT or a log that replays to the
 * new one. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../../common/checked-overflow.h"
#include "../../../common/crc32c.h"
#include "../../../common/iszero.h"
#include "../../../common/rounding.h"
#include "../../../common/uuid.h"
#include "vhdx.h"

/* The creator the file type identifier names (diagnostic only). */
#define VHDX_CREATOR "vimg"

/* ---- Headers -------------------------------------------------------------- */

static int random_guid(struct vimg_image *img, uint8_t *out)
{
    int r = uuid_generate_v4(out);
    return r < 0 ? vimg_internal_img_error(img, -r, "no random bytes for a "
                                           "GUID") : 0;
}

int vhdx_update_header(struct vimg_image *img, const uint8_t *log_guid,
                       bool new_data_guid)
{
    struct vhdx_state *s = vhdx_state(img);
    static const uint64_t at[2] = { VHDX_HEADER1_OFFSET,
                                    VHDX_HEADER2_OFFSET };
    uint8_t h[VHDX_HEADER_SIZE];
    int other = !s->cur_header, r;

    memcpy(h, s->header, sizeof h);
    store_le64(h + VHDX_HDR_SEQUENCE,
               load_le64(s->header + VHDX_HDR_SEQUENCE) + 1);
    /* A new file write GUID for this session's first header update; the
     * second copy carries the same one. */
    if (!s->session_started) {
        if ((r = random_guid(img, s->session_guid)) < 0) {
            return r;
        }
        s->session_started = true;
    }
    memcpy(h + VHDX_HDR_FILE_WRITE_GUID, s->session_guid, 16);
    if (new_data_guid && (r = random_guid(img, h + VHDX_HDR_DATA_WRITE_GUID))
                             < 0) {
        return r;
    }
    if (log_guid) {
        memcpy(h + VHDX_HDR_LOG_GUID, log_guid, 16);
    }
    store_le32(h + VHDX_HDR_CHECKSUM,
               crc32c_skip(h, sizeof h, VHDX_HDR_CHECKSUM));
    if ((r = vimg_internal_pwrite(img->file, h, sizeof h, at[other], 0)) < 0 ||
        (r = vimg_internal_flush(img->file)) < 0) {
        return r;
    }
    memcpy(s->header, h, sizeof h);
    s->cur_header = other;
    return 0;
}

/* The first guest-visible change of a session renews the data write GUID
 * in both headers, as the specification asks. */
static int begin_write(struct vimg_image *img)
{
    struct vhdx_state *s = vhdx_state(img);
    int r;

    if (s->data_written) {
        return 0;
    }
    if ((r = vhdx_update_header(img, NULL, true)) < 0 ||
        (r = vhdx_update_header(img, NULL, false)) < 0) {
        return r;
    }
    s->data_written = true;
    return 0;
}

/* ---- The BAT through the log -------------------------------------------- */

/* One log entry that writes the N 4 KiB sectors of the BAT listed in
 * SECT (file offsets) from the in-memory BAT, at the start of the (empty)
 * log. */
static int log_entry(struct vimg_image *img, const uint64_t *sect, size_t n,
                     uint64_t seq, uint8_t **out, uint32_t *out_len)
{
    struct vhdx_state *s = vhdx_state(img);
    uint32_t dsec = DIV_ROUND_UP(n + 2, VHDX_LOG_SECTOR / VHDX_LOG_DESC_SIZE);
    uint32_t len = (uint32_t)((dsec + n) * VHDX_LOG_SECTOR);
    uint64_t file_size = (uint64_t)vimg_internal_get_size(img->file);
    uint8_t *e = calloc(1, len), sector[VHDX_LOG_SECTOR];

    if (!e) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    memcpy(e + VHDX_LOGE_SIGNATURE, "loge", 4);
    store_le32(e + VHDX_LOGE_ENTRY_LENGTH, len);
    store_le32(e + VHDX_LOGE_TAIL, 0);
    store_le64(e + VHDX_LOGE_SEQUENCE, seq);
    store_le32(e + VHDX_LOGE_DESC_COUNT, (uint32_t)n);
    memcpy(e + VHDX_LOGE_LOG_GUID, s->header + VHDX_HDR_LOG_GUID, 16);
    store_le64(e + VHDX_LOGE_FLUSHED_OFFSET, file_size);
    store_le64(e + VHDX_LOGE_LAST_OFFSET, file_size);
    for (size_t i = 0; i < n; i++) {
        uint8_t *d = e + VHDX_LOG_HDR_SIZE + i * VHDX_LOG_DESC_SIZE;
        uint8_t *ds = e + (dsec + i) * VHDX_LOG_SECTOR;
        uint64_t first = (sect[i] - s->bat_offset) / 8;
        for (uint64_t k = 0; k < VHDX_LOG_SECTOR / 8; k++) {
            store_le64(sector + k * 8, first + k < s->bat_entries
                                       ? s->bat[first + k] : 0);
        }
        memcpy(d + VHDX_DESC_SIGNATURE, "desc", 4);
        memcpy(d + VHDX_DESC_TRAILING, sector + VHDX_LOG_SECTOR - 4, 4);
        memcpy(d + VHDX_DESC_LEADING, sector, 8);
        store_le64(d + VHDX_DESC_FILE_OFFSET, sect[i]);
        store_le64(d + VHDX_DESC_SEQUENCE, seq);
        memcpy(ds + VHDX_DATA_SIGNATURE, "data", 4);
        store_le32(ds + VHDX_DATA_SEQUENCE_HIGH, (uint32_t)(seq >> 32));
        memcpy(ds + VHDX_DATA_BYTES, sector + 8, VHDX_LOG_SECTOR - 12);
        store_le32(ds + VHDX_DATA_SEQUENCE_LOW, (uint32_t)seq);
    }
    store_le32(e + VHDX_LOGE_CHECKSUM,
               crc32c_skip(e, len, VHDX_LOGE_CHECKSUM));
    *out = e;
    *out_len = len;
    return 0;
}

/* Commit up to what one log entry holds of the dirty BAT sectors: the
 * data they point at is flushed, the entry is written and flushed, the
 * sectors are written in place and flushed, and the log is marked empty
 * again. Returns how many were committed. */
static int commit_some(struct vimg_image *img, const uint64_t *sect, size_t n,
                       size_t *done)
{
    struct vhdx_state *s = vhdx_state(img);
    uint32_t cap = s->log_length / VHDX_LOG_SECTOR - 1; /* one left open */
    uint8_t guid[16], *entry = NULL, sector[VHDX_LOG_SECTOR];
    static const uint8_t no_log[16];
    uint32_t len = 0;
    int r;

    while (n + DIV_ROUND_UP(n + 2, VHDX_LOG_SECTOR / VHDX_LOG_DESC_SIZE) >
           cap) {
        n--;
    }
    if ((r = random_guid(img, guid)) < 0 ||
        (r = vimg_internal_flush(img->file)) < 0 ||
        (r = vhdx_update_header(img, guid, false)) < 0 ||
        (r = vhdx_update_header(img, guid, false)) < 0 ||
        (r = log_entry(img, sect, n, s->log_seq++, &entry, &len)) < 0) {
        return r;
    }
    r = vimg_internal_pwrite(img->file, entry, len, s->log_offset, 0);
    free(entry);
    if (r < 0 || (r = vimg_internal_flush(img->file)) < 0) {
        return r;
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t first = (sect[i] - s->bat_offset) / 8;
        for (uint64_t k = 0; k < VHDX_LOG_SECTOR / 8; k++) {
            store_le64(sector + k * 8, first + k < s->bat_entries
                                       ? s->bat[first + k] : 0);
        }
        if ((r = vimg_internal_pwrite(img->file, sector, sizeof sector,
                                      sect[i], 0)) < 0) {
            return r;
        }
    }
    if ((r = vimg_internal_flush(img->file)) < 0 ||
        (r = vhdx_update_header(img, no_log, false)) < 0 ||
        (r = vhdx_update_header(img, no_log, false)) < 0) {
        return r;
    }
    *done = n;
    return 0;
}

int vhdx_flush(struct vimg_image *img)
{
    struct vhdx_state *s = vhdx_state(img);
    uint64_t *sect;
    size_t n = 0;
    int r = 0;

    if (!s->dirty || !img->writable) {
        return 0;
    }
    sect = malloc(s->n_dirty * sizeof *sect);
    if (!sect) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    for (uint64_t i = 0; i < s->bat_sectors; i++) {
        if (s->dirty[i / 8] & (1u << (i % 8))) {
            sect[n++] = s->bat_offset + i * VHDX_LOG_SECTOR;
        }
    }
    for (size_t done = 0, k; done < n && r == 0; done += k) {
        r = commit_some(img, sect + done, n - done, &k);
    }
    free(sect);
    if (r == 0) {
        memset(s->dirty, 0, DIV_ROUND_UP(s->bat_sectors, 8));
        s->n_dirty = 0;
    }
    return r;
}

static int set_bat(struct vimg_image *img, uint64_t idx, uint64_t value)
{
    struct vhdx_state *s = vhdx_state(img);
    uint64_t sec = idx * 8 / VHDX_LOG_SECTOR;

    if (!s->dirty) {
        s->bat_sectors = DIV_ROUND_UP(s->bat_entries * 8, VHDX_LOG_SECTOR);
        s->dirty = calloc(1, DIV_ROUND_UP(s->bat_sectors, 8) + 1);
        if (!s->dirty) {
            return vimg_internal_img_error(img, ENOMEM, "out of memory");
        }
    }
    s->bat[idx] = value;
    if (!(s->dirty[sec / 8] & (1u << (sec % 8)))) {
        s->dirty[sec / 8] |= (uint8_t)(1u << (sec % 8));
        s->n_dirty++;
    }
    return 0;
}

/* ---- Writes --------------------------------------------------------------- */

/* A new block at the first whole MiB past everything in the file, which
 * is extended (sparsely: zeros) to hold it. */
static int alloc_block(struct vimg_image *img, uint64_t block, uint64_t *at)
{
    struct vhdx_state *s = vhdx_state(img);
    uint64_t size = (uint64_t)vimg_internal_get_size(img->file);
    uint64_t off = ROUND_UP(MAX(size, s->data_end), VHDX_MIB);
    int r;

    if (off + s->block_size > INT64_MAX) {
        return vimg_internal_img_error(img, EFBIG, "no room for another "
                                       "block");
    }
    if ((r = vimg_internal_truncate(img->file, off + s->block_size, 0,
                                    VIMG_PREALLOC_OFF)) < 0 ||
        (r = set_bat(img, vhdx_bat_index(s, block),
                     off | VHDX_PAYLOAD_FULLY_PRESENT)) < 0) {
        return r;
    }
    s->data_end = off + s->block_size;
    *at = off;
    return 0;
}

static uint64_t present_at(struct vhdx_state *s, uint64_t block)
{
    uint64_t e = s->bat[vhdx_bat_index(s, block)];
    return (e & VHDX_BAT_STATE_MASK) == VHDX_PAYLOAD_FULLY_PRESENT
           ? e & VHDX_BAT_OFFSET_MASK : 0;
}

int vhdx_pwrite(struct vimg_image *img, const void *buf, uint64_t count,
                uint64_t offset, unsigned flags)
{
    struct vhdx_state *s = vhdx_state(img);
    const uint8_t *p = buf;
    int r;

    if ((r = begin_write(img)) < 0) {
        return r;
    }
    while (count > 0) {
        uint64_t block = offset / s->block_size, in = offset % s->block_size;
        uint64_t n = MIN(count, s->block_size - in);
        uint64_t at = present_at(s, block);
        if (!at && (r = alloc_block(img, block, &at)) < 0) {
            return r;
        }
        if ((r = vimg_internal_pwrite(img->file, p, n, at + in, flags)) < 0) {
            return r;
        }
        p += n;
        offset += n;
        count -= n;
    }
    return flags & VIMG_WRITE_FUA ? vhdx_flush(img) : 0;
}

/* Blocks that are not present read as zeros already; zeroing never
 * allocates. */
int vhdx_zero(struct vimg_image *img, uint64_t offset, uint64_t count,
              unsigned flags)
{
    struct vhdx_state *s = vhdx_state(img);
    int r;

    if ((r = begin_write(img)) < 0) {
        return r;
    }
    while (count > 0) {
        uint64_t block = offset / s->block_size, in = offset % s->block_size;
        uint64_t n = MIN(count, s->block_size - in);
        uint64_t at = present_at(s, block);
        if (at && (r = vimg_internal_zero(img->file, at + in, n, flags)) < 0) {
            return r;
        }
        offset += n;
        count -= n;
    }
    return 0;
}

/* ---- Create --------------------------------------------------------------- */

const struct vimg_opt_desc vhdx_create_opts[] = {
    { "size", VIMG_OPT_SIZE, "Virtual disk size; max of 64TB." },
    { "log_size", VIMG_OPT_SIZE, "Log size; min 1MB." },
    { "block_size", VIMG_OPT_SIZE,
      "Block Size; min 1MB, max 256MB. 0 means auto-calculate based on "
      "image size." },
    { "subformat", VIMG_OPT_STRING,
      "VHDX format type, can be either 'dynamic' or 'fixed'. Default is "
      "'dynamic'." },
    { "block_state_zero", VIMG_OPT_BOOL,
      "Force use of payload blocks of type 'ZERO'. Non-standard, but "
      "default." },
    { NULL, 0, NULL },
};

struct layout {
    uint64_t size;
    uint32_t log_size, block_size;
    bool fixed, zero_blocks;
    uint64_t bat_entries, bat_offset, bat_length, md_offset, data_offset;
};

/* qemu-img's choices: a block size by disk size, the log in whole MiB,
 * the BAT after the log, metadata after the BAT, data 5 MiB later. */
static int plan(const struct vimg_create_ctx *c, struct layout *l)
{
    const char *sub = vimg_internal_opts_get(c->opts, "subformat", "dynamic");
    uint64_t log_size, block_size;
    int r;

    if ((r = vimg_internal_opts_get_size(c->opts, "log_size", VHDX_MIB,
                                         &log_size)) < 0 ||
        (r = vimg_internal_opts_get_size(c->opts, "block_size", 0,
                                         &block_size)) < 0 ||
        (r = vimg_internal_opts_get_bool(c->opts, "block_state_zero", true,
                                         &l->zero_blocks)) < 0) {
        return r;
    }
    if (strcmp(sub, "dynamic") != 0 && strcmp(sub, "fixed") != 0) {
        return vimg_internal_error(EINVAL, "%s: subformat '%s' is not "
                                   "'dynamic' or 'fixed' (differencing "
                                   "images are not supported)", c->filename,
                                   sub);
    }
    l->fixed = strcmp(sub, "fixed") == 0;
    l->size = ROUND_UP(c->size, 512);
    if (l->size > VHDX_MAX_IMAGE_SIZE) {
        return vimg_internal_error(EINVAL, "%s: image size too large; max of "
                                   "64TB", c->filename);
    }
    log_size = log_size > UINT32_MAX ? log_size : ROUND_UP(log_size,
                                                           VHDX_MIB);
    if (log_size < VHDX_MIB || log_size > (1ull << 31)) {
        return vimg_internal_error(EINVAL, "%s: log size must be a multiple "
                                   "of 1 MB, up to 2 GiB", c->filename);
    }
    if (block_size == 0) {
        block_size = l->size > (32ull << 40) ? 64 * VHDX_MIB
                   : l->size > (100ull << 30) ? 32 * VHDX_MIB
                   : l->size > (1ull << 30) ? 16 * VHDX_MIB : 8 * VHDX_MIB;
    }
    block_size = MIN(ROUND_UP(MIN(block_size, (uint64_t)UINT32_MAX),
                              VHDX_MIB), VHDX_BLOCK_SIZE_MAX);
    if (!is_power_of_2(block_size)) {
        return vimg_internal_error(EINVAL, "%s: block size must be a power "
                                   "of two", c->filename);
    }
    l->log_size = (uint32_t)log_size;
    l->block_size = (uint32_t)block_size;
    uint64_t chunk_ratio = VHDX_SECTORS_PER_BITMAP * 512 / block_size;
    uint64_t blocks = DIV_ROUND_UP(l->size, block_size);
    l->bat_entries = blocks ? blocks + (blocks - 1) / chunk_ratio : 0;
    l->bat_offset = ROUND_UP(VHDX_HEADER_SECTION_END + log_size, VHDX_MIB);
    l->bat_length = ROUND_UP(l->bat_entries * 8, VHDX_MIB);
    if (l->bat_length > VHDX_MAX_BAT_BYTES) {
        return vimg_internal_error(EFBIG, "%s: a BAT of %llu entries is "
                                   "larger than vimg reads back (choose a "
                                   "larger block_size)", c->filename,
                                   (unsigned long long)l->bat_entries);
    }
    l->md_offset = l->bat_offset + l->bat_length;
    l->data_offset = l->md_offset + 5 * VHDX_MIB;
    return 0;
}

static int write_headers(struct vimg_image *file, const struct layout *l)
{
    uint8_t h[VHDX_HEADER_SIZE], seq[16];
    int r;

    memset(h, 0, sizeof h);
    memcpy(h + VHDX_HDR_SIGNATURE, "head", 4);
    if ((r = uuid_generate_v4(h + VHDX_HDR_FILE_WRITE_GUID)) < 0 ||
        (r = uuid_generate_v4(h + VHDX_HDR_DATA_WRITE_GUID)) < 0 ||
        (r = uuid_generate_v4(seq)) < 0) {
        return vimg_internal_error(-r, "%s: no random bytes",
                                   file->filename);
    }
    /* QEMU starts from a random 32-bit sequence number. */
    store_le64(h + VHDX_HDR_SEQUENCE, load_le32(seq));
    store_le16(h + VHDX_HDR_LOG_VERSION, 0);
    store_le16(h + VHDX_HDR_VERSION, 1);
    store_le32(h + VHDX_HDR_LOG_LENGTH, l->log_size);
    store_le64(h + VHDX_HDR_LOG_OFFSET, VHDX_HEADER_SECTION_END);
    for (int i = 0; i < 2; i++) {
        if (i) {
            store_le64(h + VHDX_HDR_SEQUENCE,
                       load_le64(h + VHDX_HDR_SEQUENCE) + 1);
        }
        store_le32(h + VHDX_HDR_CHECKSUM,
                   crc32c_skip(h, sizeof h, VHDX_HDR_CHECKSUM));
        if ((r = vimg_internal_pwrite(file, h, sizeof h,
                                      i ? VHDX_HEADER2_OFFSET
                                        : VHDX_HEADER1_OFFSET, 0)) < 0) {
            return r;
        }
    }
    return 0;
}

static int write_region_tables(struct vimg_image *file,
                               const struct layout *l)
{
    static const uint8_t bat[16] = VHDX_GUID_BAT;
    static const uint8_t md[16] = VHDX_GUID_METADATA;
    uint8_t *t = calloc(1, VHDX_REGION_TABLE_SIZE);
    int r;

    if (!t) {
        return vimg_internal_error(ENOMEM, "out of memory");
    }
    memcpy(t + VHDX_RT_SIGNATURE, "regi", 4);
    store_le32(t + VHDX_RT_ENTRY_COUNT, 2);
    uint8_t *e = t + VHDX_RT_ENTRIES;
    memcpy(e + VHDX_RTE_GUID, bat, 16);
    store_le64(e + VHDX_RTE_FILE_OFFSET, l->bat_offset);
    store_le32(e + VHDX_RTE_LENGTH, (uint32_t)l->bat_length);
    e += VHDX_RTE_SIZE;
    memcpy(e + VHDX_RTE_GUID, md, 16);
    store_le64(e + VHDX_RTE_FILE_OFFSET, l->md_offset);
    store_le32(e + VHDX_RTE_LENGTH, VHDX_MIB);
    store_le32(t + VHDX_RT_CHECKSUM,
               crc32c_skip(t, VHDX_REGION_TABLE_SIZE, VHDX_RT_CHECKSUM));
    if ((r = vimg_internal_pwrite(file, t, VHDX_REGION_TABLE_SIZE,
                                  VHDX_REGION_TABLE1_OFFSET, 0)) == 0) {
        r = vimg_internal_pwrite(file, t, VHDX_REGION_TABLE_SIZE,
                                 VHDX_REGION_TABLE2_OFFSET, 0);
    }
    free(t);
    return r;
}

static int write_metadata(struct vimg_image *file, const struct layout *l)
{
    static const uint8_t ids[5][16] = {
        VHDX_GUID_FILE_PARAMETERS, VHDX_GUID_VIRTUAL_DISK_SIZE,
        VHDX_GUID_PAGE83, VHDX_GUID_LOGICAL_SECTOR,
        VHDX_GUID_PHYSICAL_SECTOR,
    };
    static const uint32_t lens[5] = { 8, 8, 16, 4, 4 };
    uint8_t *t = calloc(1, VHDX_METADATA_TABLE_SIZE);
    uint8_t items[40] = { 0 };
    uint32_t off = VHDX_METADATA_TABLE_SIZE;
    int r;

    if (!t) {
        return vimg_internal_error(ENOMEM, "out of memory");
    }
    memcpy(t + VHDX_MD_SIGNATURE, "metadata", 8);
    store_le16(t + VHDX_MD_ENTRY_COUNT, 5);
    for (int i = 0; i < 5; i++) {
        uint8_t *e = t + VHDX_MD_ENTRIES + i * VHDX_MDE_SIZE;
        memcpy(e + VHDX_MDE_ITEM_ID, ids[i], 16);
        store_le32(e + VHDX_MDE_OFFSET, off);
        store_le32(e + VHDX_MDE_LENGTH, lens[i]);
        store_le32(e + VHDX_MDE_FLAGS, i == 0 ? VHDX_MDE_IS_REQUIRED
                                              : VHDX_MDE_IS_REQUIRED |
                                                VHDX_MDE_IS_VIRTUAL_DISK);
        off += lens[i];
    }
    store_le32(items + VHDX_PARAM_BLOCK_SIZE, l->block_size);
    store_le32(items + VHDX_PARAM_FLAGS,
               l->fixed ? VHDX_PARAM_LEAVE_ALLOCATED : 0);
    store_le64(items + 8, l->size);
    if ((r = uuid_generate_v4(items + 16)) < 0) {
        free(t);
        return vimg_internal_error(-r, "%s: no random bytes",
                                   file->filename);
    }
    store_le32(items + 32, 512);
    store_le32(items + 36, 512);
    if ((r = vimg_internal_pwrite(file, t, VHDX_METADATA_TABLE_SIZE,
                                  l->md_offset, 0)) == 0) {
        r = vimg_internal_pwrite(file, items, sizeof items,
                                 l->md_offset + VHDX_METADATA_TABLE_SIZE, 0);
    }
    free(t);
    return r;
}

/* Dynamic images: every payload entry "zero" (QEMU's default) or left
 * "not present" (all zero bytes). Fixed images: each block placed after
 * the data offset, "present", unless zero blocks are asked for. */
static int write_bat(struct vimg_image *file, const struct layout *l)
{
    uint64_t chunk_ratio = VHDX_SECTORS_PER_BITMAP * 512 / l->block_size;
    uint8_t chunk[65536];
    int r;

    if (!l->fixed && !l->zero_blocks) {
        return 0;
    }
    for (uint64_t i = 0; i < l->bat_entries;) {
        uint64_t n = MIN(sizeof chunk / 8, l->bat_entries - i);
        for (uint64_t k = 0; k < n; k++) {
            uint64_t idx = i + k, e = 0;
            if ((idx + 1) % (chunk_ratio + 1) != 0) {
                uint64_t block = idx - idx / (chunk_ratio + 1);
                e = l->zero_blocks ? VHDX_PAYLOAD_ZERO
                    : (l->data_offset + block * l->block_size) |
                      VHDX_PAYLOAD_FULLY_PRESENT;
            }
            store_le64(chunk + k * 8, e);
        }
        if ((r = vimg_internal_pwrite(file, chunk, n * 8,
                                      l->bat_offset + i * 8, 0)) < 0) {
            return r;
        }
        i += n;
    }
    return 0;
}

int vhdx_create(struct vimg_image *file, const struct vimg_create_ctx *c)
{
    struct layout l;
    uint8_t id[8 + 2 * sizeof VHDX_CREATOR] = VHDX_FILE_SIGNATURE;
    int r;

    if ((r = plan(c, &l)) < 0) {
        return r;
    }
    for (size_t i = 0; i < sizeof VHDX_CREATOR - 1; i++) {
        store_le16(id + 8 + 2 * i, (uint8_t)VHDX_CREATOR[i]);
    }
    if ((r = vimg_internal_pwrite(file, id, sizeof id, 0, 0)) < 0 ||
        (r = write_headers(file, &l)) < 0 ||
        (r = vimg_internal_truncate(file,
                                    l.data_offset + (l.fixed ? l.size : 0),
                                    0, VIMG_PREALLOC_OFF)) < 0 ||
        (r = write_bat(file, &l)) < 0 ||
        (r = write_region_tables(file, &l)) < 0) {
        return r;
    }
    return write_metadata(file, &l);
}
