/* The NBD server's transmission phase (doc/proto.md, "Transmission"). The
 * connection's thread reads requests, checks every field against the
 * export before the library sees it, and queues them; a small pool of
 * workers runs them in parallel on the image and sends the replies, one
 * message at a time on the socket. Memory is bounded by the queue: at
 * most MAX_INFLIGHT requests and MAX_INFLIGHT_BYTES of payload. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../common/byteswap.h"
#include "../common/checked-overflow.h"
#include "server-int.h"

#define MAX_INFLIGHT 64
#define MAX_INFLIGHT_BYTES (64u << 20)
/* Descriptors per context in one block status reply: enough for a map in
 * a few round trips, small enough for one reply buffer. */
#define MAX_DESCRIPTORS 2048
/* CACHE reads in pieces of this size into a scratch buffer. */
#define CACHE_CHUNK (1u << 20)

struct request {
    struct request *next;
    uint16_t flags, type;
    uint64_t cookie, offset;
    uint32_t len;
    uint32_t error;      /* NBD error found by validation, or 0 */
    uint64_t cost;       /* bytes charged to the in-flight budget */
    uint8_t *data;       /* WRITE payload */
};

struct tx {
    struct conn *c;
    pthread_mutex_t lock;
    pthread_cond_t work, room;
    struct request *head, *tail;
    unsigned inflight;
    uint64_t bytes;
    bool stop;
};

/* ---- Replies --------------------------------------------------------- */

static uint32_t nbd_errno(int e)
{
    switch (e) {
    case EPERM: case EROFS: case EACCES: return NBD_EPERM;
    case ENOMEM: return NBD_ENOMEM;
    case EINVAL: return NBD_EINVAL;
    case ENOSPC: case EDQUOT: case EFBIG: return NBD_ENOSPC;
    case EOVERFLOW: return NBD_EOVERFLOW;
    case ENOTSUP: return NBD_ENOTSUP;
    case ESHUTDOWN: return NBD_ESHUTDOWN;
    default: return NBD_EIO;
    }
}

static int simple_reply(struct conn *c, const struct request *r,
                        uint32_t error, const void *data, size_t len)
{
    uint8_t h[NBD_SIMPLE_REPLY_SIZE];
    struct iovec iov[2] = { { h, sizeof h }, { (void *)data, len } };

    store_be32(h, NBD_SIMPLE_REPLY_MAGIC);
    store_be32(h + 4, error);
    store_be64(h + 8, r->cookie);
    return conn_sendv(c, iov, len ? 2 : 1);
}

/* One structured chunk: header, then up to two payload pieces. */
static int chunk(struct conn *c, const struct request *r, uint16_t flags,
                 uint16_t type, const void *p1, size_t n1, const void *p2,
                 size_t n2)
{
    uint8_t h[NBD_CHUNK_HEADER_SIZE];
    struct iovec iov[3] = { { h, sizeof h }, { (void *)p1, n1 },
                            { (void *)p2, n2 } };

    store_be32(h, NBD_STRUCTURED_REPLY_MAGIC);
    store_be16(h + 4, flags);
    store_be16(h + 6, type);
    store_be64(h + 8, r->cookie);
    store_be32(h + 16, (uint32_t)(n1 + n2));
    return conn_sendv(c, iov, 1 + (n1 ? 1 : 0) + (n2 ? 1 : 0));
}

/* An error reply: a structured error chunk with the library's message
 * when structured replies are on, else a simple reply. */
static int error_reply(struct conn *c, const struct request *r,
                       uint32_t error, const char *msg)
{
    if (!c->structured) {
        return simple_reply(c, r, error, NULL, 0);
    }
    size_t n = msg ? strnlen(msg, NBD_MAX_STRING) : 0;
    uint8_t p[6];
    store_be32(p, error);
    store_be16(p + 4, (uint16_t)n);
    return chunk(c, r, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, p, 6, msg,
                 n);
}

static int lib_error_reply(struct conn *c, const struct request *r)
{
    return error_reply(c, r, nbd_errno(vimg_get_errno()), vimg_get_error());
}

static int ok_reply(struct conn *c, const struct request *r)
{
    return simple_reply(c, r, 0, NULL, 0);
}

/* ---- Commands -------------------------------------------------------- */

static int data_chunk(struct conn *c, const struct request *r, bool done,
                      uint64_t offset, const void *data, size_t len)
{
    uint8_t off[8];
    store_be64(off, offset);
    return chunk(c, r, done ? NBD_REPLY_FLAG_DONE : 0,
                 NBD_REPLY_TYPE_OFFSET_DATA, off, 8, data, len);
}

static int hole_chunk(struct conn *c, const struct request *r, bool done,
                      uint64_t offset, uint32_t len)
{
    uint8_t p[12];
    store_be64(p, offset);
    store_be32(p + 8, len);
    return chunk(c, r, done ? NBD_REPLY_FLAG_DONE : 0,
                 NBD_REPLY_TYPE_OFFSET_HOLE, p, 12, NULL, 0);
}

struct piece {
    uint64_t offset;
    uint32_t len;
    bool zero;
};

/* Split [OFFSET, OFFSET+LEN) into runs that read as zeros and runs of
 * data, by block status through the backing chain. On failure the whole
 * range is one data run (the read then decides). */
static struct piece *pieces_of(struct vimg_image *img, uint64_t offset,
                               uint32_t len, size_t *count)
{
    size_t n = 0, cap = 8;
    struct piece *p = malloc(cap * sizeof *p);
    uint64_t pos = offset, end = offset + len;

    while (p && pos < end) {
        struct vimg_extent e;
        if (vimg_block_status(img, pos, end - pos, VIMG_BS_CHAIN, &e) < 0) {
            p[0] = (struct piece){ offset, len, false };
            *count = 1;
            return p;
        }
        bool zero = e.flags & VIMG_BS_ZERO;
        if (n && p[n - 1].zero == zero) {
            p[n - 1].len += (uint32_t)e.length;
        } else {
            if (n == cap) {
                struct piece *q = realloc(p, 2 * cap * sizeof *p);
                if (!q) {
                    free(p);
                    return NULL;
                }
                p = q;
                cap *= 2;
            }
            p[n++] = (struct piece){ pos, (uint32_t)e.length, zero };
        }
        pos += e.length;
    }
    *count = n;
    return p;
}

static int cmd_read(struct conn *c, const struct request *r, uint8_t *buf)
{
    struct vimg_image *img = c->exp->img;

    if (!c->structured || (r->flags & NBD_CMD_FLAG_DF) || r->len == 0) {
        if (r->len && vimg_pread(img, buf, r->len, r->offset) < 0) {
            return lib_error_reply(c, r);
        }
        if (!c->structured) {
            return simple_reply(c, r, 0, buf, r->len);
        }
        if (r->len == 0) {
            return chunk(c, r, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE,
                         NULL, 0, NULL, 0);
        }
        return data_chunk(c, r, true, r->offset, buf, r->len);
    }
    /* Structured: holes go as hole chunks, with no bytes on the wire. */
    size_t n;
    struct piece *p = pieces_of(img, r->offset, r->len, &n);
    if (!p) {
        return error_reply(c, r, NBD_ENOMEM, "out of memory");
    }
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        bool last = n == 1;
        if (p[i].zero) {
            rc = hole_chunk(c, r, last, p[i].offset, p[i].len);
            continue;
        }
        uint8_t *at = buf + (p[i].offset - r->offset);
        if (vimg_pread(img, at, p[i].len, p[i].offset) < 0) {
            free(p);
            return lib_error_reply(c, r);
        }
        rc = data_chunk(c, r, last, p[i].offset, at, p[i].len);
    }
    if (rc == 0 && n > 1) {
        rc = chunk(c, r, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE, NULL, 0,
                   NULL, 0);
    }
    free(p);
    return rc;
}

static int cmd_write(struct conn *c, const struct request *r)
{
    unsigned f = (r->flags & NBD_CMD_FLAG_FUA) ? VIMG_WRITE_FUA : 0;
    if (r->len && vimg_pwrite(c->exp->img, r->data, r->len, r->offset,
                              f) < 0) {
        return lib_error_reply(c, r);
    }
    return ok_reply(c, r);
}

/* FUA on commands without a flag of their own: flush after them. */
static int fua(struct conn *c, const struct request *r)
{
    if ((r->flags & NBD_CMD_FLAG_FUA) && vimg_flush(c->exp->img) < 0) {
        return lib_error_reply(c, r);
    }
    return ok_reply(c, r);
}

static int cmd_write_zeroes(struct conn *c, const struct request *r)
{
    unsigned f = 0;

    if (c->exp->discard && !(r->flags & NBD_CMD_FLAG_NO_HOLE)) {
        f |= VIMG_ZERO_MAY_UNMAP;
    }
    if (r->flags & NBD_CMD_FLAG_FAST_ZERO) {
        f |= VIMG_ZERO_NO_FALLBACK;
    }
    if (r->len && vimg_zero(c->exp->img, r->offset, r->len, f) < 0) {
        if ((f & VIMG_ZERO_NO_FALLBACK) && vimg_get_errno() == ENOTSUP) {
            return error_reply(c, r, NBD_ENOTSUP, "zeroing would not be "
                               "faster than writing");
        }
        return lib_error_reply(c, r);
    }
    return fua(c, r);
}

static int cmd_trim(struct conn *c, const struct request *r)
{
    if (c->exp->discard && r->len &&
        vimg_discard(c->exp->img, r->offset, r->len) < 0) {
        return lib_error_reply(c, r);
    }
    return fua(c, r);
}

static int cmd_cache(struct conn *c, const struct request *r, uint8_t *buf)
{
    for (uint64_t at = 0; at < r->len; at += CACHE_CHUNK) {
        uint64_t n = r->len - at < CACHE_CHUNK ? r->len - at : CACHE_CHUNK;
        if (vimg_pread(c->exp->img, buf, n, r->offset + at) < 0) {
            return lib_error_reply(c, r);
        }
    }
    return ok_reply(c, r);
}

struct descriptors {
    uint8_t buf[4 + 8 * MAX_DESCRIPTORS]; /* context id, then pairs */
    size_t n, max;                        /* max <= MAX_DESCRIPTORS */
};

static void descriptors_init(struct descriptors *d, uint32_t id, bool one)
{
    store_be32(d->buf, id);
    d->n = 0;
    d->max = one ? 1 : MAX_DESCRIPTORS;
}

/* Add LEN bytes of status FLAGS, merged with the last descriptor when the
 * status is the same. False when the list is full. */
static bool add_descriptor(struct descriptors *d, uint32_t len,
                           uint32_t flags)
{
    if (len == 0) {
        return true;
    }
    if (d->n) {
        uint8_t *last = d->buf + 4 + 8 * (d->n - 1);
        if (load_be32(last + 4) == flags) {
            store_be32(last, load_be32(last) + len);
            return true;
        }
    }
    if (d->n == d->max) {
        return false;
    }
    store_be32(d->buf + 4 + 8 * d->n, len);
    store_be32(d->buf + 8 + 8 * d->n, flags);
    d->n++;
    return true;
}

static int send_descriptors(struct conn *c, const struct request *r,
                            const struct descriptors *d, bool last)
{
    return chunk(c, r, last ? NBD_REPLY_FLAG_DONE : 0,
                 NBD_REPLY_TYPE_BLOCK_STATUS, d->buf, 4 + 8 * d->n, NULL, 0);
}

/* base:allocation and qemu:allocation-depth, from one walk of block
 * status through the chain, each list as long as fits (one descriptor
 * with REQ_ONE): as qemu-nbd, the two may cover different lengths. */
static int allocation_status(struct conn *c, const struct request *r,
                             struct descriptors *base,
                             struct descriptors *depth)
{
    uint64_t pos = r->offset, end = r->offset + r->len;
    bool one = r->flags & NBD_CMD_FLAG_REQ_ONE;
    bool base_full = !c->want_base, depth_full = !c->want_depth;

    descriptors_init(base, CTX_BASE_ALLOCATION, one);
    descriptors_init(depth, CTX_ALLOCATION_DEPTH, one);
    while (pos < end && !(base_full && depth_full)) {
        struct vimg_extent e;
        if (vimg_block_status(c->exp->img, pos, end - pos, VIMG_BS_CHAIN,
                              &e) < 0) {
            return -1;
        }
        uint32_t b = (e.flags & VIMG_BS_DATA ? 0 : NBD_STATE_HOLE) |
                     (e.flags & VIMG_BS_ZERO ? NBD_STATE_ZERO : 0);
        uint32_t d = e.flags & VIMG_BS_ALLOCATED ? (uint32_t)e.depth + 1 : 0;
        base_full = base_full || !add_descriptor(base, (uint32_t)e.length, b);
        depth_full = depth_full ||
                     !add_descriptor(depth, (uint32_t)e.length, d);
        pos += e.length;
    }
    return 0;
}

/* qemu:dirty-bitmap:NAME: clean runs 0, dirty runs NBD_STATE_DIRTY, from
 * the request's offset on, until its end or a full list. */
struct dirty_walk {
    struct descriptors *d;
    uint64_t pos;
    bool full;
};

static int dirty_run(void *opaque, uint64_t offset, uint64_t len)
{
    struct dirty_walk *w = opaque;

    if (!add_descriptor(w->d, (uint32_t)(offset - w->pos), 0) ||
        !add_descriptor(w->d, (uint32_t)len, NBD_STATE_DIRTY)) {
        w->full = true;
        return 1;
    }
    w->pos = offset + len;
    return 0;
}

static int bitmap_status(struct conn *c, const struct request *r, size_t i,
                         struct descriptors *d)
{
    const struct nbd_bitmap *bm = &c->exp->bitmaps[i];
    struct dirty_walk w = { d, r->offset, false };

    descriptors_init(d, CTX_DIRTY_BITMAP(i), r->flags & NBD_CMD_FLAG_REQ_ONE);
    if (vimg_bitmap_dirty(bm->img, bm->name, r->offset, r->len, dirty_run,
                          &w) < 0) {
        return -1;
    }
    if (!w.full) {
        add_descriptor(d, (uint32_t)(r->offset + r->len - w.pos), 0);
    }
    return 0;
}

/* One chunk per selected context, in the order they were offered; each
 * list covers as much of the request as fits. */
static int cmd_block_status(struct conn *c, const struct request *r)
{
    struct descriptors *a = malloc(sizeof *a), *b = malloc(sizeof *b);
    size_t last = SIZE_MAX; /* the last bitmap selected */
    int rc = 0;

    if (!a || !b) {
        free(a);
        free(b);
        return error_reply(c, r, NBD_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < c->exp->n_bitmaps; i++) {
        if (c->want_bitmap[i]) {
            last = i;
        }
    }
    if (c->want_base || c->want_depth) {
        if (allocation_status(c, r, a, b) < 0) {
            rc = lib_error_reply(c, r);
            goto out;
        }
        bool no_bitmap = last == SIZE_MAX;
        if (c->want_base &&
            (rc = send_descriptors(c, r, a, !c->want_depth && no_bitmap)) < 0) {
            goto out;
        }
        if (c->want_depth &&
            (rc = send_descriptors(c, r, b, no_bitmap)) < 0) {
            goto out;
        }
    }
    for (size_t i = 0; i < c->exp->n_bitmaps && last != SIZE_MAX; i++) {
        if (!c->want_bitmap[i]) {
            continue;
        }
        if (bitmap_status(c, r, i, a) < 0) {
            /* An error chunk ends the reply, also after other chunks. */
            rc = lib_error_reply(c, r);
            goto out;
        }
        if ((rc = send_descriptors(c, r, a, i == last)) < 0) {
            goto out;
        }
    }
out:
    free(a);
    free(b);
    return rc;
}

/* Run one request and send its reply. BUF/CAP: the worker's read buffer. */
static void run(struct conn *c, const struct request *r, uint8_t **buf,
                size_t *cap)
{
    if (r->error) {
        error_reply(c, r, r->error, r->error == NBD_EPERM
                    ? "the export is read-only"
                    : r->error == NBD_ENOSPC
                    ? "request ends past the end of the export"
                    : "invalid request");
        return;
    }
    size_t need = r->type == NBD_CMD_READ ? r->len
                  : r->type == NBD_CMD_CACHE ? CACHE_CHUNK : 0;
    if (need > *cap) {
        uint8_t *nb = realloc(*buf, need);
        if (!nb) {
            error_reply(c, r, NBD_ENOMEM, "out of memory");
            return;
        }
        *buf = nb;
        *cap = need;
    }
    switch (r->type) {
    case NBD_CMD_READ: cmd_read(c, r, *buf); break;
    case NBD_CMD_WRITE: cmd_write(c, r); break;
    case NBD_CMD_FLUSH:
        if (vimg_flush(c->exp->img) < 0) {
            lib_error_reply(c, r);
        } else {
            ok_reply(c, r);
        }
        break;
    case NBD_CMD_TRIM: cmd_trim(c, r); break;
    case NBD_CMD_CACHE: cmd_cache(c, r, *buf); break;
    case NBD_CMD_WRITE_ZEROES: cmd_write_zeroes(c, r); break;
    case NBD_CMD_BLOCK_STATUS: cmd_block_status(c, r); break;
    default: error_reply(c, r, NBD_EINVAL, "unknown command"); break;
    }
}

static void *worker(void *opaque)
{
    struct tx *tx = opaque;
    uint8_t *buf = NULL;
    size_t cap = 0;

    pthread_mutex_lock(&tx->lock);
    for (;;) {
        while (!tx->head && !tx->stop) {
            pthread_cond_wait(&tx->work, &tx->lock);
        }
        struct request *r = tx->head;
        if (!r) {
            break;
        }
        tx->head = r->next;
        if (!tx->head) {
            tx->tail = NULL;
        }
        pthread_mutex_unlock(&tx->lock);
        run(tx->c, r, &buf, &cap);
        pthread_mutex_lock(&tx->lock);
        tx->inflight--;
        tx->bytes -= r->cost;
        pthread_cond_signal(&tx->room);
        free(r->data);
        free(r);
    }
    pthread_mutex_unlock(&tx->lock);
    free(buf);
    return NULL;
}

/* ---- Reading requests ------------------------------------------------ */

static bool any(const bool *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (v[i]) {
            return true;
        }
    }
    return false;
}

/* The NBD error for a request that must not reach the library, or 0. */
static uint32_t validate(const struct conn *c, const struct request *r)
{
    uint16_t allowed = NBD_CMD_FLAG_FUA;
    bool write = false, out = range_outside(r->offset, r->len, c->size);

    switch (r->type) {
    case NBD_CMD_READ:
        if (c->structured) {
            allowed |= NBD_CMD_FLAG_DF;
        }
        if (r->len > NBD_MAX_PAYLOAD) {
            return NBD_EINVAL;
        }
        break;
    case NBD_CMD_CACHE:
        if (r->len > NBD_MAX_PAYLOAD) {
            return NBD_EINVAL;
        }
        break;
    case NBD_CMD_WRITE:
    case NBD_CMD_TRIM:
        write = true;
        break;
    case NBD_CMD_WRITE_ZEROES:
        write = true;
        allowed |= NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_FAST_ZERO;
        break;
    case NBD_CMD_FLUSH:
        out = false;
        break;
    case NBD_CMD_BLOCK_STATUS:
        allowed |= NBD_CMD_FLAG_REQ_ONE;
        if (!c->want_base && !c->want_depth && !any(c->want_bitmap,
                                                     c->exp->n_bitmaps)) {
            return NBD_EINVAL;
        }
        if (r->len == 0) {
            return NBD_EINVAL;
        }
        break;
    default:
        return NBD_EINVAL;
    }
    if (r->flags & ~allowed) {
        return NBD_EINVAL;
    }
    if (write && c->exp->readonly) {
        return NBD_EPERM;
    }
    if (out) {
        /* Writes past the end are "no space" by the protocol's advice. */
        return r->type == NBD_CMD_WRITE || r->type == NBD_CMD_WRITE_ZEROES
               ? NBD_ENOSPC : NBD_EINVAL;
    }
    return 0;
}

/* Read one request into a new struct; NULL at the end (clean or not). */
static struct request *read_request(struct conn *c, struct tx *tx,
                                    bool *disc)
{
    uint8_t h[NBD_REQUEST_SIZE];

    if (conn_read(c, h, sizeof h) < 0) {
        return NULL;
    }
    if (load_be32(h) != NBD_REQUEST_MAGIC) {
        c->dropped = true;
        return NULL;
    }
    struct request *r = calloc(1, sizeof *r);
    if (!r) {
        c->dropped = true;
        return NULL;
    }
    r->flags = load_be16(h + 4);
    r->type = load_be16(h + 6);
    r->cookie = load_be64(h + 8);
    r->offset = load_be64(h + 16);
    r->len = load_be32(h + 24);
    if (r->type == NBD_CMD_DISC) {
        free(r);
        *disc = true;
        return NULL;
    }
    r->error = validate(c, r);
    if (r->type == NBD_CMD_WRITE && r->len > NBD_MAX_PAYLOAD) {
        /* A payload this large cannot be refused without reading it. */
        free(r);
        c->dropped = true;
        return NULL;
    }
    if ((r->type == NBD_CMD_READ || r->type == NBD_CMD_WRITE) && !r->error) {
        r->cost = r->len;
    } else if (r->type == NBD_CMD_WRITE) {
        r->cost = r->len; /* refused, but its payload is still read */
    }
    /* Wait for room before reading the payload, so memory stays bounded. */
    pthread_mutex_lock(&tx->lock);
    while (tx->inflight && (tx->inflight >= MAX_INFLIGHT ||
                            tx->bytes + r->cost > MAX_INFLIGHT_BYTES)) {
        pthread_cond_wait(&tx->room, &tx->lock);
    }
    tx->inflight++;
    tx->bytes += r->cost;
    pthread_mutex_unlock(&tx->lock);
    if (r->type == NBD_CMD_WRITE && r->len) {
        r->data = malloc(r->len);
        if (!r->data || conn_read(c, r->data, r->len) < 0) {
            c->dropped = true;
        }
    }
    if (c->dropped) {
        pthread_mutex_lock(&tx->lock);
        tx->inflight--;
        tx->bytes -= r->cost;
        pthread_mutex_unlock(&tx->lock);
        free(r->data);
        free(r);
        return NULL;
    }
    return r;
}

int nbd_transmission(struct conn *c)
{
    struct tx tx = { .c = c };
    int n = c->cfg->workers > 0 ? c->cfg->workers : 1;
    pthread_t *th = calloc((size_t)n, sizeof *th);
    int started = 0;
    bool disc = false;

    if (!th) {
        return -1;
    }
    pthread_mutex_init(&tx.lock, NULL);
    pthread_cond_init(&tx.work, NULL);
    pthread_cond_init(&tx.room, NULL);
    while (started < n &&
           pthread_create(&th[started], NULL, worker, &tx) == 0) {
        started++;
    }
    if (started == 0) {
        c->dropped = true;
    }
    while (!c->dropped) {
        struct request *r = read_request(c, &tx, &disc);
        if (!r) {
            break;
        }
        pthread_mutex_lock(&tx.lock);
        if (tx.tail) {
            tx.tail->next = r;
        } else {
            tx.head = r;
        }
        tx.tail = r;
        pthread_cond_signal(&tx.work);
        pthread_mutex_unlock(&tx.lock);
    }
    /* NBD_CMD_DISC and the end of the stream: finish what is queued. */
    pthread_mutex_lock(&tx.lock);
    tx.stop = true;
    pthread_cond_broadcast(&tx.work);
    pthread_mutex_unlock(&tx.lock);
    for (int i = 0; i < started; i++) {
        pthread_join(th[i], NULL);
    }
    free(th);
    pthread_cond_destroy(&tx.room);
    pthread_cond_destroy(&tx.work);
    pthread_mutex_destroy(&tx.lock);
    return c->dropped ? -1 : 0;
}
