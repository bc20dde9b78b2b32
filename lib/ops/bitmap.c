/* Persistent dirty bitmaps: the public entry point over a format's bitmap
 * members, and the copy of a source's bitmaps after a convert (qemu-img
 * convert --bitmaps). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../internal.h"

void vimg_internal_bitmaps_free(struct vimg_internal_bitmap *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++) {
        free(v[i].name);
    }
    free(v);
}

/* Run IMG's bitmap member, serialised by the core for drivers that are
 * not thread-safe. */
static int run_bitmap(struct vimg_image *img,
                      const struct vimg_bitmap_params *p)
{
    bool locked = !img->drv->thread_safe;

    if (locked) {
        pthread_mutex_lock(&img->lock);
    }
    int r = img->drv->bitmap(img, p);
    if (locked) {
        pthread_mutex_unlock(&img->lock);
    }
    if (r < 0 && !vimg_internal_error_set()) {
        vimg_internal_img_error(img, r, "bitmap operation failed: %s",
                                strerror(-r));
    }
    return r;
}

int vimg_bitmap(struct vimg_image *img, const struct vimg_bitmap_params *p)
{
    vimg_internal_error_clear();
    if (!img->drv->bitmap) {
        vimg_internal_img_error(img, ENOTSUP, "the %s format has no "
                                "persistent bitmaps", img->drv->name);
        return -1;
    }
    if (!img->writable) {
        vimg_internal_img_error(img, EROFS, "changing bitmaps needs the "
                                "image opened read-write");
        return -1;
    }
    if (p->op == VIMG_BITMAP_MERGE && p->source_image &&
        p->source_image != img && !p->source_image->drv->bitmap_dirty) {
        vimg_internal_img_error(p->source_image, ENOENT, "Dirty bitmap '%s' "
                                "not found", p->source ? p->source : "");
        return -1;
    }
    return run_bitmap(img, p) < 0 ? -1 : 0;
}

/* The caller's FN may return any non-zero value to stop, negative ones
 * too: the driver sees 1, which cannot be mistaken for its own errors. */
struct dirty_ctx {
    vimg_range_fn fn;
    void *opaque;
};

static int dirty_range(void *opaque, uint64_t offset, uint64_t len)
{
    struct dirty_ctx *d = opaque;
    return d->fn(d->opaque, offset, len) ? 1 : 0;
}

/* Looks the bitmap up even for COUNT 0, so that a caller can check a
 * name once before reading ranges of it. */
int vimg_bitmap_dirty(struct vimg_image *img, const char *name,
                      uint64_t offset, uint64_t count, vimg_range_fn fn,
                      void *opaque)
{
    bool locked = !img->drv->thread_safe;
    struct dirty_ctx d = { fn, opaque };
    int r;

    vimg_internal_error_clear();
    if (!img->drv->bitmap_dirty) {
        vimg_internal_img_error(img, ENOTSUP, "the %s format has no "
                                "persistent bitmaps", img->drv->name);
        return -1;
    }
    if (locked) {
        pthread_mutex_lock(&img->lock);
    }
    r = img->drv->bitmap_dirty(img, name, offset, count, dirty_range, &d);
    if (locked) {
        pthread_mutex_unlock(&img->lock);
    }
    if (r < 0 && !vimg_internal_error_set()) {
        vimg_internal_img_error(img, r, "cannot read bitmap '%s': %s", name,
                                strerror(-r));
    }
    return r < 0 ? -1 : 0;
}

/* The bitmaps of IMG, or -ENOTSUP when it cannot hold any. */
static int list(struct vimg_image *img, struct vimg_internal_bitmap **v,
                size_t *n)
{
    *v = NULL;
    *n = 0;
    if (!img->drv->bitmap_list) {
        return -ENOTSUP;
    }
    return img->drv->bitmap_list(img, v, n);
}

/* Replace the recorded message by WHAT, the bitmap's NAME and the old
 * message without DST's file name in front. */
static int reword(struct vimg_image *dst, int r, const char *what,
                  const char *name)
{
    const char *m = vimg_get_error();
    char old[1024];
    size_t n = strlen(dst->filename);

    snprintf(old, sizeof old, "%s", m ? m : strerror(-r));
    const char *text = old;
    if (!strncmp(old, dst->filename, n) && !strncmp(old + n, ": ", 2)) {
        text += n + 2;
    }
    vimg_internal_error_clear();
    return vimg_internal_img_error(dst, r, "Failed to %s bitmap %s: %s", what,
                                   name, text);
}

int vimg_internal_bitmaps_copy(struct vimg_image *src, struct vimg_image *dst,
                               bool skip_broken, bool check_only)
{
    struct vimg_internal_bitmap *v = NULL;
    size_t n = 0;
    int r;

    r = list(dst, &v, &n);
    vimg_internal_bitmaps_free(v, n);
    if (r == -ENOTSUP || !dst->drv->bitmap) {
        vimg_internal_error_clear();
        return vimg_internal_img_error(dst, ENOTSUP, "Format driver '%s' "
                                       "does not support bitmaps",
                                       dst->drv->name);
    }
    if (r < 0) {
        return r;
    }
    if ((r = list(src, &v, &n)) == -ENOTSUP) {
        vimg_internal_error_clear();
        return vimg_internal_img_error(src, ENOTSUP, "Source lacks bitmap "
                                       "support");
    }
    if (r < 0) {
        return r;
    }
    for (size_t i = 0; i < n && r == 0; i++) {
        if (v[i].inconsistent && !skip_broken) {
            r = vimg_internal_img_error(src, EBUSY, "Cannot copy "
                                        "inconsistent bitmap '%s' (skip it "
                                        "with --skip-broken-bitmaps, or "
                                        "delete it with 'vimg bitmap "
                                        "--remove')", v[i].name);
        }
    }
    for (size_t i = 0; i < n && r == 0 && !check_only; i++) {
        if (v[i].inconsistent) {
            continue;
        }
        struct vimg_bitmap_params add = {
            .op = VIMG_BITMAP_ADD, .name = v[i].name,
            .granularity = v[i].granularity, .disabled = !v[i].enabled,
        };
        struct vimg_bitmap_params merge = {
            .op = VIMG_BITMAP_MERGE, .name = v[i].name,
            .source = v[i].name, .source_image = src,
        };
        if ((r = run_bitmap(dst, &add)) < 0) {
            r = reword(dst, r, "create", v[i].name);
        } else if ((r = run_bitmap(dst, &merge)) < 0) {
            r = reword(dst, r, "populate", v[i].name);
            struct vimg_bitmap_params rm = { .op = VIMG_BITMAP_REMOVE,
                                             .name = v[i].name };
            (void)dst->drv->bitmap(dst, &rm);
        }
    }
    vimg_internal_bitmaps_free(v, n);
    return r;
}
