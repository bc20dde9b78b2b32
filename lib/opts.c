/* -o "key=value,..." parsing against a driver's option table, and size
 * strings as qemu-img reads them. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int vimg_parse_size(const char *text, uint64_t *out)
{
    static const char suffixes[] = "bkmgtpe";
    const char *p = text;
    uint64_t value = 0, frac_num = 0, frac_den = 1;
    bool digits = false;

    if (!text) {
        return -EINVAL;
    }
    while (isspace((unsigned char)*p)) {
        p++;
    }
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X') &&
        isxdigit((unsigned char)p[2])) {
        /* qemu-img takes hexadecimal sizes too ("0x10000"), whole only. */
        for (p += 2; isxdigit((unsigned char)*p); p++, digits = true) {
            int c = tolower((unsigned char)*p);
            unsigned d = (unsigned)(isdigit(c) ? c - '0' : c - 'a' + 10);
            if (__builtin_mul_overflow(value, 16, &value) ||
                __builtin_add_overflow(value, (uint64_t)d, &value)) {
                return -ERANGE;
            }
        }
        if (*p == '.') {
            return -EINVAL;
        }
    }
    for (; isdigit((unsigned char)*p); p++, digits = true) {
        if (__builtin_mul_overflow(value, 10, &value) ||
            __builtin_add_overflow(value, (uint64_t)(*p - '0'), &value)) {
            return -ERANGE;
        }
    }
    if (*p == '.') {
        /* qemu-img accepts "1.5G"; keep up to 9 fraction digits. */
        for (p++; isdigit((unsigned char)*p); p++, digits = true) {
            if (frac_den < 1000000000) {
                frac_num = frac_num * 10 + (uint64_t)(*p - '0');
                frac_den *= 10;
            }
        }
    }
    if (!digits) {
        return -EINVAL;
    }
    unsigned shift = 0;
    if (*p) {
        const char *s = strchr(suffixes, tolower((unsigned char)*p));
        if (!s) {
            return -EINVAL;
        }
        shift = (unsigned)(s - suffixes) * 10;
        p++;
    }
    if (*p) {
        return -EINVAL;
    }
    if (shift && value > (UINT64_MAX >> shift)) {
        return -ERANGE;
    }
    uint64_t whole = value << shift;
    if (frac_num) {
        if (shift == 0) {
            return -EINVAL; /* fractional bytes */
        }
        uint64_t unit = UINT64_C(1) << shift;
        uint64_t extra = (uint64_t)((unsigned __int128)frac_num * unit /
                                    frac_den);
        if (__builtin_add_overflow(whole, extra, &whole)) {
            return -ERANGE;
        }
    }
    /* Sizes are int64 inside QEMU and here: refuse anything above. */
    if (whole > INT64_MAX) {
        return -ERANGE;
    }
    *out = whole;
    return 0;
}

void vimg_internal_opts_free(struct vimg_opts *opts)
{
    for (size_t i = 0; i < opts->count; i++) {
        free(opts->pairs[i].key);
        free(opts->pairs[i].value);
    }
    free(opts->pairs);
    opts->pairs = NULL;
    opts->count = 0;
}

int vimg_internal_opts_set(struct vimg_opts *opts, const char *key,
                           const char *value)
{
    char *v = strdup(value);
    if (!v) {
        return vimg_internal_error(ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < opts->count; i++) {
        if (strcmp(opts->pairs[i].key, key) == 0) {
            free(opts->pairs[i].value);
            opts->pairs[i].value = v;
            return 0;
        }
    }
    struct vimg_opt_pair *pairs = realloc(opts->pairs,
                                          (opts->count + 1) * sizeof *pairs);
    char *k = strdup(key);
    if (!pairs || !k) {
        if (pairs) {
            opts->pairs = pairs;
        }
        free(k);
        free(v);
        return vimg_internal_error(ENOMEM, "out of memory");
    }
    opts->pairs = pairs;
    opts->pairs[opts->count].key = k;
    opts->pairs[opts->count].value = v;
    opts->count++;
    return 0;
}

static const struct vimg_opt_desc *find_desc(const struct vimg_opt_desc *d,
                                             const char *key)
{
    for (; d && d->name; d++) {
        if (strcmp(d->name, key) == 0) {
            return d;
        }
    }
    return NULL;
}

int vimg_internal_opts_pick(const struct vimg_opts *in,
                            const struct vimg_opt_desc *keep,
                            const struct vimg_opt_desc *drop,
                            struct vimg_opts *out)
{
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < in->count; i++) {
        const char *key = in->pairs[i].key;
        if (find_desc(keep, key) && !find_desc(drop, key) &&
            vimg_internal_opts_set(out, key, in->pairs[i].value) < 0) {
            vimg_internal_opts_free(out);
            return -ENOMEM;
        }
    }
    return 0;
}

static int parse_bool(const char *s, bool *out)
{
    if (!strcmp(s, "on") || !strcmp(s, "true") || !strcmp(s, "yes")) {
        *out = true;
    } else if (!strcmp(s, "off") || !strcmp(s, "false") ||
               !strcmp(s, "no")) {
        *out = false;
    } else {
        return -EINVAL;
    }
    return 0;
}

static int check_value(const struct vimg_opt_desc *d, const char *value,
                       const char *what)
{
    uint64_t size;
    bool b;
    char *end;

    switch (d->type) {
    case VIMG_OPT_SIZE:
        if (vimg_parse_size(value, &size) < 0) {
            return vimg_internal_error(EINVAL, "%s: parameter '%s' expects "
                                       "a size, not '%s'", what, d->name,
                                       value);
        }
        break;
    case VIMG_OPT_BOOL:
        if (parse_bool(value, &b) < 0) {
            return vimg_internal_error(EINVAL, "%s: parameter '%s' expects "
                                       "'on' or 'off', not '%s'", what,
                                       d->name, value);
        }
        break;
    case VIMG_OPT_NUMBER:
        errno = 0;
        (void)strtoull(value, &end, 10);
        if (errno || end == value || *end || value[0] == '-') {
            return vimg_internal_error(EINVAL, "%s: parameter '%s' expects "
                                       "a number, not '%s'", what, d->name,
                                       value);
        }
        break;
    case VIMG_OPT_STRING:
        break;
    }
    return 0;
}

int vimg_internal_opts_parse(const char *text,
                             const struct vimg_opt_desc *desc,
                             const char *what, struct vimg_opts *out)
{
    return vimg_internal_opts_parse_with(text, desc, NULL, what, out);
}

int vimg_internal_opts_parse_with(const char *text,
                                  const struct vimg_opt_desc *desc,
                                  const struct vimg_opt_desc *extra,
                                  const char *what, struct vimg_opts *out)
{
    memset(out, 0, sizeof *out);
    if (!text || !*text) {
        return 0;
    }
    size_t len = strlen(text), trailing = 0;
    while (trailing < len && text[len - 1 - trailing] == ',') {
        trailing++;
    }
    /* qemu-img's rule: a list that starts with a comma or ends in an
     * unescaped one has an empty item, which is a mistake (a lost value),
     * not something to skip. ",," inside is an escaped comma. */
    if (text[0] == ',' || trailing % 2) {
        return vimg_internal_error(EINVAL, "%s: Invalid option list: %s",
                                   what, text);
    }
    char *buf = malloc(len + 1);
    if (!buf) {
        return vimg_internal_error(ENOMEM, "out of memory");
    }
    const char *p = text;
    while (*p) {
        /* One item up to an unescaped comma; ",," stands for ",". */
        size_t n = 0;
        while (*p) {
            if (*p == ',') {
                if (p[1] == ',') {
                    buf[n++] = ',';
                    p += 2;
                    continue;
                }
                p++;
                break;
            }
            buf[n++] = *p++;
        }
        buf[n] = '\0';
        char *eq = strchr(buf, '=');
        const char *value = "on"; /* a bare key is a boolean switch */
        if (eq) {
            *eq = '\0';
            value = eq + 1;
        }
        const struct vimg_opt_desc *d = find_desc(desc, buf);
        if (!d) {
            d = find_desc(extra, buf);
        }
        int r;
        if (!d) {
            r = vimg_internal_error(EINVAL, "%s: invalid parameter '%s'",
                                    what, buf);
        } else if (!eq && d->type != VIMG_OPT_BOOL) {
            r = vimg_internal_error(EINVAL, "%s: parameter '%s' needs a "
                                    "value", what, buf);
        } else if ((r = check_value(d, value, what)) == 0) {
            r = vimg_internal_opts_set(out, buf, value);
        }
        if (r < 0) {
            free(buf);
            vimg_internal_opts_free(out);
            return r;
        }
    }
    free(buf);
    return 0;
}

const char *vimg_internal_opts_get(const struct vimg_opts *opts,
                                   const char *key, const char *dflt)
{
    for (size_t i = 0; opts && i < opts->count; i++) {
        if (strcmp(opts->pairs[i].key, key) == 0) {
            return opts->pairs[i].value;
        }
    }
    return dflt;
}

int vimg_internal_opts_get_size(const struct vimg_opts *opts,
                                const char *key, uint64_t dflt,
                                uint64_t *out)
{
    const char *v = vimg_internal_opts_get(opts, key, NULL);
    if (!v) {
        *out = dflt;
        return 0;
    }
    if (vimg_parse_size(v, out) < 0) {
        return vimg_internal_error(EINVAL, "parameter '%s' expects a size, "
                                   "not '%s'", key, v);
    }
    return 0;
}

int vimg_internal_opts_get_bool(const struct vimg_opts *opts,
                                const char *key, bool dflt, bool *out)
{
    const char *v = vimg_internal_opts_get(opts, key, NULL);
    if (!v) {
        *out = dflt;
        return 0;
    }
    if (parse_bool(v, out) < 0) {
        return vimg_internal_error(EINVAL, "parameter '%s' expects 'on' or "
                                   "'off', not '%s'", key, v);
    }
    return 0;
}

int vimg_internal_opts_get_prealloc(const struct vimg_opts *opts,
                                    enum vimg_prealloc *out)
{
    static const char *const names[] = { "off", "metadata", "falloc",
                                         "full" };
    const char *v = vimg_internal_opts_get(opts, "preallocation", "off");
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(v, names[i]) == 0) {
            *out = (enum vimg_prealloc)i;
            return 0;
        }
    }
    return vimg_internal_error(EINVAL, "invalid preallocation mode '%s' "
                               "(use off, metadata, falloc or full)", v);
}

int vimg_internal_opts_split(const char *text, const char *prefix,
                             char **with, char **without)
{
    size_t len = text ? strlen(text) : 0, plen = strlen(prefix);
    size_t nw = 0, no = 0;

    *with = calloc(1, len + 1);
    *without = calloc(1, len + 1);
    if (!*with || !*without) {
        free(*with);
        free(*without);
        *with = *without = NULL;
        return vimg_internal_error(ENOMEM, "out of memory");
    }
    for (const char *p = text; p && *p;) {
        /* One item as written, up to an unescaped comma (",," stays). */
        const char *end = p;
        while (*end && !(*end == ',' && end[1] != ',')) {
            end += *end == ',' ? 2 : 1;
        }
        bool ours = strncmp(p, prefix, plen) == 0;
        char *out = ours ? *with : *without;
        size_t *n = ours ? &nw : &no;
        const char *from = ours ? p + plen : p;
        if (*n) {
            out[(*n)++] = ',';
        }
        memcpy(out + *n, from, (size_t)(end - from));
        *n += (size_t)(end - from);
        p = *end ? end + 1 : end;
    }
    return 0;
}

char *vimg_internal_opts_drop(const char *text, const struct vimg_opts *keys)
{
    size_t len = text ? strlen(text) : 0, n = 0;
    char *out = calloc(1, len + 1);

    if (!out) {
        vimg_internal_error(ENOMEM, "out of memory");
        return NULL;
    }
    for (const char *p = text; p && *p;) {
        const char *end = p;
        while (*end && !(*end == ',' && end[1] != ',')) {
            end += *end == ',' ? 2 : 1;
        }
        const char *eq = memchr(p, '=', (size_t)(end - p));
        size_t klen = (size_t)((eq ? eq : end) - p);
        bool drop = false;
        for (size_t i = 0; i < keys->count && !drop; i++) {
            drop = strlen(keys->pairs[i].key) == klen &&
                   !memcmp(keys->pairs[i].key, p, klen);
        }
        if (!drop) {
            if (n) {
                out[n++] = ',';
            }
            memcpy(out + n, p, (size_t)(end - p));
            n += (size_t)(end - p);
        }
        p = *end ? end + 1 : end;
    }
    return out;
}
