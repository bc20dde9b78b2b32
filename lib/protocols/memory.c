/* The memory protocol: an image in a heap buffer, for unit tests and
 * fuzzing, with a fault hook that fails every write-like call from the Nth
 * on (a simulated crash for crash-safety tests), and an observer that
 * sees every change (fuzzers check where formats write). Discard punches:
 * the range reads as zeros afterwards, as a punched file does. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/rounding.h"
#include "../internal.h"

struct memory_state {
    uint8_t *data;
    size_t len, cap, max_len;
    uint64_t fail_after;   /* 0: never; else the Nth write-like call fails */
    uint64_t writes;
    uint64_t *counter;     /* where writes are counted: WRITES, or a
                              counter shared with other memory images */
    vimg_memory_observer observer;
    void *observer_opaque;
};

static void observe(struct vimg_image *img, enum vimg_memory_op op,
                    uint64_t offset, uint64_t len, unsigned flags)
{
    struct memory_state *s = img->opaque;
    if (s->observer) {
        s->observer(s->observer_opaque, op, offset, len, flags);
    }
}

static int memory_open(struct vimg_image *img, const struct vimg_opts *opts)
{
    (void)opts;
    (void)img;
    return 0; /* set up by vimg_internal_memory_new */
}

static int memory_close(struct vimg_image *img)
{
    struct memory_state *s = img->opaque;
    free(s->data);
    return 0;
}

/* Count a write-like call; fail it and all later ones once armed. */
static int crash_point(struct vimg_image *img)
{
    struct memory_state *s = img->opaque;
    uint64_t *w = s->counter ? s->counter : &s->writes;
    if (s->fail_after && ++*w >= s->fail_after) {
        return vimg_internal_img_error(img, EIO, "simulated I/O failure "
                                       "(write %llu)",
                                       (unsigned long long)*w);
    }
    return 0;
}

static int ensure_len(struct vimg_image *img, uint64_t end)
{
    struct memory_state *s = img->opaque;
    if (end <= s->len) {
        return 0;
    }
    if (end > s->max_len) {
        return vimg_internal_img_error(img, ENOSPC, "memory image full "
                                       "(%zu bytes)", s->max_len);
    }
    if (end > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < end) {
            cap = cap > s->max_len / 2 ? s->max_len : cap * 2;
        }
        uint8_t *p = realloc(s->data, cap);
        if (!p) {
            return vimg_internal_img_error(img, ENOMEM, "out of memory");
        }
        s->data = p;
        s->cap = cap;
    }
    memset(s->data + s->len, 0, end - s->len);
    s->len = end;
    img->size = end;
    return 0;
}

static int memory_pread(struct vimg_image *img, void *buf, uint64_t count,
                        uint64_t offset)
{
    struct memory_state *s = img->opaque;
    uint64_t avail = offset < s->len ? s->len - offset : 0;
    uint64_t n = count < avail ? count : avail;

    if (n) {
        memcpy(buf, s->data + offset, n);
    }
    memset((uint8_t *)buf + n, 0, count - n);
    return 0;
}

static int memory_pwrite(struct vimg_image *img, const void *buf,
                         uint64_t count, uint64_t offset, unsigned flags)
{
    struct memory_state *s = img->opaque;
    int r;

    if ((r = crash_point(img)) < 0) {
        return r;
    }
    observe(img, VIMG_MEMORY_WRITE, offset, count, flags);
    if ((r = ensure_len(img, offset + count))) {
        return r;
    }
    memcpy(s->data + offset, buf, count);
    return 0;
}

static int memory_zero(struct vimg_image *img, uint64_t offset,
                       uint64_t count, unsigned flags)
{
    struct memory_state *s = img->opaque;
    int r;

    (void)flags;
    if ((r = crash_point(img)) < 0) {
        return r;
    }
    observe(img, VIMG_MEMORY_ZERO, offset, count, 0);
    if ((r = ensure_len(img, offset + count))) {
        return r;
    }
    memset(s->data + offset, 0, count);
    return 0;
}

/* Punch a hole: what lies inside the image reads as zeros; the length
 * does not change. */
static int memory_discard(struct vimg_image *img, uint64_t offset,
                          uint64_t count)
{
    struct memory_state *s = img->opaque;
    int r;

    if ((r = crash_point(img)) < 0) {
        return r;
    }
    observe(img, VIMG_MEMORY_DISCARD, offset, count, 0);
    if (offset < s->len) {
        memset(s->data + offset, 0, MIN(count, s->len - offset));
    }
    return 0;
}

static int memory_flush(struct vimg_image *img)
{
    return crash_point(img);
}

static int memory_truncate(struct vimg_image *img, uint64_t size,
                           unsigned flags, enum vimg_prealloc prealloc)
{
    struct memory_state *s = img->opaque;
    int r;

    (void)flags;
    (void)prealloc;
    if ((r = crash_point(img)) < 0) {
        return r;
    }
    observe(img, VIMG_MEMORY_TRUNCATE, size, s->len, 0);
    if (size <= s->len) {
        s->len = size;
        img->size = size;
        return 0;
    }
    return ensure_len(img, size);
}

const struct vimg_driver vimg_driver_memory = {
    .name = "memory",
    .kind = VIMG_DRIVER_PROTOCOL,
    .instance_size = sizeof(struct memory_state),
    .thread_safe = false,
    .has_zero_init = true,
    .open = memory_open,
    .close = memory_close,
    .pread = memory_pread,
    .pwrite = memory_pwrite,
    .zero = memory_zero,
    .discard = memory_discard,
    .flush = memory_flush,
    .truncate = memory_truncate,
};

struct vimg_image *vimg_internal_memory_new(const char *name,
                                            const void *data, size_t len,
                                            size_t max_len)
{
    struct vimg_image *img = calloc(1, sizeof *img);
    struct memory_state *s = calloc(1, sizeof *s);

    if (!img || !s || !(img->filename = strdup(name ? name : "memory"))) {
        goto oom;
    }
    if (max_len < len) {
        max_len = len;
    }
    s->max_len = max_len;
    if (len && !(s->data = malloc(len))) {
        goto oom;
    }
    if (len) {
        memcpy(s->data, data, len);
    }
    s->len = s->cap = len;
    img->drv = &vimg_driver_memory;
    img->opaque = s;
    img->size = len;
    img->writable = true;
    img->request_alignment = 1;
    vimg_internal_mutex_init(&img->lock);
    return img;

oom:
    if (img) {
        free(img->filename);
    }
    free(s);
    free(img);
    vimg_internal_error(ENOMEM, "out of memory");
    return NULL;
}

void vimg_internal_memory_fail_after(struct vimg_image *mem, uint64_t n)
{
    struct memory_state *s = mem->opaque;
    s->fail_after = n;
    s->writes = 0;
}

void vimg_internal_memory_fail_after_shared(struct vimg_image *mem,
                                            uint64_t n, uint64_t *counter)
{
    struct memory_state *s = mem->opaque;
    s->fail_after = n;
    s->counter = counter;
}

const void *vimg_internal_memory_data(struct vimg_image *mem, size_t *len)
{
    struct memory_state *s = mem->opaque;
    *len = s->len;
    return s->data;
}

void vimg_internal_memory_observe(struct vimg_image *mem,
                                  vimg_memory_observer fn, void *opaque)
{
    struct memory_state *s = mem->opaque;
    s->observer = fn;
    s->observer_opaque = opaque;
}
