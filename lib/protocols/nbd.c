/* The nbd protocol: an image on an NBD server, reached through libnbd, for
 * names given on the command line (nbd://HOST[:PORT]/EXPORT,
 * nbd+unix:///EXPORT?socket=PATH and their TLS forms nbds://,
 * nbds+unix://). Names from image metadata never get here: the core
 * refuses every protocol prefix in references.
 *
 * libnbd's synchronous calls hold a handle for the whole round trip, so
 * the driver keeps a small pool of connections and lends one to each
 * call: several requests are in flight when the server allows several
 * connections (NBD_FLAG_CAN_MULTI_CONN, which also makes a flush on one
 * connection cover the writes of all); otherwise one connection carries
 * every request in turn. */
#include <errno.h>
#include <libnbd.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/rounding.h"
#include "../internal.h"

#define MAX_CONNECTIONS 4
/* Requests are cut to the server's maximum block size, and to this. */
#define MAX_REQUEST (32u << 20)
/* Zero, trim and block status lengths are 32-bit on the wire. */
#define MAX_NOPAYLOAD (1u << 30)

struct nbd_state {
    pthread_mutex_t lock;
    pthread_cond_t free_cond;
    struct nbd_handle *h[MAX_CONNECTIONS];
    bool busy[MAX_CONNECTIONS];
    int n, max;
    uint64_t max_request;
    bool can_zero, can_fast_zero, can_trim, can_flush, can_fua;
    bool has_base_allocation;
};

static const char *const schemes[] = { "nbd://", "nbd+unix://", "nbds://",
                                       "nbds+unix://" };

bool vimg_is_url(const char *name)
{
    for (size_t i = 0; name && i < sizeof schemes / sizeof schemes[0]; i++) {
        if (strncmp(name, schemes[i], strlen(schemes[i])) == 0) {
            return true;
        }
    }
    return false;
}

static int nbd_err(struct vimg_image *img, const char *what)
{
    int e = nbd_get_errno();
    const char *msg = nbd_get_error();
    return vimg_internal_img_error(img, e > 0 ? e : EIO, "%s: %s", what,
                                   msg ? msg : strerror(e > 0 ? e : EIO));
}

static struct nbd_handle *connect_one(struct vimg_image *img)
{
    struct nbd_handle *h = nbd_create();

    if (!h) {
        nbd_err(img, "cannot create an NBD handle");
        return NULL;
    }
    /* The name came from the user, who may point at a PSK file. */
    if (nbd_set_uri_allow_local_file(h, true) < 0 ||
        nbd_add_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION) < 0 ||
        nbd_connect_uri(h, img->filename) < 0) {
        nbd_err(img, "cannot connect");
        nbd_close(h);
        return NULL;
    }
    return h;
}

/* Lend a connection, opening another when all are busy and the server
 * allows more. */
static struct nbd_handle *get(struct vimg_image *img, int *slot)
{
    struct nbd_state *s = img->opaque;

    pthread_mutex_lock(&s->lock);
    for (;;) {
        for (int i = 0; i < s->n; i++) {
            if (!s->busy[i]) {
                s->busy[i] = true;
                *slot = i;
                pthread_mutex_unlock(&s->lock);
                return s->h[i];
            }
        }
        if (s->n < s->max) {
            struct nbd_handle *h = connect_one(img);
            if (h) {
                s->h[s->n] = h;
                s->busy[s->n] = true;
                *slot = s->n++;
                pthread_mutex_unlock(&s->lock);
                return h;
            }
            /* The server refused another connection: share what we have. */
            vimg_internal_error_clear();
            s->max = s->n;
        }
        pthread_cond_wait(&s->free_cond, &s->lock);
    }
}

static void put(struct vimg_image *img, int slot)
{
    struct nbd_state *s = img->opaque;
    pthread_mutex_lock(&s->lock);
    s->busy[slot] = false;
    pthread_cond_signal(&s->free_cond);
    pthread_mutex_unlock(&s->lock);
}

static int nbd_open(struct vimg_image *img, const struct vimg_opts *opts)
{
    struct nbd_state *s = img->opaque;
    (void)opts;

    if (!vimg_is_url(img->filename)) {
        return vimg_internal_img_error(img, EINVAL, "not an nbd:// or "
                                       "nbd+unix:// name");
    }
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->free_cond, NULL);
    struct nbd_handle *h = connect_one(img);
    if (!h) {
        goto fail;
    }
    s->h[0] = h;
    s->n = 1;
    int64_t size = nbd_get_size(h);
    if (size < 0) {
        nbd_err(img, "cannot get the export size");
        goto fail;
    }
    if (img->writable && nbd_is_read_only(h) == 1) {
        vimg_internal_img_error(img, EROFS, "the NBD export is read-only");
        goto fail;
    }
    img->size = (uint64_t)size;
    s->can_zero = nbd_can_zero(h) == 1;
    s->can_fast_zero = nbd_can_fast_zero(h) == 1;
    s->can_trim = nbd_can_trim(h) == 1;
    s->can_flush = nbd_can_flush(h) == 1;
    s->can_fua = nbd_can_fua(h) == 1;
    s->has_base_allocation =
        nbd_can_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION) == 1;
    s->max = nbd_can_multi_conn(h) == 1 ? MAX_CONNECTIONS : 1;
    int64_t min = nbd_get_block_size(h, LIBNBD_SIZE_MINIMUM);
    int64_t max = nbd_get_block_size(h, LIBNBD_SIZE_MAXIMUM);
    /* The core aligns requests for us (as for O_DIRECT). */
    if (min > 1 && min <= 65536 && (min & (min - 1)) == 0) {
        img->request_alignment = (uint32_t)min;
    }
    s->max_request = MAX_REQUEST;
    if (max > 0 && (uint64_t)max < s->max_request &&
        (uint64_t)max >= img->request_alignment) {
        s->max_request = (uint64_t)max - (uint64_t)max %
                         img->request_alignment;
    }
    return 0;

fail:
    if (s->n) {
        nbd_close(s->h[0]);
    }
    pthread_cond_destroy(&s->free_cond);
    pthread_mutex_destroy(&s->lock);
    return -vimg_get_errno();
}

static int nbd_close_img(struct vimg_image *img)
{
    struct nbd_state *s = img->opaque;

    for (int i = 0; i < s->n; i++) {
        /* NBD_CMD_DISC: the server finishes what it has, then we part. */
        (void)nbd_shutdown(s->h[i], 0);
        nbd_close(s->h[i]);
    }
    pthread_cond_destroy(&s->free_cond);
    pthread_mutex_destroy(&s->lock);
    return 0;
}

static int nbd_pread_img(struct vimg_image *img, void *buf, uint64_t count,
                         uint64_t offset)
{
    struct nbd_state *s = img->opaque;
    int slot, r = 0;

    /* Past the export's end reads as zeros, as for any protocol (raw
     * rounds an odd-sized export up to whole sectors). */
    if (offset + count > img->size) {
        uint64_t keep = offset < img->size ? img->size - offset : 0;
        memset((char *)buf + keep, 0, count - keep);
        count = keep;
    }
    if (count == 0) {
        return 0;
    }
    struct nbd_handle *h = get(img, &slot);
    for (uint64_t at = 0; at < count && r == 0; at += s->max_request) {
        uint64_t n = MIN(count - at, s->max_request);
        if (nbd_pread(h, (char *)buf + at, n, offset + at, 0) < 0) {
            r = nbd_err(img, "read");
        }
    }
    put(img, slot);
    return r;
}

static int flush_on(struct vimg_image *img, struct nbd_handle *h)
{
    struct nbd_state *s = img->opaque;
    if (s->can_flush && nbd_flush(h, 0) < 0) {
        return nbd_err(img, "flush");
    }
    return 0;
}

static int nbd_pwrite_img(struct vimg_image *img, const void *buf,
                          uint64_t count, uint64_t offset, unsigned flags)
{
    struct nbd_state *s = img->opaque;
    bool fua = flags & VIMG_WRITE_FUA;
    uint32_t f = fua && s->can_fua ? LIBNBD_CMD_FLAG_FUA : 0;
    int slot, r = 0;
    struct nbd_handle *h = get(img, &slot);

    for (uint64_t at = 0; at < count && r == 0; at += s->max_request) {
        uint64_t n = MIN(count - at, s->max_request);
        if (nbd_pwrite(h, (const char *)buf + at, n, offset + at, f) < 0) {
            r = nbd_err(img, "write");
        }
    }
    if (r == 0 && fua && !s->can_fua) {
        r = flush_on(img, h);
    }
    put(img, slot);
    return r;
}

static int nbd_zero_img(struct vimg_image *img, uint64_t offset,
                        uint64_t count, unsigned flags)
{
    struct nbd_state *s = img->opaque;
    uint32_t f = flags & VIMG_ZERO_MAY_UNMAP ? 0 : LIBNBD_CMD_FLAG_NO_HOLE;
    int slot, r = 0;

    if (!s->can_zero ||
        ((flags & VIMG_ZERO_NO_FALLBACK) && !s->can_fast_zero)) {
        return -ENOTSUP; /* the core writes zeroed buffers, or gives up */
    }
    if (flags & VIMG_ZERO_NO_FALLBACK) {
        f |= LIBNBD_CMD_FLAG_FAST_ZERO;
    }
    struct nbd_handle *h = get(img, &slot);
    for (uint64_t at = 0; at < count && r == 0; at += MAX_NOPAYLOAD) {
        uint64_t n = MIN(count - at, MAX_NOPAYLOAD);
        if (nbd_zero(h, n, offset + at, f) < 0) {
            r = nbd_get_errno() == ENOTSUP ? -ENOTSUP
                                           : nbd_err(img, "write zeroes");
        }
    }
    put(img, slot);
    return r;
}

static int nbd_discard_img(struct vimg_image *img, uint64_t offset,
                           uint64_t count)
{
    struct nbd_state *s = img->opaque;
    int slot, r = 0;

    if (!s->can_trim) {
        return 0; /* a hint the server does not take */
    }
    struct nbd_handle *h = get(img, &slot);
    for (uint64_t at = 0; at < count && r == 0; at += MAX_NOPAYLOAD) {
        uint64_t n = MIN(count - at, MAX_NOPAYLOAD);
        if (nbd_trim(h, n, offset + at, 0) < 0) {
            r = nbd_err(img, "trim");
        }
    }
    put(img, slot);
    return r;
}

static int nbd_flush_img(struct vimg_image *img)
{
    struct nbd_state *s = img->opaque;
    int slot;
    /* Without multi-conn there is one connection, so one flush covers
     * every write; with it, the server makes any flush cover all. */
    struct nbd_handle *h = get(img, &slot);
    int r = s->can_flush ? flush_on(img, h) : 0;
    put(img, slot);
    return r;
}

struct first_extent {
    uint32_t length, flags;
    bool seen;
};

static int extent_cb(void *opaque, const char *context, uint64_t offset,
                     uint32_t *entries, size_t n, int *error)
{
    struct first_extent *e = opaque;
    (void)offset;
    (void)error;
    if (!e->seen && n >= 2 &&
        strcmp(context, LIBNBD_CONTEXT_BASE_ALLOCATION) == 0 && entries[0]) {
        e->length = entries[0];
        e->flags = entries[1];
        e->seen = true;
    }
    return 0;
}

static int nbd_block_status_img(struct vimg_image *img, uint64_t offset,
                                uint64_t count, uint64_t *pnum,
                                uint64_t *map, const char **file)
{
    struct nbd_state *s = img->opaque;
    struct first_extent e = { 0 };
    int slot, r = 0;

    *map = offset;
    *file = img->filename;
    *pnum = count;
    if (!s->has_base_allocation) {
        return VIMG_BS_DATA | VIMG_BS_OFFSET_VALID;
    }
    struct nbd_handle *h = get(img, &slot);
    nbd_extent_callback cb = { .callback = extent_cb, .user_data = &e };
    if (nbd_block_status(h, MIN(count, MAX_NOPAYLOAD), offset, cb, 0) < 0) {
        r = nbd_err(img, "block status");
    }
    put(img, slot);
    if (r < 0) {
        return r;
    }
    if (!e.seen) {
        return VIMG_BS_DATA | VIMG_BS_OFFSET_VALID;
    }
    *pnum = MIN((uint64_t)e.length, count);
    /* As QEMU reads base:allocation: a hole is not data; only ZERO says
     * what it reads as. */
    return (e.flags & LIBNBD_STATE_HOLE ? 0 : VIMG_BS_DATA) |
           (e.flags & LIBNBD_STATE_ZERO ? VIMG_BS_ZERO : 0) |
           VIMG_BS_OFFSET_VALID;
}

/* Disk usage of a remote image is not known (qemu-img: "unavailable"). */
static int64_t nbd_allocated_size(struct vimg_image *img)
{
    (void)img;
    return -ENOTSUP;
}

const struct vimg_driver vimg_driver_nbd = {
    .name = "nbd",
    .kind = VIMG_DRIVER_PROTOCOL,
    .instance_size = sizeof(struct nbd_state),
    .thread_safe = true,
    .has_zero_init = false,
    .open = nbd_open,
    .close = nbd_close_img,
    .pread = nbd_pread_img,
    .pwrite = nbd_pwrite_img,
    .zero = nbd_zero_img,
    .discard = nbd_discard_img,
    .flush = nbd_flush_img,
    .block_status = nbd_block_status_img,
    .allocated_size = nbd_allocated_size,
};
