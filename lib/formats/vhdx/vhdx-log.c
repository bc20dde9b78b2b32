/* The VHDX log ([MS-VHDX] 2.3): finding the active sequence of entries in
 * the circular log and replaying it. A read-only open replays it in memory
 * only (the overlay every metadata and data read goes through); a
 * read-write open for repair writes it out and marks the log empty, as the
 * specification asks before any other write. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../../common/checked-overflow.h"
#include "../../../common/crc32c.h"
#include "../../../common/iszero.h"
#include "../../../common/rounding.h"
#include "vhdx.h"

struct log_entry {
    uint64_t pos;          /* offset in the log */
    uint32_t length;
    uint32_t tail;
    uint64_t seq;
    uint64_t flushed, last;
};

struct log_scan {
    const uint8_t *log;    /* the whole log */
    uint32_t len;
    const uint8_t *guid;   /* the header's log GUID */
    uint8_t *tmp;          /* one entry, unwrapped */
    uint64_t budget;       /* bytes left to checksum */
};

/* LEN bytes of the circular log from POS. */
static void log_copy(const struct log_scan *sc, uint64_t pos, uint8_t *out,
                     uint64_t len)
{
    while (len > 0) {
        uint64_t k = MIN(len, sc->len - pos);
        memcpy(out, sc->log + pos, k);
        out += k;
        len -= k;
        pos = (pos + k) % sc->len;
    }
}

static uint32_t desc_sectors(uint32_t count)
{
    /* The entry header takes the room of two descriptors. */
    return DIV_ROUND_UP(count + 2, VHDX_LOG_SECTOR / VHDX_LOG_DESC_SIZE);
}

/* Whether a whole, valid entry starts at POS (its copy left in sc->tmp).
 * -1 when the checksum budget is spent. */
static int entry_at(struct log_scan *sc, uint64_t pos, struct log_entry *e)
{
    const uint8_t *h = sc->log + pos; /* a header never wraps: sectors */
    uint32_t len = load_le32(h + VHDX_LOGE_ENTRY_LENGTH);
    uint32_t count = load_le32(h + VHDX_LOGE_DESC_COUNT);
    uint64_t seq = load_le64(h + VHDX_LOGE_SEQUENCE);

    if (memcmp(h, "loge", 4) != 0 || len == 0 || len % VHDX_LOG_SECTOR ||
        len > sc->len || seq == 0 ||
        memcmp(h + VHDX_LOGE_LOG_GUID, sc->guid, 16) != 0 ||
        (uint64_t)desc_sectors(count) * VHDX_LOG_SECTOR > len) {
        return 0;
    }
    if (sc->budget < len) {
        return -1;
    }
    sc->budget -= len;
    log_copy(sc, pos, sc->tmp, len);
    if (crc32c_skip(sc->tmp, len, VHDX_LOGE_CHECKSUM) !=
        load_le32(sc->tmp + VHDX_LOGE_CHECKSUM)) {
        return 0;
    }
    uint64_t data = desc_sectors(count);
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *d = sc->tmp + VHDX_LOG_HDR_SIZE +
                           (uint64_t)i * VHDX_LOG_DESC_SIZE;
        if (load_le64(d + VHDX_DESC_SEQUENCE) != seq ||
            load_le64(d + VHDX_DESC_FILE_OFFSET) % VHDX_LOG_SECTOR) {
            return 0;
        }
        if (memcmp(d, "zero", 4) == 0) {
            if (load_le64(d + VHDX_DESC_ZERO_LENGTH) % VHDX_LOG_SECTOR) {
                return 0;
            }
            continue;
        }
        const uint8_t *ds = sc->tmp + data * VHDX_LOG_SECTOR;
        if (memcmp(d, "desc", 4) != 0 || data >= len / VHDX_LOG_SECTOR ||
            memcmp(ds, "data", 4) != 0 ||
            load_le32(ds + VHDX_DATA_SEQUENCE_HIGH) != (uint32_t)(seq >> 32) ||
            load_le32(ds + VHDX_DATA_SEQUENCE_LOW) != (uint32_t)seq) {
            return 0;
        }
        data++;
    }
    e->pos = pos;
    e->length = len;
    e->tail = load_le32(h + VHDX_LOGE_TAIL);
    e->seq = seq;
    e->flushed = load_le64(h + VHDX_LOGE_FLUSHED_OFFSET);
    e->last = load_le64(h + VHDX_LOGE_LAST_OFFSET);
    return 1;
}

static int add_overlay(struct vimg_image *img, uint64_t offset,
                       uint64_t length, const uint8_t *data)
{
    struct vhdx_state *s = vhdx_state(img);
    struct vhdx_overlay *o = realloc(s->overlay,
                                     (s->n_overlay + 1) * sizeof *o);
    uint64_t end;

    if (!o) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    s->overlay = o;
    if (CHECKED_ADD(offset, length, &end) || end > INT64_MAX) {
        return vimg_internal_img_error(img, EINVAL, "log entry writes past "
                                       "2^63 bytes");
    }
    o[s->n_overlay].offset = offset;
    o[s->n_overlay].length = length;
    o[s->n_overlay].data = NULL;
    if (data) {
        if (!(o[s->n_overlay].data = malloc(VHDX_LOG_SECTOR))) {
            return vimg_internal_img_error(img, ENOMEM, "out of memory");
        }
        memcpy(o[s->n_overlay].data, data, VHDX_LOG_SECTOR);
    }
    s->n_overlay++;
    return 0;
}

/* Turn the entry copied in sc->tmp into overlay records: each data sector
 * is its descriptor's 8 leading bytes, the sector's 4084 and the
 * descriptor's 4 trailing ones. */
static int replay_entry(struct vimg_image *img, struct log_scan *sc,
                        const struct log_entry *e)
{
    struct vhdx_state *s = vhdx_state(img);
    uint32_t count = load_le32(sc->tmp + VHDX_LOGE_DESC_COUNT);
    uint64_t data = desc_sectors(count);
    uint8_t sector[VHDX_LOG_SECTOR];
    int r;

    if (e->flushed > s->file_size) {
        return vimg_internal_img_error(img, EINVAL, "log entry %llu needs "
                                       "the file to be at least %llu bytes: "
                                       "it was truncated",
                                       (unsigned long long)e->seq,
                                       (unsigned long long)e->flushed);
    }
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *d = sc->tmp + VHDX_LOG_HDR_SIZE +
                           (uint64_t)i * VHDX_LOG_DESC_SIZE;
        uint64_t at = load_le64(d + VHDX_DESC_FILE_OFFSET);
        if (memcmp(d, "zero", 4) == 0) {
            r = add_overlay(img, at, load_le64(d + VHDX_DESC_ZERO_LENGTH),
                            NULL);
        } else {
            const uint8_t *ds = sc->tmp + data++ * VHDX_LOG_SECTOR;
            memcpy(sector, d + VHDX_DESC_LEADING, 8);
            memcpy(sector + 8, ds + VHDX_DATA_BYTES, VHDX_LOG_SECTOR - 12);
            memcpy(sector + VHDX_LOG_SECTOR - 4, d + VHDX_DESC_TRAILING, 4);
            r = add_overlay(img, at, VHDX_LOG_SECTOR, sector);
        }
        if (r < 0) {
            return r;
        }
    }
    s->file_size = MAX(s->file_size, e->last);
    s->log_entries++;
    return 0;
}

/* The longest run of entries from START with sequence numbers counting up
 * by one (at most one lap of the log). */
static int follow(struct log_scan *sc, uint64_t start, struct log_entry *chain,
                  size_t *n)
{
    size_t max = sc->len / VHDX_LOG_SECTOR;
    uint64_t pos = start;
    int r;

    *n = 0;
    while (*n < max) {
        struct log_entry e;
        if ((r = entry_at(sc, pos, &e)) < 0) {
            return r;
        }
        if (r == 0 || (*n && e.seq != chain[*n - 1].seq + 1)) {
            break;
        }
        chain[(*n)++] = e;
        pos = (pos + e.length) % sc->len;
        if (pos == start) {
            break;
        }
    }
    return 0;
}

void vhdx_log_free(struct vhdx_state *s)
{
    for (size_t i = 0; i < s->n_overlay; i++) {
        free(s->overlay[i].data);
    }
    free(s->overlay);
    s->overlay = NULL;
    s->n_overlay = 0;
}

int vhdx_log_load(struct vimg_image *img)
{
    struct vhdx_state *s = vhdx_state(img);
    struct log_scan sc = { .len = s->log_length,
                           .guid = s->header + VHDX_HDR_LOG_GUID };
    struct log_entry *chain = NULL, *best = NULL;
    size_t n = 0, n_best = 0, max;
    uint8_t *log = NULL;
    int r;

    if (is_zero(sc.guid, 16) || s->log_length == 0) {
        return 0; /* no log to replay */
    }
    if (s->log_length > VHDX_MAX_LOG_REPLAY) {
        return vimg_internal_img_error(img, EFBIG, "log of %u MiB to replay "
                                       "is larger than 64 MiB",
                                       s->log_length >> 20);
    }
    if (range_outside(s->log_offset, s->log_length, s->file_size)) {
        return vimg_internal_img_error(img, EINVAL, "log at 0x%llx lies past "
                                       "the end of the file",
                                       (unsigned long long)s->log_offset);
    }
    max = s->log_length / VHDX_LOG_SECTOR;
    log = malloc(s->log_length);
    sc.tmp = malloc(s->log_length);
    chain = calloc(max, sizeof *chain);
    best = calloc(max, sizeof *best);
    if (!log || !sc.tmp || !chain || !best) {
        r = vimg_internal_img_error(img, ENOMEM, "out of memory");
        goto out;
    }
    if ((r = vimg_internal_pread(img->file, log, s->log_length,
                                 s->log_offset)) < 0) {
        goto out;
    }
    sc.log = log;
    sc.budget = (uint64_t)VHDX_LOG_SEARCH_PASSES * s->log_length;
    /* Every run of entries in the log; the active one ends with the
     * largest sequence number. */
    for (uint64_t pos = 0; pos < s->log_length;) {
        if ((r = follow(&sc, pos, chain, &n)) < 0) {
            r = vimg_internal_img_error(img, EINVAL, "log is too damaged to "
                                        "search (checksum budget spent)");
            goto out;
        }
        if (n == 0) {
            pos += VHDX_LOG_SECTOR;
            continue;
        }
        if (!n_best || chain[n - 1].seq > best[n_best - 1].seq) {
            memcpy(best, chain, n * sizeof *chain);
            n_best = n;
        }
        uint64_t span = 0;
        for (size_t i = 0; i < n; i++) {
            span += chain[i].length;
        }
        pos += span;
    }
    if (!n_best) {
        /* A log GUID with no valid entry: nothing was left unreplayed. */
        r = 0;
        goto out;
    }
    /* Replay from the head's tail when it is one of the run's entries (the
     * specification's rule); otherwise the whole run, as QEMU does. */
    size_t first = 0;
    for (size_t i = 0; i < n_best; i++) {
        if (best[i].pos == best[n_best - 1].tail) {
            first = i;
        }
    }
    for (size_t i = first; i < n_best; i++) {
        struct log_entry e;
        sc.budget = UINT64_MAX;
        if ((r = entry_at(&sc, best[i].pos, &e)) != 1) {
            r = vimg_internal_img_error(img, EIO, "log entry at 0x%llx "
                                        "changed while reading it",
                                        (unsigned long long)best[i].pos);
            goto out;
        }
        if ((r = replay_entry(img, &sc, &e)) < 0) {
            goto out;
        }
    }
    r = 0;
out:
    if (r < 0) {
        vhdx_log_free(s);
    }
    free(log);
    free(sc.tmp);
    free(chain);
    free(best);
    return r;
}

int vhdx_log_replay_to_disk(struct vimg_image *img)
{
    struct vhdx_state *s = vhdx_state(img);
    static const uint8_t no_log[16];
    uint64_t size = (uint64_t)vimg_internal_get_size(img->file);
    int r;

    for (size_t i = 0; i < s->n_overlay; i++) {
        const struct vhdx_overlay *o = &s->overlay[i];
        r = o->data ? vimg_internal_pwrite(img->file, o->data, o->length,
                                           o->offset, 0)
                    : vimg_internal_zero(img->file, o->offset, o->length, 0);
        if (r < 0) {
            return r;
        }
    }
    if (size < s->file_size &&
        (r = vimg_internal_truncate(img->file,
                                    ROUND_UP(s->file_size, VHDX_MIB), 0,
                                    VIMG_PREALLOC_OFF)) < 0) {
        return r;
    }
    /* The replayed metadata is on disk before the headers say the log is
     * empty; both headers are rewritten, as QEMU does. */
    if ((r = vimg_internal_flush(img->file)) < 0 ||
        (r = vhdx_update_header(img, no_log, false)) < 0 ||
        (r = vhdx_update_header(img, no_log, false)) < 0) {
        return r;
    }
    vhdx_log_free(s);
    return 0;
}
