/* Base64 (RFC 4648) decoding for text found in image metadata (DMG's XML
 * property list), and encoding for Ceph's cephx keys. */
#ifndef VIMG_BASE64_H
#define VIMG_BASE64_H

#include <stddef.h>
#include <stdint.h>

static inline int base64_value(char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Decode LEN bytes of IN into OUT, which has room for LEN * 3 / 4 bytes,
 * and return the bytes written. White space anywhere is skipped (property
 * lists wrap the text); '=' may only end it. -1 for anything else, or a
 * dangling character that encodes no whole byte. */
static inline long base64_decode(const char *in, size_t len, uint8_t *out)
{
    size_t n = 0, pad = 0;
    unsigned acc = 0, bits = 0, chars = 0;

    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            continue;
        }
        if (c == '=') {
            pad++;
            continue;
        }
        int v = base64_value(c);
        if (v < 0 || pad) {
            return -1;
        }
        acc = (acc << 6 | (unsigned)v) & 0xffffff;
        bits += 6;
        chars++;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (uint8_t)(acc >> bits);
        }
    }
    if (chars % 4 == 1 || pad > 2) {
        return -1;
    }
    return (long)n;
}

/* Encode LEN bytes of IN into OUT, which has room for
 * BASE64_LEN(LEN) + 1 bytes, with '=' padding and a final NUL. */
#define BASE64_LEN(len) (((len) + 2) / 3 * 4)
static inline void base64_encode(const uint8_t *in, size_t len, char *out)
{
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                 "abcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = 0;

    for (size_t i = 0; i < len; i += 3) {
        unsigned acc = (unsigned)in[i] << 16;
        acc |= i + 1 < len ? (unsigned)in[i + 1] << 8 : 0;
        acc |= i + 2 < len ? in[i + 2] : 0;
        out[n++] = digits[acc >> 18 & 63];
        out[n++] = digits[acc >> 12 & 63];
        out[n++] = i + 1 < len ? digits[acc >> 6 & 63] : '=';
        out[n++] = i + 2 < len ? digits[acc & 63] : '=';
    }
    out[n] = '\0';
}

#endif
