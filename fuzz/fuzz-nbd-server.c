/* Fuzz the NBD server: the input is everything a client sends, fed
 * through the handshake and the request loop over an in-memory transport
 * (the replies are discarded) against a small writable raw image with
 * every context and TRIM on. The dirty-bitmap contexts "b0" (dirty
 * granules of 512 bytes) and "b1" (disabled, clean) come from a qcow2
 * image of the same size, made once. Any crash, hang or sanitizer report
 * is a bug; protocol errors are expected. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nbd/server.h"
#include "vimg/vimg.h"

#define DISK_SIZE (64u << 10)

struct stream {
    const uint8_t *data;
    size_t len, pos;
};

static ssize_t mem_recv(void *opaque, void *buf, size_t len)
{
    struct stream *s = opaque;
    size_t n = s->len - s->pos < len ? s->len - s->pos : len;
    memcpy(buf, s->data + s->pos, n);
    s->pos += n;
    return (ssize_t)n;
}

static int mem_sendv(void *opaque, const struct iovec *iov, int n)
{
    (void)opaque;
    (void)iov;
    (void)n;
    return 0;
}

/* The qcow2 image holding the bitmaps, in memory: made in a temporary
 * file once, then copied for each input. NULL when it could not be made
 * (the contexts are then not offered). */
static uint8_t *bitmap_image;
static size_t bitmap_image_len;

static int make_bitmap_image(const char *path)
{
    struct vimg_create_params cp = { .format = "qcow2", .size = DISK_SIZE,
                                     .size_given = true,
                                     .options = "cluster_size=4096" };
    struct vimg_open_params op = { .format = "qcow2",
                                   .flags = VIMG_OPEN_RDWR };
    struct vimg_bitmap_params b0 = { .op = VIMG_BITMAP_ADD, .name = "b0",
                                     .granularity = 512 };
    struct vimg_bitmap_params b1 = { .op = VIMG_BITMAP_ADD, .name = "b1",
                                     .disabled = true };
    static const uint64_t writes[][2] = {
        { 0, 100 }, { 4000, 5000 }, { 30000, 512 }, { DISK_SIZE - 1, 1 },
    };
    uint8_t buf[8192] = { 1 };

    if (vimg_create(path, &cp) < 0) {
        return -1;
    }
    struct vimg_image *img = vimg_open(path, &op);
    int r = img && vimg_bitmap(img, &b0) == 0 &&
            vimg_bitmap(img, &b1) == 0 ? 0 : -1;
    for (size_t i = 0; r == 0 && i < sizeof writes / sizeof *writes; i++) {
        r = vimg_pwrite(img, buf, writes[i][1], writes[i][0], 0);
    }
    if (img && vimg_close(img) < 0) {
        r = -1;
    }
    FILE *f = r == 0 ? fopen(path, "rb") : NULL;
    if (f && fseek(f, 0, SEEK_END) == 0) {
        long n = ftell(f);
        bitmap_image = n > 0 ? malloc((size_t)n) : NULL;
        rewind(f);
        if (bitmap_image && fread(bitmap_image, 1, (size_t)n, f) == (size_t)n) {
            bitmap_image_len = (size_t)n;
        } else {
            free(bitmap_image);
            bitmap_image = NULL;
        }
    }
    if (f) {
        fclose(f);
    }
    return bitmap_image ? 0 : -1;
}

static void init_bitmap_image(void)
{
    static bool done;
    const char *dir = getenv("TMPDIR");
    char path[4096];

    if (done) {
        return;
    }
    done = true;
    snprintf(path, sizeof path, "%s/fuzz-nbd-XXXXXX",
             dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0) {
        return;
    }
    close(fd);
    if (make_bitmap_image(path) < 0) {
        fprintf(stderr, "fuzz-nbd-server: no bitmap image: %s\n",
                vimg_get_error());
    }
    unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t disk[DISK_SIZE];
    struct vimg_open_params p = { .format = "raw", .flags = VIMG_OPEN_RDWR };
    struct vimg_image *img = vimg_open_buffer(disk, sizeof disk, "fuzz", &p);
    if (!img) {
        return 0;
    }
    struct nbd_export exp = { .img = img, .name = "", .description = "fuzz",
                              .allocation_depth = true, .discard = true };
    struct vimg_open_params qp = { .format = "qcow2" };
    struct vimg_image *bimg = NULL;
    struct nbd_bitmap bitmaps[2] = { { NULL, "b0" }, { NULL, "b1" } };

    init_bitmap_image();
    if (bitmap_image) {
        bimg = vimg_open_buffer(bitmap_image, bitmap_image_len, "bitmaps",
                                &qp);
    }
    if (bimg) {
        bitmaps[0].img = bitmaps[1].img = bimg;
        exp.bitmaps = bitmaps;
        exp.n_bitmaps = 2;
    }
    struct nbd_server_config cfg = { .exp = &exp, .workers = 2 };
    struct stream st = { data, size, 0 };
    struct nbd_transport t = { .recv = mem_recv, .sendv = mem_sendv,
                               .opaque = &st };
    nbd_server_run(&cfg, &t);
    vimg_close(bimg);
    vimg_close(img);
    return 0;
}
