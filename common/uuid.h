/* Random (version 4) UUIDs for new images' identifiers (VHD, VHDX, VDI).
 * The 16 bytes are filled in RFC 4122 order; formats that store UUIDs as
 * little-endian GUID fields lay them out themselves. */
#ifndef VIMG_UUID_H
#define VIMG_UUID_H

#include <errno.h>
#include <stdint.h>
#include <sys/random.h>

/* 0, or -errno when the kernel has no randomness to give. */
static inline int uuid_generate_v4(uint8_t out[16])
{
    size_t got = 0;

    while (got < 16) {
        ssize_t n = getrandom(out + got, 16 - got, 0);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        got += (size_t)n;
    }
    out[6] = (uint8_t)((out[6] & 0x0f) | 0x40); /* version 4 */
    out[8] = (uint8_t)((out[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    return 0;
}

#endif
