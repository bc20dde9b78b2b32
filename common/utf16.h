/* UTF-16 (either byte order) to UTF-8, for names stored in image metadata
 * (VHD parent names and locators, VHDX parent locators). */
#ifndef VIMG_UTF16_H
#define VIMG_UTF16_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "byteswap.h"

/* Convert the LEN bytes at IN to UTF-8 in OUT (OUTLEN bytes, with the
 * terminating NUL). A NUL code unit ends the string early (fixed-size
 * fields are NUL padded); an unpaired surrogate becomes U+FFFD. -EINVAL
 * for an odd LEN, -ENAMETOOLONG when OUT is too small. */
static inline int utf16_to_utf8(const uint8_t *in, size_t len, bool big,
                                char *out, size_t outlen)
{
    size_t o = 0;

    if (len % 2 || outlen == 0) {
        return -EINVAL;
    }
    for (size_t i = 0; i < len; i += 2) {
        uint32_t cp = big ? load_be16(in + i) : load_le16(in + i);
        uint32_t lo = i + 3 < len ? (big ? load_be16(in + i + 2)
                                         : load_le16(in + i + 2)) : 0;
        if (cp == 0) {
            break;
        }
        if (cp >= 0xD800 && cp < 0xDC00 && lo >= 0xDC00 && lo < 0xE000) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            i += 2;
        } else if (cp >= 0xD800 && cp < 0xE000) {
            cp = 0xFFFD;
        }
        size_t n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
        if (o + n >= outlen) {
            return -ENAMETOOLONG;
        }
        if (n == 1) {
            out[o++] = (char)cp;
        } else if (n == 2) {
            out[o++] = (char)(0xC0 | cp >> 6);
            out[o++] = (char)(0x80 | (cp & 0x3F));
        } else if (n == 3) {
            out[o++] = (char)(0xE0 | cp >> 12);
            out[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
            out[o++] = (char)(0x80 | (cp & 0x3F));
        } else {
            out[o++] = (char)(0xF0 | cp >> 18);
            out[o++] = (char)(0x80 | ((cp >> 12) & 0x3F));
            out[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
            out[o++] = (char)(0x80 | (cp & 0x3F));
        }
    }
    out[o] = '\0';
    return 0;
}

#endif
