/* Changing an image's format options in place (qemu-img amend): option
 * parsing against the format's amend table, then the format's member. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../internal.h"

static bool known(const struct vimg_opt_desc *d, const char *key)
{
    for (; d && d->name; d++) {
        if (!strcmp(d->name, key)) {
            return true;
        }
    }
    return false;
}

/* The first key of the option list TEXT that amend does not know, or
 * NULL; *CREATE_ONLY when creation knows it (qemu-img then adds "This
 * option is only supported for image creation"). Items split at commas
 * that are not doubled. */
static const char *unknown_key(const struct vimg_driver *drv,
                               const char *text, char *buf, size_t len,
                               bool *create_only)
{
    const char *p = text;

    while (*p) {
        size_t n = 0;
        bool in_value = false;
        for (; *p; p++) {
            if (*p == ',' && p[1] == ',') {
                p++;
            } else if (*p == ',') {
                p++;
                break;
            } else if (*p == '=') {
                in_value = true;
            } else if (!in_value && n + 1 < len) {
                buf[n++] = *p;
            }
        }
        buf[n] = '\0';
        if (!known(drv->amend_opts, buf)) {
            *create_only = known(drv->create_opts, buf);
            return buf;
        }
    }
    return NULL;
}

int vimg_amend(struct vimg_image *img, const char *options,
               vimg_progress_fn progress, void *opaque)
{
    struct vimg_amend_params p = { .progress = progress, .opaque = opaque };
    return vimg_amend_with(img, options, &p);
}

int vimg_amend_with(struct vimg_image *img, const char *options,
                    const struct vimg_amend_params *params)
{
    static const struct vimg_amend_params none;
    const struct vimg_driver *drv = img->drv;
    const struct vimg_amend_params *p = params ? params : &none;
    struct vimg_opts opts;
    char key[256];
    int r;

    vimg_internal_error_clear();
    if (!drv->amend) {
        vimg_internal_img_error(img, ENOTSUP, "Format driver '%s' does not "
                                "support option amendment", drv->name);
        return -1;
    }
    if (!options || !*options) {
        vimg_internal_img_error(img, EINVAL, "Must specify options (-o)");
        return -1;
    }
    if (!img->writable) {
        vimg_internal_img_error(img, EROFS, "amend needs the image opened "
                                "read-write");
        return -1;
    }
    bool create_only = false;
    if (unknown_key(drv, options, key, sizeof key, &create_only)) {
        vimg_internal_img_error(img, EINVAL, "Invalid parameter '%s'%s", key,
                                create_only ? ": This option is only "
                                              "supported for image creation"
                                            : "");
        return -1;
    }
    if (vimg_internal_opts_parse(options, drv->amend_opts, img->filename,
                                 &opts) < 0) {
        return -1;
    }
    bool locked = !drv->thread_safe;
    if (locked) {
        pthread_mutex_lock(&img->lock);
    }
    r = drv->amend(img, &opts, p);
    if (locked) {
        pthread_mutex_unlock(&img->lock);
    }
    vimg_internal_opts_free(&opts);
    if (r < 0 && !vimg_internal_error_set()) {
        vimg_internal_img_error(img, r, "amend failed: %s", strerror(-r));
    }
    return r < 0 ? -1 : 0;
}

char *vimg_amend_options_help(const char *format)
{
    const struct vimg_driver *drv = vimg_internal_find_driver(format);
    char *buf = NULL;
    size_t len = 0;

    vimg_internal_error_clear();
    if (!drv || drv->kind != VIMG_DRIVER_FORMAT) {
        vimg_internal_error(EINVAL, "unknown file format '%s'", format);
        return NULL;
    }
    if (!drv->amend_opts) {
        vimg_internal_error(ENOTSUP, "Format driver '%s' does not support "
                            "option amendment", format);
        return NULL;
    }
    FILE *f = open_memstream(&buf, &len);
    if (!f) {
        vimg_internal_error(ENOMEM, "out of memory");
        return NULL;
    }
    static const char *const types[] = { "size", "bool", "str", "num" };
    for (const struct vimg_opt_desc *d = drv->amend_opts; d->name; d++) {
        fprintf(f, "%s\t%s\t%s\n", d->name, types[d->type], d->help);
    }
    fclose(f);
    return buf;
}
