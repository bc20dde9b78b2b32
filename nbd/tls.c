/* TLS for the NBD server through GnuTLS: X.509 certificates laid out as
 * qemu's tls-creds-x509 reads them, or pre-shared keys in the keys.psk
 * format qemu and nbdkit share ("username:hexkey" lines). The session
 * runs over the client's transport, so the handshake time limit and the
 * fuzzer's in-memory stream apply to it unchanged. */
#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "server.h"

struct nbd_tls_creds {
    bool psk;
    bool verify_peer;
    gnutls_certificate_credentials_t x509;
    gnutls_psk_server_credentials_t pskc;
    char *authz;       /* the one identity admitted, or NULL: any */
};

struct nbd_tls_session {
    gnutls_session_t s;
    struct nbd_transport base;
};

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

struct nbd_tls_creds *nbd_tls_x509(const char *dir, bool verify_peer,
                                   char *errbuf, size_t errlen)
{
    struct nbd_tls_creds *c = calloc(1, sizeof *c);
    char ca[4096], cert[4096], key[4096];
    int r;

    if (!c) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    c->verify_peer = verify_peer;
    snprintf(ca, sizeof ca, "%s/ca-cert.pem", dir);
    snprintf(cert, sizeof cert, "%s/server-cert.pem", dir);
    snprintf(key, sizeof key, "%s/server-key.pem", dir);
    if ((r = gnutls_certificate_allocate_credentials(&c->x509)) < 0) {
        goto fail;
    }
    if (exists(ca) &&
        (r = gnutls_certificate_set_x509_trust_file(c->x509, ca,
                                                    GNUTLS_X509_FMT_PEM)) < 0) {
        snprintf(errbuf, errlen, "%s: %s", ca, gnutls_strerror(r));
        nbd_tls_free(c);
        return NULL;
    }
    if (verify_peer && !exists(ca)) {
        snprintf(errbuf, errlen, "%s: needed to verify clients: %s", ca,
                 strerror(ENOENT));
        nbd_tls_free(c);
        return NULL;
    }
    if ((r = gnutls_certificate_set_x509_key_file(c->x509, cert, key,
                                                  GNUTLS_X509_FMT_PEM)) < 0) {
        snprintf(errbuf, errlen, "%s, %s: %s", cert, key, gnutls_strerror(r));
        nbd_tls_free(c);
        return NULL;
    }
    return c;

fail:
    snprintf(errbuf, errlen, "%s: %s", dir, gnutls_strerror(r));
    nbd_tls_free(c);
    return NULL;
}

struct nbd_tls_creds *nbd_tls_psk(const char *file, char *errbuf,
                                  size_t errlen)
{
    struct nbd_tls_creds *c = calloc(1, sizeof *c);
    int r;

    if (!c) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    c->psk = true;
    if (!exists(file)) {
        snprintf(errbuf, errlen, "%s: %s", file, strerror(ENOENT));
        free(c);
        return NULL;
    }
    if ((r = gnutls_psk_allocate_server_credentials(&c->pskc)) < 0 ||
        (r = gnutls_psk_set_server_credentials_file(c->pskc, file)) < 0) {
        snprintf(errbuf, errlen, "%s: %s", file, gnutls_strerror(r));
        nbd_tls_free(c);
        return NULL;
    }
    return c;
}

int nbd_tls_set_authz(struct nbd_tls_creds *c, const char *identity)
{
    if (!c->psk && !c->verify_peer) {
        return -EINVAL;
    }
    free(c->authz);
    c->authz = strdup(identity);
    return c->authz ? 0 : -ENOMEM;
}

void nbd_tls_free(struct nbd_tls_creds *c)
{
    if (!c) {
        return;
    }
    free(c->authz);
    if (c->x509) {
        gnutls_certificate_free_credentials(c->x509);
    }
    if (c->pskc) {
        gnutls_psk_free_server_credentials(c->pskc);
    }
    free(c);
}

/* GnuTLS reads and writes the client's stream through these. */
static ssize_t pull(gnutls_transport_ptr_t p, void *buf, size_t len)
{
    struct nbd_tls_session *t = p;
    ssize_t n = t->base.recv(t->base.opaque, buf, len);
    if (n < 0) {
        gnutls_transport_set_errno(t->s, errno ? errno : EIO);
    }
    return n;
}

static ssize_t push(gnutls_transport_ptr_t p, const void *buf, size_t len)
{
    struct nbd_tls_session *t = p;
    struct iovec iov = { (void *)buf, len };
    if (t->base.sendv(t->base.opaque, &iov, 1) < 0) {
        gnutls_transport_set_errno(t->s, errno ? errno : EIO);
        return -1;
    }
    return (ssize_t)len;
}

static ssize_t tls_recv(void *opaque, void *buf, size_t len)
{
    struct nbd_tls_session *t = opaque;
    for (;;) {
        ssize_t n = gnutls_record_recv(t->s, buf, len);
        if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
            continue;
        }
        if (n == GNUTLS_E_PREMATURE_TERMINATION) {
            return 0;
        }
        return n < 0 ? -1 : n;
    }
}

static int tls_sendv(void *opaque, const struct iovec *iov, int n)
{
    struct nbd_tls_session *t = opaque;

    /* One message, as few records as possible. */
    gnutls_record_cork(t->s);
    for (int i = 0; i < n; i++) {
        const char *p = iov[i].iov_base;
        size_t left = iov[i].iov_len;
        while (left > 0) {
            ssize_t w = gnutls_record_send(t->s, p, left);
            if (w == GNUTLS_E_AGAIN || w == GNUTLS_E_INTERRUPTED) {
                continue;
            }
            if (w < 0) {
                return -1;
            }
            p += w;
            left -= (size_t)w;
        }
    }
    for (;;) {
        int r = gnutls_record_uncork(t->s, GNUTLS_RECORD_WAIT);
        if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
            continue;
        }
        return r < 0 ? -1 : 0;
    }
}

/* The distinguished name of the client's certificate, already verified,
 * into BUF; false when there is none. */
static bool peer_dn(gnutls_session_t s, char *buf, size_t len)
{
    unsigned n = 0;
    const gnutls_datum_t *certs = gnutls_certificate_get_peers(s, &n);
    gnutls_x509_crt_t crt;
    bool ok = false;

    if (!certs || n == 0 || gnutls_x509_crt_init(&crt) < 0) {
        return false;
    }
    if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) == 0 &&
        gnutls_x509_crt_get_dn(crt, buf, &len) == 0) {
        ok = true;
    }
    gnutls_x509_crt_deinit(crt);
    return ok;
}

/* Whether the client of S is the one C admits: the comparison qemu's
 * authz-simple makes, an exact match of the whole string. */
static bool authorized(const struct nbd_tls_creds *c, gnutls_session_t s)
{
    char dn[4096];
    const char *id = NULL;

    if (!c->authz) {
        return true;
    }
    if (c->psk) {
        id = gnutls_psk_server_get_username(s);
    } else if (peer_dn(s, dn, sizeof dn)) {
        id = dn;
    }
    return id && strcmp(id, c->authz) == 0;
}

static void tls_set_deadline(void *opaque, unsigned seconds)
{
    struct nbd_tls_session *t = opaque;
    if (t->base.set_deadline) {
        t->base.set_deadline(t->base.opaque, seconds);
    }
}

int nbd_tls_start(struct nbd_tls_creds *c, const struct nbd_transport *base,
                  struct nbd_transport *out, struct nbd_tls_session **session)
{
    struct nbd_tls_session *t = calloc(1, sizeof *t);
    int r;

    *session = NULL;
    if (!t) {
        return -1;
    }
    t->base = *base;
    if (gnutls_init(&t->s, GNUTLS_SERVER) < 0) {
        free(t);
        return -1;
    }
    if (c->psk) {
        r = gnutls_priority_set_direct(t->s, "NORMAL:+ECDHE-PSK:+DHE-PSK:+PSK",
                                       NULL);
        if (r == 0) {
            r = gnutls_credentials_set(t->s, GNUTLS_CRD_PSK, c->pskc);
        }
    } else {
        r = gnutls_set_default_priority(t->s);
        if (r == 0) {
            r = gnutls_credentials_set(t->s, GNUTLS_CRD_CERTIFICATE, c->x509);
        }
        if (c->verify_peer) {
            gnutls_certificate_server_set_request(t->s, GNUTLS_CERT_REQUIRE);
        }
    }
    if (r == 0) {
        gnutls_transport_set_ptr(t->s, t);
        gnutls_transport_set_pull_function(t->s, pull);
        gnutls_transport_set_push_function(t->s, push);
        do {
            r = gnutls_handshake(t->s);
        } while (r < 0 && !gnutls_error_is_fatal(r));
    }
    if (r == 0 && !c->psk && c->verify_peer) {
        unsigned status = 0;
        if (gnutls_certificate_verify_peers2(t->s, &status) < 0 ||
            status != 0) {
            r = -1;
        }
    }
    if (r == 0 && !authorized(c, t->s)) {
        r = -1;
    }
    if (r < 0) {
        gnutls_deinit(t->s);
        free(t);
        return -1;
    }
    out->recv = tls_recv;
    out->sendv = tls_sendv;
    out->set_deadline = tls_set_deadline;
    out->opaque = t;
    *session = t;
    return 0;
}

void nbd_tls_end(struct nbd_tls_session *t)
{
    if (!t) {
        return;
    }
    /* A courtesy close_notify; the peer may be gone already. */
    (void)gnutls_bye(t->s, GNUTLS_SHUT_WR);
    gnutls_deinit(t->s);
    free(t);
}
