/* Compare guest-visible contents, skipping ranges both images report as
 * zeros, and reporting the first differing byte offset as qemu-img does. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/iszero.h"
#include "../../common/rounding.h"
#include "../internal.h"

#define CHUNK (1u << 20)

static uint64_t first_difference(const char *a, const char *b, uint64_t n)
{
    uint64_t i = 0;
    /* Find the differing 4 KiB block fast, then the byte. */
    while (i + 4096 <= n && memcmp(a + i, b + i, 4096) == 0) {
        i += 4096;
    }
    while (i < n && a[i] == b[i]) {
        i++;
    }
    return i;
}

/* Where [OFFSET, END) of IMG stops reading as zeros; END if it never does. */
static int nonzero_from(struct vimg_image *img, uint64_t offset, uint64_t end,
                        char *buf, uint64_t *where)
{
    while (offset < end) {
        struct vimg_extent e;
        int r = vimg_internal_block_status(img, offset, end - offset,
                                           VIMG_BS_CHAIN, &e);
        if (r < 0) {
            return r;
        }
        if (!(e.flags & VIMG_BS_ZERO)) {
            for (uint64_t at = offset; at < offset + e.length; at += CHUNK) {
                uint64_t n = MIN(CHUNK, offset + e.length - at);
                if ((r = vimg_internal_pread(img, buf, n, at)) < 0) {
                    return r;
                }
                if (!is_zero(buf, n)) {
                    uint64_t i = 0;
                    while (i < n && !buf[i]) {
                        i++;
                    }
                    /* qemu-img reports the sector, not the byte. */
                    *where = MAX(ROUND_DOWN(at + i, 512), offset);
                    return 0;
                }
            }
        }
        offset += e.length;
    }
    *where = end;
    return 0;
}

/* qemu-img compare -s also fails when the two images' block status
 * differs at the same offset: data, zero, allocation, and whether the
 * extent runs to the end of the image. */
static bool status_differs(struct vimg_image *a, const struct vimg_extent *ea,
                           struct vimg_image *b, const struct vimg_extent *eb)
{
    const unsigned mask = VIMG_BS_DATA | VIMG_BS_ZERO | VIMG_BS_ALLOCATED |
                          VIMG_BS_OFFSET_VALID;
    bool eof_a = ea->offset + ea->length == a->size;
    bool eof_b = eb->offset + eb->length == b->size;
    return (ea->flags & mask) != (eb->flags & mask) || eof_a != eof_b;
}

static int compare(struct vimg_image *a, struct vimg_image *b, bool strict,
                   uint64_t *first_diff, vimg_progress_fn progress,
                   void *opaque, char *ba, char *bb)
{
    uint64_t common = MIN(a->size, b->size);
    uint64_t total = MAX(a->size, b->size);
    uint64_t off = 0;
    int r;

    if (strict && a->size != b->size) {
        *first_diff = common;
        return 1;
    }
    while (off < common) {
        struct vimg_extent ea, eb;
        if ((r = vimg_internal_block_status(a, off, common - off,
                                            VIMG_BS_CHAIN, &ea)) < 0 ||
            (r = vimg_internal_block_status(b, off, common - off,
                                            VIMG_BS_CHAIN, &eb)) < 0) {
            return r;
        }
        if (strict && status_differs(a, &ea, b, &eb)) {
            *first_diff = off;
            return 2;
        }
        uint64_t n = MIN(ea.length, eb.length);
        bool za = ea.flags & VIMG_BS_ZERO, zb = eb.flags & VIMG_BS_ZERO;
        if (!(za && zb)) {
            n = MIN(n, CHUNK);
            if ((r = za ? (memset(ba, 0, n), 0)
                        : vimg_internal_pread(a, ba, n, off)) < 0 ||
                (r = zb ? (memset(bb, 0, n), 0)
                        : vimg_internal_pread(b, bb, n, off)) < 0) {
                return r;
            }
            uint64_t i = first_difference(ba, bb, n);
            if (i < n) {
                /* qemu-img reports the 512-byte sector that differs. */
                *first_diff = (off + i) / 512 * 512;
                return 1;
            }
        }
        off += n;
        if (progress) {
            progress(opaque, off, total);
        }
    }
    if (a->size != b->size) {
        struct vimg_image *big = a->size > b->size ? a : b;
        uint64_t where;
        if ((r = nonzero_from(big, common, big->size, ba, &where)) < 0) {
            return r;
        }
        if (where < big->size) {
            *first_diff = where;
            return 1;
        }
    }
    if (progress) {
        progress(opaque, total, total);
    }
    return 0;
}

int vimg_compare(struct vimg_image *a, struct vimg_image *b, bool strict,
                 uint64_t *first_diff, vimg_progress_fn progress,
                 void *opaque)
{
    char *ba = malloc(CHUNK), *bb = malloc(CHUNK);
    int r;

    vimg_internal_error_clear();
    if (!ba || !bb) {
        r = vimg_internal_error(ENOMEM, "out of memory");
    } else {
        r = compare(a, b, strict, first_diff, progress, opaque, ba, bb);
    }
    free(ba);
    free(bb);
    if (r < 0 && !vimg_internal_error_set()) {
        vimg_internal_error(r, "compare: %s", strerror(-r));
    }
    return r < 0 ? -1 : r;
}
