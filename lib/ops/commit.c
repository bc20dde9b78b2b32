/* Commit: copy what an overlay (and the images between it and the base)
 * holds into a base image of its backing chain, as qemu-img commit does,
 * then empty the overlay. Only ranges block status finds allocated above
 * the base are touched: data is copied, zero ranges become zero writes. */
#define _GNU_SOURCE
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/cleanup.h"
#include "../../common/ratelimit.h"
#include "../../common/rounding.h"
#include "../internal.h"

#define CHUNK (2u << 20)

/* Whether NAME, relative to the folder of LAYER as QEMU resolves it,
 * leads to the file of IMG. */
static bool names(struct vimg_image *layer, const char *name,
                  struct vimg_image *img)
{
    CLEANUP_FREE char *dir = strdup(layer->filename);
    CLEANUP_FREE char *joined = NULL;
    char a[PATH_MAX], b[PATH_MAX];

    if (!dir) {
        return false;
    }
    if (name[0] == '/' || !strchr(layer->filename, '/')) {
        joined = strdup(name);
    } else if (asprintf(&joined, "%s/%s", dirname(dir), name) < 0) {
        joined = NULL;
    }
    return joined && realpath(joined, a) && realpath(img->filename, b) &&
           strcmp(a, b) == 0;
}

/* The image of TOP's chain that BASE names (qemu-img's
 * bdrv_find_backing_image: the name an image's header gives, or a path
 * that leads to the same file), and how many layers down it lies. */
static struct vimg_image *find_base(struct vimg_image *top, const char *base,
                                    int *depth)
{
    int d = 1;

    for (struct vimg_image *l = top; l->backing; l = l->backing, d++) {
        if ((l->backing_name && !strcmp(l->backing_name, base)) ||
            names(l, base, l->backing)) {
            *depth = d;
            return l->backing;
        }
    }
    return NULL;
}

/* Replace the read-only BASE of the chain by a read-write handle on the
 * same file (its own backing chain opened again, read-only). */
static int reopen_writable(struct vimg_image **base,
                           const struct vimg_commit_params *cp)
{
    struct vimg_image *old = *base, *parent = old->parent;
    struct vimg_open_params p = old->params;
    unsigned extra = cp->base_flags;

    /* A base the caller put in the chain read-write (a chain assembled
     * over memory images) is written through as it is. */
    if (old->writable) {
        return 0;
    }
    if (old->probed_raw) {
        return vimg_internal_img_error(old, EPERM, "the format of the base "
                                       "was guessed to be raw; record it in "
                                       "the overlay (vimg rebase -u -F raw) "
                                       "before committing into it");
    }
    CLEANUP_FREE char *path = strdup(old->filename);
    /* The options it was opened with (its key-secret, its own backing.*
     * part) and the caller's secrets: an encrypted base opens again. */
    CLEANUP_FREE char *options = old->options ? strdup(old->options) : NULL;
    if (!path || (old->options && !options)) {
        return vimg_internal_error(ENOMEM, "out of memory");
    }
    p.options = options;
    p.secrets = cp->secrets;
    p.n_secrets = cp->n_secrets;
    p.format = old->drv->name; /* a driver's name outlives its images */
    p.flags = (p.flags & ~(unsigned)(VIMG_OPEN_FORCE_SHARE |
                                     VIMG_OPEN_NO_BACKING)) |
              VIMG_OPEN_RDWR | extra;
    /* Our own read-only handle would conflict with the writer's lock. */
    parent->backing = NULL;
    vimg_internal_close(old);
    struct vimg_image *fresh = vimg_open(path, &p);
    if (!fresh) {
        /* Put a reader back, so that TOP still reads its chain. */
        int err = vimg_get_errno();
        char *msg = strdup(vimg_get_error() ? vimg_get_error() : "");
        p.flags &= ~(unsigned)(VIMG_OPEN_RDWR | extra);
        if ((parent->backing = vimg_open(path, &p))) {
            parent->backing->parent = parent;
        }
        vimg_internal_error_clear();
        vimg_internal_error(err ? err : EIO, "%s", msg ? msg : "out of "
                            "memory");
        free(msg);
        return -(err ? err : EIO);
    }
    fresh->parent = parent;
    parent->backing = fresh;
    *base = fresh;
    return 0;
}

/* Copy [OFFSET, OFFSET+LEN) of TOP as TOP reads it into BASE, at most at
 * RL's rate. */
static int copy_range(struct vimg_image *top, struct vimg_image *base,
                      uint64_t offset, uint64_t len, uint8_t *buf,
                      struct ratelimit *rl)
{
    int r = 0;

    for (uint64_t at = offset; r == 0 && at < offset + len; at += CHUNK) {
        uint64_t n = MIN(CHUNK, offset + len - at);
        uint64_t delay = ratelimit_delay(rl, n, ratelimit_now());
        if (delay) {
            ratelimit_sleep(delay);
        }
        if ((r = vimg_internal_check_cancelled(base->filename)) == 0 &&
            (r = vimg_internal_pread(top, buf, n, at)) == 0) {
            r = vimg_internal_pwrite(base, buf, n, at, 0);
        }
    }
    return r;
}

static int commit(struct vimg_image *top, const struct vimg_commit_params *p)
{
    struct vimg_image *base;
    struct ratelimit rl = { .rate = p->rate_limit };
    int depth = 1, r;

    if (!top->backing_name) {
        return vimg_internal_img_error(top, EINVAL, "Image does not have a "
                                       "backing file");
    }
    if (!top->backing) {
        return vimg_internal_img_error(top, EIO, "backing file '%s' was not "
                                       "opened", top->backing_name);
    }
    if (!p->drop && !top->writable) {
        return vimg_internal_img_error(top, EROFS, "image is opened "
                                       "read-only");
    }
    base = p->base ? find_base(top, p->base, &depth) : top->backing;
    if (!base) {
        return vimg_internal_error(EINVAL, "Did not find '%s' in the backing "
                                   "chain of '%s'", p->base, top->filename);
    }
    if ((r = reopen_writable(&base, p)) < 0) {
        return r;
    }
    /* The base grows to the overlay's size (qemu-img's mirror job does
     * the same); a larger base stays as it is. */
    if (base->size < top->size &&
        vimg_truncate(base, top->size, 0, VIMG_PREALLOC_OFF) < 0) {
        return -vimg_get_errno();
    }
    uint8_t *buf = malloc(CHUNK);
    if (!buf) {
        return vimg_internal_error(ENOMEM, "out of memory");
    }
    r = 0;
    for (uint64_t off = 0; r == 0 && off < top->size;) {
        struct vimg_extent e;
        if ((r = vimg_internal_block_status(top, off, top->size - off,
                                            VIMG_BS_CHAIN, &e)) < 0) {
            break;
        }
        /* Decided above the base: the base must read the same. */
        if (e.depth < depth) {
            r = e.flags & VIMG_BS_ZERO
                    ? vimg_internal_zero(base, off, e.length,
                                         VIMG_ZERO_MAY_UNMAP)
                    : copy_range(top, base, off, e.length, buf, &rl);
        }
        off += e.length;
        if (r == 0 && p->progress) {
            p->progress(p->opaque, off, top->size);
        }
    }
    free(buf);
    /* The data is durable in the base before the overlay lets go of it. */
    if (r < 0 || (r = vimg_internal_flush(base)) < 0 || p->drop) {
        return r;
    }
    if (top->drv->make_empty) {
        pthread_mutex_lock(&top->lock);
        r = top->drv->make_empty(top);
        pthread_mutex_unlock(&top->lock);
        if (r == 0) {
            r = vimg_internal_flush(top);
        }
    }
    return r;
}

int vimg_commit(struct vimg_image *top, const struct vimg_commit_params *p)
{
    static const struct vimg_commit_params defaults;

    vimg_internal_error_clear();
    if (!top) {
        vimg_internal_error(EINVAL, "no image");
        return -1;
    }
    int r = commit(top, p ? p : &defaults);
    if (r < 0 && !vimg_internal_error_set()) {
        vimg_internal_img_error(top, -r, "commit failed: %s", strerror(-r));
    }
    return r < 0 ? -1 : 0;
}
