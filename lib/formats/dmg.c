/* Apple UDIF images (.dmg), read-only as in QEMU 7.2's block/dmg.c with
 * its dmg-bz2 module: zero, ignore (free space), raw, zlib and bzip2
 * chunks. LZFSE chunks are listed but refused when read (Debian has no
 * LZFSE library; QEMU without its dmg-lzfse module does the same), as are
 * ADC and LZMA chunks, which QEMU does not read either.
 *
 * The chunk table is built once at open from the mish blocks the property
 * list (or resource fork) holds, checked against the file and the disk
 * size, and sorted by sector; a read finds its chunk by binary search.
 * The last decompressed chunk is kept for the next read. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../../common/checked-overflow.h"
#include "../../common/rounding.h"
#include "../compress/compress.h"
#include "dmg-ondisk.h"
#include "dmg.h"

#define DMG_SECTOR 512u
/* QEMU's caps: a chunk that must be decompressed or copied holds at most
 * 64 MiB, in at most 64 MiB of the file (both are buffered whole). Zero
 * and free chunks cost nothing and have no cap. */
#define DMG_MAX_CHUNK_BYTES (64u << 20)
#define DMG_MAX_CHUNK_SECTORS (DMG_MAX_CHUNK_BYTES / DMG_SECTOR)
/* The property list is read whole: QEMU's 16 MiB (a real one is about
 * 1 MiB). The resource fork gets the same cap. */
#define DMG_MAX_PLIST (16u << 20)
/* Chunks in the table, 40 bytes each in memory: 16 MiB of mish blocks
 * cannot describe more than 420,000, so this is never the binding cap on
 * an honest image. */
#define DMG_MAX_CHUNKS (1u << 20)

struct dmg_chunk {
    uint64_t sector;            /* first guest sector */
    uint64_t count;             /* sectors */
    uint64_t offset;            /* file offset of its bytes */
    uint64_t length;            /* bytes in the file */
    uint32_t type;              /* DMG_TYPE_* */
};

struct dmg_state {
    struct dmg_chunk *chunks;
    size_t n_chunks, cap_chunks;
    uint64_t data_fork;         /* chunk offsets count from here */
    uint64_t koly;              /* the trailer's offset: data ends there */
    uint8_t *in;                /* a compressed chunk */
    uint8_t *out;               /* its sectors */
    size_t in_size, out_size;
    size_t cached;              /* the chunk in OUT, or n_chunks */
};

static struct dmg_state *dmg_state(struct vimg_image *img)
{
    return img->opaque;
}

static bool koly_ok(const uint8_t *k)
{
    return memcmp(k + DMG_KOLY_SIGNATURE, DMG_KOLY_MAGIC, 4) == 0 &&
           load_be32(k + DMG_KOLY_VERSION) == DMG_KOLY_VERSION_4 &&
           load_be32(k + DMG_KOLY_HEADER_SIZE) == DMG_KOLY_SIZE;
}

/* QEMU knows a DMG by its name alone. A trailer is not enough either: any
 * raw disk's guest could write one into its last sector. So both: a .dmg
 * name and a koly trailer whose property list or resource fork lies in
 * the file. */
static int dmg_probe_tail(const uint8_t *tail, size_t len, uint64_t file_size,
                          const char *filename)
{
    const char *dot = filename ? strrchr(filename, '.') : NULL;
    uint64_t koly = file_size - len;

    if (len != DMG_KOLY_SIZE || file_size < len || !dot ||
        strcasecmp(dot, ".dmg") != 0 || !koly_ok(tail)) {
        return 0;
    }
    uint64_t xml = load_be64(tail + DMG_KOLY_XML_OFFSET);
    uint64_t xml_len = load_be64(tail + DMG_KOLY_XML_LENGTH);
    uint64_t rsrc = load_be64(tail + DMG_KOLY_RSRC_OFFSET);
    uint64_t rsrc_len = load_be64(tail + DMG_KOLY_RSRC_LENGTH);
    bool xml_in = xml_len && !range_outside(xml, xml_len, koly);
    bool rsrc_in = rsrc_len && !range_outside(rsrc, rsrc_len, koly);
    return xml_in || rsrc_in ? 100 : 0;
}

/* ---- The chunk table --------------------------------------------------- */

struct mish_ctx {
    uint64_t data_fork;
};

/* Append the chunks of one mish block (LEN bytes, signature checked). */
static int add_mish(struct vimg_image *img, const uint8_t *m, size_t len,
                    void *opaque)
{
    struct dmg_state *s = dmg_state(img);
    struct mish_ctx *ctx = opaque;
    uint64_t first = load_be64(m + DMG_MISH_FIRST_SECTOR);
    uint64_t base;
    uint32_t n = load_be32(m + DMG_MISH_CHUNK_COUNT);

    if (n > (len - DMG_MISH_CHUNKS) / DMG_CHUNK_SIZE) {
        return vimg_internal_img_error(img, EINVAL, "mish block of %zu "
                                       "bytes claims %u chunks", len, n);
    }
    if (CHECKED_ADD(ctx->data_fork, load_be64(m + DMG_MISH_DATA_OFFSET),
                    &base)) {
        return vimg_internal_img_error(img, EINVAL, "mish block data "
                                       "offset overflows");
    }
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *e = m + DMG_MISH_CHUNKS + (size_t)i * DMG_CHUNK_SIZE;
        struct dmg_chunk c = {
            .type = load_be32(e + DMG_CHUNK_TYPE),
            .count = load_be64(e + DMG_CHUNK_SECTOR_COUNT),
            .length = load_be64(e + DMG_CHUNK_LENGTH),
        };
        if (c.type == DMG_TYPE_COMMENT || c.type == DMG_TYPE_LAST ||
            c.count == 0) {
            continue; /* no sectors */
        }
        if (CHECKED_ADD(first, load_be64(e + DMG_CHUNK_SECTOR), &c.sector) ||
            CHECKED_ADD(base, load_be64(e + DMG_CHUNK_OFFSET), &c.offset)) {
            return vimg_internal_img_error(img, EINVAL, "chunk %zu: sector "
                                           "or offset overflows",
                                           s->n_chunks);
        }
        if (s->n_chunks == s->cap_chunks) {
            if (s->cap_chunks >= DMG_MAX_CHUNKS) {
                return vimg_internal_img_error(img, EFBIG, "more than %u "
                                               "chunks", DMG_MAX_CHUNKS);
            }
            size_t cap = s->cap_chunks ? s->cap_chunks * 2 : 64;
            struct dmg_chunk *v = realloc(s->chunks, cap * sizeof *v);
            if (!v) {
                return vimg_internal_img_error(img, ENOMEM, "out of "
                                               "memory");
            }
            s->chunks = v;
            s->cap_chunks = cap;
        }
        s->chunks[s->n_chunks++] = c;
    }
    return 0;
}

static int by_sector(const void *a, const void *b)
{
    const struct dmg_chunk *x = a, *y = b;
    return x->sector < y->sector ? -1 : x->sector > y->sector;
}

static bool is_zero_type(uint32_t type)
{
    return type == DMG_TYPE_ZERO || type == DMG_TYPE_IGNORE;
}

/* Every chunk lies in the disk, no two overlap, and every chunk that has
 * bytes in the file has them before the trailer, within QEMU's caps. */
static int validate_chunks(struct vimg_image *img)
{
    struct dmg_state *s = dmg_state(img);
    uint64_t sectors = img->size / DMG_SECTOR;

    if (s->n_chunks > 1) { /* qsort may not be given NULL, even for 0 */
        qsort(s->chunks, s->n_chunks, sizeof *s->chunks, by_sector);
    }
    for (size_t i = 0; i < s->n_chunks; i++) {
        const struct dmg_chunk *c = &s->chunks[i];
        if (c->sector >= sectors || c->count > sectors - c->sector) {
            return vimg_internal_img_error(img, EINVAL, "chunk %zu (%llu "
                                           "sectors at sector %llu) lies "
                                           "past the end of the disk", i,
                                           (unsigned long long)c->count,
                                           (unsigned long long)c->sector);
        }
        if (i > 0 && c->sector < s->chunks[i - 1].sector +
                                 s->chunks[i - 1].count) {
            return vimg_internal_img_error(img, EINVAL, "chunks %zu and %zu "
                                           "overlap at sector %llu", i - 1,
                                           i, (unsigned long long)c->sector);
        }
        if (is_zero_type(c->type)) {
            continue;
        }
        if (c->count > DMG_MAX_CHUNK_SECTORS) {
            return vimg_internal_img_error(img, EINVAL, "sector count %llu "
                                           "for chunk %zu is larger than "
                                           "max (%u)",
                                           (unsigned long long)c->count, i,
                                           DMG_MAX_CHUNK_SECTORS);
        }
        if (c->length > DMG_MAX_CHUNK_BYTES) {
            return vimg_internal_img_error(img, EINVAL, "length %llu for "
                                           "chunk %zu is larger than max "
                                           "(%u)",
                                           (unsigned long long)c->length, i,
                                           DMG_MAX_CHUNK_BYTES);
        }
        if (range_outside(c->offset, c->length, s->koly)) {
            return vimg_internal_img_error(img, EINVAL, "chunk %zu (0x%llx "
                                           "bytes at 0x%llx) lies past the "
                                           "data fork", i,
                                           (unsigned long long)c->length,
                                           (unsigned long long)c->offset);
        }
        if (c->type == DMG_TYPE_RAW && c->length < c->count * DMG_SECTOR) {
            return vimg_internal_img_error(img, EINVAL, "raw chunk %zu has "
                                           "%llu bytes for %llu sectors", i,
                                           (unsigned long long)c->length,
                                           (unsigned long long)c->count);
        }
    }
    return 0;
}

/* Read the LEN bytes at OFFSET (a property list or resource fork, capped)
 * and hand them to the parser. */
static int read_blkx(struct vimg_image *img, uint64_t offset, uint64_t len,
                     bool xml, struct mish_ctx *ctx)
{
    uint8_t *buf;
    int r;

    if (len > DMG_MAX_PLIST) {
        return vimg_internal_img_error(img, EFBIG, "%s of %llu bytes is "
                                       "larger than max (%u)",
                                       xml ? "property list"
                                           : "resource fork",
                                       (unsigned long long)len,
                                       DMG_MAX_PLIST);
    }
    if (!(buf = malloc(len))) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    r = vimg_internal_pread(img->file, buf, len, offset);
    if (r == 0) {
        r = xml ? dmg_plist_blkx(img, (const char *)buf, len, add_mish, ctx)
                : dmg_rsrc_blkx(img, buf, len, add_mish, ctx);
    }
    free(buf);
    return r;
}

/* The trailer at S->koly (K): where the chunks' bytes and their lists
 * are, and the disk size. */
static int read_koly(struct vimg_image *img, const uint8_t *k)
{
    struct dmg_state *s = dmg_state(img);
    uint64_t rsrc = load_be64(k + DMG_KOLY_RSRC_OFFSET);
    uint64_t rsrc_len = load_be64(k + DMG_KOLY_RSRC_LENGTH);
    uint64_t xml = load_be64(k + DMG_KOLY_XML_OFFSET);
    uint64_t xml_len = load_be64(k + DMG_KOLY_XML_LENGTH);
    uint64_t sectors = load_be64(k + DMG_KOLY_SECTOR_COUNT);
    struct mish_ctx ctx;

    if (memcmp(k + DMG_KOLY_SIGNATURE, DMG_KOLY_MAGIC, 4) != 0) {
        return vimg_internal_img_error(img, EINVAL, "Could not locate UDIF "
                                       "trailer in dmg file (no 'koly' in "
                                       "the last 512 bytes)");
    }
    if (!koly_ok(k)) {
        return vimg_internal_img_error(img, ENOTSUP, "unsupported UDIF "
                                       "trailer version %u (size %u)",
                                       load_be32(k + DMG_KOLY_VERSION),
                                       load_be32(k + DMG_KOLY_HEADER_SIZE));
    }
    s->data_fork = load_be64(k + DMG_KOLY_DATA_OFFSET);
    if (s->data_fork > s->koly) {
        return vimg_internal_img_error(img, EINVAL, "data fork at 0x%llx "
                                       "lies past the trailer",
                                       (unsigned long long)s->data_fork);
    }
    if (sectors > INT64_MAX / DMG_SECTOR) {
        return vimg_internal_img_error(img, EFBIG, "sector count %llu is "
                                       "too large",
                                       (unsigned long long)sectors);
    }
    img->size = sectors * DMG_SECTOR;
    ctx.data_fork = s->data_fork;
    /* As QEMU: the resource fork when there is one, else the list. */
    if (rsrc_len) {
        if (range_outside(rsrc, rsrc_len, s->koly)) {
            return vimg_internal_img_error(img, EINVAL, "resource fork "
                                           "(0x%llx bytes at 0x%llx) lies "
                                           "past the trailer",
                                           (unsigned long long)rsrc_len,
                                           (unsigned long long)rsrc);
        }
        return read_blkx(img, rsrc, rsrc_len, false, &ctx);
    }
    if (!xml_len) {
        return vimg_internal_img_error(img, EINVAL, "the trailer names no "
                                       "property list and no resource "
                                       "fork");
    }
    if (range_outside(xml, xml_len, s->koly)) {
        return vimg_internal_img_error(img, EINVAL, "property list (0x%llx "
                                       "bytes at 0x%llx) lies past the "
                                       "trailer",
                                       (unsigned long long)xml_len,
                                       (unsigned long long)xml);
    }
    return read_blkx(img, xml, xml_len, true, &ctx);
}

static void free_state(struct dmg_state *s)
{
    free(s->chunks);
    free(s->in);
    free(s->out);
    memset(s, 0, sizeof *s);
}

static int dmg_open(struct vimg_image *img, const struct vimg_opts *opts)
{
    struct dmg_state *s = dmg_state(img);
    int64_t file_size = vimg_internal_get_size(img->file);
    uint8_t k[DMG_KOLY_SIZE];
    int r;

    (void)opts;
    if (file_size < 0) {
        return (int)file_size;
    }
    if ((uint64_t)file_size < sizeof k) {
        return vimg_internal_img_error(img, EINVAL, "dmg file must be at "
                                       "least 512 bytes long");
    }
    s->koly = (uint64_t)file_size - sizeof k;
    if ((r = vimg_internal_pread(img->file, k, sizeof k, s->koly)) < 0 ||
        (r = read_koly(img, k)) < 0 || (r = validate_chunks(img)) < 0) {
        free_state(s);
        return r;
    }
    s->cached = s->n_chunks;
    return 0;
}

static int dmg_close(struct vimg_image *img)
{
    free_state(dmg_state(img));
    return 0;
}

/* ---- Data path --------------------------------------------------------- */

/* The chunk holding SECTOR, or n_chunks when none does. */
static size_t find_chunk(const struct dmg_state *s, uint64_t sector)
{
    size_t lo = 0, hi = s->n_chunks;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->chunks[mid].sector + s->chunks[mid].count <= sector) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo < s->n_chunks && s->chunks[lo].sector <= sector ? lo
                                                              : s->n_chunks;
}

static const char *type_name(uint32_t type)
{
    switch (type) {
    case DMG_TYPE_ADC:
        return "ADC";
    case DMG_TYPE_LZFSE:
        return "LZFSE";
    case DMG_TYPE_LZMA:
        return "LZMA";
    default:
        return "an unknown method";
    }
}

static int grow(uint8_t **buf, size_t *size, size_t want)
{
    if (*size >= want) {
        return 0;
    }
    uint8_t *p = realloc(*buf, want);
    if (!p) {
        return -ENOMEM;
    }
    *buf = p;
    *size = want;
    return 0;
}

/* Decompress chunk I into S->out. */
static int load_chunk(struct vimg_image *img, size_t i)
{
    struct dmg_state *s = dmg_state(img);
    const struct dmg_chunk *c = &s->chunks[i];
    size_t out_len = c->count * DMG_SECTOR;
    int r;

    if (s->cached == i) {
        return 0;
    }
    if (c->type != DMG_TYPE_ZLIB && c->type != DMG_TYPE_BZIP2) {
        return vimg_internal_img_error(img, ENOTSUP, "chunk %zu (sectors "
                                       "%llu-%llu) is compressed with %s "
                                       "(type 0x%08x), which vimg cannot "
                                       "decompress%s", i,
                                       (unsigned long long)c->sector,
                                       (unsigned long long)(c->sector +
                                                            c->count - 1),
                                       type_name(c->type), c->type,
                                       c->type == DMG_TYPE_LZFSE
                                       ? " (Debian has no LZFSE library)"
                                       : "");
    }
    if (grow(&s->in, &s->in_size, c->length ? c->length : 1) < 0 ||
        grow(&s->out, &s->out_size, out_len) < 0) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    s->cached = s->n_chunks;
    if (c->length && (r = vimg_internal_pread(img->file, s->in, c->length,
                                              c->offset)) < 0) {
        return r;
    }
    r = vimg_internal_decompress(c->type == DMG_TYPE_ZLIB
                                 ? VIMG_COMPRESS_ZLIB : VIMG_COMPRESS_BZIP2,
                                 s->in, c->length, s->out, out_len);
    if (r < 0) {
        return vimg_internal_img_error(img, r == -ENOMEM ? ENOMEM : EIO,
                                       "%s chunk %zu at 0x%llx does not "
                                       "decompress to %zu bytes",
                                       c->type == DMG_TYPE_ZLIB ? "zlib"
                                                                : "bzip2",
                                       i, (unsigned long long)c->offset,
                                       out_len);
    }
    s->cached = i;
    return 0;
}

static int dmg_pread(struct vimg_image *img, void *buf, uint64_t count,
                     uint64_t offset)
{
    struct dmg_state *s = dmg_state(img);
    uint8_t *p = buf;
    int r;

    while (count > 0) {
        size_t i = find_chunk(s, offset / DMG_SECTOR);
        if (i == s->n_chunks) {
            return vimg_internal_img_error(img, EIO, "sector %llu is in no "
                                           "chunk",
                                           (unsigned long long)(offset /
                                                                DMG_SECTOR));
        }
        const struct dmg_chunk *c = &s->chunks[i];
        uint64_t in = offset - c->sector * DMG_SECTOR;
        uint64_t n = MIN(count, c->count * DMG_SECTOR - in);
        if (is_zero_type(c->type)) {
            memset(p, 0, n);
        } else if (c->type == DMG_TYPE_RAW) {
            if ((r = vimg_internal_pread(img->file, p, n,
                                         c->offset + in)) < 0) {
                return r;
            }
        } else if ((r = load_chunk(img, i)) < 0) {
            return r;
        } else {
            memcpy(p, s->out + in, n);
        }
        p += n;
        offset += n;
        count -= n;
    }
    return 0;
}

/* Read-only (no pwrite, no create), and like QEMU no block status: every
 * byte is reported as data. No start-of-file probe: the trailer is what
 * marks a DMG. */
const struct vimg_driver vimg_driver_dmg = {
    .name = "dmg",
    .kind = VIMG_DRIVER_FORMAT,
    .instance_size = sizeof(struct dmg_state),
    .thread_safe = false,
    .probe_tail = dmg_probe_tail,
    .open = dmg_open,
    .close = dmg_close,
    .pread = dmg_pread,
};
