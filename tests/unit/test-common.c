/* The header-only helpers in common/. */
#include <stdint.h>

#include "common/base64.h"
#include "common/byteswap.h"
#include "common/checked-overflow.h"
#include "common/crc32c.h"
#include "common/iszero.h"
#include "common/ratelimit.h"
#include "common/rounding.h"
#include "common/utf16.h"
#include "common/uuid.h"
#include "test.h"

#define b64(text, out) base64_decode(text, strlen(text), out)

/* base64 as DMG property lists wrap it: white space anywhere, padding
 * only at the end, nothing else. */
static void test_base64(void)
{
    uint8_t out[16];

    CHECK_EQ(b64("bWlzaA==", out), 4);
    CHECK(memcmp(out, "mish", 4) == 0);
    CHECK_EQ(b64("\tbW\nlz\r\n aA", out), 4);
    CHECK(memcmp(out, "mish", 4) == 0);
    CHECK_EQ(b64("AAEC", out), 3);
    CHECK(out[0] == 0 && out[1] == 1 && out[2] == 2);
    CHECK_EQ(b64("", out), 0);
    CHECK_EQ(b64("bW!zaA==", out), -1);
    CHECK_EQ(b64("bW=zaA", out), -1);
    CHECK_EQ(b64("bWlza", out), -1);
    CHECK_EQ(b64("AA===", out), -1);
}

/* The rate limit's arithmetic, on a clock the test moves: 1 MB/s gives a
 * 100 kB quota per 100 ms slice; what goes beyond it waits until due. */
static void test_ratelimit(void)
{
    struct ratelimit off = { 0 }, rl = { .rate = 1000000 };
    const uint64_t ms = 1000000;

    CHECK_EQ(ratelimit_delay(&off, 1u << 30, 5), 0);
    CHECK_EQ(ratelimit_delay(&rl, 50000, 1000 * ms), 0);
    CHECK_EQ(ratelimit_delay(&rl, 40000, 1010 * ms), 0);
    /* 200 kB in the slice started at 1000 ms: due at 1200 ms. */
    CHECK_EQ(ratelimit_delay(&rl, 110000, 1020 * ms), 180 * ms);
    /* Still in that (extended) slice: 300 kB due at 1300 ms. */
    CHECK_EQ(ratelimit_delay(&rl, 100000, 1200 * ms), 100 * ms);
    /* A new slice once it has passed. */
    CHECK_EQ(ratelimit_delay(&rl, 1000, 2000 * ms), 0);
    /* A tiny rate still moves: a quota of at least one byte. */
    struct ratelimit slow = { .rate = 1 };
    CHECK(ratelimit_delay(&slow, 10, 0) > 0);
}

int main(void)
{
    uint8_t b[8], u1[16], u2[16];
    uint64_t r;

    test_base64();
    test_ratelimit();

    store_be32(b, 0x514649fb);
    CHECK(b[0] == 'Q' && b[1] == 'F' && b[2] == 'I' && b[3] == 0xfb);
    CHECK_EQ(load_be32(b), 0x514649fb);
    store_be64(b, 0x0102030405060708ULL);
    CHECK(b[0] == 1 && b[7] == 8);
    CHECK(load_be64(b) == 0x0102030405060708ULL);
    store_le64(b, 0x0102030405060708ULL);
    CHECK(b[0] == 8 && b[7] == 1);
    CHECK(load_le64(b) == 0x0102030405060708ULL);
    store_le16(b, 0xbeef);
    CHECK_EQ(load_le16(b), 0xbeef);
    store_be16(b, 0xbeef);
    CHECK_EQ(load_be16(b), 0xbeef);
    store_le32(b, 0xdeadbeef);
    CHECK(load_le32(b) == 0xdeadbeef);

    CHECK(CHECKED_ADD(UINT64_MAX, (uint64_t)1, &r));
    CHECK(!CHECKED_ADD((uint64_t)1, (uint64_t)2, &r) && r == 3);
    CHECK(CHECKED_MUL(UINT64_MAX / 2, (uint64_t)3, &r));
    CHECK(range_outside(UINT64_MAX - 1, 4, UINT64_MAX));
    CHECK(range_outside(10, 10, 19));
    CHECK(!range_outside(10, 10, 20));

    /* The check value of the CRC-32C catalogue, and the skipped field. */
    CHECK_EQ(crc32c_final(crc32c_update(crc32c_init(), "123456789", 9)),
             0xe3069283u);
    CHECK_EQ(crc32c_skip("ab\xff\xff\xff\xff" "cd", 8, 2),
             crc32c_final(crc32c_update(crc32c_init(), "ab\0\0\0\0cd", 8)));
    CHECK_EQ(uuid_generate_v4(u1), 0);
    CHECK_EQ(uuid_generate_v4(u2), 0);
    CHECK(memcmp(u1, u2, 16) != 0);
    CHECK_EQ(u1[6] >> 4, 4);
    CHECK_EQ(u1[8] >> 6, 2);

    CHECK_EQ(ROUND_UP(4097, 4096), 8192);
    CHECK_EQ(ROUND_DOWN(4097, 4096), 4096);
    CHECK_EQ(DIV_ROUND_UP(1, 512), 1);
    CHECK(is_power_of_2(65536) && !is_power_of_2(0) && !is_power_of_2(12));

    static uint8_t z[100000];
    CHECK(is_zero(z, sizeof z));
    CHECK(is_zero(z, 0) && is_zero(z, 5));
    z[99999] = 1;
    CHECK(!is_zero(z, sizeof z));
    z[99999] = 0;
    z[3] = 1;
    CHECK(!is_zero(z, 10));
    /* UTF-16: both byte orders, a surrogate pair, NUL padding, limits. */
    {
        static const uint8_t le[] = { 'a', 0, 0xe9, 0, 0x3d, 0xd8, 0x00,
                                      0xde, '\\', 0, 0, 0, 'x', 0 };
        static const uint8_t be[] = { 0, '.', 0, '\\', 0xd8, 0x00 };
        char out[16];
        CHECK_EQ(utf16_to_utf8(le, sizeof le, false, out, sizeof out), 0);
        CHECK(strcmp(out, "a\xc3\xa9\xf0\x9f\x98\x80\\") == 0);
        CHECK_EQ(utf16_to_utf8(be, sizeof be, true, out, sizeof out), 0);
        CHECK(strcmp(out, ".\\\xef\xbf\xbd") == 0);
        CHECK_EQ(utf16_to_utf8(le, 3, false, out, sizeof out), -EINVAL);
        CHECK_EQ(utf16_to_utf8(le, 8, false, out, 4), -ENAMETOOLONG);
    }
    TEST_MAIN_END();
}
