/* Changing an existing image's format options (qemu-img amend), and the
 * rewrite of the header cluster that such changes need. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../../common/rounding.h"
#include "../../crypto/crypto.h"
#include "qcow2.h"

/* ---- The header cluster ---------------------------------------------- */

/* Where the extensions of the header cluster as read end: at the backing
 * file name, or with the cluster. */
static uint64_t ext_limit(const struct qcow2_state *s)
{
    uint64_t boff = load_be64(s->cluster0 + QCOW2_HDR_BACKING_FILE_OFFSET);
    return boff ? boff : s->cluster_size;
}

uint64_t qcow2_header_ext_offset(const struct qcow2_state *s, uint32_t type)
{
    uint64_t off = s->header_length, limit = ext_limit(s);

    /* The extensions were validated at open and are rewritten only
     * whole, so they still fit. */
    while (off + QCOW2_EXT_DATA <= limit) {
        uint32_t t = load_be32(s->cluster0 + off + QCOW2_EXT_TYPE);
        if (t == QCOW2_EXT_END) {
            break;
        }
        if (t == type) {
            return off;
        }
        off += QCOW2_EXT_DATA +
               ROUND_UP((uint64_t)load_be32(s->cluster0 + off +
                                            QCOW2_EXT_LENGTH), 8);
    }
    return 0;
}

/* Append an extension of TYPE with LEN bytes of DATA at *POS of H (a
 * cluster of CS bytes, END bytes kept free after it). */
static int put_ext(struct vimg_image *img, uint8_t *h, uint64_t cs,
                   uint64_t *pos, uint32_t type, const void *data,
                   uint64_t len)
{
    uint64_t need = QCOW2_EXT_DATA + ROUND_UP(len, 8);

    if (*pos + need + QCOW2_EXT_DATA > cs) {
        return vimg_internal_img_error(img, ENOSPC, "the header extensions "
                                       "do not fit in the header cluster");
    }
    store_be32(h + *pos + QCOW2_EXT_TYPE, type);
    store_be32(h + *pos + QCOW2_EXT_LENGTH, (uint32_t)len);
    memcpy(h + *pos + QCOW2_EXT_DATA, data, len);
    *pos += need;
    return 0;
}

static bool known_ext(uint32_t type)
{
    return type == QCOW2_EXT_BACKING_FORMAT ||
           type == QCOW2_EXT_FEATURE_TABLE ||
           type == QCOW2_EXT_CRYPTO_HEADER || type == QCOW2_EXT_BITMAPS ||
           type == QCOW2_EXT_DATA_FILE;
}

/* Point S->feature_table at the table inside S->cluster0, if any. */
static void find_feature_table(struct qcow2_state *s)
{
    uint64_t off = qcow2_header_ext_offset(s, QCOW2_EXT_FEATURE_TABLE);

    s->feature_table = NULL;
    s->feature_table_len = 0;
    if (off) {
        s->feature_table = s->cluster0 + off + QCOW2_EXT_DATA;
        s->feature_table_len = load_be32(s->cluster0 + off +
                                         QCOW2_EXT_LENGTH);
    }
}

int qcow2_rewrite_header(struct vimg_image *img)
{
    struct qcow2_state *s = qcow2_state(img);
    uint64_t cs = s->cluster_size, pos, limit = ext_limit(s);
    uint32_t hlen = s->version >= 3 ? QCOW2_HDR_V3_LENGTH
                                    : QCOW2_HDR_V2_LENGTH;
    uint8_t *h = calloc(1, cs);
    int r;

    if (!h) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    /* Fields past QEMU's 112 bytes that a newer writer put there are
     * kept, as QEMU keeps them. */
    if (s->version >= 3 && s->header_length > QCOW2_HDR_V3_LENGTH) {
        hlen = s->header_length;
        memcpy(h + QCOW2_HDR_V3_LENGTH, s->cluster0 + QCOW2_HDR_V3_LENGTH,
               hlen - QCOW2_HDR_V3_LENGTH);
    }
    memcpy(h, s->hdr, QCOW2_HDR_V2_LENGTH);
    store_be32(h + QCOW2_HDR_VERSION, s->version);
    store_be64(h + QCOW2_HDR_BACKING_FILE_OFFSET, 0);
    store_be32(h + QCOW2_HDR_BACKING_FILE_SIZE, 0);
    store_be64(h + QCOW2_HDR_SIZE, img->size);
    store_be32(h + QCOW2_HDR_CRYPT_METHOD, s->crypt_method);
    store_be32(h + QCOW2_HDR_L1_SIZE, s->l1_size);
    store_be64(h + QCOW2_HDR_L1_TABLE_OFFSET, s->l1_offset);
    store_be64(h + QCOW2_HDR_REFCOUNT_TABLE_OFFSET, s->rt_offset);
    store_be32(h + QCOW2_HDR_REFCOUNT_TABLE_CLUSTERS, s->rt_clusters);
    store_be32(h + QCOW2_HDR_NB_SNAPSHOTS, s->nb_snapshots);
    store_be64(h + QCOW2_HDR_SNAPSHOTS_OFFSET, s->snapshots_offset);
    if (s->version >= 3) {
        store_be64(h + QCOW2_HDR_INCOMPATIBLE_FEATURES, s->incompat);
        store_be64(h + QCOW2_HDR_COMPATIBLE_FEATURES, s->compat);
        store_be64(h + QCOW2_HDR_AUTOCLEAR_FEATURES, s->autoclear);
        store_be32(h + QCOW2_HDR_REFCOUNT_ORDER, s->refcount_order);
        store_be32(h + QCOW2_HDR_HEADER_LENGTH, hlen);
        h[QCOW2_HDR_COMPRESSION_TYPE] = s->compression_type;
    }
    pos = hlen;
    r = 0;
    if (s->backing_name && s->backing_format) {
        r = put_ext(img, h, cs, &pos, QCOW2_EXT_BACKING_FORMAT,
                    s->backing_format, strlen(s->backing_format));
    }
    if (r == 0 && qcow2_has_data_file(s) && s->data_file_name) {
        r = put_ext(img, h, cs, &pos, QCOW2_EXT_DATA_FILE,
                    s->data_file_name, strlen(s->data_file_name));
    }
    if (r == 0 && s->crypto_length) {
        uint8_t d[QCOW2_CRYPTO_EXT_SIZE];
        store_be64(d + QCOW2_CRYPTO_EXT_OFFSET, s->crypto_offset);
        store_be64(d + QCOW2_CRYPTO_EXT_LENGTH, s->crypto_length);
        r = put_ext(img, h, cs, &pos, QCOW2_EXT_CRYPTO_HEADER, d, sizeof d);
    }
    if (r == 0 && s->version >= 3 && qcow2_has_feature_table(cs)) {
        if (pos + QCOW2_EXT_DATA + QCOW2_FEATURE_TABLE_SIZE +
                QCOW2_EXT_DATA > cs) {
            r = vimg_internal_img_error(img, ENOSPC, "the header extensions "
                                        "do not fit in the header cluster");
        } else {
            pos += qcow2_put_feature_table(h + pos);
        }
    }
    /* Without the autoclear bit the extension is stale: it goes. */
    if (r == 0 && s->nb_bitmaps && s->has_bitmaps_ext &&
        (s->autoclear & QCOW2_AUTOCLEAR_BITMAPS)) {
        uint8_t d[QCOW2_BITMAPS_EXT_SIZE] = { 0 };
        store_be32(d + QCOW2_BITMAPS_EXT_NB_BITMAPS, s->nb_bitmaps);
        store_be64(d + QCOW2_BITMAPS_EXT_DIR_SIZE, s->bitmap_dir_size);
        store_be64(d + QCOW2_BITMAPS_EXT_DIR_OFFSET, s->bitmap_dir_offset);
        r = put_ext(img, h, cs, &pos, QCOW2_EXT_BITMAPS, d, sizeof d);
    }
    /* Unknown extensions follow, in their order. */
    for (uint64_t off = s->header_length;
         r == 0 && off + QCOW2_EXT_DATA <= limit;) {
        uint32_t t = load_be32(s->cluster0 + off + QCOW2_EXT_TYPE);
        uint32_t len = load_be32(s->cluster0 + off + QCOW2_EXT_LENGTH);
        if (t == QCOW2_EXT_END) {
            break;
        }
        if (!known_ext(t)) {
            r = put_ext(img, h, cs, &pos, t,
                        s->cluster0 + off + QCOW2_EXT_DATA, len);
        }
        off += QCOW2_EXT_DATA + ROUND_UP((uint64_t)len, 8);
    }
    pos += QCOW2_EXT_DATA; /* the end marker, zeros */
    if (r == 0 && s->backing_name) {
        size_t n = strlen(s->backing_name);
        if (pos + n > cs) {
            r = vimg_internal_img_error(img, ENOSPC, "the backing file name "
                                        "does not fit in the header "
                                        "cluster");
        } else {
            memcpy(h + pos, s->backing_name, n);
            store_be64(h + QCOW2_HDR_BACKING_FILE_OFFSET, pos);
            store_be32(h + QCOW2_HDR_BACKING_FILE_SIZE, (uint32_t)n);
        }
    }
    if (r == 0) {
        r = qcow2_write_meta(img, QCOW2_ROLE_HEADER, h, cs, 0);
    }
    if (r < 0) {
        free(h);
        return r;
    }
    free(s->cluster0);
    s->cluster0 = h;
    s->header_length = hlen;
    memcpy(s->hdr, h, MIN(sizeof s->hdr, cs));
    find_feature_table(s);
    return 0;
}

/* ---- Amend ------------------------------------------------------------ */

const struct vimg_opt_desc qcow2_amend_opts[] = {
    { "backing_file", VIMG_OPT_STRING, "File name of a base image" },
    { "backing_fmt", VIMG_OPT_STRING, "Image format of the base image" },
    { "compat", VIMG_OPT_STRING,
      "Compatibility level (v2 [0.10] or v3 [1.1])" },
    { "data_file", VIMG_OPT_STRING, "File name of an external data file" },
    { "data_file_raw", VIMG_OPT_BOOL,
      "The external data file must stay valid as a raw image" },
    { "encrypt.iter-time", VIMG_OPT_NUMBER,
      "Time to spend in PBKDF in milliseconds" },
    { "encrypt.keyslot", VIMG_OPT_NUMBER,
      "Select a single keyslot to modify explicitly" },
    { "encrypt.new-secret", VIMG_OPT_STRING,
      "New secret to set in the matching keyslots. Empty string to erase" },
    { "encrypt.old-secret", VIMG_OPT_STRING,
      "Select all keyslots that match this password" },
    { "encrypt.state", VIMG_OPT_STRING,
      "Select new state of affected keyslots (active/inactive)" },
    { "lazy_refcounts", VIMG_OPT_BOOL, "Postpone refcount updates" },
    { "refcount_bits", VIMG_OPT_NUMBER,
      "Width of a reference count entry in bits" },
    { "size", VIMG_OPT_SIZE, "Virtual disk size" },
    { NULL, 0, NULL },
};

/* What an amend will do, decided and checked before anything changes. */
struct plan {
    uint32_t version, order;
    bool lazy, data_file_raw;
    bool backing;                   /* the backing fields change */
    const char *backing_name, *backing_format; /* NULL: none */
    const char *data_file;          /* NULL: unchanged */
    uint64_t size;
    bool keys;                      /* LUKS key slots change (KEYSLOTS) */
    bool sn_update;                 /* the snapshot table lacks v3 data */
    struct vimg_luks_amend keyslots;
    /* Progress: steps in all, and done. */
    unsigned steps, step;
    vimg_progress_fn progress;
    void *opaque;
};

static void report(struct plan *p, uint64_t done, uint64_t total)
{
    if (p->progress && p->steps) {
        uint64_t part = total ? done * 100 / total : 100;
        p->progress(p->opaque, p->step * 100 + part, p->steps * 100ull);
    }
}

/* Facts of the snapshots that a change of version needs: whether each
 * has the 16 bytes of extra data v3 requires, and whether each would
 * hold in v2 (VM state within 32 bits, disk size SIZE). */
static int snapshot_facts(struct vimg_image *img, uint64_t size, bool *all_v3,
                          bool *fit_v2)
{
    struct qcow2_state *s = qcow2_state(img);
    uint64_t off = s->snapshots_offset;
    uint8_t fixed[QCOW2_SN_FIXED_SIZE], extra[QCOW2_SN_EXTRA_SIZE_MAX];
    int r;

    *all_v3 = *fit_v2 = true;
    /* read_snapshots validated the table at open. */
    for (uint32_t i = 0; i < s->nb_snapshots; i++) {
        if ((r = vimg_internal_pread(img->file, fixed, sizeof fixed,
                                     off)) < 0) {
            return r;
        }
        uint32_t extra_len = load_be32(fixed + QCOW2_SN_EXTRA_DATA_SIZE);
        uint64_t vm_state = load_be32(fixed + QCOW2_SN_VM_STATE_SIZE);
        uint64_t disk = size;
        memset(extra, 0, sizeof extra);
        if ((r = vimg_internal_pread(img->file, extra,
                                     MIN(extra_len, sizeof extra),
                                     off + QCOW2_SN_FIXED_SIZE)) < 0) {
            return r;
        }
        if (extra_len >= QCOW2_SN_EXTRA_VM_STATE_SIZE_LARGE + 8) {
            vm_state = load_be64(extra + QCOW2_SN_EXTRA_VM_STATE_SIZE_LARGE);
        }
        if (extra_len >= QCOW2_SN_EXTRA_DISK_SIZE + 8) {
            disk = load_be64(extra + QCOW2_SN_EXTRA_DISK_SIZE);
        }
        *all_v3 = *all_v3 && extra_len >= QCOW2_SN_EXTRA_SIZE_V3;
        *fit_v2 = *fit_v2 && vm_state <= UINT32_MAX && disk == size;
        off = ROUND_UP(off + QCOW2_SN_FIXED_SIZE + extra_len +
                       load_be16(fixed + QCOW2_SN_ID_STR_SIZE) +
                       load_be16(fixed + QCOW2_SN_NAME_SIZE), 8);
    }
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* The L2 tables of the active image and of every snapshot, sorted and
 * without duplicates (caller frees *V). */
static int all_l2_tables(struct vimg_image *img, uint64_t **v, uint64_t *n)
{
    struct qcow2_state *s = qcow2_state(img);
    uint64_t k = 0, total;
    bool unused;
    int r;

    /* Loads the snapshots' tables (sorted, unique) as a side effect. */
    if ((r = qcow2_inactive_l2_at(img, 0, &unused)) < 0) {
        return r;
    }
    total = s->l1_size + s->nb_inactive_l2;
    if (!(*v = malloc((total ? total : 1) * sizeof **v))) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    for (uint64_t i = 0; i < s->l1_size; i++) {
        if (s->l1[i] & QCOW2_L1E_OFFSET_MASK) {
            (*v)[k++] = s->l1[i] & QCOW2_L1E_OFFSET_MASK;
        }
    }
    for (uint64_t i = 0; i < s->nb_inactive_l2; i++) {
        (*v)[k++] = s->inactive_l2[i];
    }
    qsort(*v, k, sizeof **v, cmp_u64);
    uint64_t u = 0;
    for (uint64_t i = 0; i < k; i++) {
        if (!u || (*v)[u - 1] != (*v)[i]) {
            (*v)[u++] = (*v)[i];
        }
    }
    *n = u;
    for (uint64_t i = 0; i < u; i++) {
        if ((*v)[i] & (s->cluster_size - 1)) {
            r = qcow2_signal_corruption(img, (*v)[i], "L2 table offset "
                                        "0x%llx is not cluster aligned",
                                        (unsigned long long)(*v)[i]);
            free(*v);
            *v = NULL;
            return r;
        }
    }
    return 0;
}

/* Whether any L2 table (active or a snapshot's) has a compressed
 * cluster. */
static int has_compressed(struct vimg_image *img, bool *yes)
{
    struct qcow2_state *s = qcow2_state(img);
    uint64_t *v, n;
    uint8_t *t = malloc(s->cluster_size);
    int r;

    *yes = false;
    if (!t) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    if ((r = all_l2_tables(img, &v, &n)) < 0) {
        free(t);
        return r;
    }
    for (uint64_t i = 0; i < n && !*yes && r == 0; i++) {
        r = vimg_internal_pread(img->file, t, s->cluster_size, v[i]);
        for (uint64_t j = 0; r == 0 && j < qcow2_l2_entries(s); j++) {
            if (qcow2_l2e_get(s, t, j) & QCOW2_L2E_COMPRESSED) {
                *yes = true;
                break;
            }
        }
    }
    free(v);
    free(t);
    return r;
}

/* Make host cluster HOST read as zeros to the guest: zeros, or zeros
 * encrypted (LUKS sectors take their IV from the host offset). */
static int zero_host(struct vimg_image *img, uint64_t host)
{
    struct qcow2_state *s = qcow2_state(img);
    uint8_t *zeros;
    int r;

    if ((r = qcow2_overlap_check(img, QCOW2_ROLE_DATA, host,
                                 s->cluster_size)) < 0) {
        return r;
    }
    if (!s->crypt_method) {
        return vimg_internal_zero(img->file, host, s->cluster_size, 0);
    }
    if ((r = qcow2_crypto_ready(img)) < 0) {
        return r;
    }
    if (!(zeros = calloc(1, s->cluster_size))) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    r = qcow2_crypto_pwrite(img, zeros, s->cluster_size, host, 0);
    free(zeros);
    return r;
}

/* A zeroed host cluster for an entry of an L2 table with L2_RC
 * references (each counts the cluster once). */
static int zeroed_cluster(struct vimg_image *img, uint64_t l2_rc,
                          uint64_t *off)
{
    struct qcow2_state *s = qcow2_state(img);
    int r;

    if ((r = qcow2_alloc_clusters(img, 1, off)) < 0) {
        return r;
    }
    if (l2_rc > 1 &&
        (r = qcow2_update_refcount(img, *off, s->cluster_size,
                                   (int64_t)l2_rc - 1)) < 0) {
        return r;
    }
    return zero_host(img, *off);
}

/* Turn the zero clusters of the L2 table at L2 into what v2 reads the
 * same: nothing where no backing file shows through, else clusters of
 * zeros (a preallocated zero cluster that only this table uses is zeroed
 * in place). The zeros and refcounts are durable before the table is
 * rewritten; the clusters it stops using are released after. One pass
 * of that; *MORE when it stopped early, its list of clusters to release
 * full. */
static int expand_pass(struct vimg_image *img, uint64_t l2, uint8_t *t,
                       bool *more)
{
    struct qcow2_state *s = qcow2_state(img);
    uint64_t cs = s->cluster_size, l2_rc, rc, off;
    bool backing = img->backing_name != NULL, changed = false;
    struct qcow2_range drop[64];
    size_t ndrop = 0;
    int r;

    *more = false;
    if ((r = vimg_internal_pread(img->file, t, cs, l2)) < 0 ||
        (r = qcow2_get_refcount(img, l2 / cs, &l2_rc)) < 0) {
        return r;
    }
    if (l2_rc == 0) {
        return qcow2_signal_corruption(img, l2, "L2 table at 0x%llx has "
                                       "refcount 0",
                                       (unsigned long long)l2);
    }
    for (uint64_t j = 0; j < qcow2_l2_entries(s); j++) {
        uint64_t e = qcow2_l2e_get(s, t, j);
        uint64_t host = e & QCOW2_L2E_OFFSET_MASK;
        uint64_t ne;
        if ((e & QCOW2_L2E_COMPRESSED) || !(e & QCOW2_L2E_ZERO)) {
            continue;
        }
        if (host & (cs - 1)) {
            return qcow2_signal_corruption(img, host, "zero cluster at "
                                           "0x%llx is not aligned",
                                           (unsigned long long)host);
        }
        if (!host && !backing) {
            ne = 0;
        } else {
            rc = 0;
            if (host && (r = qcow2_get_refcount(img, host / cs, &rc)) < 0) {
                return r;
            }
            if (host && rc == l2_rc) {
                /* Only this table's references: zero it where it is. */
                if ((r = zero_host(img, host)) < 0) {
                    return r;
                }
                off = host;
            } else {
                if (host && ndrop == sizeof drop / sizeof drop[0]) {
                    *more = true; /* the rest on the next pass */
                    break;
                }
                if ((r = zeroed_cluster(img, l2_rc, &off)) < 0) {
                    return r;
                }
                if (host) {
                    drop[ndrop].offset = host;
                    drop[ndrop++].len = cs;
                }
            }
            ne = off | (l2_rc == 1 ? QCOW2_L2E_COPIED : 0);
        }
        qcow2_l2e_set(s, t, j, ne);
        changed = true;
    }
    if (!changed) {
        return 0;
    }
    if ((r = qcow2_flush_metadata(img)) < 0 ||
        (r = vimg_internal_flush(img->file)) < 0 ||
        (r = qcow2_write_meta(img, (enum qcow2_role)(QCOW2_ROLE_L2 |
                                                     QCOW2_ROLE_INACTIVE_L2),
                              t, cs, l2)) < 0 ||
        (r = vimg_internal_flush(img->file)) < 0) {
        return r;
    }
    qcow2_cache_discard(&s->l2_cache, l2);
    for (size_t i = 0; i < ndrop && r == 0; i++) {
        r = qcow2_update_refcount(img, drop[i].offset, cs, -(int64_t)l2_rc);
    }
    return r;
}

static int expand_table(struct vimg_image *img, uint64_t l2, uint8_t *t)
{
    bool more = true;
    int r = 0;

    /* More passes only for tables with more shared zero clusters than one
     * pass releases. */
    while (more && r == 0) {
        r = expand_pass(img, l2, t, &more);
    }
    return r;
}

static int expand_zero_clusters(struct vimg_image *img, struct plan *p)
{
    struct qcow2_state *s = qcow2_state(img);
    uint64_t *v, n;
    uint8_t *t;
    int r;

    if ((r = qcow2_flush_metadata(img)) < 0 ||
        (r = vimg_internal_flush(img->file)) < 0 ||
        (r = all_l2_tables(img, &v, &n)) < 0) {
        return r;
    }
    if (!(t = malloc(s->cluster_size))) {
        free(v);
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    for (uint64_t i = 0; i < n && r == 0; i++) {
        report(p, i, n);
        r = expand_table(img, v[i], t);
    }
    free(t);
    free(v);
    if (r == 0 && (r = qcow2_flush_metadata(img)) == 0) {
        r = vimg_internal_flush(img->file);
    }
    return r;
}

static int set_lazy(struct vimg_image *img, bool on)
{
    struct qcow2_state *s = qcow2_state(img);
    int r;

    if (!on) {
        /* Refcounts on disk first, then the image is clean. */
        if ((r = qcow2_flush_metadata(img)) < 0 ||
            (r = vimg_internal_flush(img->file)) < 0) {
            return r;
        }
        if ((s->incompat & QCOW2_INCOMPAT_DIRTY) && s->dirty_set) {
            s->incompat &= ~QCOW2_INCOMPAT_DIRTY;
            if ((r = qcow2_update_header_fields(
                     img, QCOW2_HDR_INCOMPATIBLE_FEATURES, 8)) < 0 ||
                (r = vimg_internal_flush(img->file)) < 0) {
                return r;
            }
            s->dirty_set = false;
        }
        s->lazy = false;
        s->compat &= ~QCOW2_COMPAT_LAZY_REFCOUNTS;
    } else {
        s->compat |= QCOW2_COMPAT_LAZY_REFCOUNTS;
    }
    if ((r = qcow2_update_header_fields(img, QCOW2_HDR_COMPATIBLE_FEATURES,
                                        8)) < 0) {
        return r;
    }
    s->lazy = on;
    return 0;
}

static int downgrade(struct vimg_image *img, struct plan *p)
{
    struct qcow2_state *s = qcow2_state(img);
    int r;

    if ((s->compat & QCOW2_COMPAT_LAZY_REFCOUNTS) &&
        (r = set_lazy(img, false)) < 0) {
        return r;
    }
    if ((r = expand_zero_clusters(img, p)) < 0) {
        return r;
    }
    uint64_t incompat = s->incompat, compat = s->compat;
    uint64_t autoclear = s->autoclear;
    uint8_t ctype = s->compression_type;
    s->version = 2;
    s->incompat = s->compat = s->autoclear = 0;
    s->compression_type = QCOW2_COMPRESSION_ZLIB;
    if ((r = qcow2_rewrite_header(img)) < 0) {
        s->version = 3;
        s->incompat = incompat;
        s->compat = compat;
        s->autoclear = autoclear;
        s->compression_type = ctype;
    }
    return r;
}

static int upgrade(struct vimg_image *img, const struct plan *p)
{
    struct qcow2_state *s = qcow2_state(img);
    int r;

    /* A table written before the extra data existed gets it first, as
     * QEMU's qcow2_upgrade does: the new table is durable and named by
     * the header before the version changes, so a crash in between
     * leaves a valid version 2 image. */
    if (p->sn_update && (r = qcow2_snapshot_rewrite_table(img)) < 0) {
        return r;
    }
    s->version = 3;
    s->incompat = s->compat = s->autoclear = 0;
    s->compression_type = QCOW2_COMPRESSION_ZLIB;
    if ((r = qcow2_rewrite_header(img)) < 0) {
        s->version = 2;
    }
    return r;
}

/* Replace *FIELD and *COPY (img's own copy, or NULL) by VALUE. */
static int set_string(struct vimg_image *img, char **field, char **copy,
                      const char *value)
{
    char *a = value ? strdup(value) : NULL;
    char *b = value && copy ? strdup(value) : NULL;

    if (value && (!a || (copy && !b))) {
        free(a);
        free(b);
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    free(*field);
    *field = a;
    if (copy) {
        free(*copy);
        *copy = b;
    }
    return 0;
}

static int set_backing(struct vimg_image *img, const struct plan *p)
{
    struct qcow2_state *s = qcow2_state(img);
    char *name = s->backing_name, *format = s->backing_format;
    char *iname = img->backing_name, *iformat = img->backing_format;
    int r;

    s->backing_name = s->backing_format = NULL;
    img->backing_name = img->backing_format = NULL;
    if ((r = set_string(img, &s->backing_name, &img->backing_name,
                        p->backing_name)) < 0 ||
        (r = set_string(img, &s->backing_format, &img->backing_format,
                        p->backing_format)) < 0 ||
        (r = qcow2_rewrite_header(img)) < 0) {
        free(s->backing_name);
        free(s->backing_format);
        free(img->backing_name);
        free(img->backing_format);
        s->backing_name = name;
        s->backing_format = format;
        img->backing_name = iname;
        img->backing_format = iformat;
        return r;
    }
    free(name);
    free(format);
    free(iname);
    free(iformat);
    return 0;
}

int qcow2_change_backing(struct vimg_image *img, const char *name,
                         const char *format)
{
    struct qcow2_state *s = qcow2_state(img);
    struct plan p = { .backing_name = name,
                      .backing_format = name ? format : NULL };
    int r;

    if (name && strlen(name) > QCOW2_MAX_BACKING_NAME) {
        return vimg_internal_img_error(img, EINVAL, "backing file name too "
                                       "long (at most %d bytes)",
                                       QCOW2_MAX_BACKING_NAME);
    }
    if (name && (s->autoclear & QCOW2_AUTOCLEAR_DATA_FILE_RAW)) {
        return vimg_internal_img_error(img, EINVAL, "an image whose raw "
                                       "external data file holds the whole "
                                       "disk cannot have a backing file");
    }
    /* What the new header points at (data a rebase copied) is on disk
     * before it; the header cluster is one write. */
    if ((r = qcow2_begin_write(img)) < 0 ||
        (r = qcow2_flush_metadata(img)) < 0 ||
        (r = vimg_internal_flush(img->file)) < 0 ||
        (r = set_backing(img, &p)) < 0) {
        return r;
    }
    return vimg_internal_flush(img->file);
}

static int set_data_file(struct vimg_image *img, const char *name)
{
    struct qcow2_state *s = qcow2_state(img);
    char *old = s->data_file_name;
    int r;

    s->data_file_name = NULL;
    if ((r = set_string(img, &s->data_file_name, NULL, name)) < 0 ||
        (r = qcow2_rewrite_header(img)) < 0) {
        free(s->data_file_name);
        s->data_file_name = old;
        return r;
    }
    free(old);
    return 0;
}

static bool same(const char *a, const char *b)
{
    return a == b || (a && b && !strcmp(a, b));
}

/* Read every option into P and refuse, before anything changes, each
 * change that cannot be made (qemu-img's checks and messages, in its
 * order, and those vimg adds). */
static int make_plan(struct vimg_image *img, const struct vimg_opts *o,
                     struct plan *p)
{
    struct qcow2_state *s = qcow2_state(img);
    const char *compat = vimg_internal_opts_get(o, "compat", NULL);
    const char *bits = vimg_internal_opts_get(o, "refcount_bits", NULL);
    const char *bfile = vimg_internal_opts_get(o, "backing_file", NULL);
    const char *bfmt = vimg_internal_opts_get(o, "backing_fmt", NULL);
    bool lazy_now = s->compat & QCOW2_COMPAT_LAZY_REFCOUNTS;
    bool raw_now = s->autoclear & QCOW2_AUTOCLEAR_DATA_FILE_RAW;
    int r;

    p->version = s->version;
    p->order = s->refcount_order;
    p->size = img->size;
    if (compat) {
        if (!strcmp(compat, "0.10") || !strcmp(compat, "v2")) {
            p->version = 2;
        } else if (!strcmp(compat, "1.1") || !strcmp(compat, "v3")) {
            p->version = 3;
        } else {
            return vimg_internal_img_error(img, EINVAL, "Unknown "
                                           "compatibility level %s", compat);
        }
    }
    if (bits) {
        unsigned long long b = strtoull(bits, NULL, 10);
        if (!b || b > 64 || !is_power_of_2(b)) {
            return vimg_internal_img_error(img, EINVAL, "Refcount width "
                                           "must be a power of two and may "
                                           "not exceed 64 bits");
        }
        p->order = (uint32_t)__builtin_ctzll(b);
    }
    if ((r = vimg_internal_opts_get_bool(o, "lazy_refcounts", lazy_now,
                                         &p->lazy)) < 0 ||
        (r = vimg_internal_opts_get_bool(o, "data_file_raw", raw_now,
                                         &p->data_file_raw)) < 0 ||
        (r = vimg_internal_opts_get_size(o, "size", img->size,
                                         &p->size)) < 0) {
        return r;
    }
    p->data_file = vimg_internal_opts_get(o, "data_file", NULL);
    if (p->data_file && !qcow2_has_data_file(s)) {
        return vimg_internal_img_error(img, EINVAL, "data-file can only be "
                                       "set for images that use an "
                                       "external data file");
    }
    if (p->data_file_raw && !raw_now) {
        return vimg_internal_img_error(img, EINVAL, "data-file-raw cannot "
                                       "be set on existing images");
    }
    for (size_t i = 0; i < o->count; i++) {
        if (strncmp(o->pairs[i].key, "encrypt.", 8)) {
            continue;
        }
        if (!s->crypt_method) {
            return vimg_internal_img_error(img, EINVAL, "Can't amend "
                                           "encryption options - encryption "
                                           "not present");
        }
        if (s->crypt_method != QCOW2_CRYPT_LUKS) {
            return vimg_internal_img_error(img, ENOTSUP, "Only LUKS "
                                           "encryption options can be "
                                           "amended");
        }
    }
    if ((r = vimg_internal_luks_amend_parse(o, "encrypt.", img->filename,
                                            &p->keyslots, &p->keys)) < 0) {
        return r;
    }
    if (p->order != s->refcount_order && p->version < 3 && p->order != 4) {
        return vimg_internal_img_error(img, EINVAL, "Refcount widths other "
                                       "than 16 bits require compatibility "
                                       "level 1.1 or above (use compat=1.1 "
                                       "or greater)");
    }
    if (p->lazy && !lazy_now && p->version < 3) {
        return vimg_internal_img_error(img, EINVAL, "Lazy refcounts only "
                                       "supported with compatibility level "
                                       "1.1 and above (use compat=1.1 or "
                                       "greater)");
    }
    /* The backing fields: an empty value removes them. */
    p->backing_name = s->backing_name;
    p->backing_format = s->backing_format;
    if (bfile) {
        p->backing_name = *bfile ? bfile : NULL;
        if (!*bfile) {
            p->backing_format = NULL;
        }
    }
    if (bfmt) {
        p->backing_format = *bfmt ? bfmt : NULL;
    }
    p->backing = !same(p->backing_name, s->backing_name) ||
                 !same(p->backing_format, s->backing_format);
    if (p->backing) {
        if (!p->backing_name && p->backing_format) {
            return vimg_internal_img_error(img, EINVAL, "a backing format "
                                           "needs a backing file");
        }
        if (p->backing_name && !p->backing_format) {
            return vimg_internal_img_error(img, EINVAL, "a backing file "
                                           "needs its format (backing_fmt), "
                                           "as for create");
        }
        if (p->backing_name &&
            strlen(p->backing_name) > QCOW2_MAX_BACKING_NAME) {
            return vimg_internal_img_error(img, EINVAL, "backing file name "
                                           "too long");
        }
        if (p->backing_name && p->data_file_raw) {
            return vimg_internal_img_error(img, EINVAL, "an image whose "
                                           "external data file is raw "
                                           "(data_file_raw) cannot have a "
                                           "backing file");
        }
    }
    if (p->data_file && !*p->data_file) {
        return vimg_internal_img_error(img, EINVAL, "an image with an "
                                       "external data file must name it");
    }
    if (p->data_file) {
        char *path = NULL;
        if ((r = vimg_internal_resolve_reference(img, p->data_file,
                                                 &path)) < 0) {
            return r;
        }
        free(path);
        if (same(p->data_file, s->data_file_name)) {
            p->data_file = NULL;
        }
    }
    if (p->size % 512) {
        return vimg_internal_img_error(img, EINVAL, "The new size must be a "
                                       "multiple of 512");
    }
    if (p->size < img->size) {
        return vimg_internal_img_error(img, ENOTSUP, "shrinking from %llu "
                                       "to %llu bytes would lose data: use "
                                       "'vimg resize --shrink'",
                                       (unsigned long long)img->size,
                                       (unsigned long long)p->size);
    }
    if (p->size != img->size) {
        for (uint32_t i = 0; i < s->bm_count; i++) {
            if (s->bm[i].inconsistent) {
                return vimg_internal_img_error(img, EBUSY, "Bitmap '%s' is "
                                               "inconsistent and cannot be "
                                               "resized (remove it with "
                                               "'vimg bitmap --remove')",
                                               s->bm[i].name);
            }
        }
        if (s->nb_snapshots && s->version < 3 && p->version < 3) {
            return vimg_internal_img_error(img, ENOTSUP, "Can't resize a v2 "
                                           "image which has snapshots");
        }
    }
    bool all_v3, fit_v2;
    if ((r = snapshot_facts(img, p->size, &all_v3, &fit_v2)) < 0) {
        return r;
    }
    p->sn_update = p->version > s->version && !all_v3;
    if (p->version < s->version) {
        uint64_t other = s->incompat & ~(QCOW2_INCOMPAT_DIRTY |
                                         QCOW2_INCOMPAT_COMPRESSION);
        bool compressed = false;
        if (p->order != 4) {
            return vimg_internal_img_error(img, ENOTSUP, "compat=0.10 "
                                           "requires refcount_bits=16");
        }
        if (qcow2_has_data_file(s)) {
            return vimg_internal_img_error(img, ENOTSUP, "Cannot downgrade "
                                           "an image with a data file");
        }
        if (!fit_v2) {
            return vimg_internal_img_error(img, ENOTSUP, "Internal snapshots "
                                           "prevent downgrade of image");
        }
        if (s->bm_count) {
            return vimg_internal_img_error(img, ENOTSUP, "Cannot downgrade "
                                           "an image with persistent "
                                           "bitmaps: version 2 cannot hold "
                                           "them (remove them with 'vimg "
                                           "bitmap --remove' first)");
        }
        if (s->compression_type != QCOW2_COMPRESSION_ZLIB &&
            (r = has_compressed(img, &compressed)) < 0) {
            return r;
        }
        if (compressed) {
            return vimg_internal_img_error(img, ENOTSUP, "Cannot downgrade "
                                           "an image with zstd compression "
                                           "type and existing compressed "
                                           "clusters");
        }
        if (other) {
            return vimg_internal_img_error(img, ENOTSUP, "Cannot downgrade "
                                           "an image with incompatible "
                                           "features %#llx set",
                                           (unsigned long long)other);
        }
    }
    p->steps = (p->version != s->version) + (p->order != s->refcount_order) +
               p->keys;
    return 0;
}

int qcow2_amend(struct vimg_image *img, const struct vimg_opts *opts,
                const struct vimg_amend_params *params)
{
    struct qcow2_state *s = qcow2_state(img);
    struct plan p = { .progress = params->progress,
                      .opaque = params->opaque };
    int r;

    if (s->corrupt) {
        return vimg_internal_img_error(img, EIO, "image is marked corrupt; "
                                       "writes are refused");
    }
    if ((r = make_plan(img, opts, &p)) < 0 ||
        (p.keys &&
         (r = qcow2_crypto_amend_check(img, &p.keyslots, params)) < 0)) {
        return r;
    }
    /* QEMU's order: upgrade first (what follows may need version 3),
     * downgrade last (after what version 2 cannot hold is gone). */
    if (p.version > s->version) {
        report(&p, 0, 1);
        if ((r = upgrade(img, &p)) < 0) {
            return r;
        }
        p.step++;
    }
    /* Where QEMU changes them: after an upgrade, before the refcount
     * width. */
    if (p.keys) {
        report(&p, 0, 1);
        if ((r = qcow2_crypto_amend(img, &p.keyslots, params)) < 0) {
            return r;
        }
        p.step++;
    }
    if (p.order != s->refcount_order) {
        report(&p, 0, 1);
        if ((r = qcow2_change_refcount_order(img, p.order)) < 0) {
            return r;
        }
        p.step++;
    }
    if (!p.data_file_raw && (s->autoclear & QCOW2_AUTOCLEAR_DATA_FILE_RAW)) {
        s->autoclear &= ~QCOW2_AUTOCLEAR_DATA_FILE_RAW;
        if ((r = qcow2_update_header_fields(img, QCOW2_HDR_AUTOCLEAR_FEATURES,
                                            8)) < 0) {
            return r;
        }
    }
    if ((p.data_file && (r = set_data_file(img, p.data_file)) < 0) ||
        (p.backing && (r = set_backing(img, &p)) < 0)) {
        return r;
    }
    if (p.lazy != !!(s->compat & QCOW2_COMPAT_LAZY_REFCOUNTS) &&
        (r = set_lazy(img, p.lazy)) < 0) {
        return r;
    }
    if (p.size != img->size &&
        (r = qcow2_resize(img, p.size, 0, VIMG_PREALLOC_OFF)) < 0) {
        return r;
    }
    if (p.version < s->version) {
        if ((r = downgrade(img, &p)) < 0) {
            return r;
        }
        p.step++;
    }
    report(&p, 0, 1);
    if ((r = qcow2_flush_metadata(img)) < 0) {
        return r;
    }
    return vimg_internal_flush(img->file);
}
