/* Rewriting the header cluster: a new backing file name and backing
 * format extension (rebase). Every other extension, known or not, is kept
 * byte for byte and in its order; the backing format goes first, as QEMU
 * writes it, and the name right after the end marker. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../../common/rounding.h"
#include "qcow2.h"

/* Append extension TYPE with LEN bytes of DATA at *OFF of BUF (a cluster
 * of CS bytes): false when it does not fit, with room for the end
 * marker. */
static bool put_ext(uint8_t *buf, uint64_t cs, uint64_t *off, uint32_t type,
                    const void *data, uint32_t len)
{
    uint64_t next = *off + QCOW2_EXT_DATA + ROUND_UP((uint64_t)len, 8);

    if (next + QCOW2_EXT_DATA > cs) {
        return false;
    }
    store_be32(buf + *off + QCOW2_EXT_TYPE, type);
    store_be32(buf + *off + QCOW2_EXT_LENGTH, len);
    memcpy(buf + *off + QCOW2_EXT_DATA, data, len);
    memset(buf + *off + QCOW2_EXT_DATA + len, 0, next - *off -
                                                 QCOW2_EXT_DATA - len);
    *off = next;
    return true;
}

int qcow2_change_backing(struct vimg_image *img, const char *name,
                         const char *format)
{
    struct qcow2_state *s = qcow2_state(img);
    uint64_t cs = s->cluster_size, off, limit, feature_at = 0;
    uint8_t *buf;
    char *new_name = NULL, *new_format = NULL;
    int r;

    if (!name) {
        format = NULL;
    }
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
    if ((name && !(new_name = strdup(name))) ||
        (format && !(new_format = strdup(format))) ||
        !(buf = malloc(cs))) {
        free(new_name);
        free(new_format);
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    /* The current header fields over the cluster as read at open (which
     * holds any header fields past those known here). */
    memcpy(buf, s->cluster0, cs);
    memcpy(buf, s->hdr, MIN(s->header_length, sizeof s->hdr));
    limit = load_be64(s->cluster0 + QCOW2_HDR_BACKING_FILE_OFFSET);
    limit = limit ? limit : cs;
    off = s->header_length;
    bool fits = !format || put_ext(buf, cs, &off, QCOW2_EXT_BACKING_FORMAT,
                                   format, (uint32_t)strlen(format));
    /* The old list was validated at open: each extension lies before
     * LIMIT. */
    for (uint64_t at = s->header_length; fits && at + 8 <= limit;) {
        uint32_t type = load_be32(s->cluster0 + at + QCOW2_EXT_TYPE);
        uint32_t len = load_be32(s->cluster0 + at + QCOW2_EXT_LENGTH);
        if (type == QCOW2_EXT_END) {
            break;
        }
        if (type != QCOW2_EXT_BACKING_FORMAT) {
            if (type == QCOW2_EXT_FEATURE_TABLE) {
                feature_at = off + QCOW2_EXT_DATA;
            }
            fits = put_ext(buf, cs, &off, type,
                           s->cluster0 + at + QCOW2_EXT_DATA, len);
        }
        at += QCOW2_EXT_DATA + ROUND_UP((uint64_t)len, 8);
    }
    if (fits) {
        memset(buf + off, 0, QCOW2_EXT_DATA); /* the end marker */
        off += QCOW2_EXT_DATA;
        fits = !name || off + strlen(name) <= cs;
    }
    if (!fits) {
        free(buf);
        free(new_name);
        free(new_format);
        return vimg_internal_img_error(img, ENOSPC, "No space left in the "
                                       "file header");
    }
    store_be64(buf + QCOW2_HDR_BACKING_FILE_OFFSET, name ? off : 0);
    store_be32(buf + QCOW2_HDR_BACKING_FILE_SIZE,
               name ? (uint32_t)strlen(name) : 0);
    if (name) {
        memcpy(buf + off, name, strlen(name));
        off += strlen(name);
    }
    memset(buf + off, 0, cs - off);

    /* What the new header points at (data copied by a rebase) is on disk
     * before it, and the header is one write. */
    if ((r = qcow2_begin_write(img)) < 0 ||
        (r = qcow2_flush_metadata(img)) < 0 ||
        (r = vimg_internal_flush(img->file)) < 0 ||
        (r = qcow2_write_meta(img, QCOW2_ROLE_HEADER, buf, cs, 0)) < 0 ||
        (r = vimg_internal_flush(img->file)) < 0) {
        free(buf);
        free(new_name);
        free(new_format);
        return r;
    }
    free(s->cluster0);
    s->cluster0 = buf;
    memcpy(s->hdr + QCOW2_HDR_BACKING_FILE_OFFSET,
           buf + QCOW2_HDR_BACKING_FILE_OFFSET, 12);
    if (s->feature_table) {
        s->feature_table = feature_at ? buf + feature_at : NULL;
    }
    free(s->backing_name);
    free(s->backing_format);
    s->backing_name = new_name;
    s->backing_format = new_format;
    return 0;
}
