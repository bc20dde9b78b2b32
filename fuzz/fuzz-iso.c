/* Fuzz the ISO 9660 reader: info's description, a recursive listing and
 * reading every file (a bounded number of bytes), on whatever the input
 * holds, opened as raw from memory. The input is the image from sector 16
 * on: the target puts the 32 KiB system area (zeros) in front, so neither
 * the corpus nor the fuzzer spends its bytes on it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vimg/vimg.h"

struct ctx {
    struct vimg_iso *iso;
    uint64_t budget;     /* file bytes left to read */
};

static int visit(void *opaque, const char *path,
                 const struct vimg_iso_stat *st)
{
    struct ctx *c = opaque;
    char buf[4096];

    if (st->type != VIMG_ISO_FILE) {
        return 0;
    }
    for (uint64_t off = 0; off < st->size && c->budget > 0;) {
        int64_t n = vimg_iso_read(c->iso, path, buf, sizeof buf, off);
        if (n <= 0) {
            break;
        }
        off += (uint64_t)n;
        c->budget -= (uint64_t)n < c->budget ? (uint64_t)n : c->budget;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    enum { SYSTEM_AREA = 16 * 2048 };
    struct vimg_open_params p = { .format = "raw" };
    uint8_t *iso = calloc(1, SYSTEM_AREA + size);
    if (!iso) {
        return 0;
    }
    memcpy(iso + SYSTEM_AREA, data, size);
    struct vimg_image *img = vimg_open_buffer(iso, SYSTEM_AREA + size,
                                              "fuzz", &p);
    free(iso);
    if (!img) {
        return 0;
    }
    vimg_value_free(vimg_get_info(img));
    struct ctx c = { vimg_iso_open(img), 1 << 20 };
    if (c.iso) {
        struct vimg_iso_stat st;
        vimg_iso_stat(c.iso, "/", &st);
        vimg_iso_list(c.iso, "/", true, visit, &c);
        vimg_iso_close(c.iso);
    }
    vimg_close(img);
    return 0;
}
