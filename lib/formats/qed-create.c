/* New QED images, laid out as qemu-img 7.2 lays them out (byte for byte
 * with the same options). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/rounding.h"
#include "qed.h"

const struct vimg_opt_desc qed_create_opts[] = {
    { "size", VIMG_OPT_SIZE, "Virtual disk size" },
    { "backing_file", VIMG_OPT_STRING, "File name of a base image" },
    { "backing_fmt", VIMG_OPT_STRING, "Image format of the base image" },
    { "cluster_size", VIMG_OPT_SIZE, "Cluster size (in bytes)" },
    { "table_size", VIMG_OPT_SIZE, "L1/L2 table size (in clusters)" },
    { NULL, 0, NULL },
};

/* As qemu-img: the header in one cluster with the backing name right after
 * it, a zeroed L1 table in the next clusters. A raw backing file is
 * recorded as such (no probing); other formats are probed at open, the
 * only way QED can name them. */
int qed_create(struct vimg_image *file,
                      const struct vimg_create_ctx *c)
{
    uint64_t size = ROUND_UP(c->size, 512), cluster_size, table_size;
    const char *backing = c->backing_file;
    int r;

    if ((r = vimg_internal_opts_get_size(c->opts, "cluster_size",
                                         QED_DEFAULT_CLUSTER_SIZE,
                                         &cluster_size)) < 0 ||
        (r = vimg_internal_opts_get_size(c->opts, "table_size",
                                         QED_DEFAULT_TABLE_SIZE,
                                         &table_size)) < 0) {
        return r;
    }
    if (cluster_size < QED_MIN_CLUSTER_SIZE ||
        cluster_size > QED_MAX_CLUSTER_SIZE || !qed_pow2(cluster_size)) {
        return vimg_internal_error(EINVAL, "%s: QED cluster size must be "
                                   "within range [%u, %u] and power of 2",
                                   c->filename, QED_MIN_CLUSTER_SIZE,
                                   QED_MAX_CLUSTER_SIZE);
    }
    if (table_size < QED_MIN_TABLE_SIZE || table_size > QED_MAX_TABLE_SIZE ||
        !qed_pow2(table_size)) {
        return vimg_internal_error(EINVAL, "%s: QED table size must be "
                                   "within range [%u, %u] and power of 2",
                                   c->filename, QED_MIN_TABLE_SIZE,
                                   QED_MAX_TABLE_SIZE);
    }
    uint64_t max = qed_max_image_size(cluster_size, table_size);
    if (max == UINT64_MAX) {
        /* QEMU computes the bound in 64 bits, gets 0, and neither creates
         * nor opens such an image. */
        return vimg_internal_error(EINVAL, "%s: QED cluster size %llu with "
                                   "table size %llu maps more than 2^64 "
                                   "bytes, which QEMU cannot open",
                                   c->filename,
                                   (unsigned long long)cluster_size,
                                   (unsigned long long)table_size);
    }
    if (size > max || size > INT64_MAX) {
        return vimg_internal_error(EINVAL, "%s: QED image size must be a "
                                   "non-zero multiple of cluster size and "
                                   "less than %llu bytes", c->filename,
                                   (unsigned long long)MIN(max, INT64_MAX));
    }
    uint64_t table_bytes = cluster_size * table_size;
    if (table_bytes > QED_MAX_TABLE_BYTES) {
        return vimg_internal_error(EFBIG, "%s: QED tables of %llu bytes are "
                                   "larger than vimg reads (%u MiB)",
                                   c->filename,
                                   (unsigned long long)table_bytes,
                                   QED_MAX_TABLE_BYTES >> 20);
    }
    size_t blen = backing ? strlen(backing) : 0;
    if (blen > QED_MAX_BACKING_NAME ||
        QED_HDR_LENGTH + blen > cluster_size) {
        return vimg_internal_error(EINVAL, "%s: backing file name too long",
                                   c->filename);
    }
    uint8_t *buf = calloc(1, QED_FILL_BYTES);
    if (!buf) {
        return vimg_internal_error(ENOMEM, "out of memory");
    }
    uint32_t features = 0;
    if (backing) {
        features = QED_F_BACKING_FILE;
        if (c->backing_format && strcmp(c->backing_format, "raw") == 0) {
            features |= QED_F_BACKING_FORMAT_NO_PROBE;
        }
        store_le32(buf + QED_HDR_BACKING_FILENAME_OFFSET, QED_HDR_LENGTH);
        store_le32(buf + QED_HDR_BACKING_FILENAME_SIZE, (uint32_t)blen);
        memcpy(buf + QED_HDR_LENGTH, backing, blen);
    }
    store_le32(buf + QED_HDR_MAGIC, QED_MAGIC);
    store_le32(buf + QED_HDR_CLUSTER_SIZE, (uint32_t)cluster_size);
    store_le32(buf + QED_HDR_TABLE_SIZE, (uint32_t)table_size);
    store_le32(buf + QED_HDR_HEADER_SIZE, 1);
    store_le64(buf + QED_HDR_FEATURES, features);
    store_le64(buf + QED_HDR_L1_TABLE_OFFSET, cluster_size);
    store_le64(buf + QED_HDR_IMAGE_SIZE, size);
    /* The header as qemu-img writes it (its bytes only), then the L1
     * table as zeros written out, so the file has qemu-img's allocation. */
    r = vimg_internal_pwrite(file, buf, QED_HDR_LENGTH + blen, 0, 0);
    memset(buf, 0, QED_FILL_BYTES);
    for (uint64_t done = 0; r == 0 && done < table_bytes;) {
        uint64_t n = MIN(table_bytes - done, QED_FILL_BYTES);
        r = vimg_internal_pwrite(file, buf, n, cluster_size + done, 0);
        done += n;
    }
    free(buf);
    return r;
}
