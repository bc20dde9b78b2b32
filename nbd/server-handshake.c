/* The NBD server's connection setup: transports, the fixed newstyle
 * handshake and option haggling (doc/proto.md, "Handshake"). Every
 * length the client sends is checked against what was actually sent
 * before use; malformed options get an error reply, a broken framing
 * (bad magic, unknown client flags) drops the client. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../common/byteswap.h"
#include "server-int.h"

/* Option data beyond this is skipped and answered NBD_REP_ERR_TOO_BIG:
 * no option we know needs more (names and queries are 4 KiB at most). */
#define MAX_OPTION_DATA (64u << 10)

/* ---- Transports ------------------------------------------------------ */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static ssize_t fd_recv(void *opaque, void *buf, size_t len)
{
    struct nbd_fd_transport *s = opaque;

    for (;;) {
        if (s->deadline_ms) {
            int64_t left = s->deadline_ms - now_ms();
            struct pollfd p = { .fd = s->fd, .events = POLLIN };
            if (left <= 0) {
                errno = ETIMEDOUT;
                return -1;
            }
            int r = poll(&p, 1, (int)(left > 60000 ? 60000 : left));
            if (r < 0 && errno != EINTR) {
                return -1;
            }
            if (r <= 0) {
                continue;
            }
        }
        ssize_t n = recv(s->fd, buf, len, 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        return n;
    }
}

static int fd_sendv(void *opaque, const struct iovec *iov, int n)
{
    struct nbd_fd_transport *s = opaque;
    struct iovec v[8];
    struct msghdr m = { .msg_iov = v };

    if (n > 8) {
        errno = EINVAL;
        return -1;
    }
    memcpy(v, iov, (size_t)n * sizeof *v);
    m.msg_iovlen = (size_t)n;
    while (m.msg_iovlen > 0) {
        ssize_t w = sendmsg(s->fd, &m, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        while (m.msg_iovlen > 0 && (size_t)w >= m.msg_iov->iov_len) {
            w -= (ssize_t)m.msg_iov->iov_len;
            m.msg_iov++;
            m.msg_iovlen--;
        }
        if (m.msg_iovlen > 0) {
            m.msg_iov->iov_base = (char *)m.msg_iov->iov_base + w;
            m.msg_iov->iov_len -= (size_t)w;
        }
    }
    return 0;
}

static void fd_set_deadline(void *opaque, unsigned seconds)
{
    struct nbd_fd_transport *s = opaque;
    s->deadline_ms = seconds ? now_ms() + (int64_t)seconds * 1000 : 0;
}

void nbd_fd_transport_init(struct nbd_transport *t,
                           struct nbd_fd_transport *state, int fd)
{
    state->fd = fd;
    state->deadline_ms = 0;
    t->recv = fd_recv;
    t->sendv = fd_sendv;
    t->set_deadline = fd_set_deadline;
    t->opaque = state;
}

int conn_read(struct conn *c, void *buf, size_t len)
{
    char *p = buf;

    while (len > 0 && !c->dropped) {
        ssize_t n = c->t->recv(c->t->opaque, p, len);
        if (n <= 0) {
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return c->dropped ? -1 : 0;
}

int conn_sendv(struct conn *c, const struct iovec *iov, int n)
{
    int r = -1;

    pthread_mutex_lock(&c->send_lock);
    if (!c->dropped) {
        r = c->t->sendv(c->t->opaque, iov, n);
        if (r < 0) {
            c->dropped = true;
        }
    }
    pthread_mutex_unlock(&c->send_lock);
    return r;
}

/* Skip LEN bytes of option data the server will not use. */
static int skip(struct conn *c, uint64_t len)
{
    char buf[4096];
    while (len > 0) {
        size_t n = len < sizeof buf ? (size_t)len : sizeof buf;
        if (conn_read(c, buf, n) < 0) {
            return -1;
        }
        len -= n;
    }
    return 0;
}

/* ---- Option replies -------------------------------------------------- */

static int reply(struct conn *c, uint32_t opt, uint32_t type,
                 const void *data, size_t len)
{
    uint8_t h[NBD_OPTION_REPLY_SIZE];
    struct iovec iov[2] = { { h, sizeof h }, { (void *)data, len } };

    store_be64(h, NBD_REP_MAGIC);
    store_be32(h + 8, opt);
    store_be32(h + 12, type);
    store_be32(h + 16, (uint32_t)len);
    return conn_sendv(c, iov, len ? 2 : 1);
}

static int reply_error(struct conn *c, uint32_t opt, uint32_t type,
                       const char *msg)
{
    return reply(c, opt, type, msg, strlen(msg));
}

uint16_t nbd_export_flags(const struct conn *c)
{
    uint16_t f = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA |
                 NBD_FLAG_SEND_CACHE;

    if (c->exp->readonly) {
        f |= NBD_FLAG_READ_ONLY;
    } else {
        f |= NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES |
             NBD_FLAG_SEND_FAST_ZERO;
    }
    if (c->structured) {
        f |= NBD_FLAG_SEND_DF;
    }
    if (c->exp->multi_conn) {
        f |= NBD_FLAG_CAN_MULTI_CONN;
    }
    return f;
}

static int send_info(struct conn *c, uint32_t opt, uint16_t type,
                     const void *payload, size_t len)
{
    uint8_t buf[2 + NBD_MAX_STRING];
    store_be16(buf, type);
    memcpy(buf + 2, payload, len);
    return reply(c, opt, NBD_REP_INFO, buf, 2 + len);
}

/* ---- Options --------------------------------------------------------- */

static bool name_matches(const struct conn *c, const uint8_t *name,
                         uint32_t len)
{
    return strlen(c->exp->name) == len && memcmp(c->exp->name, name, len) == 0;
}

/* NBD_OPT_INFO and NBD_OPT_GO: name, then a list of info requests.
 * Returns 1 when GO succeeded. */
static int opt_info(struct conn *c, uint32_t opt, const uint8_t *d,
                    uint32_t len)
{
    if (len < 6) {
        return reply_error(c, opt, NBD_REP_ERR_INVALID, "option too short");
    }
    uint32_t nlen = load_be32(d);
    if (nlen > NBD_MAX_STRING || nlen > len - 6) {
        return reply_error(c, opt, NBD_REP_ERR_INVALID,
                           "export name length is invalid");
    }
    uint16_t nreq = load_be16(d + 4 + nlen);
    if ((uint64_t)4 + nlen + 2 + 2 * (uint64_t)nreq != len) {
        return reply_error(c, opt, NBD_REP_ERR_INVALID,
                           "information request list has the wrong length");
    }
    if (!name_matches(c, d + 4, nlen)) {
        return reply_error(c, opt, NBD_REP_ERR_UNKNOWN, "no such export");
    }
    bool want_name = false, want_desc = false;
    for (uint16_t i = 0; i < nreq; i++) {
        uint16_t r = load_be16(d + 4 + nlen + 2 + 2 * i);
        want_name |= r == NBD_INFO_NAME;
        want_desc |= r == NBD_INFO_DESCRIPTION;
    }
    uint8_t ex[10];
    store_be64(ex, c->size);
    store_be16(ex + 8, nbd_export_flags(c));
    /* Our constraints are the protocol's defaults except the maximum: any
     * alignment works (the library bounces unaligned I/O). */
    uint8_t bs[12];
    store_be32(bs, 1);
    store_be32(bs + 4, 4096);
    store_be32(bs + 8, NBD_MAX_PAYLOAD);
    if (send_info(c, opt, NBD_INFO_EXPORT, ex, sizeof ex) < 0 ||
        send_info(c, opt, NBD_INFO_BLOCK_SIZE, bs, sizeof bs) < 0 ||
        (want_name && send_info(c, opt, NBD_INFO_NAME, c->exp->name,
                                strlen(c->exp->name)) < 0) ||
        (want_desc && c->exp->description &&
         send_info(c, opt, NBD_INFO_DESCRIPTION, c->exp->description,
                   strnlen(c->exp->description, NBD_MAX_STRING)) < 0) ||
        reply(c, opt, NBD_REP_ACK, NULL, 0) < 0) {
        return -1;
    }
    return opt == NBD_OPT_GO ? 1 : 0;
}

#define BITMAP_PREFIX "qemu:dirty-bitmap:"

/* Whether the LEN bytes at Q are the string S. */
static bool equals(const uint8_t *q, uint32_t len, const char *s)
{
    return strlen(s) == len && memcmp(q, s, len) == 0;
}

/* Which of our contexts QUERY selects, marked in *BASE, *DEPTH and
 * c->match_bitmap. As qemu-nbd: LIST also takes "base:", "qemu:" and
 * "qemu:dirty-bitmap:" as wildcards for every context under them; SET
 * only whole names. */
static void match_query(const struct conn *c, const uint8_t *q, uint32_t len,
                        bool list, bool *base, bool *depth)
{
    static const size_t plen = sizeof BITMAP_PREFIX - 1;
    bool all_qemu = list && equals(q, len, "qemu:");

    if (equals(q, len, "base:allocation") ||
        (list && equals(q, len, "base:"))) {
        *base = true;
    }
    if (c->exp->allocation_depth &&
        (equals(q, len, "qemu:allocation-depth") || all_qemu)) {
        *depth = true;
    }
    bool all_bitmaps = all_qemu || (list && equals(q, len, BITMAP_PREFIX));
    bool named = len > plen && memcmp(q, BITMAP_PREFIX, plen) == 0;
    for (size_t i = 0; i < c->exp->n_bitmaps && (all_bitmaps || named);
         i++) {
        if (all_bitmaps ||
            equals(q + plen, len - (uint32_t)plen, c->exp->bitmaps[i].name)) {
            c->match_bitmap[i] = true;
        }
    }
}

static int send_context(struct conn *c, uint32_t opt, uint32_t id,
                        const char *prefix, const char *name)
{
    uint8_t buf[4 + sizeof BITMAP_PREFIX + NBD_MAX_BITMAP_NAME];
    size_t np = strlen(prefix);
    size_t n = strnlen(name, NBD_MAX_BITMAP_NAME);

    store_be32(buf, id);
    memcpy(buf + 4, prefix, np);
    memcpy(buf + 4 + np, name, n);
    return reply(c, opt, NBD_REP_META_CONTEXT, buf, 4 + np + n);
}

static int opt_meta_context(struct conn *c, uint32_t opt, const uint8_t *d,
                            uint32_t len)
{
    bool list = opt == NBD_OPT_LIST_META_CONTEXT;
    bool base = false, depth = false;
    size_t nb = c->exp->n_bitmaps;

    if (!list) {
        /* SET replaces the selection even when it fails. */
        c->want_base = c->want_depth = false;
        memset(c->want_bitmap, 0, nb * sizeof *c->want_bitmap);
    }
    memset(c->match_bitmap, 0, nb * sizeof *c->match_bitmap);
    if (!c->structured) {
        return reply_error(c, opt, NBD_REP_ERR_INVALID,
                           "structured replies have not been negotiated");
    }
    if (len < 8) {
        return reply_error(c, opt, NBD_REP_ERR_INVALID, "option too short");
    }
    uint32_t nlen = load_be32(d);
    if (nlen > NBD_MAX_STRING || nlen > len - 8) {
        return reply_error(c, opt, NBD_REP_ERR_INVALID,
                           "export name length is invalid");
    }
    const uint8_t *name = d + 4;
    uint32_t nq = load_be32(d + 4 + nlen);
    uint64_t at = 8 + (uint64_t)nlen;
    for (uint32_t i = 0; i < nq; i++) {
        uint32_t qlen;
        if (len - at < 4 || (qlen = load_be32(d + at)) > len - at - 4 ||
            qlen > NBD_MAX_STRING) {
            return reply_error(c, opt, NBD_REP_ERR_INVALID,
                               "query runs past the end of the option");
        }
        match_query(c, d + at + 4, qlen, list, &base, &depth);
        at += 4 + (uint64_t)qlen;
    }
    if (at != len) {
        return reply_error(c, opt, NBD_REP_ERR_INVALID,
                           "option has trailing bytes");
    }
    if (!name_matches(c, name, nlen)) {
        return reply_error(c, opt, NBD_REP_ERR_UNKNOWN, "no such export");
    }
    if (list && nq == 0) {
        base = true;
        depth = c->exp->allocation_depth;
        memset(c->match_bitmap, 1, nb * sizeof *c->match_bitmap);
    }
    if ((base && send_context(c, opt, list ? 0 : CTX_BASE_ALLOCATION,
                              "base:allocation", "") < 0) ||
        (depth && send_context(c, opt, list ? 0 : CTX_ALLOCATION_DEPTH,
                               "qemu:allocation-depth", "") < 0)) {
        return -1;
    }
    for (size_t i = 0; i < nb; i++) {
        if (c->match_bitmap[i] &&
            send_context(c, opt, list ? 0 : CTX_DIRTY_BITMAP(i),
                         BITMAP_PREFIX, c->exp->bitmaps[i].name) < 0) {
            return -1;
        }
    }
    if (!list) {
        c->want_base = base;
        c->want_depth = depth;
        memcpy(c->want_bitmap, c->match_bitmap, nb * sizeof *c->want_bitmap);
    }
    return reply(c, opt, NBD_REP_ACK, NULL, 0);
}

static int opt_list(struct conn *c, uint32_t len)
{
    uint8_t buf[4 + 2 * NBD_MAX_STRING];
    size_t n = strlen(c->exp->name);
    size_t dn = c->exp->description ? strnlen(c->exp->description,
                                              NBD_MAX_STRING) : 0;

    if (len != 0) {
        return reply_error(c, NBD_OPT_LIST, NBD_REP_ERR_INVALID,
                           "NBD_OPT_LIST takes no data");
    }
    store_be32(buf, (uint32_t)n);
    memcpy(buf + 4, c->exp->name, n);
    if (dn) {
        memcpy(buf + 4 + n, c->exp->description, dn);
    }
    if (reply(c, NBD_OPT_LIST, NBD_REP_SERVER, buf, 4 + n + dn) < 0) {
        return -1;
    }
    return reply(c, NBD_OPT_LIST, NBD_REP_ACK, NULL, 0);
}

static int opt_starttls(struct conn *c, uint32_t len)
{
    if (!c->cfg->tls) {
        return reply_error(c, NBD_OPT_STARTTLS, NBD_REP_ERR_POLICY,
                           "TLS is not configured on this server");
    }
    if (c->tls) {
        return reply_error(c, NBD_OPT_STARTTLS, NBD_REP_ERR_INVALID,
                           "TLS is already running");
    }
    if (len != 0) {
        return reply_error(c, NBD_OPT_STARTTLS, NBD_REP_ERR_INVALID,
                           "NBD_OPT_STARTTLS takes no data");
    }
    if (reply(c, NBD_OPT_STARTTLS, NBD_REP_ACK, NULL, 0) < 0 ||
        nbd_tls_start(c->cfg->tls, &c->base, &c->tls_t, &c->tls) < 0) {
        c->dropped = true;
        return -1;
    }
    c->t = &c->tls_t;
    /* Nothing negotiated in the clear survives the upgrade. */
    c->structured = c->want_base = c->want_depth = false;
    memset(c->want_bitmap, 0, c->exp->n_bitmaps * sizeof *c->want_bitmap);
    return 0;
}

/* One option: 1 to enter transmission, 0 to go on, -1 to drop, 2 when
 * the client aborted. */
static int option(struct conn *c)
{
    uint8_t h[NBD_OPTION_HEADER_SIZE];

    if (conn_read(c, h, sizeof h) < 0) {
        return -1;
    }
    if (load_be64(h) != NBD_IHAVEOPT) {
        return -1;
    }
    uint32_t opt = load_be32(h + 8), len = load_be32(h + 12);
    bool need_tls = c->cfg->tls && !c->tls;

    if (opt == NBD_OPT_EXPORT_NAME && (len > NBD_MAX_STRING || need_tls)) {
        return -1; /* cannot be refused with a reply */
    }
    if (len > MAX_OPTION_DATA) {
        if (skip(c, len) < 0) {
            return -1;
        }
        return reply_error(c, opt, NBD_REP_ERR_TOO_BIG, "option too long");
    }
    uint8_t *d = malloc(len ? len : 1);
    if (!d) {
        return -1;
    }
    int r;
    if (conn_read(c, d, len) < 0) {
        r = -1;
    } else if (need_tls && opt != NBD_OPT_STARTTLS && opt != NBD_OPT_ABORT) {
        r = reply_error(c, opt, NBD_REP_ERR_TLS_REQD, "TLS is required");
    } else {
        switch (opt) {
        case NBD_OPT_EXPORT_NAME:
            if (!name_matches(c, d, len)) {
                r = -1;
                break;
            }
            uint8_t buf[10 + 124] = { 0 };
            store_be64(buf, c->size);
            store_be16(buf + 8, nbd_export_flags(c));
            struct iovec iov = { buf, c->no_zeroes ? 10 : sizeof buf };
            r = conn_sendv(c, &iov, 1) < 0 ? -1 : 1;
            break;
        case NBD_OPT_ABORT:
            /* The client may already be gone: the reply is a courtesy. */
            (void)reply(c, opt, NBD_REP_ACK, NULL, 0);
            r = 2;
            break;
        case NBD_OPT_LIST:
            r = opt_list(c, len);
            break;
        case NBD_OPT_STARTTLS:
            r = opt_starttls(c, len);
            break;
        case NBD_OPT_INFO:
        case NBD_OPT_GO:
            r = opt_info(c, opt, d, len);
            break;
        case NBD_OPT_STRUCTURED_REPLY:
            if (len != 0) {
                r = reply_error(c, opt, NBD_REP_ERR_INVALID,
                                "NBD_OPT_STRUCTURED_REPLY takes no data");
            } else {
                c->structured = true;
                r = reply(c, opt, NBD_REP_ACK, NULL, 0);
            }
            break;
        case NBD_OPT_LIST_META_CONTEXT:
        case NBD_OPT_SET_META_CONTEXT:
            r = opt_meta_context(c, opt, d, len);
            break;
        default:
            r = reply_error(c, opt, NBD_REP_ERR_UNSUP, "unknown option");
            break;
        }
    }
    free(d);
    return r;
}

int nbd_handshake(struct conn *c)
{
    uint8_t hello[18], cflags[4];
    struct iovec iov = { hello, sizeof hello };

    store_be64(hello, NBD_MAGIC);
    store_be64(hello + 8, NBD_IHAVEOPT);
    store_be16(hello + 16, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
    if (conn_sendv(c, &iov, 1) < 0 || conn_read(c, cflags, 4) < 0) {
        return -1;
    }
    uint32_t f = load_be32(cflags);
    if (f & ~(uint32_t)(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)) {
        return -1;
    }
    /* TLS needs fixed newstyle (STARTTLS is an option). */
    if (c->cfg->tls && !(f & NBD_FLAG_C_FIXED_NEWSTYLE)) {
        return -1;
    }
    c->no_zeroes = f & NBD_FLAG_C_NO_ZEROES;
    for (;;) {
        int r = option(c);
        if (r < 0 || c->dropped) {
            return -1;
        }
        if (r == 1) {
            return 1;
        }
        if (r == 2) {
            return 0;
        }
    }
}

int nbd_server_run(const struct nbd_server_config *cfg,
                   const struct nbd_transport *t)
{
    struct conn c = { .cfg = cfg, .exp = cfg->exp, .base = *t, .t = &c.base };
    int64_t size = vimg_get_size(cfg->exp->img);
    int r;

    if (size < 0) {
        return -1;
    }
    c.size = (uint64_t)size;
    /* Two flags per bitmap: selected, and matched by the option being
     * parsed. */
    c.want_bitmap = calloc(2 * cfg->exp->n_bitmaps + 1, sizeof (bool));
    if (!c.want_bitmap) {
        return -1;
    }
    c.match_bitmap = c.want_bitmap + cfg->exp->n_bitmaps;
    pthread_mutex_init(&c.send_lock, NULL);
    if (t->set_deadline && cfg->handshake_limit) {
        t->set_deadline(t->opaque, cfg->handshake_limit);
    }
    r = nbd_handshake(&c);
    if (t->set_deadline) {
        t->set_deadline(t->opaque, 0);
    }
    if (r == 1) {
        r = nbd_transmission(&c);
    }
    if (c.tls) {
        nbd_tls_end(c.tls);
    }
    pthread_mutex_destroy(&c.send_lock);
    free(c.want_bitmap);
    return r < 0 || c.dropped ? -1 : 0;
}
