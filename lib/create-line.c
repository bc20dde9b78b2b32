/* qemu-img create's "Formatting 'FILE', fmt=..." line. qemu-img prints the
 * image's creation options in the order of its format driver's option
 * table followed by the file protocol's, each option that was given or
 * has a default: sizes and numbers as parsed, booleans and strings as
 * written (a comma doubled). Scripts read this line, so the order and the
 * defaults below are qemu-img 7.2's, read off its output; options a
 * format of vimg's has that qemu-img's lacks follow in the order given. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct line_opt {
    const char *name;
    char type;          /* 's' size, 'n' number, 'b' bool, 't' string */
    const char *dflt;   /* printed when not given, or NULL */
};

#define FILE_OPTS                                                           \
    { "nocow", 'b', NULL }, { "preallocation", 't', NULL },                \
    { "extent_size_hint", 's', NULL }

static const struct line_opt raw_line[] = {
    { "size", 's', NULL }, FILE_OPTS, { NULL, 0, NULL },
};

static const struct line_opt qcow2_line[] = {
    { "encryption", 'b', NULL },
    { "encrypt.format", 't', NULL },
    { "encrypt.key-secret", 't', NULL },
    { "encrypt.cipher-alg", 't', NULL },
    { "encrypt.cipher-mode", 't', NULL },
    { "encrypt.ivgen-alg", 't', NULL },
    { "encrypt.ivgen-hash-alg", 't', NULL },
    { "encrypt.hash-alg", 't', NULL },
    { "encrypt.iter-time", 'n', NULL },
    { "cluster_size", 's', "65536" },
    { "extended_l2", 'b', "off" },
    { "preallocation", 't', NULL },
    { "compression_type", 't', "zlib" },
    { "size", 's', NULL },
    { "compat", 't', NULL },
    { "backing_file", 't', NULL },
    { "backing_fmt", 't', NULL },
    { "data_file", 't', NULL },
    { "data_file_raw", 'b', NULL },
    { "lazy_refcounts", 'b', "off" },
    { "refcount_bits", 'n', "16" },
    FILE_OPTS,
    { NULL, 0, NULL },
};

static const struct line_opt qcow_line[] = {
    { "size", 's', NULL }, { "backing_file", 't', NULL },
    { "backing_fmt", 't', NULL }, { "encryption", 'b', NULL },
    { "encrypt.format", 't', NULL }, { "encrypt.key-secret", 't', NULL },
    FILE_OPTS, { NULL, 0, NULL },
};

static const struct line_opt vmdk_line[] = {
    { "size", 's', NULL }, { "adapter_type", 't', NULL },
    { "backing_file", 't', NULL }, { "backing_fmt", 't', NULL },
    { "compat6", 'b', "off" }, { "hwversion", 't', "undefined" },
    { "toolsversion", 't', NULL }, { "subformat", 't', NULL },
    { "zeroed_grain", 'b', NULL }, FILE_OPTS, { NULL, 0, NULL },
};

static const struct line_opt vpc_line[] = {
    { "size", 's', NULL }, { "subformat", 't', NULL },
    { "force_size", 'b', NULL }, FILE_OPTS, { NULL, 0, NULL },
};

static const struct line_opt vdi_line[] = {
    { "size", 's', NULL }, { "static", 'b', "off" }, FILE_OPTS,
    { NULL, 0, NULL },
};

static const struct line_opt vhdx_line[] = {
    { "size", 's', NULL }, { "log_size", 's', "1048576" },
    { "block_size", 's', "0" }, { "subformat", 't', NULL },
    { "block_state_zero", 'b', NULL }, FILE_OPTS, { NULL, 0, NULL },
};

static const struct line_opt qed_line[] = {
    { "size", 's', NULL }, { "backing_file", 't', NULL },
    { "backing_fmt", 't', NULL }, { "cluster_size", 's', "65536" },
    { "table_size", 'n', NULL }, FILE_OPTS, { NULL, 0, NULL },
};

static const struct line_opt parallels_line[] = {
    { "size", 's', NULL }, { "cluster_size", 's', "1048576" }, FILE_OPTS,
    { NULL, 0, NULL },
};

static const struct line_opt luks_line[] = {
    { "size", 's', NULL }, { "key-secret", 't', NULL },
    { "cipher-alg", 't', NULL }, { "cipher-mode", 't', NULL },
    { "ivgen-alg", 't', NULL }, { "ivgen-hash-alg", 't', NULL },
    { "hash-alg", 't', NULL }, { "iter-time", 'n', NULL }, FILE_OPTS,
    { NULL, 0, NULL },
};

static const struct {
    const char *format;
    const struct line_opt *opts;
} line_formats[] = {
    { "raw", raw_line }, { "qcow2", qcow2_line }, { "qcow", qcow_line },
    { "vmdk", vmdk_line }, { "vpc", vpc_line }, { "vdi", vdi_line },
    { "vhdx", vhdx_line }, { "qed", qed_line },
    { "parallels", parallels_line }, { "luks", luks_line },
};

/* The value of NAME for the line: what -b, -F and the size say, else the
 * -o option, else NULL. */
static const char *given(const struct vimg_create_ctx *ctx, const char *name,
                         char *size_buf, size_t size_len)
{
    if (strcmp(name, "size") == 0) {
        snprintf(size_buf, size_len, "%llu", (unsigned long long)ctx->size);
        return size_buf;
    }
    if (strcmp(name, "backing_file") == 0 && ctx->backing_file) {
        return ctx->backing_file;
    }
    if (strcmp(name, "backing_fmt") == 0 && ctx->backing_format) {
        return ctx->backing_format;
    }
    return vimg_internal_opts_get(ctx->opts, name, NULL);
}

static void print_opt(FILE *f, const char *name, char type, const char *value,
                      bool was_given)
{
    uint64_t n;
    char *end;

    fprintf(f, " %s=", name);
    if (was_given && type == 's' && vimg_parse_size(value, &n) == 0) {
        fprintf(f, "%llu", (unsigned long long)n);
    } else if (was_given && type == 'n' &&
               (n = strtoull(value, &end, 0), *value && !*end)) {
        fprintf(f, "%llu", (unsigned long long)n);
    } else if (type == 't') {
        for (const char *p = value; *p; p++) {
            if (*p == ',') {
                fputc(',', f);
            }
            fputc(*p, f);
        }
    } else {
        fputs(value, f);
    }
}

char *vimg_internal_create_line(const struct vimg_driver *drv,
                                const struct vimg_create_ctx *ctx)
{
    const struct line_opt *order = NULL;
    char *buf = NULL, size_buf[32];
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    if (!f) {
        vimg_internal_error(ENOMEM, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < sizeof line_formats / sizeof line_formats[0];
         i++) {
        if (strcmp(line_formats[i].format, drv->name) == 0) {
            order = line_formats[i].opts;
        }
    }
    fprintf(f, "fmt=%s", drv->name);
    for (const struct line_opt *o = order; o && o->name; o++) {
        /* The file protocol's options after a format's own: a name both
         * have is the format's (qemu-img merges the tables so). */
        bool seen = false;
        for (const struct line_opt *q = order; q < o && !seen; q++) {
            seen = strcmp(q->name, o->name) == 0;
        }
        if (seen) {
            continue;
        }
        const char *v = given(ctx, o->name, size_buf, sizeof size_buf);
        if (v || o->dflt) {
            print_opt(f, o->name, o->type, v ? v : o->dflt, v != NULL);
        }
    }
    /* Options qemu-img's table lacks, in the order given; the size last
     * when the format is not in the table at all. */
    for (size_t i = 0; i < ctx->opts->count; i++) {
        const char *k = ctx->opts->pairs[i].key;
        bool listed = strcmp(k, "size") == 0;
        for (const struct line_opt *o = order; o && o->name && !listed;
             o++) {
            listed = strcmp(o->name, k) == 0;
        }
        if (!listed) {
            print_opt(f, k, 't', ctx->opts->pairs[i].value, true);
        }
    }
    if (!order) {
        if (ctx->backing_file &&
            !vimg_internal_opts_get(ctx->opts, "backing_file", NULL)) {
            print_opt(f, "backing_file", 't', ctx->backing_file, true);
        }
        if (ctx->backing_format &&
            !vimg_internal_opts_get(ctx->opts, "backing_fmt", NULL)) {
            print_opt(f, "backing_fmt", 't', ctx->backing_format, true);
        }
        fprintf(f, " size=%llu", (unsigned long long)ctx->size);
    }
    if (fclose(f) != 0) {
        free(buf);
        vimg_internal_error(ENOMEM, "out of memory");
        return NULL;
    }
    return buf;
}
