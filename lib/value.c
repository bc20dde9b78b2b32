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

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*p < 0x20) {
                fprintf(f, "\\u%04x", *p);
            } else {
                fputc(*p, f);
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
