/* rbd: names (see rbd.h), tokenised as QEMU's block/rbd.c does: each
 * part ends at its first unescaped delimiter, then loses its escapes. One
 * deliberate difference: QEMU looks for '@' anywhere after the pool, so
 * "rbd:p/img:conf=/etc/a@b" takes "@b" for a snapshot; here only the image
 * part can name one. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rbd.h"

#define PREFIX "rbd:"
/* Characters that end a part somewhere in a name. */
#define SPECIAL "\\:/@="

bool vimg_internal_rbd_is_name(const char *name)
{
    return name && strncmp(name, PREFIX, strlen(PREFIX)) == 0;
}

/* Cut S at its first unescaped DELIM: *REST is what follows it, or NULL
 * when S has none. */
static char *next_tok(char *s, char delim, char **rest)
{
    char *end;

    *rest = NULL;
    for (end = s; *end; end++) {
        if (*end == delim) {
            break;
        }
        if (*end == '\\' && end[1]) {
            end++;
        }
    }
    if (*end == delim) {
        *end = '\0';
        *rest = end + 1;
    }
    return s;
}

static void unescape(char *s)
{
    char *out = s;

    for (; *s; s++, out++) {
        if (*s == '\\' && s[1]) {
            s++;
        }
        *out = *s;
    }
    *out = '\0';
}

static int set(char **field, char *value)
{
    unescape(value);
    free(*field);
    *field = strdup(value);
    return *field ? 0 : vimg_internal_error(ENOMEM, "out of memory");
}

static int add_option(struct vimg_rbd_name *n, char *key, char *value)
{
    char **keys = realloc(n->keys, (n->n_opts + 1) * sizeof *keys);
    if (keys) {
        n->keys = keys;
    }
    char **values = realloc(n->values, (n->n_opts + 1) * sizeof *values);
    if (values) {
        n->values = values;
    }
    if (!keys || !values) {
        return vimg_internal_error(ENOMEM, "out of memory");
    }
    n->keys[n->n_opts] = NULL;
    n->values[n->n_opts] = NULL;
    n->n_opts++;
    if (set(&n->keys[n->n_opts - 1], key) < 0 ||
        set(&n->values[n->n_opts - 1], value) < 0) {
        return -ENOMEM;
    }
    return 0;
}

void vimg_internal_rbd_name_free(struct vimg_rbd_name *n)
{
    free(n->pool);
    free(n->nspace);
    free(n->image);
    free(n->snap);
    free(n->conf);
    free(n->user);
    for (size_t i = 0; i < n->n_opts; i++) {
        free(n->keys[i]);
        free(n->values[i]);
    }
    free(n->keys);
    free(n->values);
    memset(n, 0, sizeof *n);
}

static int parse_options(const char *name, struct vimg_rbd_name *n,
                         char *rest)
{
    while (rest) {
        char *key = next_tok(rest, '=', &rest);
        if (!rest) {
            return vimg_internal_error(EINVAL, "%s: option '%s' has no value "
                                       "(KEY=VALUE)", name, key);
        }
        char *value = next_tok(rest, ':', &rest);
        unescape(key);
        int r;
        if (!*key) {
            r = vimg_internal_error(EINVAL, "%s: an option has no name",
                                    name);
        } else if (strcmp(key, "conf") == 0) {
            r = set(&n->conf, value);
        } else if (strcmp(key, "id") == 0) {
            r = set(&n->user, value);
        } else {
            r = add_option(n, key, value);
        }
        if (r < 0) {
            return r;
        }
    }
    return 0;
}

int vimg_internal_rbd_parse(const char *name, struct vimg_rbd_name *n)
{
    char *rest, *image_rest;
    int r;

    memset(n, 0, sizeof *n);
    if (!vimg_internal_rbd_is_name(name)) {
        return vimg_internal_error(EINVAL, "%s: not an rbd: name", name);
    }
    char *buf = strdup(name + strlen(PREFIX));
    if (!buf) {
        return vimg_internal_error(ENOMEM, "out of memory");
    }
    char *pool = next_tok(buf, '/', &rest);
    if (!rest) {
        r = vimg_internal_error(EINVAL, "%s: no pool in the name "
                                "(rbd:POOL/IMAGE)", name);
        goto out;
    }
    char *spec = next_tok(rest, ':', &rest);
    char *image = next_tok(spec, '@', &image_rest);
    char *snap = image_rest;
    char none[1] = "";
    char *nspace = none;
    char *in_ns = NULL;
    (void)next_tok(image, '/', &in_ns);
    if (in_ns) {
        nspace = image;
        image = in_ns;
    }
    if ((r = set(&n->pool, pool)) < 0 || (r = set(&n->nspace, nspace)) < 0 ||
        (r = set(&n->image, image)) < 0 ||
        (snap && (r = set(&n->snap, snap)) < 0)) {
        goto out;
    }
    if (!*n->pool || !*n->image || (n->snap && !*n->snap)) {
        r = vimg_internal_error(EINVAL, "%s: %s name is empty", name,
                                !*n->pool ? "the pool" : !*n->image
                                                             ? "the image"
                                                             : "the "
                                                               "snapshot");
        goto out;
    }
    r = parse_options(name, n, rest);

out:
    free(buf);
    return r;
}

static void put_escaped(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (strchr(SPECIAL, *s)) {
            fputc('\\', f);
        }
        fputc(*s, f);
    }
}

static void put_option(FILE *f, const char *key, const char *value)
{
    fputc(':', f);
    put_escaped(f, key);
    fputc('=', f);
    put_escaped(f, value);
}

char *vimg_internal_rbd_format(const struct vimg_rbd_name *n)
{
    char *s = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&s, &len);

    if (!f) {
        return NULL;
    }
    fputs(PREFIX, f);
    put_escaped(f, n->pool);
    fputc('/', f);
    if (*n->nspace) {
        put_escaped(f, n->nspace);
        fputc('/', f);
    }
    put_escaped(f, n->image);
    if (n->snap) {
        fputc('@', f);
        put_escaped(f, n->snap);
    }
    if (n->conf) {
        put_option(f, "conf", n->conf);
    }
    if (n->user) {
        put_option(f, "id", n->user);
    }
    for (size_t i = 0; i < n->n_opts; i++) {
        put_option(f, n->keys[i], n->values[i]);
    }
    if (fclose(f) != 0) {
        free(s);
        return NULL;
    }
    return s;
}
