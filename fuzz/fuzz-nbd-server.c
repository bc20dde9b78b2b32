/* Fuzz the NBD server: the input is everything a client sends, fed
 * through the handshake and the request loop over an in-memory transport
 * (the replies are discarded) against a small writable raw image with
 * every context and TRIM on. Any crash, hang or sanitizer report is a
 * bug; protocol errors are expected. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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
    struct nbd_server_config cfg = { .exp = &exp, .workers = 2 };
    struct stream st = { data, size, 0 };
    struct nbd_transport t = { .recv = mem_recv, .sendv = mem_sendv,
                               .opaque = &st };
    nbd_server_run(&cfg, &t);
    vimg_close(img);
    return 0;
}
