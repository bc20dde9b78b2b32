/* Creating qcow2 images (the layout qemu-img create writes: header, then
 * refcount table, one refcount block and the L1 table), resizing, and
 * growing the L1 table. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../../common/checked-overflow.h"
#include "../../../common/rounding.h"
#include "../../crypto/crypto.h"
#include "qcow2.h"

const struct vimg_opt_desc qcow2_create_opts[] = {
    { "size", VIMG_OPT_SIZE, "Virtual disk size" },
    { "compat", VIMG_OPT_STRING,
      "Compatibility level (v2 or 0.10, v3 or 1.1)" },
    { "backing_file", VIMG_OPT_STRING,
      "File name of a base image" },
    { "backing_fmt", VIMG_OPT_STRING, "Image format of the base image" },
    { "cluster_size", VIMG_OPT_SIZE, "qcow2 cluster size" },
    { "preallocation", VIMG_OPT_STRING,
      "Preallocation mode (allowed values: off, metadata, falloc, full)" },
    { "lazy_refcounts", VIMG_OPT_BOOL,
      "Postpone refcount updates" },
    { "refcount_bits", VIMG_OPT_NUMBER,
      "Width of a reference count entry in bits" },
    { "extended_l2", VIMG_OPT_BOOL,
      "Extended L2 tables" },
    { "compression_type", VIMG_OPT_STRING,
      "Compression method used for image cluster compression (zlib, "
      "zstd)" },
    { "encryption", VIMG_OPT_BOOL,
      "Encrypt the image with format 'aes' (deprecated; refused)" },
    { "encrypt.format", VIMG_OPT_STRING,
      "Encrypt the image, format choices: 'luks' ('aes' is refused)" },
    { "encrypt.key-secret", VIMG_OPT_STRING,
      "ID of secret providing qcow AES key or LUKS passphrase" },
    { "encrypt.cipher-alg", VIMG_OPT_STRING,
      "Name of encryption cipher algorithm (aes-128, aes-192, aes-256)" },
    { "encrypt.cipher-mode", VIMG_OPT_STRING,
      "Name of encryption cipher mode (xts, cbc, ecb, ctr)" },
    { "encrypt.ivgen-alg", VIMG_OPT_STRING,
      "Name of IV generator algorithm (plain, plain64, essiv)" },
    { "encrypt.ivgen-hash-alg", VIMG_OPT_STRING,
      "Name of IV generator hash algorithm" },
    { "encrypt.hash-alg", VIMG_OPT_STRING,
      "Name of encryption hash algorithm" },
    { "encrypt.iter-time", VIMG_OPT_NUMBER,
      "Time to spend in PBKDF in milliseconds" },
    { NULL, 0, NULL },
};

/* Feature names QEMU writes into new v3 images. */
static const struct {
    uint8_t type, bit;
    const char *name;
} feature_names[] = {
    { QCOW2_FEAT_TYPE_INCOMPATIBLE, 0, "dirty bit" },
    { QCOW2_FEAT_TYPE_INCOMPATIBLE, 1, "corrupt bit" },
    { QCOW2_FEAT_TYPE_INCOMPATIBLE, 2, "external data file" },
    { QCOW2_FEAT_TYPE_INCOMPATIBLE, 3, "compression type" },
    { QCOW2_FEAT_TYPE_INCOMPATIBLE, 4, "extended L2 entries" },
    { QCOW2_FEAT_TYPE_COMPATIBLE, 0, "lazy refcounts" },
    { QCOW2_FEAT_TYPE_AUTOCLEAR, 0, "bitmaps" },
    { QCOW2_FEAT_TYPE_AUTOCLEAR, 1, "raw external data" },
};
#define N_FEATURES (sizeof feature_names / sizeof feature_names[0])
_Static_assert(N_FEATURES * QCOW2_FEAT_ENTRY_SIZE == QCOW2_FEATURE_TABLE_SIZE,
               "feature table size");

bool qcow2_has_feature_table(uint64_t cluster_size)
{
    /* qemu-img writes the feature name table only into header clusters
     * of 8 KiB and more; doing the same keeps new images byte-identical. */
    return cluster_size >= 8192;
}

uint64_t qcow2_put_feature_table(uint8_t *h)
{
    store_be32(h + QCOW2_EXT_TYPE, QCOW2_EXT_FEATURE_TABLE);
    store_be32(h + QCOW2_EXT_LENGTH, QCOW2_FEATURE_TABLE_SIZE);
    uint8_t *e = h + QCOW2_EXT_DATA;
    memset(e, 0, QCOW2_FEATURE_TABLE_SIZE);
    for (size_t i = 0; i < N_FEATURES; i++) {
        e[QCOW2_FEAT_TYPE] = feature_names[i].type;
        e[QCOW2_FEAT_BIT] = feature_names[i].bit;
        memcpy(e + QCOW2_FEAT_NAME, feature_names[i].name,
               strlen(feature_names[i].name));
        e += QCOW2_FEAT_ENTRY_SIZE;
    }
    return QCOW2_EXT_DATA + QCOW2_FEATURE_TABLE_SIZE;
}

struct create_params {
    uint32_t version, cluster_bits, refcount_order;
    bool lazy, zstd, ext_l2;
    enum vimg_prealloc prealloc;
};

static int parse_params(const struct vimg_create_ctx *c,
                        struct create_params *p)
{
    const struct vimg_opts *o = c->opts;
    const char *compat = vimg_internal_opts_get(o, "compat", "1.1");
    const char *ctype = vimg_internal_opts_get(o, "compression_type",
                                               "zlib");
    uint64_t cs, bits;
    int r;

    if (!strcmp(compat, "1.1") || !strcmp(compat, "v3")) {
        p->version = 3;
    } else if (!strcmp(compat, "0.10") || !strcmp(compat, "v2")) {
        p->version = 2;
    } else {
        return vimg_internal_error(EINVAL, "%s: invalid compatibility level "
                                   "'%s'", c->filename, compat);
    }
    if ((r = vimg_internal_opts_get_size(o, "cluster_size", 65536,
                                         &cs)) < 0 ||
        (r = vimg_internal_opts_get_size(o, "refcount_bits", 16,
                                         &bits)) < 0 ||
        (r = vimg_internal_opts_get_bool(o, "lazy_refcounts", false,
                                         &p->lazy)) < 0 ||
        (r = vimg_internal_opts_get_bool(o, "extended_l2", false,
                                         &p->ext_l2)) < 0 ||
        (r = vimg_internal_opts_get_prealloc(o, &p->prealloc)) < 0) {
        return r;
    }
    if (!is_power_of_2(cs) || cs < 512 || cs > (2u << 20)) {
        return vimg_internal_error(EINVAL, "%s: cluster size must be a power "
                                   "of two between 512 and 2097152 bytes",
                                   c->filename);
    }
    p->cluster_bits = (uint32_t)__builtin_ctzll(cs);
    if (!is_power_of_2(bits) || bits > 64) {
        return vimg_internal_error(EINVAL, "%s: refcount width must be a "
                                   "power of two and may not exceed 64 "
                                   "bits", c->filename);
    }
    p->refcount_order = (uint32_t)__builtin_ctzll(bits);
    if (p->ext_l2 && p->cluster_bits < QCOW2_EXTL2_MIN_CLUSTER_BITS) {
        return vimg_internal_error(EINVAL, "%s: Extended L2 entries are "
                                   "only supported with cluster sizes of "
                                   "at least %u bytes", c->filename,
                                   1u << QCOW2_EXTL2_MIN_CLUSTER_BITS);
    }
    if (!strcmp(ctype, "zstd")) {
        p->zstd = true;
    } else if (strcmp(ctype, "zlib")) {
        return vimg_internal_error(EINVAL, "%s: invalid compression type "
                                   "'%s'", c->filename, ctype);
    }
    if (p->version == 2) {
        if (p->lazy) {
            return vimg_internal_error(EINVAL, "%s: Lazy refcounts only "
                                       "supported with compatibility level "
                                       "1.1 and above (use compat=1.1 or "
                                       "greater)", c->filename);
        }
        if (bits != 16) {
            return vimg_internal_error(EINVAL, "%s: Different refcount "
                                       "widths than 16 bits require "
                                       "compatibility level 1.1 or above "
                                       "(use compat=1.1 or greater)",
                                       c->filename);
        }
        if (p->zstd) {
            return vimg_internal_error(EINVAL, "%s: Compression type "
                                       "selection is only supported with "
                                       "compatibility level 1.1 and above",
                                       c->filename);
        }
        if (p->ext_l2) {
            return vimg_internal_error(EINVAL, "%s: Extended L2 entries are "
                                       "only supported with compatibility "
                                       "level 1.1 and above (use "
                                       "version=v3 or greater)",
                                       c->filename);
        }
    }
    if (c->backing_file && p->prealloc != VIMG_PREALLOC_OFF &&
        !p->ext_l2) {
        return vimg_internal_error(EINVAL, "%s: Backing file and "
                                   "preallocation can only be used at the "
                                   "same time if extended_l2 is on",
                                   c->filename);
    }
    if (c->backing_file && strlen(c->backing_file) > QCOW2_MAX_BACKING_NAME) {
        return vimg_internal_error(EINVAL, "%s: backing file name too long",
                                   c->filename);
    }
    return 0;
}

/* Header cluster: fields, extensions (backing format, feature names), end
 * marker, backing file name. */
static int build_header(const struct vimg_create_ctx *c,
                        const struct create_params *p, uint8_t *h)
{
    uint64_t cs = (uint64_t)1 << p->cluster_bits;
    uint64_t off;

    store_be32(h + QCOW2_HDR_MAGIC, QCOW2_MAGIC);
    store_be32(h + QCOW2_HDR_VERSION, p->version);
    store_be32(h + QCOW2_HDR_CLUSTER_BITS, p->cluster_bits);
    /* The size is set once the L1 table exists (see lay_out). */
    store_be64(h + QCOW2_HDR_REFCOUNT_TABLE_OFFSET, cs);
    store_be32(h + QCOW2_HDR_REFCOUNT_TABLE_CLUSTERS, 1);
    off = QCOW2_HDR_V2_LENGTH;
    if (p->version == 3) {
        store_be64(h + QCOW2_HDR_INCOMPATIBLE_FEATURES,
                   (p->zstd ? QCOW2_INCOMPAT_COMPRESSION : 0) |
                   (p->ext_l2 ? QCOW2_INCOMPAT_EXTL2 : 0));
        store_be64(h + QCOW2_HDR_COMPATIBLE_FEATURES,
                   p->lazy ? QCOW2_COMPAT_LAZY_REFCOUNTS : 0);
        store_be32(h + QCOW2_HDR_REFCOUNT_ORDER, p->refcount_order);
        store_be32(h + QCOW2_HDR_HEADER_LENGTH, QCOW2_HDR_V3_LENGTH);
        h[QCOW2_HDR_COMPRESSION_TYPE] = p->zstd ? QCOW2_COMPRESSION_ZSTD
                                                : QCOW2_COMPRESSION_ZLIB;
        off = QCOW2_HDR_V3_LENGTH;
    }
    if (c->backing_file && c->backing_format) {
        size_t n = strlen(c->backing_format);
        if (off + 8 + ROUND_UP(n, 8) + 8 > cs) {
            return vimg_internal_error(EINVAL, "%s: backing format name too "
                                       "long", c->filename);
        }
        store_be32(h + off + QCOW2_EXT_TYPE, QCOW2_EXT_BACKING_FORMAT);
        store_be32(h + off + QCOW2_EXT_LENGTH, (uint32_t)n);
        memcpy(h + off + QCOW2_EXT_DATA, c->backing_format, n);
        off += QCOW2_EXT_DATA + ROUND_UP(n, 8);
    }
    if (p->version == 3 && qcow2_has_feature_table(cs) &&
        off + 8 + QCOW2_FEATURE_TABLE_SIZE + 8 <= cs) {
        off += qcow2_put_feature_table(h + off);
    }
    off += 8; /* end-of-extensions marker, already zero */
    if (c->backing_file) {
        size_t n = strlen(c->backing_file);
        if (off + n > cs) {
            return vimg_internal_error(EINVAL, "%s: backing file name does "
                                       "not fit in the header cluster",
                                       c->filename);
        }
        store_be64(h + QCOW2_HDR_BACKING_FILE_OFFSET, off);
        store_be32(h + QCOW2_HDR_BACKING_FILE_SIZE, (uint32_t)n);
        memcpy(h + off, c->backing_file, n);
    }
    return 0;
}

/* Run FN on a qcow2 image opened on FILE (the new image), then close it. */
static int with_open_image(struct vimg_image *file, const char *name,
                           int (*fn)(struct vimg_image *, void *),
                           void *arg)
{
    struct vimg_image img = {
        .drv = &vimg_driver_qcow2,
        .file = file,
        .filename = (char *)name,
        .params = { .flags = VIMG_OPEN_RDWR | VIMG_OPEN_NO_BACKING,
                    .refs = VIMG_REFS_NEVER },
        .writable = true,
        .request_alignment = 1,
    };
    struct vimg_opts none = { 0 };
    int r;

    vimg_internal_mutex_init(&img.lock);
    img.opaque = calloc(1, sizeof(struct qcow2_state));
    if (!img.opaque) {
        pthread_mutex_destroy(&img.lock);
        return vimg_internal_error(ENOMEM, "out of memory");
    }
    r = vimg_driver_qcow2.open(&img, &none);
    if (r == 0) {
        r = fn(&img, arg);
        int r2 = vimg_driver_qcow2.close(&img);
        if (r == 0) {
            r = r2;
        }
    }
    free(img.opaque);
    free(img.backing_name);
    free(img.backing_format);
    pthread_mutex_destroy(&img.lock);
    return r;
}

struct layout_args {
    uint64_t size;
    enum vimg_prealloc prealloc;
    bool luks;                   /* encrypt.format=luks */
    struct vimg_luks_create luks_opts;
    const uint8_t *pass;
    size_t pass_len;
};

static int lay_out(struct vimg_image *img, void *arg)
{
    const struct layout_args *a = arg;
    struct qcow2_state *s = qcow2_state(img);
    uint64_t l1 = DIV_ROUND_UP(a->size, s->cluster_size << s->l2_bits);
    int r;

    if ((r = qcow2_grow_l1(img, l1)) < 0) {
        return r;
    }
    img->size = a->size;
    if ((r = qcow2_update_header_fields(img, QCOW2_HDR_SIZE, 8)) < 0) {
        return r;
    }
    if (a->prealloc != VIMG_PREALLOC_OFF && a->size) {
        r = qcow2_preallocate(img, 0, a->size, a->prealloc, UINT64_MAX);
    }
    /* After the L1 table and preallocated clusters, as QEMU places it. */
    if (r == 0 && a->luks) {
        r = qcow2_crypto_create(img, &a->luks_opts, a->pass, a->pass_len);
    }
    return r;
}

int qcow2_create(struct vimg_image *file, const struct vimg_create_ctx *c)
{
    struct create_params p = { 0 };
    /* qemu-img rounds a qcow2 image's size up to whole 512-byte sectors
     * (and reads any header size rounded down to them). */
    struct vimg_create_ctx aligned = *c;
    int r;

    aligned.size = ROUND_UP(c->size, 512);
    c = &aligned;
    struct layout_args a = { c->size, VIMG_PREALLOC_OFF, false };
    if ((r = parse_params(c, &p)) < 0 ||
        (r = qcow2_crypto_create_params(c, &a.luks_opts, &a.luks, &a.pass,
                                        &a.pass_len)) < 0) {
        return r;
    }
    a.prealloc = p.prealloc;
    uint64_t cs = (uint64_t)1 << p.cluster_bits;
    uint64_t l1_bytes = DIV_ROUND_UP(c->size, cs << (p.cluster_bits - 3)) * 8;
    if (l1_bytes > QCOW2_MAX_L1_BYTES) {
        return vimg_internal_error(EFBIG, "%s: image size too large for "
                                   "this cluster size", c->filename);
    }
    /* Header, refcount table and the first refcount block; the L1 table
     * is then allocated through the driver, so it lands at cluster 3. */
    uint8_t *buf = calloc(3, cs);
    if (!buf) {
        return vimg_internal_error(ENOMEM, "out of memory");
    }
    if ((r = build_header(c, &p, buf)) == 0) {
        store_be64(buf + cs, 2 * cs);
        for (unsigned i = 0; i < 3; i++) {
            qcow2_refcount_store(buf + 2 * cs, p.refcount_order, i, 1);
        }
        r = vimg_internal_pwrite(file, buf, 3 * cs, 0, 0);
    }
    free(buf);
    if (r == 0) {
        r = with_open_image(file, c->filename, lay_out, &a);
    }
    return r;
}

/* Cut the file after its last cluster in use, as qemu-img does after a
 * shrink: the clusters a shrink or a failed preallocation freed at the
 * end, and space reserved but not used, are given back. */
static int trim_file(struct vimg_image *img)
{
    struct qcow2_state *s = qcow2_state(img);
    uint64_t len = img->file->size, last;
    int r = qcow2_drop_unused_refblocks(img);
    if (r == 0) {
        r = qcow2_last_used_cluster(img, DIV_ROUND_UP(len, s->cluster_size),
                                    &last);
    }
    if (r < 0 || (last + 1) * s->cluster_size >= len) {
        return r;
    }
    /* Refcounts say where the end is: when they are wrong, metadata may
     * lie past it. */
    uint64_t cut = (last + 1) * s->cluster_size;
    const char *what;
    if ((r = qcow2_metadata_at(img, 0, NULL, cut, len - cut, &what)) < 0) {
        return r;
    }
    if (what) {
        return qcow2_signal_corruption(img, cut, "Preventing truncation of "
                                       "the file at 0x%llx that would cut "
                                       "the %s",
                                       (unsigned long long)cut, what);
    }
    return vimg_internal_truncate(img->file, cut, VIMG_TRUNCATE_SHRINK,
                                  VIMG_PREALLOC_OFF);
}

/* Undo a growth that failed after allocating: free every cluster past
 * the old size OLD and cut the file back. The caller reports its own
 * error, so failures here only leave more behind. */
static void undo_grow(struct vimg_image *img, uint64_t old)
{
    if (qcow2_drop_tail(img, old) == 0 && qcow2_flush_metadata(img) == 0 &&
        vimg_internal_flush(img->file) == 0) {
        (void)trim_file(img);
    }
}

/* At most how many clusters of img->file preallocating guest [OLD, SIZE)
 * allocates: data clusters (unless they live in an external data file),
 * L2 tables, a larger L1 table, refcount blocks for all of them, and the
 * refcount tables that growing to cover them may allocate in turn (each
 * at least 1.5 times the last, so all of them together stay below five
 * times the last one). */
static uint64_t prealloc_clusters(const struct qcow2_state *s,
                                  uint64_t file_clusters, uint64_t old,
                                  uint64_t size, bool data_here)
{
    uint64_t cs = s->cluster_size, span = cs << s->l2_bits;
    uint64_t per_block = (uint64_t)1 << s->rb_bits;
    uint64_t n = DIV_ROUND_UP(size, span) - old / span +
                 DIV_ROUND_UP(DIV_ROUND_UP(size, span) * 8, cs);
    uint64_t meta = 0;

    if (data_here) {
        n += DIV_ROUND_UP(size, cs) - old / cs;
    }
    for (;;) {
        uint64_t end = file_clusters + n + meta;
        uint64_t blocks = DIV_ROUND_UP(n + meta, per_block) + 1;
        uint64_t table = DIV_ROUND_UP(DIV_ROUND_UP(end, per_block) * 8, cs);
        uint64_t next = blocks + 5 * table + 2;
        if (next <= meta) {
            return n + meta;
        }
        meta = next;
    }
}

/* Grow to SIZE with every new cluster allocated (falloc, full). As
 * qemu-img does, the space is taken from the file system first, past the
 * end of the files, and clusters are then allocated there: a full file
 * system fails that first step, which gives the space back itself, before
 * any table changes. Anything failing later is undone: the clusters
 * allocated are freed and the files cut back, so that the image is as it
 * was (the L1 table may stay larger). */
static int grow_preallocated(struct vimg_image *img, uint64_t old,
                             uint64_t size, enum vimg_prealloc prealloc)
{
    struct qcow2_state *s = qcow2_state(img);
    uint64_t cs = s->cluster_size, hint = s->free_hint;
    bool data_here = s->data == img->file;
    uint64_t data_len = data_here ? 0 : s->data->size;
    uint64_t first = DIV_ROUND_UP(img->file->size, cs), fresh, reserve;
    int r;

    if (img->backing_name) {
        return vimg_internal_img_error(img, ENOTSUP, "preallocation with a "
                                       "backing file would hide its data");
    }
    reserve = prealloc_clusters(s, first, old, size, data_here);
    if (!data_here && ROUND_UP(size, cs) > data_len &&
        (r = vimg_internal_truncate(s->data, ROUND_UP(size, cs), 0,
                                    prealloc)) < 0) {
        return r;
    }
    if ((r = vimg_internal_truncate(img->file, (first + reserve) * cs, 0,
                                    prealloc)) < 0) {
        goto undo_data;
    }
    /* Only the reserved clusters are taken (a hole freed earlier further
     * down would need space the file system may not have); they read as
     * zeros already. */
    fresh = data_here ? first * cs : data_len;
    s->free_hint = first;
    if ((r = qcow2_grow_l1(img, DIV_ROUND_UP(size, cs << s->l2_bits))) == 0) {
        s->free_hint = MAX(s->free_hint, first);
        r = qcow2_preallocate(img, old, size, prealloc, fresh);
    }
    s->free_hint = MIN(s->free_hint, hint);
    if (r == 0 && (r = qcow2_flush_metadata(img)) == 0 &&
        (r = vimg_internal_flush(img->file)) == 0) {
        return trim_file(img);
    }
    undo_grow(img, old);
undo_data:
    if (!data_here && s->data->size > data_len) {
        (void)vimg_internal_truncate(s->data, data_len, VIMG_TRUNCATE_SHRINK,
                                     VIMG_PREALLOC_OFF);
    }
    return r;
}

int qcow2_truncate(struct vimg_image *img, uint64_t size, unsigned flags,
                   enum vimg_prealloc prealloc)
{
    struct qcow2_state *s = qcow2_state(img);
    uint64_t old = img->size;
    int r;

    (void)flags;
    if (size % 512) {
        return vimg_internal_img_error(img, EINVAL, "The new size must be a "
                                       "multiple of 512");
    }
    if (s->nb_snapshots && s->version < 3 && size != old) {
        /* A v2 snapshot does not record its size: applying it after a
         * resize would give it the wrong one (qemu-img refuses too). */
        return vimg_internal_img_error(img, ENOTSUP, "Can't resize a v2 "
                                       "image which has snapshots");
    }
    if ((r = qcow2_begin_write(img)) < 0) {
        return r;
    }
    if (size < old) {
        if (prealloc != VIMG_PREALLOC_OFF) {
            return vimg_internal_img_error(img, EINVAL, "preallocation "
                                           "makes no sense when shrinking");
        }
        /* As qemu-img: the data past the new end is discarded (the core
         * has checked that the caller allowed it). */
        if ((r = qcow2_drop_tail(img, size)) < 0 ||
            (r = qcow2_flush_metadata(img)) < 0) {
            return r;
        }
    } else if (size > old && (prealloc == VIMG_PREALLOC_FALLOC ||
                              prealloc == VIMG_PREALLOC_FULL)) {
        if ((r = grow_preallocated(img, old, size, prealloc)) < 0) {
            return r;
        }
    } else if ((r = qcow2_grow_l1(img, DIV_ROUND_UP(
                                           size, s->cluster_size
                                                     << s->l2_bits))) < 0) {
        return r;
    } else if (size > old && prealloc == VIMG_PREALLOC_METADATA) {
        if (img->backing_name) {
            return vimg_internal_img_error(img, ENOTSUP, "preallocation "
                                           "with a backing file would hide "
                                           "its data");
        }
        if ((r = qcow2_preallocate(img, old, size, prealloc,
                                   UINT64_MAX)) < 0 ||
            (r = qcow2_flush_metadata(img)) < 0) {
            undo_grow(img, old);
            return r;
        }
    }
    img->size = size;
    if ((r = qcow2_update_header_fields(img, QCOW2_HDR_SIZE, 8)) < 0) {
        img->size = old;
        return r;
    }
    if ((r = vimg_internal_flush(img->file)) < 0) {
        return r;
    }
    return size < old ? trim_file(img) : 0;
}

int qcow2_grow_l1(struct vimg_image *img, uint64_t min_size)
{
    struct qcow2_state *s = qcow2_state(img);
    uint64_t old_offset = s->l1_offset, old_bytes = s->l1_size * 8ull;
    uint64_t bytes, fresh, *l1;
    uint8_t *buf;
    int r;

    if (min_size <= s->l1_size) {
        return 0;
    }
    if (CHECKED_MUL(min_size, 8, &bytes) || bytes > QCOW2_MAX_L1_BYTES) {
        return vimg_internal_img_error(img, EFBIG, "the L1 table would "
                                       "exceed %u bytes",
                                       QCOW2_MAX_L1_BYTES);
    }
    /* The old table is released at the end: check it before changing
     * anything. Tables the old L1 names must be on disk before a copy
     * names them. */
    struct qcow2_range old_range = { old_offset,
                                     ROUND_UP(old_bytes, s->cluster_size) };
    if ((r = qcow2_check_release(img, QCOW2_ROLE_L1, &old_range, 1)) < 0 ||
        (r = qcow2_flush_metadata(img)) < 0) {
        return r;
    }
    l1 = calloc(min_size, sizeof *l1);
    buf = calloc(1, bytes);
    if (!l1 || !buf) {
        free(l1);
        free(buf);
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    memcpy(l1, s->l1, s->l1_size * sizeof *l1);
    for (uint64_t i = 0; i < min_size; i++) {
        store_be64(buf + i * 8, l1[i]);
    }
    r = qcow2_alloc_clusters(img, DIV_ROUND_UP(bytes, s->cluster_size),
                             &fresh);
    if (r == 0) {
        r = qcow2_cache_flush(img, &s->rb_cache);
    }
    if (r == 0) {
        r = vimg_internal_flush(img->file);
    }
    if (r == 0) {
        r = qcow2_write_meta(img, QCOW2_ROLE_L1, buf, bytes, fresh);
    }
    if (r == 0) {
        r = vimg_internal_flush(img->file);
    }
    free(buf);
    if (r < 0) {
        free(l1);
        return r;
    }
    free(s->l1);
    s->l1 = l1;
    s->l1_size = (uint32_t)min_size;
    s->l1_offset = fresh;
    if ((r = qcow2_update_header_fields(img, QCOW2_HDR_L1_SIZE, 12)) < 0 ||
        (r = vimg_internal_flush(img->file)) < 0) {
        return r;
    }
    return qcow2_free_clusters(img, &old_range, 1);
}
