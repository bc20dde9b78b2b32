/* Rebase: give an image a new backing file (or none) without changing
 * what it reads, as qemu-img rebase does: where the image holds nothing
 * itself and the old and new backing chains read differently, the old
 * contents are copied into the image first; then the header changes. Only
 * ranges where either chain has data are compared. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/cleanup.h"
#include "../../common/rounding.h"
#include "../internal.h"

#define CHUNK (1u << 20)
#define SECTOR 512u

/* The image of IMG's backing chain whose file is PATH, and how many
 * layers below IMG's backing image it lies (0: IMG's backing itself). */
static struct vimg_image *in_chain(struct vimg_image *img, const char *path,
                                   int *depth)
{
    char want[PATH_MAX], have[PATH_MAX];
    int d = 0;

    if (!realpath(path, want)) {
        return NULL;
    }
    for (struct vimg_image *l = img->backing; l; l = l->backing, d++) {
        if (realpath(l->filename, have) && !strcmp(want, have)) {
            *depth = d;
            return l;
        }
    }
    return NULL;
}

/* Whether [OFFSET, OFFSET+*N) of CHAIN (NULL: no image, zeros) reads as
 * zeros; *N shrinks to a run that answers alike. Past CHAIN's end it
 * reads zeros too. */
static int reads_zero(struct vimg_image *chain, uint64_t offset,
                      uint64_t *n, bool *zero)
{
    struct vimg_extent e;
    int r;

    *zero = true;
    if (!chain || offset >= chain->size) {
        return 0;
    }
    *n = MIN(*n, chain->size - offset);
    if ((r = vimg_internal_block_status(chain, offset, *n, VIMG_BS_CHAIN,
                                        &e)) < 0) {
        return r;
    }
    *n = e.length;
    *zero = (e.flags & VIMG_BS_ZERO) != 0;
    return 0;
}

/* N bytes of CHAIN at OFFSET, zeros past its end (or with no chain). */
static int read_chain(struct vimg_image *chain, uint8_t *buf, uint64_t n,
                      uint64_t offset)
{
    uint64_t avail = chain && offset < chain->size
                         ? MIN(n, chain->size - offset) : 0;
    int r = avail ? vimg_internal_pread(chain, buf, avail, offset) : 0;

    memset(buf + avail, 0, n - avail);
    return r;
}

/* Write into IMG the sectors of [OFFSET, OFFSET+N) where OLD and NEW
 * differ, from OLD: runs of zeros as zero writes. */
static int copy_differences(struct vimg_image *img, const uint8_t *old,
                            const uint8_t *new, uint64_t offset, uint64_t n)
{
    uint64_t i = 0;
    int r = 0;

    while (r == 0 && i < n) {
        uint64_t len = MIN(SECTOR, n - i);
        if (!memcmp(old + i, new + i, len)) {
            i += len;
            continue;
        }
        uint64_t end = i + len;
        while (end < n &&
               memcmp(old + end, new + end, MIN(SECTOR, n - end))) {
            end += MIN(SECTOR, n - end);
        }
        bool zero = true;
        for (uint64_t k = i; zero && k < end; k++) {
            zero = !old[k];
        }
        r = zero ? vimg_internal_zero(img, offset + i, end - i, 0)
                 : vimg_internal_pwrite(img, old + i, end - i, offset + i, 0);
        i = end;
    }
    return r;
}

/* Make IMG (backing OLD) read the same with NEW as its backing chain. With
 * PREFIX_DEPTH >= 0, NEW lies that deep in OLD's chain: only ranges the
 * images above it hold can differ. */
static int copy_phase(struct vimg_image *img, struct vimg_image *new,
                      int prefix_depth, const struct vimg_rebase_params *p)
{
    struct vimg_image *old = img->backing;
    uint8_t *bo = malloc(CHUNK), *bn = malloc(CHUNK);
    int r = 0;

    if (!bo || !bn) {
        free(bo);
        free(bn);
        return vimg_internal_error(ENOMEM, "out of memory");
    }
    for (uint64_t off = 0; r == 0 && off < img->size;) {
        struct vimg_extent e;
        uint64_t n = MIN(CHUNK, img->size - off);
        bool old_zero, new_zero;
        if ((r = vimg_internal_block_status(img, off, n, 0, &e)) < 0) {
            break;
        }
        n = e.length;
        if (e.flags & VIMG_BS_ALLOCATED) {
            off += n; /* IMG decides there itself */
            continue;
        }
        if (prefix_depth >= 0) {
            /* Unchanged since NEW: nothing above it in OLD's chain. */
            if ((r = vimg_internal_block_status(old, off, n, VIMG_BS_CHAIN,
                                                &e)) < 0) {
                break;
            }
            n = e.length;
            if (e.depth >= prefix_depth) {
                off += n;
                continue;
            }
        }
        if ((r = reads_zero(old, off, &n, &old_zero)) < 0 ||
            (r = reads_zero(new, off, &n, &new_zero)) < 0) {
            break;
        }
        if (!(old_zero && new_zero) &&
            (r = read_chain(old, bo, n, off)) == 0 &&
            (r = read_chain(new, bn, n, off)) == 0) {
            r = copy_differences(img, bo, bn, off, n);
        }
        off += n;
        if (r == 0 && p->progress) {
            p->progress(p->opaque, off, img->size);
        }
    }
    free(bo);
    free(bn);
    return r;
}

static int rebase(struct vimg_image *img, const struct vimg_rebase_params *p)
{
    const char *name = p->backing_file && *p->backing_file
                           ? p->backing_file : NULL;
    const char *fmt = name ? p->backing_format : NULL;
    const struct vimg_driver *drv;
    struct vimg_image *new = NULL, *prefix = NULL;
    CLEANUP_FREE char *path = NULL;
    int depth = -1, r;

    if (p->backing_format &&
        (!(drv = vimg_internal_find_driver(p->backing_format)) ||
         drv->kind != VIMG_DRIVER_FORMAT)) {
        return vimg_internal_error(EINVAL, "Invalid format name: '%s'",
                                   p->backing_format);
    }
    /* A backing file probed at every open could be turned into another
     * format by a guest: the format is recorded (qemu-img 7.2 too). */
    if (name && !fmt) {
        return vimg_internal_error(EINVAL, "Could not change the backing "
                                   "file to '%s': backing format must be "
                                   "specified", name);
    }
    if (!img->writable) {
        return vimg_internal_img_error(img, EROFS, "image is opened "
                                       "read-only");
    }
    if (!img->drv->change_backing) {
        return vimg_internal_img_error(img, ENOTSUP, "the %s format cannot "
                                       "record a backing file",
                                       img->drv->name);
    }
    if (name && (r = vimg_internal_resolve_reference(img, name, &path)) < 0) {
        return r;
    }
    if (!p->unsafe) {
        if (img->backing_name && !img->backing) {
            return vimg_internal_img_error(img, EIO, "backing file '%s' was "
                                           "not opened (a safe rebase reads "
                                           "it)", img->backing_name);
        }
        if (path && (prefix = in_chain(img, path, &depth))) {
            new = prefix;
        } else if (path) {
            struct vimg_open_params bp = {
                .format = fmt, .refs = img->params.refs,
                .flags = (p->force_share ? VIMG_OPEN_FORCE_SHARE : 0) |
                         (p->backing_flags & VIMG_OPEN_NOCACHE),
                .passphrase = img->params.passphrase,
                .passphrase_opaque = img->params.passphrase_opaque,
            };
            char want[PATH_MAX], self[PATH_MAX];
            if (realpath(path, want) && realpath(img->filename, self) &&
                !strcmp(want, self)) {
                return vimg_internal_img_error(img, EINVAL, "cannot be its "
                                               "own backing file");
            }
            if (!(new = vimg_open(path, &bp))) {
                int err = vimg_get_errno();
                char *msg = strdup(vimg_get_error() ? vimg_get_error() : "");
                vimg_internal_error_clear();
                if (err == ENOKEY) {
                    /* qemu-img 7.2 has no option for it either. */
                    vimg_internal_error(err, "Could not open new backing "
                                        "file '%s': it is encrypted, and "
                                        "rebase takes no key-secret for "
                                        "it; give its passphrase on a "
                                        "terminal, or rebase with -u",
                                        name);
                } else {
                    vimg_internal_error(err, "Could not open new backing "
                                        "file '%s': %s", name,
                                        msg ? msg : "");
                }
                free(msg);
                return -err;
            }
        }
        if ((r = copy_phase(img, new, prefix ? depth : -1, p)) < 0 ||
            (r = vimg_internal_flush(img)) < 0) {
            goto fail;
        }
    }
    pthread_mutex_lock(&img->lock);
    r = img->drv->change_backing(img, name, fmt);
    pthread_mutex_unlock(&img->lock);
    if (r < 0) {
        goto fail;
    }

    /* The handle follows its header (the driver set the names): the new
     * chain (the part of the old one it keeps, or the image opened
     * above), or none. */
    free(img->backing_path);
    img->backing_path = path;
    path = NULL;
    if (prefix) {
        prefix->parent->backing = NULL;
    }
    vimg_internal_close(img->backing);
    img->backing = new;
    if (new) {
        new->parent = img;
    }
    return 0;

fail:
    if (new && !prefix) {
        vimg_internal_close(new);
    }
    return r;
}

int vimg_rebase(struct vimg_image *img, const struct vimg_rebase_params *p)
{
    static const struct vimg_rebase_params defaults;

    vimg_internal_error_clear();
    if (!img) {
        vimg_internal_error(EINVAL, "no image");
        return -1;
    }
    int r = rebase(img, p ? p : &defaults);
    if (r < 0 && !vimg_internal_error_set()) {
        vimg_internal_img_error(img, -r, "rebase failed: %s", strerror(-r));
    }
    return r < 0 ? -1 : 0;
}
