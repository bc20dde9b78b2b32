/* Secrets and image options on the command line, as qemu-img takes them:
 * --object secret,id=ID,file=PATH|data=TEXT[,format=raw|base64] on any
 * command, --image-opts (the image argument is driver=FMT,
 * file.filename=PATH,OPTIONS...), and a passphrase prompt on a terminal
 * when an encrypted image was named without a secret. Secret bytes live
 * in locked memory, wiped at exit. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"

#define MAX_SECRETS 16
/* A secret file is a passphrase or a key, never large. */
#define MAX_SECRET_BYTES 65536
#define PROMPT_ID "vimg-prompt"

static struct vimg_secret secrets[MAX_SECRETS];
static size_t n_secrets;
static bool image_opts;

/* The secret bytes: one locked page-aligned area per secret. */
static void *locked_alloc(size_t len)
{
    void *p = mmap(NULL, len ? len : 1, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        return NULL;
    }
    (void)mlock(p, len ? len : 1); /* best effort (RLIMIT_MEMLOCK) */
    (void)madvise(p, len ? len : 1, MADV_DONTDUMP);
    return p;
}

static void wipe_secrets(void)
{
    for (size_t i = 0; i < n_secrets; i++) {
        void *p = (void *)secrets[i].data;
        size_t len = secrets[i].len ? secrets[i].len : 1;
        explicit_bzero(p, len);
        munlock(p, len);
        munmap(p, len);
        free((char *)secrets[i].id);
    }
    n_secrets = 0;
}

static int add_secret(const char *id, const void *data, size_t len)
{
    void *copy;

    for (size_t i = 0; i < n_secrets; i++) {
        if (!strcmp(secrets[i].id, id)) {
            return fail("--object: a secret with id '%s' exists already",
                        id);
        }
    }
    if (n_secrets == MAX_SECRETS) {
        return fail("--object: more than %d secrets", MAX_SECRETS);
    }
    if (!(copy = locked_alloc(len)) || !(secrets[n_secrets].id =
                                             strdup(id))) {
        return fail("out of memory");
    }
    if (n_secrets == 0) {
        atexit(wipe_secrets);
    }
    memcpy(copy, data, len);
    secrets[n_secrets].data = copy;
    secrets[n_secrets].len = len;
    n_secrets++;
    return 0;
}

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Decode base64 TEXT (LEN bytes) in place; -1 when it is not base64. */
static long b64_decode(unsigned char *text, size_t len)
{
    size_t out = 0;
    unsigned acc = 0, bits = 0;

    while (len && (text[len - 1] == '\n' || text[len - 1] == '=')) {
        len--;
    }
    for (size_t i = 0; i < len; i++) {
        int v = b64_value(text[i]);
        if (v < 0) {
            return -1;
        }
        acc = acc << 6 | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            text[out++] = (unsigned char)(acc >> bits);
        }
    }
    return (long)out;
}

/* The next "key=value" of a QEMU option list (",," is a comma) into a
 * new string, advancing *P; NULL at the end. */
static char *next_item(const char **p)
{
    const char *s = *p;
    size_t n = 0;
    char *item;

    if (!*s) {
        return NULL;
    }
    if (!(item = malloc(strlen(s) + 1))) {
        return NULL;
    }
    for (; *s; s++) {
        if (*s == ',') {
            if (s[1] != ',') {
                s++;
                break;
            }
            s++;
        }
        item[n++] = *s;
    }
    item[n] = 0;
    *p = s;
    return item;
}

static int read_secret_file(const char *path, unsigned char **buf,
                            size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    ssize_t n;

    if (fd < 0 || fstat(fd, &st) < 0) {
        int e = errno;
        if (fd >= 0) {
            close(fd);
        }
        return fail("--object: cannot read secret file '%s': %s", path,
                    strerror(e));
    }
    if (st.st_size > MAX_SECRET_BYTES) {
        close(fd);
        return fail("--object: secret file '%s' is larger than %d bytes",
                    path, MAX_SECRET_BYTES);
    }
    *buf = locked_alloc(MAX_SECRET_BYTES);
    *len = 0;
    while (*buf && *len < MAX_SECRET_BYTES &&
           (n = read(fd, *buf + *len, MAX_SECRET_BYTES - *len)) > 0) {
        *len += (size_t)n;
    }
    close(fd);
    return *buf ? 0 : fail("out of memory");
}

static int parse_object(const char *arg)
{
    const char *p = arg;
    char *item, *id = NULL, *data = NULL, *file = NULL, *format = NULL;
    unsigned char *bytes = NULL;
    size_t len = 0, alloc_len = 0;
    bool first = true;
    int rc = 1;

    while ((item = next_item(&p))) {
        char *eq = strchr(item, '=');
        if (first && (!strcmp(item, "secret") ||
                      !strcmp(item, "qom-type=secret"))) {
            free(item);
            first = false;
            continue;
        }
        if (first) {
            fail("--object: only 'secret' objects are supported");
            free(item);
            goto out;
        }
        if (!eq) {
            fail("--object: '%s' is not key=value", item);
            free(item);
            goto out;
        }
        *eq = 0;
        char **slot = !strcmp(item, "id") ? &id : !strcmp(item, "data")
                                                      ? &data
                      : !strcmp(item, "file") ? &file
                      : !strcmp(item, "format") ? &format : NULL;
        if (!slot) {
            /* The key only: a value could be the secret itself. */
            fail("--object secret: unsupported property '%s'", item);
            explicit_bzero(eq + 1, strlen(eq + 1));
            free(item);
            goto out;
        }
        free(*slot);
        *slot = strdup(eq + 1);
        explicit_bzero(eq + 1, strlen(eq + 1));
        free(item);
    }
    if (first || !id || !*id || (!data == !file)) {
        fail("--object secret needs id= and one of data= or file=");
        goto out;
    }
    if (format && strcmp(format, "raw") && strcmp(format, "base64")) {
        fail("--object secret: format must be raw or base64");
        goto out;
    }
    if (file) {
        alloc_len = MAX_SECRET_BYTES;
        if (read_secret_file(file, &bytes, &len)) {
            goto out;
        }
    } else {
        alloc_len = len = strlen(data);
        if (!(bytes = locked_alloc(len))) {
            fail("out of memory");
            goto out;
        }
        memcpy(bytes, data, len);
    }
    if (format && !strcmp(format, "base64")) {
        long n = b64_decode(bytes, len);
        if (n < 0) {
            fail("--object secret '%s': the data is not base64", id);
            goto out;
        }
        len = (size_t)n;
    }
    rc = add_secret(id, bytes, len);
out:
    if (data) {
        explicit_bzero(data, strlen(data));
    }
    if (bytes) {
        explicit_bzero(bytes, alloc_len ? alloc_len : 1);
        munmap(bytes, alloc_len ? alloc_len : 1);
    }
    free(id);
    free(data);
    free(file);
    free(format);
    return rc;
}

int cli_take_global_args(int argc, char **argv)
{
    int out = 1;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--")) {
            while (i < argc) {
                argv[out++] = argv[i++];
            }
            break;
        }
        if (!strcmp(argv[i], "--object") || !strncmp(argv[i], "--object=",
                                                      9)) {
            const char *v = argv[i][8] ? argv[i] + 9 : argv[i + 1];
            if (!v) {
                return fail("--object needs an argument"), -1;
            }
            /* Other objects (serve's tls-creds-*) are the command's. */
            if (strncmp(v, "secret", 6) != 0 &&
                strncmp(v, "qom-type=secret", 15) != 0) {
                argv[out++] = argv[i];
                continue;
            }
            if (!argv[i][8]) {
                i++;
            }
            if (parse_object(v)) {
                return -1;
            }
            /* data= should not linger in our own memory either. */
            explicit_bzero((char *)v, strlen(v));
            continue;
        }
        if (!strcmp(argv[i], "--image-opts")) {
            image_opts = true;
            continue;
        }
        argv[out++] = argv[i];
    }
    argv[out] = NULL;
    return out;
}

const struct vimg_secret *cli_secrets(size_t *n)
{
    *n = n_secrets;
    return secrets;
}

bool cli_image_opts(void)
{
    return image_opts;
}

/* QEMU's rbd blockdev keys (BlockdevOptionsRbd) that an rbd: name holds,
 * in the order the name has them. */
static const char *const rbd_keys[] = { "pool", "namespace", "image",
                                        "snapshot", "conf", "user" };
#define N_RBD_KEYS (sizeof rbd_keys / sizeof rbd_keys[0])

static void put_rbd_part(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (strchr("\\:/@=", *s)) {
            fputc('\\', f);
        }
        fputc(*s, f);
    }
}

/* Append PREFIX KEY=VALUE to the option list OPTIONS (USED bytes long),
 * commas in VALUE escaped again. */
static void add_option(char *options, size_t *used, const char *prefix,
                       const char *key, const char *value)
{
    if (*used) {
        options[(*used)++] = ',';
    }
    *used += (size_t)sprintf(options + *used, "%s%s=", prefix, key);
    for (const char *c = value; *c; c++) {
        if (*c == ',') {
            options[(*used)++] = ',';
        }
        options[(*used)++] = *c;
    }
}

/* QEMU's server list (server.N.host, server.N.port) holds this many. */
#define MAX_RBD_SERVERS 16

/* KEY's server.N.host or server.N.port: 0 with the host or port slot of
 * V set to VALUE, 1 when KEY is no server key, -1 on a mistake. */
static int rbd_server_key(const char *key, const char *value,
                          char *host[MAX_RBD_SERVERS],
                          char *port[MAX_RBD_SERVERS])
{
    char *end;

    if (strncmp(key, "server.", 7)) {
        return 1;
    }
    unsigned long i = strtoul(key + 7, &end, 10);
    if (end == key + 7 || *end != '.' || i >= MAX_RBD_SERVERS ||
        (strcmp(end, ".host") && strcmp(end, ".port"))) {
        fail("--image-opts: '%s' is not server.N.host or server.N.port "
             "(N below %d)", key, MAX_RBD_SERVERS);
        return -1;
    }
    char **slot = strcmp(end, ".host") ? &port[i] : &host[i];
    free(*slot);
    if (!(*slot = strdup(value))) {
        fail("out of memory");
        return -1;
    }
    return 0;
}

/* Ceph's mon_host for the server list in *OUT, as QEMU's
 * qemu_rbd_mon_host: HOST:PORT (an IPv6 address in brackets) joined by
 * ';'; NULL without servers. -1 on a mistake (reported). */
static int rbd_mon_host(char *host[MAX_RBD_SERVERS],
                        char *port[MAX_RBD_SERVERS], char **out)
{
    size_t len = 0;
    FILE *f = NULL;

    *out = NULL;
    for (int i = 0; i < MAX_RBD_SERVERS; i++) {
        if (!host[i] && !port[i]) {
            continue;
        }
        if (!host[i] || !port[i] || (i > 0 && !host[i - 1])) {
            fail("--image-opts: server.%d needs a host and a port, and the "
                 "servers are numbered from 0", i);
            goto err;
        }
        if (!f && !(f = open_memstream(out, &len))) {
            fail("out of memory");
            return -1;
        }
        fprintf(f, strchr(host[i], ':') ? "%s[%s]:%s" : "%s%s:%s",
                i ? ";" : "", host[i], port[i]);
    }
    if (f && fclose(f) != 0) {
        f = NULL;
        fail("out of memory");
        goto err;
    }
    return 0;

err:
    if (f) {
        fclose(f);
    }
    free(*out);
    *out = NULL;
    return -1;
}

/* driver=rbd,pool=P,image=I,... or driver=FMT,file.driver=rbd,file.pool=P,
 * ...: the rbd: name those keys make (the format's own keys go to
 * OPTIONS). -1 when TEXT names no rbd image; else as
 * cli_parse_image_opts. */
static int rbd_image_opts(const char *text, char **filename, char **format,
                          char *options)
{
    char *v[N_RBD_KEYS] = { 0 };
    char *host[MAX_RBD_SERVERS] = { 0 }, *port[MAX_RBD_SERVERS] = { 0 };
    char *auth = NULL, *mon_host = NULL;
    size_t auth_len = 0;
    const char *p = text;
    char *item;
    bool rbd = false, bare = false;
    size_t used = 0;
    int rc = 1;

    while ((item = next_item(&p))) {
        bare |= !strcmp(item, "driver=rbd");
        rbd |= bare || !strcmp(item, "file.driver=rbd");
        free(item);
    }
    if (!rbd) {
        return -1;
    }
    for (p = text; (item = next_item(&p)); free(item)) {
        char *eq = strchr(item, '=');
        if (!eq) {
            fail("--image-opts: '%s' is not key=value", text);
            goto out;
        }
        *eq = 0;
        const char *key = item;
        bool file_key = !strncmp(key, "file.", 5);
        if (!bare && file_key) {
            key += 5;
        } else if (!bare) {
            if (!strcmp(key, "driver")) {
                free(*format);
                *format = strdup(eq + 1);
                continue;
            }
            add_option(options, &used, "", key, eq + 1);
            continue;
        }
        if (!strcmp(key, "driver")) {
            continue; /* rbd */
        }
        /* The protocol's own: librbd decrypts; the cephx key stays out
         * of the name (which messages print). */
        if (!strcmp(key, "encrypt.format") ||
            !strcmp(key, "encrypt.key-secret") ||
            !strcmp(key, "key-secret")) {
            add_option(options, &used, "file.", key, eq + 1);
            continue;
        }
        int sr = rbd_server_key(key, eq + 1, host, port);
        if (sr < 0) {
            goto out;
        }
        if (sr == 0) {
            continue;
        }
        /* A list in QEMU (auth-client-required.N=MODE); one mode alone
         * too. Ceph takes them joined by ';'. */
        if (!strcmp(key, "auth-client-required") ||
            !strncmp(key, "auth-client-required.", 21)) {
            if (strcmp(eq + 1, "cephx") && strcmp(eq + 1, "none")) {
                fail("--image-opts: %s '%s' is not cephx or none", key,
                     eq + 1);
                goto out;
            }
            char *a = realloc(auth, auth_len + strlen(eq + 1) + 2);
            if (!a) {
                fail("out of memory");
                goto out;
            }
            auth = a;
            auth_len += (size_t)sprintf(auth + auth_len, "%s%s",
                                        auth_len ? ";" : "", eq + 1);
            continue;
        }
        size_t i = 0;
        while (i < N_RBD_KEYS && strcmp(key, rbd_keys[i])) {
            i++;
        }
        if (i == N_RBD_KEYS) {
            fail("--image-opts: rbd key '%s' is not supported (pool, "
                 "namespace, image, snapshot, conf, user, key-secret, "
                 "server.N.host, server.N.port, auth-client-required, "
                 "encrypt.format, encrypt.key-secret; Ceph options go in "
                 "an rbd: name)", item);
            goto out;
        }
        free(v[i]);
        v[i] = strdup(eq + 1);
    }
    if (!v[0] || !v[2]) {
        fail("--image-opts: an rbd image needs pool= and image=");
        goto out;
    }
    if (rbd_mon_host(host, port, &mon_host) < 0) {
        goto out;
    }
    size_t len = 0;
    FILE *f = open_memstream(filename, &len);
    if (!f) {
        fail("out of memory");
        goto out;
    }
    fputs("rbd:", f);
    put_rbd_part(f, v[0]);
    fputc('/', f);
    if (v[1] && *v[1]) {
        put_rbd_part(f, v[1]);
        fputc('/', f);
    }
    put_rbd_part(f, v[2]);
    if (v[3]) {
        fputc('@', f);
        put_rbd_part(f, v[3]);
    }
    for (size_t i = 4; i < N_RBD_KEYS; i++) {
        if (v[i]) {
            fprintf(f, ":%s=", i == 4 ? "conf" : "id");
            put_rbd_part(f, v[i]);
        }
    }
    /* As QEMU's qemu_rbd_connect, Ceph options (after the name's own). */
    if (mon_host) {
        fputs(":mon_host=", f);
        put_rbd_part(f, mon_host);
    }
    if (auth) {
        fputs(":auth_client_required=", f);
        put_rbd_part(f, auth);
    }
    if (fclose(f) != 0) {
        fail("out of memory");
        goto out;
    }
    /* driver=rbd alone is the protocol: the guest disk is raw. */
    if (!*format && !(*format = strdup("raw"))) {
        fail("out of memory");
        goto out;
    }
    rc = 0;

out:
    for (size_t i = 0; i < N_RBD_KEYS; i++) {
        free(v[i]);
    }
    for (int i = 0; i < MAX_RBD_SERVERS; i++) {
        free(host[i]);
        free(port[i]);
    }
    free(auth);
    free(mon_host);
    return rc;
}

int cli_parse_image_opts(const char *text, char **filename, char **format,
                         char **options)
{
    const char *p = text;
    char *item;
    size_t cap = strlen(text) * 2 + 1, used = 0;

    *filename = *format = NULL;
    if (!(*options = calloc(1, cap))) {
        return fail("out of memory");
    }
    int r = rbd_image_opts(text, filename, format, *options);
    if (r >= 0) {
        return r;
    }
    while ((item = next_item(&p))) {
        char *eq = strchr(item, '=');
        if (!eq) {
            free(item);
            return fail("--image-opts: '%s' is not key=value", text);
        }
        *eq = 0;
        if (!strcmp(item, "driver")) {
            free(*format);
            *format = strdup(eq + 1);
        } else if (!strcmp(item, "file.filename") ||
                   !strcmp(item, "filename")) {
            free(*filename);
            *filename = strdup(eq + 1);
        } else if (!strcmp(item, "file.driver")) {
            if (strcmp(eq + 1, "file")) {
                free(item);
                return fail("--image-opts: only file.driver=file is "
                            "supported");
            }
        } else {
            /* Pass the rest on to the format, commas escaped again. */
            if (used) {
                (*options)[used++] = ',';
            }
            used += (size_t)sprintf(*options + used, "%s=", item);
            for (const char *v = eq + 1; *v; v++) {
                if (*v == ',') {
                    (*options)[used++] = ',';
                }
                (*options)[used++] = *v;
            }
        }
        free(item);
    }
    if (!*filename) {
        return fail("--image-opts: no file.filename= in '%s'", text);
    }
    return 0;
}

/* Read a passphrase from the terminal without echo. */
static int prompt(const char *file, char *buf, size_t cap, size_t *len)
{
    struct termios old, raw;
    bool restore = tcgetattr(STDIN_FILENO, &old) == 0;

    fprintf(stderr, "Password for ");
    print_untrusted(stderr, file);
    fprintf(stderr, ": ");
    fflush(stderr);
    if (restore) {
        raw = old;
        raw.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw);
    }
    ssize_t n = read(STDIN_FILENO, buf, cap);
    if (restore) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
    }
    fputc('\n', stderr);
    if (n <= 0) {
        return -1;
    }
    *len = (size_t)n;
    while (*len && (buf[*len - 1] == '\n' || buf[*len - 1] == '\r')) {
        (*len)--;
    }
    return 0;
}

/* The library's passphrase callback: ask on the terminal for FILE's
 * passphrase, once per file (a commit reopens its base and asks again);
 * kept with the --object secrets, under an id no image option names. */
static int ask_passphrase(void *opaque, const char *file, const void **data,
                          size_t *len)
{
    char *id = NULL;
    int rc = -1;

    (void)opaque;
    if (asprintf(&id, PROMPT_ID ":%s", file) < 0) {
        return -1;
    }
    for (size_t i = 0; i < n_secrets; i++) {
        if (!strcmp(secrets[i].id, id)) {
            *data = secrets[i].data;
            *len = secrets[i].len;
            free(id);
            return 0;
        }
    }
    char *pass = locked_alloc(4096);
    size_t n = 0;
    if (pass && prompt(file, pass, 4096, &n) == 0 &&
        add_secret(id, pass, n) == 0) {
        *data = secrets[n_secrets - 1].data;
        *len = secrets[n_secrets - 1].len;
        rc = 0;
    }
    if (pass) {
        explicit_bzero(pass, 4096);
        munmap(pass, 4096);
    }
    free(id);
    return rc;
}

struct vimg_image *cli_open_prompting(const char *file,
                                      struct vimg_open_params *p)
{
    if (isatty(STDIN_FILENO) && !(p->flags & VIMG_OPEN_NO_IO)) {
        p->passphrase = ask_passphrase;
    }
    return vimg_open(file, p);
}
