/* Compressed clusters: their host spans, reading and inflating them,
 * compressing a cluster (no lock: the CPU half) and placing compressed
 * data, packed as QEMU packs it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../../common/rounding.h"
#include "../../compress/compress.h"
#include "qcow2.h"

static uint64_t compressed_host(const struct qcow2_state *s, uint64_t e,
                                uint64_t *len)
{
    unsigned x = qcow2_compressed_offset_bits(s->cluster_bits);
    uint64_t host = e & (((uint64_t)1 << x) - 1);
    uint64_t sectors = ((e & ~QCOW2_L2E_COMPRESSED & ~QCOW2_L2E_COPIED) >>
                        x) + 1;
    *len = sectors * QCOW2_COMPRESSED_SECTOR_SIZE -
           (host & (QCOW2_COMPRESSED_SECTOR_SIZE - 1));
    return host;
}

/* Whether the host bytes of compressed entry E are valid (lock held).
 * Like every reference, they may run past the end of the file by less
 * than a cluster, no more (the last cluster may be partly written; QEMU's
 * check has the same rule), so that a hostile descriptor cannot make reads
 * or frees reach past it. */
bool qcow2_compressed_span_ok(struct vimg_image *img, uint64_t e,
                              uint64_t *host, uint64_t *len)
{
    struct qcow2_state *s = qcow2_state(img);
    uint64_t file_size = s->data ? (uint64_t)vimg_internal_get_size(s->data)
                                 : 0;

    *host = compressed_host(s, e, len);
    return *len <= 2 * s->cluster_size &&
           (*host + *len <= file_size ||
            *host + *len - file_size < s->cluster_size);
}

/* The host bytes of compressed entry E, validated (lock held). */
int qcow2_compressed_span(struct vimg_image *img, uint64_t e,
                          uint64_t *host, uint64_t *len)
{
    struct qcow2_state *s = qcow2_state(img);

    if (qcow2_compressed_span_ok(img, e, host, len)) {
        return 0;
    }
    if (*len > 2 * s->cluster_size) {
        return qcow2_signal_corruption(img, *host, "compressed cluster is "
                                       "larger than a cluster");
    }
    return qcow2_signal_corruption(img, *host, "compressed cluster "
                                   "(%llu bytes at 0x%llx) lies past "
                                   "the end of the file",
                                   (unsigned long long)*len,
                                   (unsigned long long)*host);
}

/* Inflate the LEN compressed bytes IN, read from HOST, into a whole
 * cluster. */
int qcow2_inflate(struct vimg_image *img, uint64_t host, const uint8_t *in,
                  uint64_t len, uint8_t *out)
{
    struct qcow2_state *s = qcow2_state(img);
    int r = vimg_internal_decompress(s->compression_type ==
                                         QCOW2_COMPRESSION_ZSTD
                                         ? VIMG_COMPRESS_ZSTD
                                         : VIMG_COMPRESS_DEFLATE_4K,
                                     in, len, out, s->cluster_size);
    if (r < 0) {
        return vimg_internal_img_error(img, -r, "compressed cluster at "
                                       "0x%llx could not be decompressed",
                                       (unsigned long long)host);
    }
    return 0;
}

/* Read and inflate LEN compressed bytes at HOST into a whole cluster. Needs
 * no lock: the span was validated and is either listed as active or
 * protected by the lock the caller holds. */
int qcow2_decompress_span(struct vimg_image *img, uint64_t host,
                          uint64_t len, uint8_t *out)
{
    struct qcow2_state *s = qcow2_state(img);
    uint8_t *in = malloc(len);
    int r;

    if (!in) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    r = vimg_internal_pread(s->data, in, len, host);
    if (r == 0) {
        r = qcow2_inflate(img, host, in, len, out);
    }
    free(in);
    return r;
}

int qcow2_decompress(struct vimg_image *img, uint64_t e, uint8_t *out)
{
    uint64_t host, len;
    int r = qcow2_compressed_span(img, e, &host, &len);
    return r < 0 ? r : qcow2_decompress_span(img, host, len, out);
}

static int write_data(struct vimg_image *img, const void *buf, uint64_t len,
                      uint64_t host)
{
    struct qcow2_state *s = qcow2_state(img);
    int r;

    if (s->data == img->file &&
        (r = qcow2_overlap_check(img, QCOW2_ROLE_DATA, host, len)) < 0) {
        return r;
    }
    return vimg_internal_pwrite(s->data, buf, len, host, 0);
}


long qcow2_compress(struct vimg_image *img, const void *in, void *out,
                    uint64_t cap)
{
    struct qcow2_state *s = qcow2_state(img);
    return vimg_internal_compress(s->compression_type ==
                                          QCOW2_COMPRESSION_ZSTD
                                      ? VIMG_COMPRESS_ZSTD
                                      : VIMG_COMPRESS_DEFLATE_4K,
                                  0, in, s->cluster_size, out, cap);
}

/* As in QEMU, compressed data goes only into clusters not allocated yet:
 * the data is packed after the previous piece, written, and only then
 * does the L2 entry point at it. */
int qcow2_write_compressed(struct vimg_image *img, uint64_t offset,
                           const void *cbuf, uint64_t len)
{
    struct qcow2_state *s = qcow2_state(img);
    uint8_t *table;
    uint64_t idx, host;
    int r;

    if (s->crypt_method) {
        /* As QEMU: compressed clusters are never encrypted. */
        return vimg_internal_img_error(img, ENOTSUP, "compression and "
                                       "encryption are not supported at "
                                       "the same time");
    }
    if (s->data_file_name) {
        return vimg_internal_img_error(img, ENOTSUP, "compressed clusters "
                                       "cannot be written to an image with "
                                       "an external data file");
    }
    qcow2_wait_inflight(img, offset, offset + s->cluster_size);
    if ((r = qcow2_begin_write(img)) < 0 ||
        (r = qcow2_bitmaps_mark(img, offset,
                                MIN(s->cluster_size,
                                    img->size - offset))) < 0 ||
        (r = qcow2_get_l2(img, offset, true, &table, &idx)) < 0) {
        return r;
    }
    if (qcow2_l2e_get(s, table, idx) & QCOW2_L2E_OFFSET_MASK) {
        return vimg_internal_img_error(img, EIO, "cannot write a compressed "
                                       "cluster at guest offset %llu over "
                                       "an allocated one",
                                       (unsigned long long)offset);
    }
    if ((r = qcow2_alloc_bytes(img, len, &host)) < 0 ||
        (r = write_data(img, cbuf, len, host)) < 0) {
        return r;
    }
    if ((r = qcow2_get_l2(img, offset, true, &table, &idx)) < 0) {
        return r;
    }
    unsigned x = qcow2_compressed_offset_bits(s->cluster_bits);
    uint64_t extra = (host + len - 1) / QCOW2_COMPRESSED_SECTOR_SIZE -
                     host / QCOW2_COMPRESSED_SECTOR_SIZE;
    qcow2_l2e_set(s, table, idx, QCOW2_L2E_COMPRESSED | (extra << x) | host);
    /* A compressed cluster's subcluster bitmap must be 0. */
    qcow2_l2bm_set(s, table, idx, 0);
    s->compressed_written = true;
    qcow2_cache_mark_dirty(&s->l2_cache, table);
    return 0;
}

/* Compressed pieces can leave the file ending inside a sector; readers
 * fetch compressed data by the sector, and qemu-img's compressed output
 * ends on a whole sector: pad once, at flush and close, not per piece
 * (a truncate per cluster costs more than the write). */
int qcow2_pad_to_sector(struct vimg_image *img)
{
    struct qcow2_state *s = qcow2_state(img);
    uint64_t end = (uint64_t)vimg_internal_get_size(img->file);
    /* Only after compressed writes, as QEMU: other images may end
     * mid-sector (a 512-byte-cluster image's L1 table) and stay so. */
    if (!s->compressed_written) {
        return 0;
    }
    s->compressed_written = false;
    if (!(end % QCOW2_COMPRESSED_SECTOR_SIZE)) {
        return 0;
    }
    return vimg_internal_truncate(img->file,
                                  ROUND_UP(end, QCOW2_COMPRESSED_SECTOR_SIZE),
                                  0, VIMG_PREALLOC_OFF);
}
