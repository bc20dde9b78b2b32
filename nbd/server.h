/* The NBD server: one client connection at a time per call, over any
 * byte transport (a socket, TLS on a socket, or a buffer under the
 * fuzzer). Built only on the public header vimg/vimg.h. */
#ifndef VIMG_NBD_SERVER_H
#define VIMG_NBD_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "vimg/vimg.h"

/* Largest READ or WRITE payload, and the maximum block size advertised:
 * the size the protocol says no client should be refused (2^25). A WRITE
 * longer than this drops the connection (its payload cannot be skipped
 * cheaply); a longer READ or CACHE gets EINVAL. */
#define NBD_MAX_PAYLOAD (32u << 20)

/* A persistent dirty bitmap offered as the qemu:dirty-bitmap:NAME
 * metadata context (qemu-nbd -B NAME). */
struct nbd_bitmap {
    struct vimg_image *img;   /* borrowed: the image of the export's chain
                                 that holds the bitmap */
    const char *name;         /* at most NBD_MAX_BITMAP_NAME bytes */
};
#define NBD_MAX_BITMAP_NAME 1023 /* qcow2's limit */

/* What one server exports. */
struct nbd_export {
    struct vimg_image *img;   /* borrowed; thread-safe calls only */
    const char *name;         /* export name; "" is the default export */
    const char *description;  /* NBD_INFO_DESCRIPTION, or NULL */
    bool readonly;
    bool multi_conn;          /* NBD_FLAG_CAN_MULTI_CONN: several clients
                                 share IMG, so flushes are seen by all */
    bool allocation_depth;    /* offer the qemu:allocation-depth context */
    bool discard;             /* TRIM deallocates, WRITE_ZEROES may unmap
                                 (qemu-nbd --discard=unmap) */
    const struct nbd_bitmap *bitmaps; /* offered in this order */
    size_t n_bitmaps;
};

/* A byte stream to the client. RECV returns the bytes read (> 0), 0 at
 * the end of the stream, -1 on error or expiry of the deadline. SENDV
 * sends all of IOV or returns -1. SET_DEADLINE (may be NULL) makes RECV
 * fail after SECONDS from now (0: never). */
struct nbd_transport {
    ssize_t (*recv)(void *opaque, void *buf, size_t len);
    int (*sendv)(void *opaque, const struct iovec *iov, int n);
    void (*set_deadline)(void *opaque, unsigned seconds);
    void *opaque;
};

/* A connected socket as a transport; STATE must outlive T. */
struct nbd_fd_transport {
    int fd;
    int64_t deadline_ms;   /* monotonic; 0: none */
};
void nbd_fd_transport_init(struct nbd_transport *t,
                           struct nbd_fd_transport *state, int fd);

/* Server-side TLS credentials (nbd/tls.c). */
struct nbd_tls_creds;
/* X.509: DIR holds ca-cert.pem (optional unless VERIFY_PEER: clients
 * must then show a certificate it signed), server-cert.pem and
 * server-key.pem, as qemu's tls-creds-x509 reads it. Returns NULL with
 * the problem, naming the file, in ERRBUF; prints nothing. */
struct nbd_tls_creds *nbd_tls_x509(const char *dir, bool verify_peer,
                                   char *errbuf, size_t errlen);
/* PSK: FILE holds "username:hexkey" lines (qemu's keys.psk, nbdkit's
 * --tls-psk). */
struct nbd_tls_creds *nbd_tls_psk(const char *file, char *errbuf,
                                  size_t errlen);
/* Admit only the client whose identity is IDENTITY (qemu's authz-simple
 * object, named by --tls-authz): with X.509, the distinguished name of
 * its verified certificate as GnuTLS and QEMU write it, in the
 * certificate's order ("C=GB,O=Example,CN=alice"), with PSK its
 * username. Any other client is dropped right after
 * the TLS handshake. IDENTITY is copied. Returns 0, -ENOMEM, or -EINVAL
 * when C are X.509 credentials that do not verify clients (there would
 * be no identity to check). */
int nbd_tls_set_authz(struct nbd_tls_creds *c, const char *identity);
void nbd_tls_free(struct nbd_tls_creds *c);

struct nbd_server_config {
    const struct nbd_export *exp;
    struct nbd_tls_creds *tls;  /* NULL: no TLS; else TLS is required */
    unsigned handshake_limit;   /* seconds for the handshake; 0: none */
    int workers;                /* requests run in parallel per client */
};

/* Serve one client over T until it disconnects. Returns 0 when it ended
 * cleanly (NBD_OPT_ABORT, NBD_CMD_DISC, or the end of the stream between
 * messages) and -1 when the server dropped it (protocol violation,
 * failed TLS, time limit, transport error). Never touches the image
 * outside the export's bounds. */
int nbd_server_run(const struct nbd_server_config *cfg,
                   const struct nbd_transport *t);

/* Internal to nbd/: TLS on top of BASE. On success *OUT sends and
 * receives through the TLS session, and *SESSION must be freed with
 * nbd_tls_end() after the last use of *OUT. */
struct nbd_tls_session;
int nbd_tls_start(struct nbd_tls_creds *c, const struct nbd_transport *base,
                  struct nbd_transport *out, struct nbd_tls_session **session);
void nbd_tls_end(struct nbd_tls_session *s);

#endif
