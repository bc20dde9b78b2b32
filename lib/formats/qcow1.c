/* The qcow format, version 1 (QEMU's block/qcow.c): a 48-byte header, a
 * backing file name, one L1 table of L2 table offsets, L2 tables of
 * cluster offsets, clusters plain or deflated. Read (with the backing
 * chain and compressed clusters), written and created as qemu-img does,
 * so that vimg's images are byte-identical to qemu-img's. Encrypted
 * images (QEMU's legacy AES-CBC, which QEMU itself no longer opens in
 * emulators) are read with their key, never written. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/checked-overflow.h"
#include "../../common/rounding.h"
#include "../compress/compress.h"
#include "../crypto/crypto.h"
#include "../internal.h"
#include "qcow1-ondisk.h"

/* The L1 table is read whole: 32 MiB maps 8 TiB at qemu-img's 4 KiB
 * clusters (and 2 PiB at 64 KiB), where QEMU allows up to 2 GiB. */
#define QCOW1_MAX_L1_BYTES (32u << 20)
/* Whole L2 tables are cached: 16 of at most 64 KiB. */
#define L2_SLOTS 16

struct l2_slot {
    uint64_t offset;           /* 0: empty */
    uint64_t lru;
    uint64_t *table;           /* host order */
};

struct qcow1_state {
    uint32_t cluster_bits, l2_bits;
    uint64_t cluster_size, l2_entries, l2_bytes;
    uint64_t offset_mask;      /* of compressed entries */
    uint32_t crypt_method;
    struct vimg_cipher cipher; /* AES: IVs from the guest sector */
    bool keyed;                /* AES: the cipher is set up */
    uint64_t l1_offset;
    uint64_t l1_size;
    uint64_t *l1;
    uint64_t meta_end;         /* header, backing name and L1 end here */
    uint64_t file_size;        /* kept current by our writes */
    uint64_t orig_size;        /* when opened */
    uint8_t *verified;         /* bit per L1 entry: its table checked */
    uint64_t *tables;          /* L2 table offsets at open, sorted */
    uint64_t n_tables;
    struct l2_slot slots[L2_SLOTS];
    uint64_t tick;
    uint8_t *cluster;          /* copy-on-write buffer */
    uint8_t *cbuf;             /* compressed bytes */
    uint64_t cached;           /* host offset of the compressed cluster in
                                  CACHE, or 0 (its bytes never change) */
    uint8_t *cache;
};

static struct qcow1_state *state(struct vimg_image *img)
{
    return img->opaque;
}

static int qcow1_probe(const uint8_t *buf, size_t len, const char *filename)
{
    (void)filename;
    return len >= QCOW1_HDR_LENGTH &&
                   load_be32(buf + QCOW1_HDR_MAGIC) == QCOW1_MAGIC &&
                   load_be32(buf + QCOW1_HDR_VERSION) == QCOW1_VERSION
               ? 100 : 0;
}

/* ---- Header ----------------------------------------------------------- */

/* The one place header fields are checked (QEMU's qcow_open, plus the
 * file bounds QEMU leaves to its reads). Fills S and the backing name
 * location. */
static int validate_header(struct vimg_image *img, struct qcow1_state *s,
                           const uint8_t *h, uint64_t file_size,
                           uint64_t *backing_off, uint32_t *backing_len)
{
    uint32_t version = load_be32(h + QCOW1_HDR_VERSION);
    uint64_t size = load_be64(h + QCOW1_HDR_SIZE);

    if (load_be32(h + QCOW1_HDR_MAGIC) != QCOW1_MAGIC) {
        return vimg_internal_img_error(img, EINVAL, "not a qcow image");
    }
    if (version != QCOW1_VERSION) {
        return vimg_internal_img_error(img, ENOTSUP, "qcow (v1) does not "
                                       "support qcow version %u%s", version,
                                       version == 2 || version == 3
                                           ? " (use the qcow2 format)" : "");
    }
    if (size <= 1 || size > INT64_MAX) {
        return vimg_internal_img_error(img, EINVAL, "image size %llu is "
                                       "invalid", (unsigned long long)size);
    }
    s->cluster_bits = h[QCOW1_HDR_CLUSTER_BITS];
    s->l2_bits = h[QCOW1_HDR_L2_BITS];
    if (s->cluster_bits < QCOW1_MIN_CLUSTER_BITS ||
        s->cluster_bits > QCOW1_MAX_CLUSTER_BITS) {
        return vimg_internal_img_error(img, EINVAL, "cluster size must be "
                                       "between 512 and 64k");
    }
    if (s->l2_bits < QCOW1_MIN_L2_BITS || s->l2_bits > QCOW1_MAX_L2_BITS) {
        return vimg_internal_img_error(img, EINVAL, "L2 table size must be "
                                       "between 512 and 64k");
    }
    s->crypt_method = load_be32(h + QCOW1_HDR_CRYPT_METHOD);
    if (s->crypt_method > QCOW1_CRYPT_AES) {
        return vimg_internal_img_error(img, EINVAL, "invalid encryption "
                                       "method %u", s->crypt_method);
    }
    s->cluster_size = (uint64_t)1 << s->cluster_bits;
    s->l2_entries = (uint64_t)1 << s->l2_bits;
    s->l2_bytes = s->l2_entries * QCOW1_ENTRY_SIZE;
    s->offset_mask = ((uint64_t)1 << (63 - s->cluster_bits)) - 1;
    unsigned shift = s->cluster_bits + s->l2_bits;
    s->l1_size = (size >> shift) + !!(size & (((uint64_t)1 << shift) - 1));
    if (s->l1_size * QCOW1_ENTRY_SIZE > QCOW1_MAX_L1_BYTES) {
        return vimg_internal_img_error(img, EFBIG, "L1 table of %llu "
                                       "entries is too large",
                                       (unsigned long long)s->l1_size);
    }
    s->l1_offset = load_be64(h + QCOW1_HDR_L1_TABLE_OFFSET);
    uint64_t l1_bytes = s->l1_size * QCOW1_ENTRY_SIZE;
    if (s->l1_offset < QCOW1_HDR_LENGTH ||
        range_outside(s->l1_offset, l1_bytes, file_size)) {
        return vimg_internal_img_error(img, EINVAL, "L1 table at %llu lies "
                                       "outside the file",
                                       (unsigned long long)s->l1_offset);
    }
    *backing_off = load_be64(h + QCOW1_HDR_BACKING_FILE_OFFSET);
    *backing_len = load_be32(h + QCOW1_HDR_BACKING_FILE_SIZE);
    s->meta_end = s->l1_offset + l1_bytes;
    if (*backing_off) {
        if (*backing_len > QCOW1_MAX_BACKING_NAME) {
            return vimg_internal_img_error(img, EINVAL, "backing file name "
                                           "too long (%u bytes)",
                                           *backing_len);
        }
        if (*backing_off < QCOW1_HDR_LENGTH ||
            range_outside(*backing_off, *backing_len, file_size)) {
            return vimg_internal_img_error(img, EINVAL, "backing file name "
                                           "at %llu lies outside the file",
                                           (unsigned long long)*backing_off);
        }
        s->meta_end = MAX(s->meta_end, *backing_off + *backing_len);
    }
    s->file_size = file_size;
    img->size = size / 512 * 512; /* QEMU sees whole sectors */
    img->compress_unit = (uint32_t)s->cluster_size;
    return 0;
}

/* ---- Metadata bounds --------------------------------------------------- */

static int corrupt(struct vimg_image *img, const char *what, uint64_t off)
{
    return vimg_internal_img_error(img, EIO, "%s at 0x%llx lies outside the "
                                   "file or on its metadata (header, "
                                   "backing name, L1 or L2 tables)",
                                   what, (unsigned long long)off);
}

/* A host range for a table or cluster must lie inside the file and clear
 * of the header, the backing name and the L1 table. */
static bool bad_range(const struct qcow1_state *s, uint64_t off,
                      uint64_t len)
{
    return off < s->meta_end || range_outside(off, len, s->file_size);
}

/* Whether L2 entry E read from disk can be used: 0, a sector-aligned
 * cluster, or a compressed cluster with a length, clear of the header,
 * backing name and L1 table and below LIMIT: the end of the file as it was
 * opened, for a table read for the first time (the file grows as clusters
 * are added, and an entry past its old end would alias a new cluster), the
 * current end for a table checked before (its newer entries are ours).
 * *AT is the host offset it names. */
/* Whether [AT, AT+LEN) meets one of the L2 tables the file had at open
 * (later ones lie past its old end, where no checked entry points). */
static bool on_table(const struct qcow1_state *s, uint64_t at, uint64_t len)
{
    uint64_t lo = 0, hi = s->n_tables;
    while (lo < hi) {       /* first table ending after AT */
        uint64_t mid = (lo + hi) / 2;
        if (s->tables[mid] + s->l2_bytes <= at) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo < s->n_tables && s->tables[lo] < at + len;
}

static bool entry_ok(const struct qcow1_state *s, uint64_t e, uint64_t limit,
                     uint64_t *at)
{
    uint64_t len = s->cluster_size;
    *at = e;
    if (e & QCOW1_OFLAG_COMPRESSED) {
        len = (e >> (63 - s->cluster_bits)) & (s->cluster_size - 1);
        *at = e & s->offset_mask;
    } else if (!e) {
        return true;
    } else if (e & 511) {
        return false;
    }
    /* Plain clusters lie wholly inside the file (QEMU grows the file over
     * every cluster it allocates): one reaching past the end would meet
     * the tables and clusters added there. */
    return len && *at >= s->meta_end && !range_outside(*at, len, limit) &&
           !on_table(s, *at, len);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The L2 tables the L1 table names, sorted; two that overlap would write
 * entries into each other. */
static int index_tables(struct vimg_image *img, struct qcow1_state *s)
{
    if (!(s->tables = malloc(s->l1_size * sizeof *s->tables + 1))) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    for (uint64_t i = 0; i < s->l1_size; i++) {
        if (s->l1[i]) {
            s->tables[s->n_tables++] = s->l1[i];
        }
    }
    qsort(s->tables, s->n_tables, sizeof *s->tables, cmp_u64);
    for (uint64_t i = 0; i + 1 < s->n_tables; i++) {
        if (s->tables[i + 1] < s->tables[i] + s->l2_bytes) {
            return corrupt(img, "L2 table", s->tables[i + 1]);
        }
    }
    return 0;
}

static void free_state(struct qcow1_state *s)
{
    vimg_internal_cipher_free(&s->cipher);
    free(s->l1);
    free(s->verified);
    free(s->tables);
    free(s->slots[0].table);
    free(s->cluster);
    free(s->cbuf);
    free(s->cache);
    memset(s, 0, sizeof *s);
}

/* The legacy AES method: read only (it is not secure, and QEMU refuses it
 * in emulators), the key from encrypt.key-secret, as QEMU's. */
static int open_crypto(struct vimg_image *img, struct qcow1_state *s,
                       const struct vimg_opts *opts)
{
    const uint8_t *pass;
    size_t pass_len;
    int r;

    if (!s->crypt_method) {
        return 0;
    }
    if (img->writable) {
        return vimg_internal_img_error(img, ENOTSUP, "legacy AES "
                                       "encryption is not secure and vimg "
                                       "only reads it; convert the image "
                                       "(to qcow2 with encrypt.format=luks, "
                                       "say) to write");
    }
    /* Ciphers work on whole sectors: the core bounces smaller requests. */
    img->request_alignment = MAX(img->request_alignment, 512u);
    if (img->params.flags & VIMG_OPEN_NO_IO) {
        return 0;
    }
    if ((r = vimg_internal_image_key(img, opts, "encrypt.key-secret", &pass,
                                     &pass_len)) < 0 ||
        (r = vimg_internal_cipher_init_aes_legacy(&s->cipher, pass,
                                                  pass_len)) < 0) {
        return r;
    }
    s->keyed = true;
    return 0;
}

static int qcow1_open(struct vimg_image *img, const struct vimg_opts *opts)
{
    struct qcow1_state *s = state(img);
    uint64_t file_size;
    uint8_t h[QCOW1_HDR_LENGTH];
    uint64_t backing_off = 0;
    uint32_t backing_len = 0;
    int r;

    if ((r = vimg_internal_read_header(img, h, sizeof h, "a qcow header",
                                       &file_size)) < 0 ||
        (r = validate_header(img, s, h, file_size, &backing_off,
                             &backing_len)) < 0) {
        return r;
    }
    if ((r = open_crypto(img, s, opts)) < 0) {
        return r;
    }
    uint64_t *tables = malloc(L2_SLOTS * s->l2_bytes);
    uint8_t *raw = malloc(s->l1_size * QCOW1_ENTRY_SIZE + 1);
    s->l1 = malloc(s->l1_size * sizeof *s->l1 + 1);
    s->verified = calloc(1, s->l1_size / 8 + 1);
    s->orig_size = file_size;
    s->cluster = malloc(s->cluster_size);
    s->cbuf = malloc(s->cluster_size);
    s->cache = malloc(s->cluster_size);
    if (!tables || !raw || !s->l1 || !s->verified || !s->cluster ||
        !s->cbuf || !s->cache) {
        free(tables);
        free(raw);
        free_state(s);
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    for (int i = 0; i < L2_SLOTS; i++) {
        s->slots[i].table = tables + (size_t)i * s->l2_entries;
    }
    r = vimg_internal_pread(img->file, raw, s->l1_size * QCOW1_ENTRY_SIZE,
                            s->l1_offset);
    for (uint64_t i = 0; r == 0 && i < s->l1_size; i++) {
        s->l1[i] = load_be64(raw + i * QCOW1_ENTRY_SIZE);
        /* Checked now: an L2 table past the end of the file would alias
         * clusters added later. */
        if (s->l1[i] && bad_range(s, s->l1[i], s->l2_bytes)) {
            r = corrupt(img, "L2 table", s->l1[i]);
        }
    }
    free(raw);
    if (r == 0) {
        r = index_tables(img, s);
    }
    if (r == 0 && backing_off) {
        char *name = calloc(1, backing_len + 1);
        if (!name) {
            r = vimg_internal_img_error(img, ENOMEM, "out of memory");
        } else if ((r = vimg_internal_pread(img->file, name, backing_len,
                                            backing_off)) == 0) {
            img->backing_name = name;
            name = NULL;
        }
        free(name);
    }
    if (r < 0) {
        free_state(s);
    }
    return r;
}

static int qcow1_close(struct vimg_image *img)
{
    free_state(state(img));
    return 0;
}

/* ---- L2 tables -------------------------------------------------------- */

/* The L2 table at OFFSET (that of L1 entry INDEX), cached, every entry
 * checked by entry_ok. NEW gives a zeroed table. */
static int get_l2(struct vimg_image *img, uint64_t offset, uint64_t index,
                  bool new_table, uint64_t **out)
{
    struct qcow1_state *s = state(img);
    struct l2_slot *victim = &s->slots[0];
    int r;

    for (int i = 0; i < L2_SLOTS; i++) {
        if (s->slots[i].offset == offset) {
            s->slots[i].lru = ++s->tick;
            *out = s->slots[i].table;
            return 0;
        }
        if (s->slots[i].lru < victim->lru) {
            victim = &s->slots[i];
        }
    }
    victim->offset = 0;
    if (new_table) {
        memset(victim->table, 0, s->l2_bytes);
    } else {
        if (bad_range(s, offset, s->l2_bytes)) {
            return corrupt(img, "L2 table", offset);
        }
        uint8_t *raw = (uint8_t *)victim->table;
        if ((r = vimg_internal_pread(img->file, raw, s->l2_bytes, offset)) <
            0) {
            return r;
        }
        bool seen = s->verified[index / 8] & (1u << (index % 8));
        uint64_t limit = seen ? s->file_size : s->orig_size;
        for (uint64_t i = 0; i < s->l2_entries; i++) {
            uint64_t at;
            victim->table[i] = load_be64(raw + i * QCOW1_ENTRY_SIZE);
            if (!entry_ok(s, victim->table[i], limit, &at)) {
                return corrupt(img, victim->table[i] & QCOW1_OFLAG_COMPRESSED
                                        ? "compressed cluster" : "cluster",
                               at);
            }
        }
    }
    s->verified[index / 8] |= (uint8_t)(1u << (index % 8));
    victim->offset = offset;
    victim->lru = ++s->tick;
    *out = victim->table;
    return 0;
}

/* The L2 entry for guest OFFSET (0 when unallocated); with
 * ALLOC a missing L2 table is made (at the next cluster boundary past the
 * end of the file, as QEMU places it). *ENTRY_AT is its host offset. */
static int lookup(struct vimg_image *img, uint64_t offset, bool alloc,
                  uint64_t *entry, uint64_t **table, uint64_t *index)
{
    struct qcow1_state *s = state(img);
    uint64_t l1_index = offset >> (s->cluster_bits + s->l2_bits);
    uint64_t l2_off = s->l1[l1_index];
    int r;

    *entry = 0;
    *table = NULL;
    *index = (offset >> s->cluster_bits) & (s->l2_entries - 1);
    if (!l2_off) {
        if (!alloc) {
            return 0;
        }
        uint8_t be[8];
        l2_off = ROUND_UP(s->file_size, s->cluster_size);
        if ((r = get_l2(img, l2_off, l1_index, true, table)) < 0 ||
            (r = vimg_internal_pwrite(img->file, *table, s->l2_bytes,
                                      l2_off, 0)) < 0) {
            return r;
        }
        s->file_size = MAX(s->file_size, l2_off + s->l2_bytes);
        store_be64(be, l2_off);
        if ((r = vimg_internal_pwrite(img->file, be, 8,
                                      s->l1_offset + 8 * l1_index, 0)) < 0) {
            return r;
        }
        s->l1[l1_index] = l2_off;
        return 0;
    }
    if ((r = get_l2(img, l2_off, l1_index, false, table)) < 0) {
        return r;
    }
    *entry = (*table)[*index];
    return 0;
}

static int set_entry(struct vimg_image *img, uint64_t *table, uint64_t index,
                     uint64_t value)
{
    struct qcow1_state *s = state(img);
    uint8_t be[8];
    uint64_t l2_off = 0;

    for (int i = 0; i < L2_SLOTS; i++) {
        if (s->slots[i].table == table) {
            l2_off = s->slots[i].offset;
        }
    }
    store_be64(be, value);
    int r = vimg_internal_pwrite(img->file, be, 8, l2_off + 8 * index, 0);
    if (r == 0) {
        table[index] = value;
    }
    return r;
}

/* ---- Data path -------------------------------------------------------- */

static int unkeyed(struct vimg_image *img)
{
    return vimg_internal_img_error(img, ENOKEY, "image is encrypted and was "
                                   "opened without its passphrase "
                                   "(metadata only)");
}

static int decompress(struct vimg_image *img, uint64_t e)
{
    struct qcow1_state *s = state(img);
    uint64_t at = e & s->offset_mask;
    uint64_t len = (e >> (63 - s->cluster_bits)) & (s->cluster_size - 1);
    int r;

    if (s->cached == at) {
        return 0;
    }
    s->cached = 0;
    if ((r = vimg_internal_pread(img->file, s->cbuf, len, at)) < 0) {
        return r;
    }
    if (vimg_internal_decompress(VIMG_COMPRESS_DEFLATE_4K, s->cbuf, len,
                                 s->cache, s->cluster_size) < 0) {
        return vimg_internal_img_error(img, EIO, "compressed cluster at "
                                       "0x%llx is damaged",
                                       (unsigned long long)at);
    }
    s->cached = at;
    return 0;
}

static int qcow1_pread(struct vimg_image *img, void *buf, uint64_t count,
                       uint64_t offset)
{
    struct qcow1_state *s = state(img);
    uint8_t *p = buf;
    uint64_t e, *table, index;
    int r;

    if (s->crypt_method && !s->keyed) {
        return unkeyed(img);
    }
    while (count) {
        uint64_t in = offset & (s->cluster_size - 1);
        uint64_t n = MIN(count, s->cluster_size - in);
        if ((r = lookup(img, offset, false, &e, &table, &index)) < 0) {
            return r;
        }
        if (!e) {
            r = vimg_internal_read_backing(img, p, n, offset);
        } else if (e & QCOW1_OFLAG_COMPRESSED) {
            if ((r = decompress(img, e)) == 0) {
                memcpy(p, s->cache + in, n);
            }
        } else {
            /* Compressed clusters are never encrypted (QEMU's qcow.c). */
            r = vimg_internal_pread(img->file, p, n, e + in);
            if (r == 0 && s->crypt_method) {
                r = vimg_internal_cipher_run(&s->cipher, false, offset / 512,
                                             p, p, n);
            }
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

/* A new cluster at the next cluster boundary past the end of the file, the
 * file grown over it (QEMU's get_cluster_offset, allocate == 1). */
static int alloc_cluster(struct vimg_image *img, uint64_t *at)
{
    struct qcow1_state *s = state(img);
    *at = ROUND_UP(s->file_size, s->cluster_size);
    if (*at + s->cluster_size > INT64_MAX) {
        return vimg_internal_img_error(img, EFBIG, "the image file is full");
    }
    int r = vimg_internal_truncate(img->file, *at + s->cluster_size, 0,
                                   VIMG_PREALLOC_OFF);
    if (r == 0) {
        s->file_size = *at + s->cluster_size;
    }
    return r;
}

static int qcow1_pwrite(struct vimg_image *img, const void *buf,
                        uint64_t count, uint64_t offset, unsigned flags)
{
    struct qcow1_state *s = state(img);
    const uint8_t *p = buf;
    uint64_t e, *table, index, at;
    int r;

    (void)flags;
    while (count) {
        uint64_t start = offset & ~(s->cluster_size - 1);
        uint64_t in = offset - start;
        uint64_t n = MIN(count, s->cluster_size - in);
        if ((r = lookup(img, offset, true, &e, &table, &index)) < 0) {
            return r;
        }
        if (e && !(e & QCOW1_OFLAG_COMPRESSED)) {
            r = vimg_internal_pwrite(img->file, p, n, e + in, 0);
        } else {
            /* A new cluster holding what the guest saw there (the backing
             * file's data, or a compressed cluster's) around the write.
             * QEMU leaves zeros instead of the backing file's data; it only
             * makes 512-byte clusters for images with one, which guests
             * never write in part. */
            const uint8_t *data = p;
            if (n < s->cluster_size) {
                if (e) {
                    r = decompress(img, e);
                    memcpy(s->cluster, s->cache, s->cluster_size);
                } else {
                    uint64_t len = MIN(s->cluster_size, img->size - start);
                    memset(s->cluster, 0, s->cluster_size);
                    r = vimg_internal_read_backing(img, s->cluster, len,
                                                   start);
                }
                memcpy(s->cluster + in, p, n);
                data = s->cluster;
            }
            if (r == 0 && (r = alloc_cluster(img, &at)) == 0 &&
                (r = set_entry(img, table, index, at)) == 0) {
                r = vimg_internal_pwrite(img->file, data, s->cluster_size,
                                         at, 0);
            }
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

/* Nothing to do where the clusters read as zeros already (no backing
 * file, none allocated); otherwise the core writes zeros. */
static int qcow1_zero(struct vimg_image *img, uint64_t offset, uint64_t count,
                      unsigned flags)
{
    struct qcow1_state *s = state(img);
    uint64_t e, *table, index;
    int r;

    (void)flags;
    if (img->backing_name) {
        return -ENOTSUP;
    }
    for (uint64_t off = offset & ~(s->cluster_size - 1);
         off < offset + count; off += s->cluster_size) {
        if ((r = lookup(img, off, false, &e, &table, &index)) < 0) {
            return r;
        }
        if (e) {
            return -ENOTSUP;
        }
    }
    return 0;
}

static long qcow1_compress(struct vimg_image *img, const void *in, void *out,
                           uint64_t cap)
{
    /* QEMU's deflateInit2(level 6, raw, 4 KiB window, memLevel 9): the
     * same bytes as qemu-img convert -c. */
    return vimg_internal_compress(VIMG_COMPRESS_DEFLATE_4K, 0, in,
                                  img->compress_unit, out, cap);
}

/* As QEMU: compressed data goes after the end of the file, from the next
 * sector boundary (QEMU measures files in whole sectors), unpadded; only
 * new L2 tables and plain clusters are cluster-aligned. */
static int qcow1_write_compressed(struct vimg_image *img, uint64_t offset,
                                  const void *cbuf, uint64_t len)
{
    struct qcow1_state *s = state(img);
    uint64_t e, *table, index;
    int r;

    if ((r = lookup(img, offset, true, &e, &table, &index)) < 0) {
        return r;
    }
    if (e) {
        return vimg_internal_img_error(img, EIO, "compressed write to an "
                                       "allocated cluster");
    }
    uint64_t at = ROUND_UP(s->file_size, 512);
    if (at > s->offset_mask || len >= s->cluster_size) {
        return vimg_internal_img_error(img, EFBIG, "the image file is full");
    }
    if ((r = set_entry(img, table, index,
                       at | QCOW1_OFLAG_COMPRESSED |
                           len << (63 - s->cluster_bits))) < 0 ||
        (r = vimg_internal_pwrite(img->file, cbuf, len, at, 0)) < 0) {
        return r;
    }
    s->file_size = at + len;
    return 0;
}

static int qcow1_block_status(struct vimg_image *img, uint64_t offset,
                              uint64_t count, uint64_t *pnum, uint64_t *map,
                              const char **file)
{
    struct qcow1_state *s = state(img);
    uint64_t in = offset & (s->cluster_size - 1);
    uint64_t e, *table, index;
    int r;

    *pnum = MIN(count, s->cluster_size - in);
    if ((r = lookup(img, offset, false, &e, &table, &index)) < 0) {
        return r;
    }
    if (!e) {
        /* A whole missing L2 table is unallocated at once. */
        uint64_t span = (uint64_t)1 << (s->cluster_bits + s->l2_bits);
        if (!table) {
            *pnum = MIN(count, span - (offset & (span - 1)));
        }
        return 0;
    }
    if ((e & QCOW1_OFLAG_COMPRESSED) || s->crypt_method) {
        return VIMG_BS_DATA | VIMG_BS_ALLOCATED;
    }
    *map = e + in;
    *file = img->file->filename;
    return VIMG_BS_DATA | VIMG_BS_ALLOCATED | VIMG_BS_OFFSET_VALID;
}

static int qcow1_get_info(struct vimg_image *img, struct vimg_value *info)
{
    struct qcow1_state *s = state(img);
    int r = vimg_internal_value_set_int(info, "cluster-size",
                                        (int64_t)s->cluster_size);
    if (r == 0 && s->crypt_method) {
        r = vimg_internal_value_set_bool(info, "encrypted", true);
    }
    return r;
}

/* ---- Create ----------------------------------------------------------- */

static const struct vimg_opt_desc qcow1_runtime_opts[] = {
    { "encrypt.key-secret", VIMG_OPT_STRING,
      "ID of the secret that provides the AES encryption key" },
    { NULL, 0, NULL },
};

static const struct vimg_opt_desc qcow1_create_opts[] = {
    { "size", VIMG_OPT_SIZE, "Virtual disk size" },
    { "backing_file", VIMG_OPT_STRING, "File name of a base image" },
    { "backing_fmt", VIMG_OPT_STRING, "Format of the backing image" },
    { "encryption", VIMG_OPT_BOOL,
      "Encrypt the image with format 'aes' (not supported by vimg)" },
    { "encrypt.format", VIMG_OPT_STRING,
      "Encrypt the image, format choices: 'aes' (not supported by vimg)" },
    { NULL, 0, NULL },
};

/* As qemu-img: the header, the backing file name right after it, the L1
 * table at the next 8-byte boundary, zeroed in whole sectors. 4 KiB
 * clusters and 512-entry tables; with a backing file 512-byte clusters
 * (no partial cluster to copy) and 4096-entry tables. */
static int qcow1_create(struct vimg_image *file,
                        const struct vimg_create_ctx *c)
{
    uint64_t size = ROUND_UP(c->size, 512);
    const char *backing = c->backing_file;
    bool enc;
    int r;

    if ((r = vimg_internal_opts_get_bool(c->opts, "encryption", false,
                                         &enc)) < 0) {
        return r;
    }
    if (enc || vimg_internal_opts_get(c->opts, "encrypt.format", NULL)) {
        return vimg_internal_error(ENOTSUP, "%s: encrypted qcow images are "
                                   "not supported", c->filename);
    }
    if (size == 0) {
        return vimg_internal_error(EINVAL, "%s: Image size is too small, "
                                   "cannot be zero length", c->filename);
    }
    size_t blen = backing ? strlen(backing) : 0;
    if (blen > QCOW1_MAX_BACKING_NAME) {
        return vimg_internal_error(EINVAL, "%s: backing file name too long",
                                   c->filename);
    }
    unsigned cluster_bits = backing ? 9 : 12, l2_bits = backing ? 12 : 9;
    unsigned shift = cluster_bits + l2_bits;
    uint64_t l1_size = DIV_ROUND_UP(size, (uint64_t)1 << shift);
    uint64_t header = ROUND_UP(QCOW1_HDR_LENGTH + blen, 8);
    uint64_t l1_bytes = ROUND_UP(l1_size * QCOW1_ENTRY_SIZE, 512);
    if (l1_size * QCOW1_ENTRY_SIZE > QCOW1_MAX_L1_BYTES) {
        return vimg_internal_error(EFBIG, "%s: size too large for qcow",
                                   c->filename);
    }
    uint8_t *buf = calloc(1, header + l1_bytes);
    if (!buf) {
        return vimg_internal_error(ENOMEM, "out of memory");
    }
    store_be32(buf + QCOW1_HDR_MAGIC, QCOW1_MAGIC);
    store_be32(buf + QCOW1_HDR_VERSION, QCOW1_VERSION);
    store_be64(buf + QCOW1_HDR_SIZE, size);
    buf[QCOW1_HDR_CLUSTER_BITS] = (uint8_t)cluster_bits;
    buf[QCOW1_HDR_L2_BITS] = (uint8_t)l2_bits;
    store_be64(buf + QCOW1_HDR_L1_TABLE_OFFSET, header);
    if (backing) {
        store_be64(buf + QCOW1_HDR_BACKING_FILE_OFFSET, QCOW1_HDR_LENGTH);
        store_be32(buf + QCOW1_HDR_BACKING_FILE_SIZE, (uint32_t)blen);
        memcpy(buf + QCOW1_HDR_LENGTH, backing, blen);
    }
    r = vimg_internal_pwrite(file, buf, header + l1_bytes, 0, 0);
    free(buf);
    return r;
}

const struct vimg_driver vimg_driver_qcow1 = {
    .name = "qcow",
    .kind = VIMG_DRIVER_FORMAT,
    .instance_size = sizeof(struct qcow1_state),
    .thread_safe = false,
    .has_zero_init = true,
    .create_opts = qcow1_create_opts,
    .runtime_opts = qcow1_runtime_opts,
    .probe = qcow1_probe,
    .open = qcow1_open,
    .close = qcow1_close,
    .create = qcow1_create,
    .pread = qcow1_pread,
    .pwrite = qcow1_pwrite,
    .zero = qcow1_zero,
    .block_status = qcow1_block_status,
    .compress = qcow1_compress,
    .write_compressed = qcow1_write_compressed,
    .get_info = qcow1_get_info,
};
