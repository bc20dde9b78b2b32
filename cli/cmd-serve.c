/* vimg serve [options] IMAGE: export an image over NBD, with qemu-nbd's
 * options where they overlap. The protocol lives in nbd/; this file opens
 * the image, listens, accepts clients (one thread each) and shuts down
 * cleanly on SIGINT, SIGTERM or SIGHUP. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../nbd/server.h"
#include "cli.h"

#define MAX_LISTEN 16
#define WORKERS_PER_CLIENT 4

struct client {
    struct client *next;
    struct server *srv;
    int fd;
    pthread_t thread;
    bool done;
};

struct server {
    struct nbd_server_config cfg;
    int listen_fd[MAX_LISTEN];
    int n_listen;
    int max_clients;
    bool persistent;
    int active, served;
    struct client *clients;
    pthread_mutex_t lock;
};

/* Signals and finished clients wake the accept loop through this pipe. */
static int wake_pipe[2] = { -1, -1 };
static volatile sig_atomic_t stopping;

static void wake(void)
{
    char b = 0;
    ssize_t r = write(wake_pipe[1], &b, 1);
    (void)r; /* a full pipe already holds a wake-up */
}

static void on_signal(int sig)
{
    int saved = errno;
    (void)sig;
    stopping = 1;
    wake();
    errno = saved;
}

static void *client_thread(void *opaque)
{
    struct client *cl = opaque;
    struct nbd_transport t;
    struct nbd_fd_transport st;

    nbd_fd_transport_init(&t, &st, cl->fd);
    nbd_server_run(&cl->srv->cfg, &t);
    pthread_mutex_lock(&cl->srv->lock);
    cl->done = true;
    pthread_mutex_unlock(&cl->srv->lock);
    wake();
    return NULL;
}

/* Join the clients that have finished; with ALL, end every client first
 * (shutting its socket ends its reads). */
static void reap(struct server *s, bool all)
{
    pthread_mutex_lock(&s->lock);
    for (struct client **p = &s->clients; *p;) {
        struct client *cl = *p;
        if (!cl->done && !all) {
            p = &cl->next;
            continue;
        }
        *p = cl->next;
        if (!cl->done) {
            shutdown(cl->fd, SHUT_RDWR);
        }
        pthread_mutex_unlock(&s->lock);
        pthread_join(cl->thread, NULL);
        close(cl->fd);
        free(cl);
        pthread_mutex_lock(&s->lock);
        s->active--;
    }
    pthread_mutex_unlock(&s->lock);
}

static void accept_one(struct server *s, int lfd)
{
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
        return;
    }
    /* Replies leave in one piece: no Nagle delay, and room in the send
     * buffer for a typical 256 KiB to 1 MiB read reply (measured: about
     * 10% faster nbdcopy over a Unix socket than the default). */
    int one = 1, sndbuf = 1 << 20;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    struct client *cl = calloc(1, sizeof *cl);
    if (!cl) {
        close(fd);
        return;
    }
    cl->srv = s;
    cl->fd = fd;
    pthread_mutex_lock(&s->lock);
    if (pthread_create(&cl->thread, NULL, client_thread, cl) != 0) {
        pthread_mutex_unlock(&s->lock);
        close(fd);
        free(cl);
        return;
    }
    cl->next = s->clients;
    s->clients = cl;
    s->active++;
    s->served++;
    pthread_mutex_unlock(&s->lock);
}

static void serve_loop(struct server *s)
{
    while (!stopping) {
        struct pollfd p[MAX_LISTEN + 1];
        int n = 0;
        p[n++] = (struct pollfd){ .fd = wake_pipe[0], .events = POLLIN };
        /* At the client limit, new connections wait in the backlog. */
        bool room = s->active < s->max_clients;
        for (int i = 0; room && i < s->n_listen; i++) {
            p[n++] = (struct pollfd){ .fd = s->listen_fd[i],
                                      .events = POLLIN };
        }
        if (poll(p, (nfds_t)n, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;
        }
        if (p[0].revents) {
            char buf[64];
            while (read(wake_pipe[0], buf, sizeof buf) > 0) {
            }
            reap(s, false);
            if (!s->persistent && s->served > 0 && s->active == 0) {
                break;
            }
        }
        for (int i = 1; i < n; i++) {
            if (p[i].revents & POLLIN) {
                accept_one(s, p[i].fd);
            }
        }
    }
    reap(s, true);
}

static int listen_unix(struct server *s, const char *path)
{
    struct sockaddr_un a = { .sun_family = AF_UNIX };

    if (strlen(path) >= sizeof a.sun_path) {
        return fail("%s: socket path too long", path);
    }
    strcpy(a.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return fail("socket: %s", strerror(errno));
    }
    /* As qemu-nbd: a stale socket from an earlier run is replaced. */
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
        unlink(path);
    }
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        listen(fd, 16) < 0) {
        int e = errno;
        close(fd);
        return fail("%s: cannot listen: %s", path, strerror(e));
    }
    s->listen_fd[s->n_listen++] = fd;
    return 0;
}

static int listen_tcp(struct server *s, const char *addr, const char *port)
{
    struct addrinfo hints = { .ai_flags = AI_PASSIVE | AI_ADDRCONFIG,
                              .ai_socktype = SOCK_STREAM }, *res, *ai;
    int r = getaddrinfo(addr, port, &hints, &res);
    int err = 0;

    if (r != 0) {
        return fail("%s:%s: %s", addr, port, gai_strerror(r));
    }
    for (ai = res; ai && s->n_listen < MAX_LISTEN; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                        ai->ai_protocol);
        int one = 1;
        if (fd < 0) {
            err = errno;
            continue;
        }
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (ai->ai_family == AF_INET6) {
            (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        }
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 16) < 0) {
            err = errno;
            close(fd);
            continue;
        }
        s->listen_fd[s->n_listen++] = fd;
    }
    freeaddrinfo(res);
    if (s->n_listen == 0) {
        return fail("%s:%s: cannot listen: %s", addr, port,
                    strerror(err ? err : EADDRNOTAVAIL));
    }
    return 0;
}

/* OPTIONS (an --image-opts list of the base's own options) for the
 * overlay over it: each item under "backing.", QEMU's syntax, so that the
 * base's key reaches its open. NULL when out of memory. */
static char *backing_options(const char *options)
{
    size_t n = 0, len = strlen(options);
    char *out = malloc(len + 8 * (len + 1) + 1);

    if (!out) {
        return NULL;
    }
    for (const char *p = options; *p;) {
        n += (size_t)sprintf(out + n, "%sbacking.", n ? "," : "");
        /* One item, up to a comma that is not doubled. */
        while (*p && !(*p == ',' && p[1] != ',')) {
            if (*p == ',') {
                out[n++] = *p++;
            }
            out[n++] = *p++;
        }
        p += *p == ',';
    }
    out[n] = 0;
    return out;
}

/* -s: a temporary qcow2 overlay over IMAGE takes the writes; it is
 * unlinked as soon as it is open, so nothing is left whatever happens.
 * With --image-opts the base's options (its key) go to the overlay's
 * open as backing.* options. */
static struct vimg_image *open_snapshot(const char *image, const char *fmt,
                                        unsigned flags)
{
    char *name = NULL, *ifmt = NULL, *opts = NULL, *bopts = NULL;
    char *format = NULL, *real = NULL, *tmp = NULL;
    struct vimg_image *img = NULL;

    if (cli_image_opts() &&
        (cli_parse_image_opts(image, &name, &ifmt, &opts) ||
         !(bopts = backing_options(opts)))) {
        if (opts && !bopts) {
            fail("out of memory");
        }
        goto out;
    }
    /* Only the format is wanted here: no key needed. */
    struct vimg_image *probe = open_image(image, fmt, VIMG_OPEN_FORCE_SHARE |
                                                         VIMG_OPEN_NO_IO);
    if (!probe) {
        goto out;
    }
    format = strdup(vimg_get_format(probe));
    vimg_close(probe);
    real = realpath(name ? name : image, NULL);
    const char *dir = getenv("TMPDIR");

    if (!format || !real ||
        asprintf(&tmp, "%s/vimg-serve-XXXXXX", dir && *dir ? dir
                                                            : "/var/tmp") < 0) {
        tmp = NULL;
        fail("%s: %s", name ? name : image, strerror(errno ? errno : ENOMEM));
        goto out;
    }
    int fd = mkstemp(tmp);
    if (fd < 0) {
        fail("%s: cannot create the overlay: %s", tmp, strerror(errno));
        goto out;
    }
    close(fd);
    struct vimg_create_params cp = { .format = "qcow2", .backing_file = real,
                                     .backing_format = format,
                                     .refs = cli_ref_policy() };
    struct vimg_open_params op = { .format = "qcow2",
                                   .flags = flags | VIMG_OPEN_RDWR,
                                   .refs = cli_ref_policy(),
                                   .options = bopts && *bopts ? bopts
                                                              : NULL };
    op.secrets = cli_secrets(&op.n_secrets);
    if (vimg_create(tmp, &cp) < 0 || !(img = vimg_open(tmp, &op))) {
        fail_lib();
    }
    unlink(tmp);

out:
    free(tmp);
    free(real);
    free(format);
    free(name);
    free(ifmt);
    free(opts);
    free(bopts);
    return img;
}

/* --object tls-creds-x509,id=ID,dir=DIR[,endpoint=server][,verify-peer=
 * on|off] or tls-creds-psk,id=ID,dir=DIR: remembered until --tls-creds
 * names ID; --object authz-simple,id=ID,identity=NAME: until --tls-authz
 * names ID. The last object of each kind counts. */
struct tls_object {
    char id[64];
    char dir[4096];
    bool psk;
    bool verify_peer;
};
struct authz_object {
    char id[64];
    char *identity;
};

/* qemu's option syntax: properties split at ',', and ",," is a comma in
 * a value (a distinguished name has several). The copy holds ",," as
 * ESC until a property is taken. */
#define ESC '\x1f'

static char *split_props(const char *arg)
{
    char *out = malloc(strlen(arg) + 1), *o = out;

    for (const char *p = arg; out && *p; p++) {
        if (p[0] == ',' && p[1] == ',') {
            *o++ = ESC;
            p++;
        } else {
            *o++ = *p;
        }
    }
    if (out) {
        *o = 0;
    }
    return out;
}

static char *next_prop(char *str, char **save)
{
    char *tok = strtok_r(str, ",", save);
    for (char *p = tok; p && *p; p++) {
        if (*p == ESC) {
            *p = ',';
        }
    }
    return tok;
}

static int parse_authz(char **save, struct authz_object *a)
{
    char *tok;

    free(a->identity);
    memset(a, 0, sizeof *a);
    while ((tok = next_prop(NULL, save))) {
        if (!strncmp(tok, "id=", 3)) {
            snprintf(a->id, sizeof a->id, "%s", tok + 3);
        } else if (!strncmp(tok, "identity=", 9)) {
            free(a->identity);
            if (!(a->identity = strdup(tok + 9))) {
                return fail("out of memory");
            }
        } else {
            return fail("--object authz-simple: unsupported property '%s'",
                        tok);
        }
    }
    if (!a->id[0] || !a->identity) {
        return fail("--object authz-simple needs id=ID and identity=NAME");
    }
    return 0;
}

static int parse_object(const char *arg, struct tls_object *o,
                        struct authz_object *authz)
{
    char *copy = split_props(arg), *save = NULL;
    int rc = 0;

    if (!copy) {
        return fail("out of memory");
    }
    char *tok = next_prop(copy, &save);
    if (tok && !strcmp(tok, "authz-simple")) {
        rc = parse_authz(&save, authz);
        free(copy);
        return rc;
    }
    if (tok && (!strcmp(tok, "authz-list") || !strcmp(tok, "authz-listfile") ||
                !strcmp(tok, "authz-pam"))) {
        rc = fail("--object: %s is not supported (only authz-simple)", tok);
        free(copy);
        return rc;
    }
    memset(o, 0, sizeof *o);
    o->verify_peer = true; /* qemu's default for tls-creds-x509 */
    if (tok && !strcmp(tok, "tls-creds-x509")) {
        o->psk = false;
    } else if (tok && !strcmp(tok, "tls-creds-psk")) {
        o->psk = true;
    } else {
        rc = fail("--object: unsupported object '%s' (tls-creds-x509, "
                  "tls-creds-psk or authz-simple)", tok ? tok : "");
    }
    while (rc == 0 && (tok = next_prop(NULL, &save))) {
        if (!strncmp(tok, "id=", 3)) {
            snprintf(o->id, sizeof o->id, "%s", tok + 3);
        } else if (!strncmp(tok, "dir=", 4)) {
            snprintf(o->dir, sizeof o->dir, "%s", tok + 4);
        } else if (!strcmp(tok, "endpoint=server")) {
            continue;
        } else if (!strcmp(tok, "verify-peer=on") ||
                   !strcmp(tok, "verify-peer=yes")) {
            o->verify_peer = true;
        } else if (!strcmp(tok, "verify-peer=off") ||
                   !strcmp(tok, "verify-peer=no")) {
            o->verify_peer = false;
        } else {
            rc = fail("--object: unsupported property '%s'", tok);
        }
    }
    if (rc == 0 && (!o->id[0] || !o->dir[0])) {
        rc = fail("--object needs id=ID and dir=DIR");
    }
    free(copy);
    return rc;
}

static int write_pid_file(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f || fprintf(f, "%ld\n", (long)getpid()) < 0 || fclose(f) != 0) {
        return fail("%s: cannot write the pid file: %s", path,
                    strerror(errno));
    }
    return 0;
}

/* --fork: the parent returns once the child listens and has written its
 * pid file, so a caller can connect as soon as `vimg serve --fork` ends.
 * The child forks before the image is opened: a library's threads do not
 * survive fork (librados, for rbd: images), so the child opens it itself;
 * its errors still reach stderr, and the parent then exits 1. */
static int fork_ready = -1; /* the child's end of the pipe */

static int daemonize_begin(void)
{
    int p[2];
    if (pipe(p) < 0) {
        return fail("pipe: %s", strerror(errno));
    }
    pid_t pid = fork();
    if (pid < 0) {
        return fail("fork: %s", strerror(errno));
    }
    if (pid > 0) {
        char ok = 0;
        close(p[1]);
        ssize_t n = read(p[0], &ok, 1);
        _exit(n == 1 && ok == 1 ? 0 : 1);
    }
    close(p[0]);
    setsid();
    fork_ready = p[1];
    return 0;
}

/* In the child, serving: tell the parent to return. */
static int daemonize_ready(const char *pid_file)
{
    if (pid_file && write_pid_file(pid_file)) {
        return 1;
    }
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
        dup2(null, 0);
        dup2(null, 1);
        close(null);
    }
    char ok = 1;
    ssize_t w = write(fork_ready, &ok, 1);
    (void)w;
    close(fork_ready);
    return 0;
}

/* What the options allocate, freed by run() however serve() returns. */
struct owned {
    struct authz_object authz;
    const char **bitmap_names;
    struct nbd_bitmap *bitmaps;
};

/* -B NAME: the image of IMG's chain that holds bitmap NAME, as qemu-nbd
 * looks for it (IMG first, then down the backing chain). */
static struct vimg_image *find_bitmap(struct vimg_image *img,
                                      const char *name)
{
    for (; img; img = vimg_get_backing(img)) {
        if (vimg_bitmap_dirty(img, name, 0, 0, NULL, NULL) == 0) {
            return img;
        }
        if (vimg_get_errno() != ENOENT && vimg_get_errno() != ENOTSUP) {
            fail_lib(); /* inconsistent or unreadable */
            return NULL;
        }
    }
    fail("Bitmap '%s' is not found", name);
    return NULL;
}

static int serve(int argc, char **argv, struct owned *own)
{
    enum { OPT_FORK = 256, OPT_PID, OPT_DISCARD, OPT_CACHE, OPT_TLS_CREDS,
           OPT_TLS_PSK, OPT_OBJECT, OPT_HANDSHAKE, OPT_TLS_AUTHZ };
    static const struct option longopts[] = {
        { "socket", required_argument, NULL, 'k' },
        { "port", required_argument, NULL, 'p' },
        { "bind", required_argument, NULL, 'b' },
        { "shared", required_argument, NULL, 'e' },
        { "read-only", no_argument, NULL, 'r' },
        { "snapshot", no_argument, NULL, 's' },
        { "load-snapshot", required_argument, NULL, 'l' },
        { "export-name", required_argument, NULL, 'x' },
        { "description", required_argument, NULL, 'D' },
        { "persistent", no_argument, NULL, 't' },
        { "format", required_argument, NULL, 'f' },
        { "allocation-depth", no_argument, NULL, 'A' },
        { "bitmap", required_argument, NULL, 'B' },
        { "force-share", no_argument, NULL, 'U' },
        { "fork", no_argument, NULL, OPT_FORK },
        { "pid-file", required_argument, NULL, OPT_PID },
        { "discard", required_argument, NULL, OPT_DISCARD },
        { "cache", required_argument, NULL, OPT_CACHE },
        { "tls-creds", required_argument, NULL, OPT_TLS_CREDS },
        { "tls-psk", required_argument, NULL, OPT_TLS_PSK },
        { "tls-authz", required_argument, NULL, OPT_TLS_AUTHZ },
        { "object", required_argument, NULL, OPT_OBJECT },
        { "handshake-limit", required_argument, NULL, OPT_HANDSHAKE },
        { NULL, 0, NULL, 0 },
    };
    const char *sock = NULL, *port = NULL, *addr = "127.0.0.1";
    const char *format = NULL, *pid_file = NULL, *tls_creds = NULL;
    const char *tls_psk = NULL, *load = NULL, *tls_authz = NULL;
    struct nbd_export exp = { .name = "" };
    struct tls_object obj = { .id = "" };
    size_t n_bitmaps = 0;
    bool snapshot = false, do_fork = false, force_share = false;
    unsigned flags = 0;
    uint64_t n;
    struct server s = { .max_clients = 1,
                        .cfg = { .exp = &exp, .handshake_limit = 10,
                                 .workers = WORKERS_PER_CLIENT } };
    int c;

    while ((c = getopt_long(argc, argv, "k:p:b:e:rsl:x:D:tf:AB:U", longopts,
                            NULL)) != -1) {
        switch (c) {
        case 'k': sock = optarg; break;
        case 'p': port = optarg; break;
        case 'b': addr = optarg; break;
        case 'e':
            if (vimg_parse_size(optarg, &n) < 0 || n < 1 || n > 1024 ||
                strpbrk(optarg, "kKmMgGtTpPeEbB.")) {
                return fail("-e needs a number of clients from 1 to 1024");
            }
            s.max_clients = (int)n;
            break;
        case 'r': exp.readonly = true; break;
        case 's': snapshot = true; break;
        case 'l': /* an internal snapshot, read-only (as qemu-nbd -l) */
            load = optarg;
            exp.readonly = true;
            break;
        case 'x': exp.name = optarg; break;
        case 'D': exp.description = optarg; break;
        case 't': s.persistent = true; break;
        case 'f': format = optarg; break;
        case 'A': exp.allocation_depth = true; break;
        case 'B': {
            const char **v = realloc(own->bitmap_names,
                                     (n_bitmaps + 1) * sizeof *v);
            if (!v) {
                return fail("out of memory");
            }
            own->bitmap_names = v;
            v[n_bitmaps++] = optarg;
            break;
        }
        case 'U': force_share = true; break;
        case OPT_FORK: do_fork = true; break;
        case OPT_PID: pid_file = optarg; break;
        case OPT_DISCARD:
            if (!strcmp(optarg, "unmap") || !strcmp(optarg, "on")) {
                exp.discard = true;
            } else if (!strcmp(optarg, "ignore") || !strcmp(optarg, "off")) {
                exp.discard = false;
            } else {
                return fail("--discard must be 'ignore' or 'unmap'");
            }
            break;
        case OPT_CACHE:
            if (parse_cache(optarg, &flags)) {
                return 1;
            }
            break;
        case OPT_TLS_CREDS: tls_creds = optarg; break;
        case OPT_TLS_PSK: tls_psk = optarg; break;
        case OPT_TLS_AUTHZ: tls_authz = optarg; break;
        case OPT_OBJECT:
            if (parse_object(optarg, &obj, &own->authz)) {
                return 1;
            }
            break;
        case OPT_HANDSHAKE:
            if (vimg_parse_size(optarg, &n) < 0 || n > 3600 ||
                strpbrk(optarg, "kKmMgGtTpPeEbB.")) {
                return fail("--handshake-limit needs seconds (0-3600)");
            }
            s.cfg.handshake_limit = (unsigned)n;
            break;
        default: return 1;
        }
    }
    if (argc - optind != 1) {
        return usage(&cmd_serve, true);
    }
    const char *image = argv[optind];
    if (sock && port) {
        return fail("-k and -p cannot be used together");
    }
    if (strlen(exp.name) > 4096) {
        return fail("the export name is longer than 4096 bytes");
    }
    if (snapshot && load) {
        return fail("-s and -l cannot be used together");
    }
    if (force_share && !exp.readonly) {
        return fail("-U (force share) needs -r");
    }
    if (tls_creds && tls_psk) {
        return fail("--tls-creds and --tls-psk cannot be used together");
    }
    if (tls_creds || tls_psk) {
        char err[512] = "";
        if (tls_psk) {
            s.cfg.tls = nbd_tls_psk(tls_psk, err, sizeof err);
        } else if (obj.id[0] && !strcmp(obj.id, tls_creds)) {
            char psk[4200];
            snprintf(psk, sizeof psk, "%s/keys.psk", obj.dir);
            s.cfg.tls = obj.psk ? nbd_tls_psk(psk, err, sizeof err)
                                : nbd_tls_x509(obj.dir, obj.verify_peer, err,
                                               sizeof err);
        } else {
            /* A DIR (not qemu's syntax): clients show certificates only
             * when --tls-authz needs one. */
            s.cfg.tls = nbd_tls_x509(tls_creds, tls_authz != NULL, err,
                                     sizeof err);
        }
        if (!s.cfg.tls) {
            return fail("TLS: %s", err);
        }
    }
    if (tls_authz && !s.cfg.tls) {
        return fail("--tls-authz is not permitted without --tls-creds");
    }
    if (tls_authz && strcmp(tls_authz, own->authz.id) != 0) {
        nbd_tls_free(s.cfg.tls);
        return fail("--tls-authz: no --object authz-simple,id=%s", tls_authz);
    }
    /* qemu skips the check when clients are not verified; a server that
     * was asked to admit one identity refuses to start instead. */
    int e = tls_authz ? nbd_tls_set_authz(s.cfg.tls, own->authz.identity)
                      : 0;
    if (e < 0) {
        nbd_tls_free(s.cfg.tls);
        return fail(e == -ENOMEM ? "out of memory"
                    : "--tls-authz needs client certificates checked "
                      "(verify-peer=on in the tls-creds-x509 object)");
    }
    exp.multi_conn = s.max_clients > 1;
    if (!exp.readonly) {
        flags |= VIMG_OPEN_RDWR;
    } else if (force_share) {
        flags |= VIMG_OPEN_FORCE_SHARE;
    }
    if (do_fork && daemonize_begin() != 0) {
        return 1;
    }
    if (snapshot) {
        exp.img = open_snapshot(image, format,
                                flags & ~(unsigned)VIMG_OPEN_FORCE_SHARE);
    } else if (load) {
        exp.img = open_snapshot_spec(image, format, flags, load);
    } else {
        exp.img = open_image(image, format, flags);
    }
    int rc = 1;
    if (!exp.img) {
        goto out;
    }
    /* qemu-nbd lists the bitmaps in the reverse order of its -B options:
     * so do we, so that clients see the same list. */
    if (n_bitmaps &&
        !(own->bitmaps = calloc(n_bitmaps, sizeof *own->bitmaps))) {
        fail("out of memory");
        goto out;
    }
    for (size_t i = 0; i < n_bitmaps; i++) {
        struct nbd_bitmap *b = &own->bitmaps[n_bitmaps - 1 - i];
        b->name = own->bitmap_names[i];
        if (!(b->img = find_bitmap(exp.img, b->name))) {
            goto out;
        }
    }
    exp.bitmaps = own->bitmaps;
    exp.n_bitmaps = n_bitmaps;
    if ((sock ? listen_unix(&s, sock)
              : listen_tcp(&s, addr, port ? port : "10809")) != 0) {
        goto out;
    }
    if (pipe2(wake_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        fail("pipe: %s", strerror(errno));
        goto out;
    }
    struct sigaction sa = { .sa_handler = on_signal };
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (do_fork ? daemonize_ready(pid_file) != 0
                : pid_file && write_pid_file(pid_file) != 0) {
        goto out;
    }
    pthread_mutex_init(&s.lock, NULL);
    serve_loop(&s);
    pthread_mutex_destroy(&s.lock);
    rc = 0;

out:
    for (int i = 0; i < s.n_listen; i++) {
        close(s.listen_fd[i]);
    }
    if (sock && s.n_listen) {
        unlink(sock);
    }
    if (pid_file && rc == 0) {
        unlink(pid_file);
    }
    if (exp.img && vimg_close(exp.img) < 0) {
        rc = fail_lib();
    }
    nbd_tls_free(s.cfg.tls);
    return rc;
}

static int run(int argc, char **argv)
{
    struct owned own = { .authz = { .id = "" } };
    int rc = serve(argc, argv, &own);

    free(own.authz.identity);
    free(own.bitmap_names);
    free(own.bitmaps);
    return rc;
}

const struct command cmd_serve = {
    "serve", run, "export an image over NBD (like qemu-nbd)",
    "Usage: vimg serve [-k SOCKET | -p PORT [-b ADDR]] [-e N] [-t] [-r] [-s]\n"
    "         [-l SNAPSHOT]\n"
    "         [-x NAME] [-D DESC] [-f FMT] [-A] [-B BITMAP]... [-U]\n"
    "         [--discard=ignore|unmap]\n"
    "         [--cache=MODE] [--fork] [--pid-file=FILE]\n"
    "         [--tls-creds=DIR|ID | --tls-psk=FILE] [--tls-authz=ID]\n"
    "         [--object OBJ]\n"
    "         [--handshake-limit=SECONDS] IMAGE\n"
    "Serve the guest disk of IMAGE (any format, through its backing chain)\n"
    "to NBD clients: qemu, nbdinfo, nbdcopy, nbd-client, vimg's nbd://.\n"
    "  -k SOCKET          listen on a Unix socket\n"
    "  -p PORT            TCP port (default 10809)\n"
    "  -b ADDR            TCP address (default 127.0.0.1)\n"
    "  -e N               serve up to N clients at once (default 1); N > 1\n"
    "                     advertises multi-conn\n"
    "  -t                 keep serving after the last client leaves\n"
    "  -r                 read-only export\n"
    "  -s                 writes go to a temporary overlay, deleted at exit\n"
    "  -l SNAPSHOT        serve an internal snapshot of IMAGE, read-only:\n"
    "                     snapshot.id=ID,snapshot.name=NAME, or an ID or a\n"
    "                     name (qemu-nbd's -l, --load-snapshot)\n"
    "  -x NAME            export name (default \"\")\n"
    "  -D DESC            export description\n"
    "  -f FMT             image format (default: probe; writes to a raw\n"
    "                     image need -f raw)\n"
    "  -A                 offer the qemu:allocation-depth context\n"
    "  -B NAME            offer persistent dirty bitmap NAME of IMAGE (or\n"
    "                     of its backing chain) as the\n"
    "                     qemu:dirty-bitmap:NAME context; repeatable\n"
    "                     (--bitmap)\n"
    "  -U                 with -r: serve even if another process has IMAGE\n"
    "  --discard=unmap    TRIM and WRITE_ZEROES may deallocate\n"
    "  --cache=MODE       writeback (default), writethrough, none,\n"
    "                     directsync or unsafe\n"
    "  --fork             return once serving, in the background\n"
    "  --pid-file=FILE    write the server's process id to FILE\n"
    "  --tls-creds=DIR    require TLS with X.509 files in DIR (ca-cert.pem,\n"
    "                     server-cert.pem, server-key.pem), or the id of an\n"
    "                     --object tls-creds-x509|tls-creds-psk,id=ID,dir=DIR\n"
    "  --tls-psk=FILE     require TLS with pre-shared keys (username:hexkey)\n"
    "  --tls-authz=ID     admit only the client named by --object\n"
    "                     authz-simple,id=ID,identity=NAME: its verified\n"
    "                     certificate's DN (\"C=GB,,CN=alice\": ',,' is\n"
    "                     a comma) or its PSK username\n"
    "  --handshake-limit=SECONDS  drop clients slower than this to\n"
    "                     negotiate (default 10; 0: no limit)\n"
    "Stop it with SIGINT or SIGTERM; without -t it ends when its last\n"
    "client disconnects.\n",
};
