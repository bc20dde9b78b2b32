/* Private to the NBD server: one client's connection state, shared by the
 * handshake (server-handshake.c) and the request loop (server-requests.c). */
#ifndef VIMG_NBD_SERVER_INT_H
#define VIMG_NBD_SERVER_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "nbd-proto.h"
#include "server.h"

/* Metadata context ids handed out by NBD_OPT_SET_META_CONTEXT. */
#define CTX_BASE_ALLOCATION 1
#define CTX_ALLOCATION_DEPTH 2
#define CTX_DIRTY_BITMAP(i) (3 + (uint32_t)(i)) /* exp->bitmaps[i] */

struct conn {
    const struct nbd_server_config *cfg;
    const struct nbd_export *exp;
    struct nbd_transport base;    /* the client's stream */
    struct nbd_transport tls_t;   /* TLS over BASE once started */
    const struct nbd_transport *t; /* the one in use */
    struct nbd_tls_session *tls;
    uint64_t size;                /* the export's size */
    bool no_zeroes;               /* NBD_FLAG_C_NO_ZEROES */
    bool structured;              /* NBD_OPT_STRUCTURED_REPLY acked */
    bool want_base, want_depth;   /* contexts selected */
    bool *want_bitmap;            /* exp->n_bitmaps of them */
    bool *match_bitmap;           /* scratch for option parsing, as long */
    _Atomic bool dropped;         /* hard disconnect: stop at once */
    pthread_mutex_t send_lock;    /* one message on the wire at a time */
};

/* Read exactly LEN bytes; -1 at the end of the stream or on error. */
int conn_read(struct conn *c, void *buf, size_t len);
/* Send the buffers as one message (under send_lock); -1 marks the
 * connection dropped. */
int conn_sendv(struct conn *c, const struct iovec *iov, int n);

/* Option haggling. Returns 1 to enter transmission, 0 when the client
 * ended the session cleanly, -1 when it was dropped. */
int nbd_handshake(struct conn *c);
/* The transmission phase until NBD_CMD_DISC or the end of the stream. */
int nbd_transmission(struct conn *c);
/* Transmission flags for this export and connection. */
uint16_t nbd_export_flags(const struct conn *c);

#endif
