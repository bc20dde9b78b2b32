/* The qcow2 format (QEMU docs/interop/qcow2.txt): probe, header
 * validation, open, close, metadata write-back order, corruption handling,
 * info and the driver table. Creation and resizing are in
 * qcow2-create.c. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../../common/checked-overflow.h"
#include "../../../common/rounding.h"
#include "qcow2.h"

static int qcow2_probe(const uint8_t *buf, size_t len, const char *filename)
{
    (void)filename;
    if (len >= 8 && load_be32(buf + QCOW2_HDR_MAGIC) == QCOW2_MAGIC) {
        uint32_t v = load_be32(buf + QCOW2_HDR_VERSION);
        return v == 2 || v == 3 ? 100 : 0;
    }
    return 0;
}

/* ---- Header validation ----------------------------------------------- */

/* The name of feature BIT of TYPE from the feature name table, or NULL. */
static const char *feature_name(const struct qcow2_state *s, unsigned type,
                                unsigned bit, char out[QCOW2_FEAT_NAME_LEN + 1])
{
    for (uint64_t i = 0; i < s->feature_table_len / QCOW2_FEAT_ENTRY_SIZE;
         i++) {
        const uint8_t *e = s->feature_table + i * QCOW2_FEAT_ENTRY_SIZE;
        if (e[QCOW2_FEAT_TYPE] == type && e[QCOW2_FEAT_BIT] == bit) {
            memcpy(out, e + QCOW2_FEAT_NAME, QCOW2_FEAT_NAME_LEN);
            out[QCOW2_FEAT_NAME_LEN] = 0;
            return out;
        }
    }
    return NULL;
}

/* A table of ENTRIES * ENTRY_SIZE bytes at OFFSET must be aligned, capped
 * at MAX bytes and lie inside the file. */
static int validate_table(struct vimg_image *img, const char *what,
                          uint64_t offset, uint64_t entries,
                          uint64_t entry_size, uint64_t max,
                          uint64_t cluster_size, uint64_t file_size)
{
    uint64_t bytes;

    if (CHECKED_MUL(entries, entry_size, &bytes) || bytes > max) {
        return vimg_internal_img_error(img, EFBIG, "%s is too large "
                                       "(%llu entries)", what,
                                       (unsigned long long)entries);
    }
    if (offset & (cluster_size - 1)) {
        return vimg_internal_img_error(img, EINVAL, "%s offset 0x%llx is "
                                       "not cluster aligned", what,
                                       (unsigned long long)offset);
    }
    if (bytes && offset >= file_size) {
        return vimg_internal_img_error(img, EINVAL, "%s at 0x%llx lies past "
                                       "the end of the file", what,
                                       (unsigned long long)offset);
    }
    /* A table that starts inside the file but whose entries do not fit
     * is a different damage (a wrong count, or a truncated file). */
    if (bytes && range_outside(offset, bytes, file_size)) {
        return vimg_internal_img_error(img, EINVAL, "%s at 0x%llx runs past "
                                       "the end of the file at 0x%llx "
                                       "(%llu entries)", what,
                                       (unsigned long long)offset,
                                       (unsigned long long)file_size,
                                       (unsigned long long)entries);
    }
    return 0;
}

static int parse_extensions(struct vimg_image *img, struct qcow2_state *s,
                            const uint8_t *buf, uint64_t start,
                            uint64_t limit, uint64_t file_size)
{
    uint64_t off = start;

    while (off + 8 <= limit) {
        uint32_t type = load_be32(buf + off + QCOW2_EXT_TYPE);
        uint32_t len = load_be32(buf + off + QCOW2_EXT_LENGTH);
        const uint8_t *data = buf + off + QCOW2_EXT_DATA;
        if (type == QCOW2_EXT_END) {
            return 0;
        }
        if (range_outside(off + QCOW2_EXT_DATA, len, limit)) {
            return vimg_internal_img_error(img, EINVAL, "header extension "
                                           "0x%08x at %llu overruns the "
                                           "header cluster", type,
                                           (unsigned long long)off);
        }
        switch (type) {
        case QCOW2_EXT_BACKING_FORMAT:
            free(s->backing_format);
            s->backing_format = strndup((const char *)data, len);
            if (!s->backing_format) {
                return -ENOMEM;
            }
            break;
        case QCOW2_EXT_FEATURE_TABLE:
            s->feature_table = data;
            s->feature_table_len = len;
            break;
        case QCOW2_EXT_CRYPTO_HEADER:
            if (len < QCOW2_CRYPTO_EXT_SIZE) {
                return vimg_internal_img_error(img, EINVAL, "encryption "
                                               "header extension too short");
            }
            s->crypto_offset = load_be64(data + QCOW2_CRYPTO_EXT_OFFSET);
            s->crypto_length = load_be64(data + QCOW2_CRYPTO_EXT_LENGTH);
            if (range_outside(s->crypto_offset, s->crypto_length,
                              file_size) ||
                (s->crypto_offset & (s->cluster_size - 1))) {
                return vimg_internal_img_error(img, EINVAL, "encryption "
                                               "header lies outside the "
                                               "file or is unaligned");
            }
            break;
        case QCOW2_EXT_BITMAPS:
            if (len < QCOW2_BITMAPS_EXT_SIZE) {
                return vimg_internal_img_error(img, EINVAL, "bitmaps "
                                               "extension too short");
            }
            s->nb_bitmaps = load_be32(data + QCOW2_BITMAPS_EXT_NB_BITMAPS);
            s->bitmap_dir_size = load_be64(data + QCOW2_BITMAPS_EXT_DIR_SIZE);
            s->bitmap_dir_offset =
                load_be64(data + QCOW2_BITMAPS_EXT_DIR_OFFSET);
            s->has_bitmaps_ext = true;
            break;
        case QCOW2_EXT_DATA_FILE:
            free(s->data_file_name);
            s->data_file_name = strndup((const char *)data, len);
            if (!s->data_file_name) {
                return -ENOMEM;
            }
            break;
        default:
            break; /* unknown: kept as they are, cluster 0 is not rewritten */
        }
        off += QCOW2_EXT_DATA + ROUND_UP((uint64_t)len, 8);
    }
    return 0;
}

int qcow2_validate_header(struct vimg_image *img, struct qcow2_state *s,
                          const uint8_t *buf, size_t len, uint64_t file_size)
{
    uint64_t size, l1_needed, ext_limit, backing_off;
    uint32_t backing_len;
    char name[QCOW2_FEAT_NAME_LEN + 1];
    int r;

    if (len < QCOW2_HDR_V2_LENGTH || load_be32(buf) != QCOW2_MAGIC) {
        return vimg_internal_img_error(img, EINVAL, "not a qcow2 image");
    }
    s->version = load_be32(buf + QCOW2_HDR_VERSION);
    if (s->version != 2 && s->version != 3) {
        return vimg_internal_img_error(img, ENOTSUP, "unsupported qcow2 "
                                       "version %u", s->version);
    }
    s->cluster_bits = load_be32(buf + QCOW2_HDR_CLUSTER_BITS);
    if (s->cluster_bits < QCOW2_MIN_CLUSTER_BITS ||
        s->cluster_bits > QCOW2_MAX_CLUSTER_BITS) {
        return vimg_internal_img_error(img, EINVAL, "cluster size 2^%u is "
                                       "outside 512 B..2 MiB",
                                       s->cluster_bits);
    }
    s->cluster_size = (uint64_t)1 << s->cluster_bits;
    s->l2_bits = s->cluster_bits - 3;
    if (len < s->cluster_size) {
        return vimg_internal_img_error(img, EINVAL, "header cluster "
                                       "truncated");
    }
    size = load_be64(buf + QCOW2_HDR_SIZE);
    s->crypt_method = load_be32(buf + QCOW2_HDR_CRYPT_METHOD);
    s->l1_size = load_be32(buf + QCOW2_HDR_L1_SIZE);
    s->l1_offset = load_be64(buf + QCOW2_HDR_L1_TABLE_OFFSET);
    s->rt_offset = load_be64(buf + QCOW2_HDR_REFCOUNT_TABLE_OFFSET);
    s->rt_clusters = load_be32(buf + QCOW2_HDR_REFCOUNT_TABLE_CLUSTERS);
    s->nb_snapshots = load_be32(buf + QCOW2_HDR_NB_SNAPSHOTS);
    s->snapshots_offset = load_be64(buf + QCOW2_HDR_SNAPSHOTS_OFFSET);
    backing_off = load_be64(buf + QCOW2_HDR_BACKING_FILE_OFFSET);
    backing_len = load_be32(buf + QCOW2_HDR_BACKING_FILE_SIZE);
    if (s->version == 2) {
        s->header_length = QCOW2_HDR_V2_LENGTH;
        s->refcount_order = 4;
        s->incompat = s->compat = s->autoclear = 0;
    } else {
        s->incompat = load_be64(buf + QCOW2_HDR_INCOMPATIBLE_FEATURES);
        s->compat = load_be64(buf + QCOW2_HDR_COMPATIBLE_FEATURES);
        s->autoclear = load_be64(buf + QCOW2_HDR_AUTOCLEAR_FEATURES);
        s->refcount_order = load_be32(buf + QCOW2_HDR_REFCOUNT_ORDER);
        s->header_length = load_be32(buf + QCOW2_HDR_HEADER_LENGTH);
        if (s->header_length < QCOW2_HDR_V3_MIN_LENGTH ||
            s->header_length > s->cluster_size) {
            return vimg_internal_img_error(img, EINVAL, "header length %u "
                                           "is invalid", s->header_length);
        }
        if (s->refcount_order > QCOW2_MAX_REFCOUNT_ORDER) {
            return vimg_internal_img_error(img, EINVAL, "refcount order %u "
                                           "is invalid (at most 6)",
                                           s->refcount_order);
        }
    }
    s->compression_type = s->header_length > QCOW2_HDR_COMPRESSION_TYPE
                          ? buf[QCOW2_HDR_COMPRESSION_TYPE]
                          : QCOW2_COMPRESSION_ZLIB;
    s->rb_bits = s->cluster_bits + 3 - s->refcount_order;

    /* Extensions end where the backing file name starts, or with the
     * header cluster. */
    ext_limit = s->cluster_size;
    if (backing_off) {
        if (backing_len > QCOW2_MAX_BACKING_NAME ||
            range_outside(backing_off, backing_len, s->cluster_size) ||
            backing_off < s->header_length) {
            return vimg_internal_img_error(img, EINVAL, "backing file name "
                                           "(%u bytes at %llu) is invalid",
                                           backing_len,
                                           (unsigned long long)backing_off);
        }
        ext_limit = backing_off;
        s->backing_name = strndup((const char *)buf + backing_off,
                                  backing_len);
        if (!s->backing_name) {
            return -ENOMEM;
        }
    }
    if ((r = parse_extensions(img, s, buf, s->header_length, ext_limit,
                              file_size)) < 0) {
        return r;
    }

    uint64_t unknown = s->incompat & ~QCOW2_INCOMPAT_MASK;
    if (unknown) {
        unsigned bit = (unsigned)__builtin_ctzll(unknown);
        const char *n = feature_name(s, QCOW2_FEAT_TYPE_INCOMPATIBLE, bit,
                                     name);
        return vimg_internal_img_error(img, ENOTSUP, "unsupported qcow2 "
                                       "feature: %s (incompatible bit %u)",
                                       n ? n : "unknown", bit);
    }
    s->ext_l2 = (s->incompat & QCOW2_INCOMPAT_EXTL2) != 0;
    s->sc_bits = s->cluster_bits;
    if (s->ext_l2) {
        /* 16-byte entries: half as many per table. */
        s->l2_bits = s->cluster_bits - 4;
        s->sc_bits = s->cluster_bits - 5;
        if (s->cluster_bits < QCOW2_EXTL2_MIN_CLUSTER_BITS) {
            return vimg_internal_img_error(img, EINVAL, "unsupported "
                                           "subcluster size: %llu",
                                           1ull << s->sc_bits);
        }
    }
    if ((s->incompat & QCOW2_INCOMPAT_COMPRESSION)
            ? s->compression_type != QCOW2_COMPRESSION_ZSTD
            : s->compression_type != QCOW2_COMPRESSION_ZLIB) {
        return vimg_internal_img_error(img, EINVAL, "compression type %u "
                                       "does not match the incompatible "
                                       "feature bit", s->compression_type);
    }
    if ((s->incompat & QCOW2_INCOMPAT_DATA_FILE) && !s->data_file_name) {
        return vimg_internal_img_error(img, EINVAL, "the image needs an "
                                       "external data file but does not "
                                       "name one");
    }
    if (s->crypt_method > QCOW2_CRYPT_LUKS) {
        return vimg_internal_img_error(img, EINVAL, "unknown encryption "
                                       "method %u", s->crypt_method);
    }
    if (size > INT64_MAX) {
        return vimg_internal_img_error(img, EINVAL, "virtual size %llu is "
                                       "too large",
                                       (unsigned long long)size);
    }
    l1_needed = DIV_ROUND_UP(size, s->cluster_size << s->l2_bits);
    if (l1_needed > s->l1_size) {
        return vimg_internal_img_error(img, EINVAL, "L1 table (%u entries) "
                                       "is too small for the virtual size",
                                       s->l1_size);
    }
    if ((r = validate_table(img, "L1 table", s->l1_offset, s->l1_size, 8,
                            QCOW2_MAX_L1_BYTES, s->cluster_size,
                            file_size)) < 0 ||
        (r = validate_table(img, "refcount table", s->rt_offset,
                            s->rt_clusters, s->cluster_size,
                            QCOW2_MAX_RT_BYTES, s->cluster_size,
                            file_size)) < 0) {
        return r;
    }
    if (s->rt_clusters == 0) {
        return vimg_internal_img_error(img, EINVAL, "the refcount table is "
                                       "empty");
    }
    if (s->nb_snapshots > QCOW2_MAX_SNAPSHOTS) {
        return vimg_internal_img_error(img, EFBIG, "too many snapshots "
                                       "(%u)", s->nb_snapshots);
    }
    if (s->nb_snapshots &&
        (r = validate_table(img, "snapshot table", s->snapshots_offset,
                            s->nb_snapshots, QCOW2_SN_FIXED_SIZE,
                            QCOW2_MAX_SNAPSHOT_TABLE, s->cluster_size,
                            file_size)) < 0) {
        return r;
    }
    /* The bitmaps extension is checked with the directory, by
     * qcow2_bitmaps_open. */
    s->rt_entries = (uint64_t)s->rt_clusters * s->cluster_size / 8;
    /* QEMU sees whole 512-byte sectors only. */
    img->size = ROUND_DOWN(size, 512);
    img->compress_unit = (uint32_t)s->cluster_size;
    return 0;
}

/* ---- Corruption and metadata writes ---------------------------------- */

int qcow2_signal_corruption(struct vimg_image *img, uint64_t offset,
                            const char *fmt, ...)
{
    struct qcow2_state *s = qcow2_state(img);
    char msg[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!s->corrupt && img->writable && s->version >= 3) {
        /* Best effort: the image is already damaged. */
        s->corrupt = true;
        s->incompat |= QCOW2_INCOMPAT_CORRUPT;
        (void)qcow2_update_header_fields(img, QCOW2_HDR_INCOMPATIBLE_FEATURES,
                                         8);
        (void)vimg_internal_flush(img->file);
    }
    s->corrupt = true;
    return vimg_internal_img_error(img, EIO, "Marking image as corrupt: %s "
                                   "(offset 0x%llx); further writes are "
                                   "refused", msg,
                                   (unsigned long long)offset);
}

static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    return a < b + blen && b < a + alen;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Sort V[0..N) and drop duplicates; the new count. */
static uint64_t sort_unique(uint64_t *v, uint64_t n)
{
    uint64_t k = 0;

    qsort(v, n, sizeof *v, cmp_u64);
    for (uint64_t i = 0; i < n; i++) {
        if (k == 0 || v[i] != v[k - 1]) {
            v[k++] = v[i];
        }
    }
    return k;
}

/* Collect the L2 tables that the snapshots' L1 tables name. */
static int load_inactive_l2(struct vimg_image *img)
{
    struct qcow2_state *s = qcow2_state(img);
    uint64_t total = 0, n = 0, *v = NULL;
    uint8_t *raw = NULL;
    int r = 0;

    for (uint32_t i = 0; i < s->nb_snapshots && r == 0; i++) {
        const struct qcow2_snapshot *sn = &s->snapshots[i];
        uint64_t *nv;
        uint8_t *nraw;
        total += sn->l1_size;
        if (total > QCOW2_MAX_INACTIVE_L1_ENTRIES) {
            r = vimg_internal_img_error(img, EFBIG, "the snapshots' L1 "
                                        "tables are too large to check "
                                        "writes against (more than %u "
                                        "entries)",
                                        QCOW2_MAX_INACTIVE_L1_ENTRIES);
            break;
        }
        if (!sn->l1_size) {
            continue;
        }
        nv = realloc(v, (n + sn->l1_size) * sizeof *v);
        if (nv) {
            v = nv;
        }
        nraw = realloc(raw, sn->l1_size * 8ull);
        if (nraw) {
            raw = nraw;
        }
        if (!nv || !nraw) {
            r = vimg_internal_img_error(img, ENOMEM, "out of memory");
            break;
        }
        r = vimg_internal_pread(img->file, raw, sn->l1_size * 8ull,
                                sn->l1_offset);
        for (uint64_t j = 0; r == 0 && j < sn->l1_size; j++) {
            uint64_t off = load_be64(raw + j * 8) & QCOW2_L1E_OFFSET_MASK;
            if (off) {
                v[n++] = off;
            }
        }
        n = sort_unique(v, n);
    }
    free(raw);
    if (r < 0) {
        free(v);
        return r;
    }
    s->inactive_l2 = v;
    s->nb_inactive_l2 = n;
    s->inactive_l2_loaded = true;
    return 0;
}

/* Whether a cluster-sized table at one of the sorted offsets V[0..N)
 * overlaps [OFFSET, OFFSET+LEN). */
static bool table_in(const uint64_t *v, uint64_t n, uint64_t cluster_size,
                     uint64_t offset, uint64_t len)
{
    uint64_t lo = 0, hi = n;

    /* The first table that ends after OFFSET. */
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (v[mid] + cluster_size <= offset) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo < n && v[lo] < offset + len;
}

int qcow2_inactive_l2_at(struct vimg_image *img, uint64_t offset, bool *yes)
{
    struct qcow2_state *s = qcow2_state(img);
    int r;

    *yes = false;
    if (!s->nb_snapshots) {
        return 0;
    }
    if (!s->inactive_l2_loaded && (r = load_inactive_l2(img)) < 0) {
        return r;
    }
    *yes = table_in(s->inactive_l2, s->nb_inactive_l2, s->cluster_size,
                    offset, 1);
    return 0;
}

int qcow2_meta_index_build(struct vimg_image *img,
                           struct qcow2_meta_index *ix)
{
    struct qcow2_state *s = qcow2_state(img);

    memset(ix, 0, sizeof *ix);
    ix->rb = malloc((s->rt_entries ? s->rt_entries : 1) * sizeof *ix->rb);
    ix->l2 = malloc((s->l1_size ? s->l1_size : 1) * sizeof *ix->l2);
    if (!ix->rb || !ix->l2) {
        qcow2_meta_index_free(ix);
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    for (uint64_t i = 0; i < s->rt_entries; i++) {
        if (s->rt[i] & QCOW2_RTE_OFFSET_MASK) {
            ix->rb[ix->nb_rb++] = s->rt[i] & QCOW2_RTE_OFFSET_MASK;
        }
    }
    for (uint64_t i = 0; i < s->l1_size; i++) {
        if (s->l1[i] & QCOW2_L1E_OFFSET_MASK) {
            ix->l2[ix->nb_l2++] = s->l1[i] & QCOW2_L1E_OFFSET_MASK;
        }
    }
    ix->nb_rb = sort_unique(ix->rb, ix->nb_rb);
    ix->nb_l2 = sort_unique(ix->l2, ix->nb_l2);
    return 0;
}

void qcow2_meta_index_free(struct qcow2_meta_index *ix)
{
    free(ix->rb);
    free(ix->l2);
    memset(ix, 0, sizeof *ix);
}

int qcow2_metadata_at(struct vimg_image *img, unsigned ignore,
                      const struct qcow2_meta_index *ix, uint64_t offset,
                      uint64_t len, const char **what)
{
    struct qcow2_state *s = qcow2_state(img);
    int r;

    *what = NULL;
    if (len == 0) {
        return 0;
    }
    if (!(ignore & QCOW2_ROLE_HEADER) && offset < s->cluster_size) {
        *what = "qcow2_header";
    } else if (!(ignore & QCOW2_ROLE_L1) && s->l1_size &&
               overlaps(offset, len, s->l1_offset, s->l1_size * 8ull)) {
        *what = "active L1 table";
    } else if (!(ignore & QCOW2_ROLE_RT) &&
               overlaps(offset, len, s->rt_offset,
                        s->rt_clusters * s->cluster_size)) {
        *what = "refcount table";
    } else if (!(ignore & QCOW2_ROLE_SNAPSHOTS) && s->nb_snapshots &&
               overlaps(offset, len, s->snapshots_offset,
                        s->snapshots_size)) {
        *what = "snapshot table";
    } else if (!(ignore & QCOW2_ROLE_CRYPTO) && s->crypto_length &&
               overlaps(offset, len, s->crypto_offset, s->crypto_length)) {
        *what = "encryption header";
    } else if (!(ignore & QCOW2_ROLE_BITMAPS)) {
        *what = qcow2_bitmaps_metadata_at(s, offset, len);
    }
    if (ix) {
        if (!*what && !(ignore & QCOW2_ROLE_RB) &&
            table_in(ix->rb, ix->nb_rb, s->cluster_size, offset, len)) {
            *what = "refcount block";
        }
        if (!*what && !(ignore & QCOW2_ROLE_L2) &&
            table_in(ix->l2, ix->nb_l2, s->cluster_size, offset, len)) {
            *what = "active L2 table";
        }
    }
    for (uint64_t i = 0; !ix && !*what && !(ignore & QCOW2_ROLE_RB) &&
                         i < s->rt_entries; i++) {
        uint64_t b = s->rt[i] & QCOW2_RTE_OFFSET_MASK;
        if (b && overlaps(offset, len, b, s->cluster_size)) {
            *what = "refcount block";
        }
    }
    for (uint64_t i = 0; !ix && !*what && !(ignore & QCOW2_ROLE_L2) &&
                         i < s->l1_size; i++) {
        uint64_t b = s->l1[i] & QCOW2_L1E_OFFSET_MASK;
        if (b && overlaps(offset, len, b, s->cluster_size)) {
            *what = "active L2 table";
        }
    }
    for (uint32_t i = 0; !*what && !(ignore & QCOW2_ROLE_SNAPSHOT_L1) &&
                         i < s->nb_snapshots; i++) {
        const struct qcow2_snapshot *sn = &s->snapshots[i];
        if (sn->l1_size && overlaps(offset, len, sn->l1_offset,
                                    sn->l1_size * 8ull)) {
            *what = "inactive L1 table";
        }
    }
    if (!*what && !(ignore & QCOW2_ROLE_INACTIVE_L2) && s->nb_snapshots) {
        if (!s->inactive_l2_loaded && (r = load_inactive_l2(img)) < 0) {
            return r;
        }
        if (table_in(s->inactive_l2, s->nb_inactive_l2, s->cluster_size,
                     offset, len)) {
            *what = "inactive L2 table";
        }
    }
    return 0;
}

int qcow2_overlap_check(struct vimg_image *img, enum qcow2_role role,
                        uint64_t offset, uint64_t len)
{
    const char *what;
    int r = qcow2_metadata_at(img, role, NULL, offset, len, &what);

    if (r == 0 && what) {
        r = qcow2_signal_corruption(img, offset, "Preventing invalid "
                                    "write on metadata (overlaps with "
                                    "%s)", what);
    }
    return r;
}

int qcow2_write_meta(struct vimg_image *img, enum qcow2_role role,
                     const void *buf, uint64_t len, uint64_t offset)
{
    struct qcow2_state *s = qcow2_state(img);
    int r;

    if (s->corrupt) {
        return vimg_internal_img_error(img, EIO, "image is marked corrupt; "
                                       "writes are refused");
    }
    if ((r = qcow2_overlap_check(img, role, offset, len)) < 0) {
        return r;
    }
    return vimg_internal_pwrite(img->file, buf, len, offset,
                                VIMG_INTERNAL_WRITE_METADATA);
}

int qcow2_update_header_fields(struct vimg_image *img, unsigned pos,
                               unsigned len)
{
    struct qcow2_state *s = qcow2_state(img);
    uint8_t *h = s->hdr;

    store_be64(h + QCOW2_HDR_SIZE, img->size);
    store_be32(h + QCOW2_HDR_L1_SIZE, s->l1_size);
    store_be64(h + QCOW2_HDR_L1_TABLE_OFFSET, s->l1_offset);
    store_be64(h + QCOW2_HDR_REFCOUNT_TABLE_OFFSET, s->rt_offset);
    store_be32(h + QCOW2_HDR_REFCOUNT_TABLE_CLUSTERS, s->rt_clusters);
    if (s->version >= 3) {
        store_be64(h + QCOW2_HDR_INCOMPATIBLE_FEATURES, s->incompat);
        store_be64(h + QCOW2_HDR_COMPATIBLE_FEATURES, s->compat);
        store_be64(h + QCOW2_HDR_AUTOCLEAR_FEATURES, s->autoclear);
    }
    /* Header fields may be written even on a corrupt image (to set the
     * corrupt bit), so this bypasses the corrupt check but not bounds. */
    return vimg_internal_pwrite(img->file, h + pos, len, pos,
                                VIMG_INTERNAL_WRITE_METADATA);
}

int qcow2_begin_write(struct vimg_image *img)
{
    struct qcow2_state *s = qcow2_state(img);
    /* Autoclear bits name features a writer must maintain or drop: the
     * spec says to clear the bits of those it does not know when
     * modifying the image. Bitmaps are maintained (once loaded). */
    uint64_t keep = s->autoclear & (QCOW2_AUTOCLEAR_DATA_FILE_RAW |
                                    (s->bm_loaded ? QCOW2_AUTOCLEAR_BITMAPS
                                                  : 0));
    int r;

    if (s->corrupt) {
        return vimg_internal_img_error(img, EIO, "image is marked corrupt; "
                                       "writes are refused");
    }
    if (img->params.flags & VIMG_OPEN_CHECK) {
        return 0;
    }
    if ((r = qcow2_bitmaps_begin_write(img)) < 0 || s->autoclear == keep) {
        return r;
    }
    s->autoclear = keep;
    return qcow2_update_header_fields(img, QCOW2_HDR_AUTOCLEAR_FEATURES, 8);
}

int qcow2_mark_dirty(struct vimg_image *img)
{
    struct qcow2_state *s = qcow2_state(img);
    int r;

    if (s->dirty_set) {
        return 0;
    }
    s->dirty_set = true;
    s->incompat |= QCOW2_INCOMPAT_DIRTY;
    if ((r = qcow2_update_header_fields(img, QCOW2_HDR_INCOMPATIBLE_FEATURES,
                                        8)) < 0) {
        return r;
    }
    return vimg_internal_flush(img->file);
}

int qcow2_flush_metadata(struct vimg_image *img)
{
    struct qcow2_state *s = qcow2_state(img);
    bool l2_dirty = qcow2_cache_has_dirty(&s->l2_cache);
    int r;

    if (!img->writable || s->corrupt) {
        return 0;
    }
    if (qcow2_cache_has_dirty(&s->rb_cache)) {
        if ((r = qcow2_cache_flush(img, &s->rb_cache)) < 0) {
            return r;
        }
        if ((l2_dirty || s->l1_dirty) && !s->lazy &&
            (r = vimg_internal_flush(img->file)) < 0) {
            return r;
        }
    }
    if (l2_dirty) {
        if ((r = qcow2_cache_flush(img, &s->l2_cache)) < 0) {
            return r;
        }
        if (s->l1_dirty && (r = vimg_internal_flush(img->file)) < 0) {
            return r;
        }
    }
    if (s->l1_dirty) {
        uint64_t n = s->l1_size;
        uint8_t *buf = malloc(n * 8);
        if (!buf) {
            return vimg_internal_img_error(img, ENOMEM, "out of memory");
        }
        for (uint64_t i = 0; i < n; i++) {
            store_be64(buf + i * 8, s->l1[i]);
        }
        r = qcow2_write_meta(img, QCOW2_ROLE_L1, buf, n * 8, s->l1_offset);
        free(buf);
        if (r < 0) {
            return r;
        }
        s->l1_dirty = false;
    }
    return 0;
}

/* ---- Open and close --------------------------------------------------- */

static const struct vimg_opt_desc qcow2_runtime_opts[] = {
    { "l2-cache-size", VIMG_OPT_SIZE, "Maximum L2 table cache size" },
    { "refcount-cache-size", VIMG_OPT_SIZE,
      "Maximum refcount block cache size" },
    { "encrypt.key-secret", VIMG_OPT_STRING,
      "ID of the secret that holds the passphrase" },
    { NULL, 0, NULL },
};

static int read_table(struct vimg_image *img, uint64_t offset,
                      uint64_t entries, uint64_t **out)
{
    uint8_t *raw;
    uint64_t *t;
    int r;

    *out = NULL;
    t = calloc(entries ? entries : 1, sizeof *t);
    raw = malloc(entries ? entries * 8 : 1);
    if (!t || !raw) {
        free(t);
        free(raw);
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    if (entries &&
        (r = vimg_internal_pread(img->file, raw, entries * 8, offset)) < 0) {
        free(t);
        free(raw);
        return r;
    }
    for (uint64_t i = 0; i < entries; i++) {
        t[i] = load_be64(raw + i * 8);
    }
    free(raw);
    *out = t;
    return 0;
}

static int read_snapshots(struct vimg_image *img, uint64_t file_size)
{
    struct qcow2_state *s = qcow2_state(img);
    uint64_t off = s->snapshots_offset;
    uint8_t fixed[QCOW2_SN_FIXED_SIZE], extra[QCOW2_SN_EXTRA_MAX];
    int r;

    if (!s->nb_snapshots) {
        return 0;
    }
    s->snapshots = calloc(s->nb_snapshots, sizeof *s->snapshots);
    if (!s->snapshots) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    for (uint32_t i = 0; i < s->nb_snapshots; i++) {
        struct qcow2_snapshot *sn = &s->snapshots[i];
        if (off - s->snapshots_offset > QCOW2_MAX_SNAPSHOT_TABLE ||
            range_outside(off, QCOW2_SN_FIXED_SIZE, file_size)) {
            return vimg_internal_img_error(img, EINVAL, "snapshot table "
                                           "runs past the end of the file");
        }
        if ((r = vimg_internal_pread(img->file, fixed, sizeof fixed,
                                     off)) < 0) {
            return r;
        }
        sn->l1_offset = load_be64(fixed + QCOW2_SN_L1_TABLE_OFFSET);
        sn->l1_size = load_be32(fixed + QCOW2_SN_L1_SIZE);
        uint16_t id_len = load_be16(fixed + QCOW2_SN_ID_STR_SIZE);
        uint16_t name_len = load_be16(fixed + QCOW2_SN_NAME_SIZE);
        sn->date_sec = load_be32(fixed + QCOW2_SN_DATE_SEC);
        sn->date_nsec = load_be32(fixed + QCOW2_SN_DATE_NSEC);
        sn->vm_clock_nsec = load_be64(fixed + QCOW2_SN_VM_CLOCK_NSEC);
        sn->vm_state_size = load_be32(fixed + QCOW2_SN_VM_STATE_SIZE);
        uint32_t extra_len = load_be32(fixed + QCOW2_SN_EXTRA_DATA_SIZE);
        if (extra_len > QCOW2_SN_EXTRA_MAX) {
            return vimg_internal_img_error(img, EINVAL, "snapshot %u has "
                                           "too much extra data", i);
        }
        off += QCOW2_SN_FIXED_SIZE;
        if (extra_len && (r = vimg_internal_pread(img->file, extra,
                                                  extra_len, off)) < 0) {
            return r;
        }
        memset(extra + extra_len, 0, sizeof extra - extra_len);
        if (extra_len >= QCOW2_SN_EXTRA_VM_STATE_SIZE_LARGE + 8) {
            sn->vm_state_size =
                load_be64(extra + QCOW2_SN_EXTRA_VM_STATE_SIZE_LARGE);
        }
        sn->disk_size = extra_len >= QCOW2_SN_EXTRA_DISK_SIZE + 8
                        ? load_be64(extra + QCOW2_SN_EXTRA_DISK_SIZE)
                        : img->size;
        sn->short_extra = extra_len < QCOW2_SN_EXTRA_SIZE_V3;
        sn->icount = UINT64_MAX;
        if (extra_len >= QCOW2_SN_EXTRA_ICOUNT + 8) {
            sn->icount = load_be64(extra + QCOW2_SN_EXTRA_ICOUNT);
            sn->has_icount = sn->icount != UINT64_MAX;
        }
        if (extra_len > QCOW2_SN_EXTRA_SIZE_MAX) {
            sn->extra_unknown_len = extra_len - QCOW2_SN_EXTRA_SIZE_MAX;
            sn->extra_unknown = malloc(sn->extra_unknown_len);
            if (!sn->extra_unknown) {
                return vimg_internal_img_error(img, ENOMEM, "out of memory");
            }
            memcpy(sn->extra_unknown, extra + QCOW2_SN_EXTRA_SIZE_MAX,
                   sn->extra_unknown_len);
        }
        off += extra_len;
        sn->id = calloc(1, id_len + 1u);
        sn->name = calloc(1, name_len + 1u);
        if (!sn->id || !sn->name) {
            return vimg_internal_img_error(img, ENOMEM, "out of memory");
        }
        if ((r = vimg_internal_pread(img->file, sn->id, id_len, off)) < 0 ||
            (r = vimg_internal_pread(img->file, sn->name, name_len,
                                     off + id_len)) < 0) {
            return r;
        }
        /* The last entry's padding need not be in the file. */
        if (range_outside(off, (uint64_t)id_len + name_len, file_size)) {
            return vimg_internal_img_error(img, EINVAL, "snapshot table "
                                           "runs past the end of the file");
        }
        off = ROUND_UP(off + id_len + name_len, 8);
        if ((sn->l1_offset & (s->cluster_size - 1)) ||
            (uint64_t)sn->l1_size * 8 > QCOW2_MAX_L1_BYTES ||
            range_outside(sn->l1_offset, sn->l1_size * 8ull, file_size)) {
            return vimg_internal_img_error(img, EINVAL, "snapshot %u has an "
                                           "invalid L1 table", i);
        }
    }
    s->snapshots_size = off - s->snapshots_offset;
    return 0;
}

static void free_state(struct qcow2_state *s)
{
    free(s->l1);
    free(s->rt);
    qcow2_snapshots_free(s->snapshots, s->nb_snapshots);
    free(s->inactive_l2);
    qcow2_bitmaps_free(s);
    free(s->backing_name);
    free(s->backing_format);
    free(s->data_file_name);
    free(s->data_file_path);
    free(s->cluster0);
    qcow2_crypto_close(s);
    qcow2_cache_free(&s->l2_cache);
    qcow2_cache_free(&s->rb_cache);
    if (s->data_file) {
        vimg_close(s->data_file);
    }
    memset(s, 0, sizeof *s);
}

static int open_caches(struct vimg_image *img, const struct vimg_opts *opts)
{
    struct qcow2_state *s = qcow2_state(img);
    uint64_t l2_default, l2_bytes, rb_bytes, full;
    int r;

    /* Enough to map the whole image when small, capped at 1 MiB. */
    full = (uint64_t)s->l1_size * s->cluster_size;
    l2_default = MIN(full, QCOW2_DEFAULT_L2_CACHE);
    if ((r = vimg_internal_opts_get_size(opts, "l2-cache-size", l2_default,
                                         &l2_bytes)) < 0 ||
        (r = vimg_internal_opts_get_size(opts, "refcount-cache-size",
                                         QCOW2_DEFAULT_RC_CACHE,
                                         &rb_bytes)) < 0) {
        return r;
    }
    l2_bytes = MIN(l2_bytes, (uint64_t)256 << 20);
    rb_bytes = MIN(rb_bytes, (uint64_t)256 << 20);
    if ((r = qcow2_cache_init(&s->l2_cache, QCOW2_ROLE_L2, l2_bytes,
                              s->cluster_size)) < 0 ||
        (r = qcow2_cache_init(&s->rb_cache, QCOW2_ROLE_RB, rb_bytes,
                              s->cluster_size)) < 0) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory for the "
                                       "metadata caches");
    }
    return 0;
}

static int qcow2_close(struct vimg_image *img);

static int qcow2_open(struct vimg_image *img, const struct vimg_opts *opts)
{
    struct qcow2_state *s = qcow2_state(img);
    uint64_t file_size = (uint64_t)vimg_internal_get_size(img->file);
    uint8_t head[QCOW2_HDR_V2_LENGTH];
    bool check_mode = img->params.flags & VIMG_OPEN_CHECK;
    int r;

    s->lock = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
    s->active_done = (pthread_cond_t)PTHREAD_COND_INITIALIZER;
    if ((r = vimg_internal_pread(img->file, head, sizeof head, 0)) < 0) {
        return r;
    }
    uint32_t bits = load_be32(head + QCOW2_HDR_CLUSTER_BITS);
    if (bits < QCOW2_MIN_CLUSTER_BITS || bits > QCOW2_MAX_CLUSTER_BITS) {
        bits = QCOW2_MIN_CLUSTER_BITS; /* validation reports it */
    }
    s->cluster0 = malloc((size_t)1 << bits);
    if (!s->cluster0) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    if ((r = vimg_internal_pread(img->file, s->cluster0, (uint64_t)1 << bits,
                                 0)) < 0 ||
        (r = qcow2_validate_header(img, s, s->cluster0, (size_t)1 << bits,
                                   file_size)) < 0) {
        goto fail;
    }
    memcpy(s->hdr, s->cluster0, MIN(sizeof s->hdr, s->cluster_size));
    if ((s->incompat & QCOW2_INCOMPAT_CORRUPT) && img->writable &&
        !check_mode) {
        r = vimg_internal_img_error(img, EACCES, "image is marked corrupt; "
                                    "it can only be opened read-only (or "
                                    "repaired with check -r)");
        goto fail;
    }
    if ((r = read_table(img, s->l1_offset, s->l1_size, &s->l1)) < 0 ||
        (r = read_table(img, s->rt_offset, s->rt_entries, &s->rt)) < 0 ||
        (r = read_snapshots(img, file_size)) < 0 ||
        (r = qcow2_bitmaps_open(img)) < 0 ||
        (r = open_caches(img, opts)) < 0 ||
        (r = qcow2_crypto_open(img, opts)) < 0) {
        goto fail;
    }
    if (s->backing_name) {
        img->backing_name = strdup(s->backing_name);
        if (s->backing_format) {
            img->backing_format = strdup(s->backing_format);
        }
        if (!img->backing_name || (s->backing_format &&
                                   !img->backing_format)) {
            r = vimg_internal_img_error(img, ENOMEM, "out of memory");
            goto fail;
        }
    }
    s->data = img->file;
    if ((s->incompat & QCOW2_INCOMPAT_DATA_FILE) && !img->writable &&
        img->params.refs == VIMG_REFS_NEVER) {
        /* Report the reference without following it (map names it, a
         * name the policy would refuse is left out); data reads fail. */
        s->data = NULL;
        if (vimg_internal_resolve_reference(img, s->data_file_name,
                                            &s->data_file_path) < 0) {
            vimg_internal_error_clear();
        }
    } else if (s->incompat & QCOW2_INCOMPAT_DATA_FILE) {
        if ((r = vimg_internal_open_reference(img, s->data_file_name,
                                              img->writable,
                                              &s->data_file)) < 0) {
            goto fail;
        }
        s->data = s->data_file;
    }
    s->free_hint = 1;
    s->corrupt = (s->incompat & QCOW2_INCOMPAT_CORRUPT) != 0;
    if (img->writable && !check_mode) {
        if (s->incompat & QCOW2_INCOMPAT_DIRTY) {
            /* Refcounts may be stale after a crash with lazy refcounts:
             * rebuild them before writing. */
            if ((r = qcow2_repair_dirty(img)) < 0) {
                goto fail;
            }
            s->incompat &= ~QCOW2_INCOMPAT_DIRTY;
            if ((r = qcow2_update_header_fields(
                     img, QCOW2_HDR_INCOMPATIBLE_FEATURES, 8)) < 0 ||
                (r = vimg_internal_flush(img->file)) < 0) {
                goto fail;
            }
        }
        s->lazy = (s->compat & QCOW2_COMPAT_LAZY_REFCOUNTS) != 0;
    }
    if (s->incompat & QCOW2_INCOMPAT_DIRTY) {
        s->dirty_set = true; /* left as it is: we did not set it */
    }
    return 0;

fail:
    free_state(s);
    return r;
}

static int qcow2_close(struct vimg_image *img)
{
    struct qcow2_state *s = qcow2_state(img);
    int r = 0;

    if (!s->cluster0) {
        return 0;
    }
    if (img->writable && !s->corrupt) {
        /* The bitmaps last: a clean close clears their in-use flags. */
        r = qcow2_bitmaps_store(img, true);
        if (r == 0) {
            r = qcow2_flush_metadata(img);
        }
        if (r == 0) {
            r = qcow2_pad_to_sector(img);
        }
        if (r == 0 && s->lazy && s->dirty_set) {
            if ((r = vimg_internal_flush(img->file)) == 0) {
                s->incompat &= ~QCOW2_INCOMPAT_DIRTY;
                r = qcow2_update_header_fields(
                    img, QCOW2_HDR_INCOMPATIBLE_FEATURES, 8);
            }
        }
        if (r == 0 && s->data_file) {
            r = vimg_internal_flush(s->data_file);
        }
    }
    free_state(s);
    return r;
}

/* ---- Info ------------------------------------------------------------- */

static int add_snapshots(struct qcow2_state *s, struct vimg_value *info)
{
    struct vimg_value *list = vimg_internal_value_new(VIMG_VALUE_ARRAY);
    int r;

    if (!list) {
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < s->nb_snapshots; i++) {
        const struct qcow2_snapshot *sn = &s->snapshots[i];
        struct vimg_value *o = vimg_internal_value_new(VIMG_VALUE_OBJECT);
        int64_t icount = (int64_t)sn->icount;
        if (!o || (sn->has_icount &&
                   (r = vimg_internal_value_set_int(o, "icount",
                                                    icount)) < 0) ||
            (r = vimg_internal_value_set_int(o, "vm-clock-nsec",
                                             (int64_t)(sn->vm_clock_nsec %
                                                       1000000000))) < 0 ||
            (r = vimg_internal_value_set_str(o, "name", sn->name)) < 0 ||
            (r = vimg_internal_value_set_int(o, "date-sec",
                                             sn->date_sec)) < 0 ||
            (r = vimg_internal_value_set_int(o, "date-nsec",
                                             sn->date_nsec)) < 0 ||
            (r = vimg_internal_value_set_int(o, "vm-clock-sec",
                                             (int64_t)(sn->vm_clock_nsec /
                                                       1000000000))) < 0 ||
            (r = vimg_internal_value_set_str(o, "id", sn->id)) < 0 ||
            (r = vimg_internal_value_set_int(o, "vm-state-size",
                                             (int64_t)sn->vm_state_size)) <
                0) {
            vimg_value_free(o);
            vimg_value_free(list);
            return -ENOMEM;
        }
        if ((r = vimg_internal_value_append(list, o)) < 0) {
            vimg_value_free(list);
            return r;
        }
    }
    return vimg_internal_value_add(info, "snapshots", list);
}

static int qcow2_get_info(struct vimg_image *img, struct vimg_value *info)
{
    struct qcow2_state *s = qcow2_state(img);
    struct vimg_value *spec = vimg_internal_value_new(VIMG_VALUE_OBJECT);
    struct vimg_value *data = vimg_internal_value_new(VIMG_VALUE_OBJECT);
    bool v3 = s->version >= 3;
    int r;

    if (!spec || !data) {
        vimg_value_free(spec);
        vimg_value_free(data);
        return -ENOMEM;
    }
    if ((r = vimg_internal_value_set_str(data, "compat",
                                         v3 ? "1.1" : "0.10")) < 0 ||
        (r = vimg_internal_value_set_str(
             data, "compression-type",
             s->compression_type ? "zstd" : "zlib")) < 0 ||
        (v3 && (r = vimg_internal_value_set_bool(
                    data, "lazy-refcounts",
                    s->compat & QCOW2_COMPAT_LAZY_REFCOUNTS)) < 0) ||
        (v3 && (r = qcow2_bitmaps_info(img, data)) < 0) ||
        (r = vimg_internal_value_set_int(data, "refcount-bits",
                                         1 << s->refcount_order)) < 0 ||
        /* qemu-img shows the encryption between these. */
        (s->crypt_method && (r = qcow2_crypto_info(img, data)) < 0) ||
        (v3 && (r = vimg_internal_value_set_bool(
                    data, "corrupt",
                    s->incompat & QCOW2_INCOMPAT_CORRUPT)) < 0) ||
        (v3 && (r = vimg_internal_value_set_bool(
                    data, "extended-l2",
                    s->incompat & QCOW2_INCOMPAT_EXTL2)) < 0) ||
        (s->data_file_name &&
         (r = vimg_internal_value_set_str(data, "data-file",
                                          s->data_file_name)) < 0) ||
        (s->data_file_name &&
         (r = vimg_internal_value_set_bool(
              data, "data-file-raw",
              s->autoclear & QCOW2_AUTOCLEAR_DATA_FILE_RAW)) < 0)) {
        vimg_value_free(spec);
        vimg_value_free(data);
        return r;
    }
    if ((r = vimg_internal_value_set_str(spec, "type", "qcow2")) < 0 ||
        (r = vimg_internal_value_add(spec, "data", data)) < 0) {
        vimg_value_free(spec);
        return r;
    }
    if ((r = vimg_internal_value_set_int(info, "cluster-size",
                                         (int64_t)s->cluster_size)) < 0 ||
        (s->nb_snapshots && (r = add_snapshots(s, info)) < 0)) {
        vimg_value_free(spec);
        return r;
    }
    if ((r = vimg_internal_value_add(info, "format-specific", spec)) < 0 ||
        (s->crypt_method &&
         (r = vimg_internal_value_set_bool(info, "encrypted", true)) < 0)) {
        return r;
    }
    return vimg_internal_value_set_bool(info, "dirty-flag",
                                        s->incompat & QCOW2_INCOMPAT_DIRTY);
}

/* ---- Locked entry points ---------------------------------------------- */
/* pread and pwrite take the lock themselves (they drop it for data I/O);
 * everything else runs whole under it. */

static int locked_zero(struct vimg_image *img, uint64_t offset,
                       uint64_t count, unsigned flags)
{
    struct qcow2_state *s = qcow2_state(img);
    pthread_mutex_lock(&s->lock);
    int r = qcow2_zero(img, offset, count, flags);
    pthread_mutex_unlock(&s->lock);
    return r;
}

static int locked_discard(struct vimg_image *img, uint64_t offset,
                          uint64_t count)
{
    struct qcow2_state *s = qcow2_state(img);
    pthread_mutex_lock(&s->lock);
    int r = qcow2_discard(img, offset, count);
    pthread_mutex_unlock(&s->lock);
    return r;
}

static int locked_flush(struct vimg_image *img)
{
    struct qcow2_state *s = qcow2_state(img);
    pthread_mutex_lock(&s->lock);
    int r = qcow2_flush_metadata(img);
    if (r == 0) {
        r = qcow2_bitmaps_store(img, false);
    }
    if (r == 0 && !s->corrupt) {
        r = qcow2_pad_to_sector(img);
    }
    pthread_mutex_unlock(&s->lock);
    return r;
}

int qcow2_resize(struct vimg_image *img, uint64_t size, unsigned flags,
                 enum vimg_prealloc prealloc)
{
    uint64_t old = img->size;
    int r = qcow2_bitmaps_resize_begin(img, size);

    if (r == 0) {
        r = qcow2_truncate(img, size, flags, prealloc);
        int r2 = qcow2_bitmaps_resize_end(img, img->size != old);
        r = r < 0 ? r : r2;
    }
    return r;
}

static int locked_truncate(struct vimg_image *img, uint64_t size,
                           unsigned flags, enum vimg_prealloc prealloc)
{
    struct qcow2_state *s = qcow2_state(img);
    pthread_mutex_lock(&s->lock);
    qcow2_wait_all_idle(img);
    int r = qcow2_resize(img, size, flags, prealloc);
    pthread_mutex_unlock(&s->lock);
    return r;
}

static int locked_block_status(struct vimg_image *img, uint64_t offset,
                               uint64_t count, uint64_t *pnum, uint64_t *map,
                               const char **file)
{
    struct qcow2_state *s = qcow2_state(img);
    pthread_mutex_lock(&s->lock);
    int r = qcow2_block_status(img, offset, count, pnum, map, file);
    pthread_mutex_unlock(&s->lock);
    return r;
}

static int locked_write_compressed(struct vimg_image *img, uint64_t offset,
                                   const void *cbuf, uint64_t len)
{
    struct qcow2_state *s = qcow2_state(img);
    pthread_mutex_lock(&s->lock);
    int r = qcow2_write_compressed(img, offset, cbuf, len);
    pthread_mutex_unlock(&s->lock);
    return r;
}

static int locked_get_info(struct vimg_image *img, struct vimg_value *info)
{
    struct qcow2_state *s = qcow2_state(img);
    pthread_mutex_lock(&s->lock);
    int r = qcow2_get_info(img, info);
    pthread_mutex_unlock(&s->lock);
    return r;
}

static int locked_check(struct vimg_image *img, unsigned fix,
                        struct vimg_check_result *res, vimg_report_fn report,
                        void *opaque)
{
    struct qcow2_state *s = qcow2_state(img);
    pthread_mutex_lock(&s->lock);
    qcow2_wait_all_idle(img);
    int r = qcow2_check(img, fix, res, report, opaque);
    pthread_mutex_unlock(&s->lock);
    return r;
}

static int locked_amend(struct vimg_image *img, const struct vimg_opts *opts,
                        const struct vimg_amend_params *p)
{
    struct qcow2_state *s = qcow2_state(img);
    pthread_mutex_lock(&s->lock);
    qcow2_wait_all_idle(img);
    int r = qcow2_amend(img, opts, p);
    pthread_mutex_unlock(&s->lock);
    return r;
}

static int locked_bitmap_list(struct vimg_image *img,
                              struct vimg_internal_bitmap **v, size_t *n)
{
    struct qcow2_state *s = qcow2_state(img);
    pthread_mutex_lock(&s->lock);
    int r = qcow2_bitmap_list(img, v, n);
    pthread_mutex_unlock(&s->lock);
    return r;
}

static int locked_bitmap_dirty(struct vimg_image *img, const char *name,
                               uint64_t offset, uint64_t len,
                               vimg_internal_range_fn fn, void *opaque)
{
    struct qcow2_state *s = qcow2_state(img);
    pthread_mutex_lock(&s->lock);
    int r = qcow2_bitmap_dirty(img, name, offset, len, fn, opaque);
    pthread_mutex_unlock(&s->lock);
    return r;
}

/* A merge from another image reads it with this lock held: the
 * destination is locked before the source, never the other way. */
static int locked_bitmap(struct vimg_image *img,
                         const struct vimg_bitmap_params *p)
{
    struct qcow2_state *s = qcow2_state(img);
    pthread_mutex_lock(&s->lock);
    qcow2_wait_all_idle(img);
    int r = qcow2_bitmap(img, p);
    pthread_mutex_unlock(&s->lock);
    return r;
}

static int locked_snapshot_list(struct vimg_image *img,
                                struct vimg_snapshot **list, size_t *n)
{
    struct qcow2_state *s = qcow2_state(img);
    pthread_mutex_lock(&s->lock);
    int r = qcow2_snapshot_list(img, list, n);
    pthread_mutex_unlock(&s->lock);
    return r;
}

/* Snapshot changes and emptying replace the tables as a whole: no I/O
 * may be in flight on the clusters they move or free. */
static int locked_snapshot_create(struct vimg_image *img,
                                  const struct vimg_snapshot *sn)
{
    struct qcow2_state *s = qcow2_state(img);
    pthread_mutex_lock(&s->lock);
    qcow2_wait_all_idle(img);
    int r = qcow2_snapshot_create(img, sn);
    pthread_mutex_unlock(&s->lock);
    return r;
}

static int locked_snapshot_apply(struct vimg_image *img, const char *id,
                                 const char *name)
{
    struct qcow2_state *s = qcow2_state(img);
    pthread_mutex_lock(&s->lock);
    qcow2_wait_all_idle(img);
    int r = qcow2_snapshot_apply(img, id, name);
    pthread_mutex_unlock(&s->lock);
    return r;
}

static int locked_snapshot_delete(struct vimg_image *img, const char *id,
                                  const char *name)
{
    struct qcow2_state *s = qcow2_state(img);
    pthread_mutex_lock(&s->lock);
    qcow2_wait_all_idle(img);
    int r = qcow2_snapshot_delete(img, id, name);
    pthread_mutex_unlock(&s->lock);
    return r;
}

static int locked_snapshot_load(struct vimg_image *img, const char *id,
                                const char *name)
{
    struct qcow2_state *s = qcow2_state(img);
    pthread_mutex_lock(&s->lock);
    qcow2_wait_all_idle(img);
    int r = qcow2_snapshot_load(img, id, name);
    pthread_mutex_unlock(&s->lock);
    return r;
}

static int locked_make_empty(struct vimg_image *img)
{
    struct qcow2_state *s = qcow2_state(img);
    pthread_mutex_lock(&s->lock);
    qcow2_wait_all_idle(img);
    int r = qcow2_make_empty(img);
    pthread_mutex_unlock(&s->lock);
    return r;
}

static int locked_change_backing(struct vimg_image *img, const char *name,
                                 const char *format)
{
    struct qcow2_state *s = qcow2_state(img);
    pthread_mutex_lock(&s->lock);
    int r = qcow2_change_backing(img, name, format);
    pthread_mutex_unlock(&s->lock);
    return r;
}

const struct vimg_driver vimg_driver_qcow2 = {
    .name = "qcow2",
    .kind = VIMG_DRIVER_FORMAT,
    .instance_size = sizeof(struct qcow2_state),
    .thread_safe = true,
    .has_zero_init = true,
    .create_opts = qcow2_create_opts,
    .runtime_opts = qcow2_runtime_opts,
    .probe = qcow2_probe,
    .open = qcow2_open,
    .close = qcow2_close,
    .create = qcow2_create,
    .pread = qcow2_pread,
    .pwrite = qcow2_pwrite,
    .zero = locked_zero,
    .discard = locked_discard,
    .flush = locked_flush,
    .truncate = locked_truncate,
    .block_status = locked_block_status,
    .compress = qcow2_compress,
    .write_compressed = locked_write_compressed,
    .get_info = locked_get_info,
    .measure = qcow2_measure,
    .check = locked_check,
    .amend_opts = qcow2_amend_opts,
    .amend = locked_amend,
    .bitmap_list = locked_bitmap_list,
    .bitmap_dirty = locked_bitmap_dirty,
    .bitmap = locked_bitmap,
    .snapshot_list = locked_snapshot_list,
    .snapshot_create = locked_snapshot_create,
    .snapshot_apply = locked_snapshot_apply,
    .snapshot_delete = locked_snapshot_delete,
    .snapshot_load = locked_snapshot_load,
    .make_empty = locked_make_empty,
    .change_backing = locked_change_backing,
};
