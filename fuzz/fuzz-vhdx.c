/* Fuzz the VHDX driver (headers, region tables, metadata, BAT, log search
 * and in-memory replay, block allocation and the log writes of a flush).
 * A VHDX is at least a few MiB, mostly zeros, so an input is a list of
 * pieces: a little-endian u32 offset in units of 512 bytes, a u16 length,
 * then that many bytes; the image is zeros elsewhere, as long as the last
 * piece reaches (at most 16 MiB). fuzz/make-vhdx-corpus.sh turns images
 * into this form. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_FORMAT "vhdx"
#define FUZZ_NAME "fuzz.vhdx"
#define FUZZ_DECODE decode
#define MAX_IMAGE (16u << 20)

static uint8_t *decode(const uint8_t *in, size_t n, size_t *len);

#include "fuzz-format.inc"

static uint8_t *decode(const uint8_t *in, size_t n, size_t *len)
{
    uint8_t *img = NULL;
    size_t size = 0;

    for (size_t pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i + 6 <= n;) {
            uint64_t off = (uint64_t)(in[i] | in[i + 1] << 8 |
                                      in[i + 2] << 16 |
                                      (uint32_t)in[i + 3] << 24) * 512;
            size_t k = in[i + 4] | in[i + 5] << 8;
            i += 6;
            k = k < n - i ? k : n - i;
            if (off + k <= MAX_IMAGE) {
                if (pass == 0 && off + k > size) {
                    size = off + k;
                } else if (pass == 1) {
                    memcpy(img + off, in + i, k);
                }
            }
            i += k;
        }
        if (pass == 0 && !(img = calloc(1, size ? size : 1))) {
            return NULL;
        }
    }
    *len = size;
    return img;
}
