/* Changing an existing image's format options (qemu-img amend), and the
 * rewrite of the header cluster that such changes need. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../../common/rounding.h"
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
    if (r == 0 && s->nb_bitmaps && s->has_bitmaps_ext) {
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
