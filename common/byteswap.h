/* Alignment-safe big/little-endian loads and stores for on-disk layouts. */
#ifndef VIMG_BYTESWAP_H
#define VIMG_BYTESWAP_H

#include <stdint.h>
#include <string.h>

static inline uint16_t load_be16(const void *p)
{
    const uint8_t *b = p;
    return (uint16_t)(b[0] << 8 | b[1]);
}
static inline uint32_t load_be32(const void *p)
{
    const uint8_t *b = p;
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 |
           (uint32_t)b[2] << 8 | b[3];
}
static inline uint64_t load_be64(const void *p)
{
    const uint8_t *b = p;
    return (uint64_t)load_be32(b) << 32 | load_be32(b + 4);
}
static inline uint16_t load_le16(const void *p)
{
    const uint8_t *b = p;
    return (uint16_t)(b[1] << 8 | b[0]);
}
static inline uint32_t load_le32(const void *p)
{
    const uint8_t *b = p;
    return (uint32_t)b[3] << 24 | (uint32_t)b[2] << 16 |
           (uint32_t)b[1] << 8 | b[0];
}
static inline uint64_t load_le64(const void *p)
{
    const uint8_t *b = p;
    return (uint64_t)load_le32(b + 4) << 32 | load_le32(b);
}
static inline void store_be16(void *p, uint16_t v)
{
    uint8_t *b = p;
    b[0] = v >> 8;
    b[1] = (uint8_t)v;
}
static inline void store_be32(void *p, uint32_t v)
{
    uint8_t *b = p;
    b[0] = v >> 24;
    b[1] = (uint8_t)(v >> 16);
    b[2] = (uint8_t)(v >> 8);
    b[3] = (uint8_t)v;
}
static inline void store_be64(void *p, uint64_t v)
{
    store_be32(p, (uint32_t)(v >> 32));
    store_be32((uint8_t *)p + 4, (uint32_t)v);
}
static inline void store_le16(void *p, uint16_t v)
{
    uint8_t *b = p;
    b[0] = (uint8_t)v;
    b[1] = v >> 8;
}
static inline void store_le32(void *p, uint32_t v)
{
    uint8_t *b = p;
    b[0] = (uint8_t)v;
    b[1] = (uint8_t)(v >> 8);
    b[2] = (uint8_t)(v >> 16);
    b[3] = v >> 24;
}
static inline void store_le64(void *p, uint64_t v)
{
    store_le32(p, (uint32_t)v);
    store_le32((uint8_t *)p + 4, (uint32_t)(v >> 32));
}

#endif
