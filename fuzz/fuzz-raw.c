/* Fuzz the probe + open + info + block status + read path on whatever
 * format the input probes as (raw, until other formats claim it). */
#include <stdint.h>
#include <stdlib.h>

#include "vimg/vimg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct vimg_image *img = vimg_open_buffer(data, size, "fuzz", NULL);
    if (!img) {
        return 0;
    }
    vimg_value_free(vimg_get_info(img));
    int64_t len = vimg_get_size(img);
    char buf[4096];
    for (int64_t off = 0; off < len && off < (1 << 20);) {
        struct vimg_extent e;
        if (vimg_block_status(img, (uint64_t)off, (uint64_t)(len - off),
                              VIMG_BS_CHAIN, &e) < 0) {
            break;
        }
        uint64_t n = e.length < sizeof buf ? e.length : sizeof buf;
        if (vimg_pread(img, buf, n, (uint64_t)off) < 0) {
            break;
        }
        off += (int64_t)e.length;
    }
    vimg_close(img);
    return 0;
}
