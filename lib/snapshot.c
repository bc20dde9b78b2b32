/* Internal snapshots: the public calls, which check what the core can
 * before the format's driver members run (lib/formats/qcow2/
 * qcow2-snapshot.c for qcow2). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

void vimg_snapshot_list_free(struct vimg_snapshot *list, size_t n)
{
    for (size_t i = 0; list && i < n; i++) {
        free(list[i].id);
        free(list[i].name);
    }
    free(list);
}

static int result(struct vimg_image *img, int r)
{
    if (r < 0 && !vimg_internal_error_set()) {
        vimg_internal_img_error(img, -r, "%s", strerror(-r));
    }
    return r < 0 ? -1 : 0;
}

int vimg_snapshot_list(struct vimg_image *img, struct vimg_snapshot **list,
                       size_t *n)
{
    int r = 0;

    vimg_internal_error_clear();
    *list = NULL;
    *n = 0;
    if (!img) {
        vimg_internal_error(EINVAL, "no image");
        return -1;
    }
    if (img->drv->snapshot_list) {
        pthread_mutex_lock(&img->lock);
        r = img->drv->snapshot_list(img, list, n);
        pthread_mutex_unlock(&img->lock);
    }
    return result(img, r);
}

/* Checks shared by the calls that change snapshots: an image, writable,
 * whose format has them. */
static int changing(struct vimg_image *img,
                    int (*member)(struct vimg_image *, const char *,
                                  const char *),
                    const char *id, const char *name)
{
    int r;

    vimg_internal_error_clear();
    if (!img) {
        vimg_internal_error(EINVAL, "no image");
        return -1;
    }
    if (!img->writable) {
        vimg_internal_img_error(img, EROFS, "image is opened read-only");
        return -1;
    }
    if (!member) {
        vimg_internal_img_error(img, ENOTSUP, "the %s format does not "
                                "support internal snapshots", img->drv->name);
        return -1;
    }
    if (!id && !name) {
        vimg_internal_img_error(img, EINVAL, "no snapshot named");
        return -1;
    }
    pthread_mutex_lock(&img->lock);
    r = member(img, id, name);
    pthread_mutex_unlock(&img->lock);
    return result(img, r);
}

int vimg_snapshot_apply(struct vimg_image *img, const char *id,
                        const char *name)
{
    return changing(img, img ? img->drv->snapshot_apply : NULL, id, name);
}

int vimg_snapshot_delete(struct vimg_image *img, const char *id,
                         const char *name)
{
    return changing(img, img ? img->drv->snapshot_delete : NULL, id, name);
}

/* The snapshot_create member wrapped to the shape of the others: NAME is
 * the new snapshot's name (ID unused). */
static int create(struct vimg_image *img, const char *id, const char *name)
{
    struct timespec now;
    struct vimg_snapshot sn = { .name = (char *)name };

    (void)id;
    clock_gettime(CLOCK_REALTIME, &now);
    /* qemu-img takes the time of day in microseconds. */
    sn.date_sec = (uint32_t)now.tv_sec;
    sn.date_nsec = (uint32_t)(now.tv_nsec / 1000 * 1000);
    sn.icount = 0;
    return img->drv->snapshot_create(img, &sn);
}

int vimg_snapshot_create(struct vimg_image *img, const char *name)
{
    return changing(img, img && img->drv->snapshot_create ? create : NULL,
                    NULL, name);
}
