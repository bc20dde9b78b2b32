/* Fast test for an all-zero buffer (nbdkit's trick: check the first 16
 * bytes by hand, then compare the buffer with itself shifted by 16). */
#ifndef VIMG_ISZERO_H
#define VIMG_ISZERO_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

static inline bool is_zero(const void *buf, size_t len)
{
    const unsigned char *p = buf;
    size_t i, head = len < 16 ? len : 16;

    for (i = 0; i < head; i++) {
        if (p[i]) {
            return false;
        }
    }
    return len <= 16 || memcmp(p, p + 16, len - 16) == 0;
}

#endif
