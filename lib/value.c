/* Info trees: built by drivers, read by the CLI through the public
 * accessors, printed as JSON in qemu-img's layout. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct vimg_value {
    enum vimg_value_type type;
    bool b;
    int64_t i;
    char *s;
    size_t count, cap;
    char **keys;                 /* objects only */
    struct vimg_value **items;
};

struct vimg_value *vimg_internal_value_new(enum vimg_value_type t)
{
    struct vimg_value *v = calloc(1, sizeof *v);
    if (v) {
        v->type = t;
    }
    return v;
}

struct vimg_value *vimg_internal_value_str(const char *s)
{
    struct vimg_value *v = vimg_internal_value_new(VIMG_VALUE_STRING);
    if (v && !(v->s = strdup(s ? s : ""))) {
        free(v);
        return NULL;
    }
    return v;
}

struct vimg_value *vimg_internal_value_int(int64_t i)
{
    struct vimg_value *v = vimg_internal_value_new(VIMG_VALUE_INT);
    if (v) {
        v->i = i;
    }
    return v;
}

struct vimg_value *vimg_internal_value_bool(bool b)
{
    struct vimg_value *v = vimg_internal_value_new(VIMG_VALUE_BOOL);
    if (v) {
        v->b = b;
    }
    return v;
}

static int value_push(struct vimg_value *v, const char *key,
                      struct vimg_value *child)
{
    if (!child) {
        return -ENOMEM;
    }
    if (v->count == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 8;
        struct vimg_value **items = realloc(v->items, cap * sizeof *items);
        if (!items) {
            vimg_value_free(child);
            return -ENOMEM;
        }
        v->items = items;
        if (v->type == VIMG_VALUE_OBJECT) {
            char **keys = realloc(v->keys, cap * sizeof *keys);
            if (!keys) {
                vimg_value_free(child);
                return -ENOMEM;
            }
            v->keys = keys;
        }
        v->cap = cap;
    }
    if (v->type == VIMG_VALUE_OBJECT) {
        if (!(v->keys[v->count] = strdup(key))) {
            vimg_value_free(child);
            return -ENOMEM;
        }
    }
    v->items[v->count++] = child;
    return 0;
}

int vimg_internal_value_add(struct vimg_value *obj, const char *key,
                            struct vimg_value *child)
{
    return value_push(obj, key, child);
}

int vimg_internal_value_append(struct vimg_value *arr,
                               struct vimg_value *child)
{
    return value_push(arr, NULL, child);
}

int vimg_internal_value_set_str(struct vimg_value *obj, const char *key,
                                const char *s)
{
    return value_push(obj, key, vimg_internal_value_str(s));
}

int vimg_internal_value_set_int(struct vimg_value *obj, const char *key,
                                int64_t i)
{
    return value_push(obj, key, vimg_internal_value_int(i));
}

int vimg_internal_value_set_bool(struct vimg_value *obj, const char *key,
                                 bool b)
{
    return value_push(obj, key, vimg_internal_value_bool(b));
}

enum vimg_value_type vimg_value_type(const struct vimg_value *v)
{
    return v ? v->type : VIMG_VALUE_NULL;
}

bool vimg_value_bool(const struct vimg_value *v)
{
    return v && v->type == VIMG_VALUE_BOOL && v->b;
}

int64_t vimg_value_int(const struct vimg_value *v)
{
    return v && v->type == VIMG_VALUE_INT ? v->i : 0;
}

const char *vimg_value_string(const struct vimg_value *v)
{
    return v && v->type == VIMG_VALUE_STRING ? v->s : NULL;
}

size_t vimg_value_count(const struct vimg_value *v)
{
    return v && (v->type == VIMG_VALUE_ARRAY || v->type == VIMG_VALUE_OBJECT)
               ? v->count : 0;
}

const struct vimg_value *vimg_value_at(const struct vimg_value *v, size_t i)
{
    return i < vimg_value_count(v) ? v->items[i] : NULL;
}

const char *vimg_value_key_at(const struct vimg_value *v, size_t i)
{
    return v && v->type == VIMG_VALUE_OBJECT && i < v->count ? v->keys[i]
                                                            : NULL;
}

const struct vimg_value *vimg_value_get(const struct vimg_value *v,
                                        const char *key)
{
    if (!v || v->type != VIMG_VALUE_OBJECT) {
        return NULL;
    }
    for (size_t i = 0; i < v->count; i++) {
        if (strcmp(v->keys[i], key) == 0) {
            return v->items[i];
        }
    }
    return NULL;
}

void vimg_value_free(struct vimg_value *v)
{
    if (!v) {
        return;
    }
    for (size_t i = 0; i < v->count; i++) {
        vimg_value_free(v->items[i]);
        if (v->keys) {
            free(v->keys[i]);
        }
    }
    free(v->items);
    free(v->keys);
    free(v->s);
    free(v);
}

/* The code point of the UTF-8 sequence at S, or -1 when it is invalid;
 * *END is past the bytes it consumed. These are QEMU's rules
 * (mod_utf8_codepoint in util/unicode.c): overlong forms, surrogates and
 * noncharacters are invalid, except C0 80 for U+0000; a sequence cut
 * short consumes only its valid prefix. */
static int utf8_codepoint(const unsigned char *s, const unsigned char **end)
{
    static const int min_cp[5] = { 0x80, 0x800, 0x10000, 0x200000,
                                   0x4000000 };
    unsigned byte = *s++, len = 0, mask;
    int cp;

    if (byte < 0x80) {
        cp = (int)byte;
    } else if (byte >= 0xFE || !(byte & 0x40)) {
        cp = -1; /* 0xFE, 0xFF, or a continuation byte first */
    } else {
        for (mask = 0x80; byte & mask; mask >>= 1) {
            len++;
        }
        cp = (int)(byte & (mask - 1));
        for (unsigned i = 1; i < len; i++, s++) {
            if ((*s & 0xC0) != 0x80) {
                *end = s;
                return -1;
            }
            cp = (cp << 6) | (*s & 0x3F);
        }
        if (cp > 0x10FFFF || (cp >= 0xFDD0 && cp <= 0xFDEF) ||
            (cp & 0xFFFE) == 0xFFFE || (cp >= 0xD800 && cp <= 0xDFFF) ||
            (cp < min_cp[len - 2] && !(cp == 0 && len == 2))) {
            cp = -1;
        }
    }
    *end = s;
    return cp;
}

/* S as qemu-img writes a JSON string (QEMU's qobject/json-writer.c), byte
 * for byte: the short escapes, everything outside printable ASCII as
 * \uXXXX (upper-case hex, surrogate pairs beyond the BMP), and invalid
 * UTF-8 as U+FFFD, so that any bytes from an image give valid JSON. */
static void json_string(FILE *f, const char *s)
{
    const unsigned char *p = (const unsigned char *)s, *end;

    fputc('"', f);
    for (; *p; p = end) {
        int cp = utf8_codepoint(p, &end);
        switch (cp) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\b': fputs("\\b", f); break;
        case '\f': fputs("\\f", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (cp < 0) {
                cp = 0xFFFD; /* the replacement character */
            }
            if (cp > 0xFFFF) {
                fprintf(f, "\\u%04X\\u%04X", 0xD800 + ((cp - 0x10000) >> 10),
                        0xDC00 + ((cp - 0x10000) & 0x3FF));
            } else if (cp < 0x20 || cp >= 0x7F) {
                fprintf(f, "\\u%04X", cp);
            } else {
                fputc(cp, f);
            }
        }
    }
    fputc('"', f);
}

static void json_value(FILE *f, const struct vimg_value *v, int depth)
{
    bool obj = v->type == VIMG_VALUE_OBJECT;

    switch (v->type) {
    case VIMG_VALUE_NULL: fputs("null", f); return;
    case VIMG_VALUE_BOOL: fputs(v->b ? "true" : "false", f); return;
    case VIMG_VALUE_INT: fprintf(f, "%" PRId64, v->i); return;
    case VIMG_VALUE_STRING: json_string(f, v->s); return;
    case VIMG_VALUE_ARRAY:
    case VIMG_VALUE_OBJECT:
        break;
    }
    if (v->count == 0) {
        fputs(obj ? "{\n" : "[\n", f);
        fprintf(f, "%*s%c", depth * 4, "", obj ? '}' : ']');
        return;
    }
    fputs(obj ? "{\n" : "[\n", f);
    for (size_t i = 0; i < v->count; i++) {
        fprintf(f, "%*s", (depth + 1) * 4, "");
        if (obj) {
            json_string(f, v->keys[i]);
            fputs(": ", f);
        }
        json_value(f, v->items[i], depth + 1);
        fputs(i + 1 < v->count ? ",\n" : "\n", f);
    }
    fprintf(f, "%*s%c", depth * 4, "", obj ? '}' : ']');
}

char *vimg_value_to_json(const struct vimg_value *v)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    vimg_internal_error_clear();
    if (!f) {
        vimg_internal_error(ENOMEM, "out of memory");
        return NULL;
    }
    json_value(f, v, 0);
    if (fclose(f) != 0) {
        free(buf);
        vimg_internal_error(ENOMEM, "out of memory");
        return NULL;
    }
    return buf;
}

char *vimg_json_quote(const char *s)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    vimg_internal_error_clear();
    if (!f) {
        vimg_internal_error(ENOMEM, "out of memory");
        return NULL;
    }
    json_string(f, s);
    if (fclose(f) != 0) {
        free(buf);
        vimg_internal_error(ENOMEM, "out of memory");
        return NULL;
    }
    return buf;
}
