/* CRC-32C (Castagnoli, reflected polynomial 0x82f63b78), as VHDX
 * checksums its headers, region tables and log entries: start from
 * crc32c_init(), feed bytes with crc32c_update(), finish with
 * crc32c_final(). A 256-entry table, built once. */
#ifndef VIMG_CRC32C_H
#define VIMG_CRC32C_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

static uint32_t crc32c_table[256];
static pthread_once_t crc32c_once = PTHREAD_ONCE_INIT;

static void crc32c_build(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) {
            c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
        }
        crc32c_table[i] = c;
    }
}

static inline uint32_t crc32c_init(void)
{
    pthread_once(&crc32c_once, crc32c_build);
    return 0xffffffffu;
}

static inline uint32_t crc32c_update(uint32_t crc, const void *buf,
                                     size_t len)
{
    const uint8_t *p = buf;
    for (size_t i = 0; i < len; i++) {
        crc = crc32c_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    }
    return crc;
}

static inline uint32_t crc32c_final(uint32_t crc)
{
    return crc ^ 0xffffffffu;
}

/* The checksum of LEN bytes at BUF, with the 4 bytes at CSUM_OFF counted
 * as zeros (the field the checksum is stored in). */
static inline uint32_t crc32c_skip(const void *buf, size_t len,
                                   size_t csum_off)
{
    static const uint8_t zeros[4];
    const uint8_t *p = buf;
    uint32_t c = crc32c_init();
    c = crc32c_update(c, p, csum_off);
    c = crc32c_update(c, zeros, 4);
    c = crc32c_update(c, p + csum_off + 4, len - csum_off - 4);
    return crc32c_final(c);
}

#endif
