/* lib/compress: round trips, QEMU's 4 KiB deflate window, zlib streams
 * (VMDK grains) with short last blocks, trailing bytes, damaged input,
 * bzip2 streams (DMG chunks), and several threads at once. */
#include <bzlib.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <zlib.h>
#include <zstd.h>

#include "compress/compress.h"
#include "test.h"

#define CLUSTER 65536

static _Thread_local uint32_t rng = 12345;
static uint8_t next_byte(void)
{
    rng = rng * 1103515245u + 12345u;
    return (uint8_t)(rng >> 16);
}

/* Text-like data: compressible within a small window. */
static void fill_text(uint8_t *buf, size_t len, unsigned seed)
{
    static const char *words[] = { "qcow2 ", "cluster ", "refcount ",
                                   "table ", "guest ", "\n", "vimg " };
    size_t i = 0;
    rng = seed;
    while (i < len) {
        const char *w = words[next_byte() % 7];
        for (; *w && i < len; w++) {
            buf[i++] = (uint8_t)*w;
        }
    }
}

/* What QEMU's reader does: raw inflate with a 4 KiB window. */
static bool qemu_inflates(const uint8_t *in, size_t in_len, uint8_t *out,
                          size_t out_len)
{
    z_stream z = { 0 };
    if (inflateInit2(&z, -12) != Z_OK) {
        return false;
    }
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)in_len;
    z.next_out = out;
    z.avail_out = (uInt)out_len;
    int zr = inflate(&z, Z_FINISH);
    bool ok = (zr == Z_STREAM_END || zr == Z_BUF_ERROR) && z.avail_out == 0;
    inflateEnd(&z);
    return ok;
}

static void test_round_trip(enum vimg_compress_algo algo)
{
    static uint8_t in[CLUSTER], out[CLUSTER + 512], back[CLUSTER];
    fill_text(in, sizeof in, 7);
    long n = vimg_internal_compress(algo, 0, in, sizeof in, out,
                                    CLUSTER - 1);
    CHECK(n > 0 && n < CLUSTER / 2);
    /* Trailing bytes after the stream, as a sector-rounded length gives. */
    memset(out + n, 0xa5, 511);
    CHECK_EQ(vimg_internal_decompress(algo, out, (size_t)n + 511, back,
                                      sizeof back), 0);
    CHECK(memcmp(in, back, sizeof in) == 0);
    if (algo == VIMG_COMPRESS_DEFLATE_4K) {
        memset(back, 0, sizeof back);
        CHECK(qemu_inflates(out, (size_t)n + 511, back, sizeof back));
        CHECK(memcmp(in, back, sizeof in) == 0);
    }
    /* Truncated streams and garbage fail. */
    CHECK_EQ(vimg_internal_decompress(algo, out, (size_t)n / 2, back,
                                      sizeof back), -EIO);
    memset(out, 0xff, 64);
    CHECK_EQ(vimg_internal_decompress(algo, out, (size_t)n, back,
                                      sizeof back), -EIO);
    /* Every level in range works, out-of-range ones are refused. */
    int min, max;
    vimg_internal_compress_levels(algo, &min, &max);
    CHECK(vimg_internal_compress(algo, min, in, sizeof in, out,
                                 CLUSTER - 1) > 0);
    CHECK(vimg_internal_compress(algo, max, in, sizeof in, out,
                                 CLUSTER - 1) > 0);
    CHECK_EQ(vimg_internal_compress(algo, max + 1, in, sizeof in, out,
                                    CLUSTER - 1), -EINVAL);
}

/* zlib streams: what zlib's uncompress() reads (QEMU's and open-vmdk's
 * VMDK readers), what compress() writes reads back, and a short stream
 * (the last grain of a disk) yields its own length. */
static void test_zlib_stream(void)
{
    static uint8_t in[CLUSTER], out[CLUSTER + 512], back[CLUSTER];
    fill_text(in, sizeof in, 11);
    long n = vimg_internal_compress(VIMG_COMPRESS_ZLIB, 0, in, sizeof in,
                                    out, sizeof out);
    CHECK(n > 2 && n < CLUSTER / 2);
    CHECK_EQ(out[0] & 0x0f, 8); /* RFC 1950 header: deflate */
    uLongf got = sizeof back;
    CHECK_EQ(uncompress(back, &got, out, (uLong)n), Z_OK);
    CHECK_EQ(got, sizeof back);
    CHECK(memcmp(in, back, sizeof in) == 0);

    /* zlib's own compress() output, with trailing sector padding. */
    uLongf zlen = sizeof out;
    CHECK_EQ(compress(out, &zlen, in, 3000), Z_OK);
    memset(out + zlen, 0, 100);
    memset(back, 0xee, sizeof back);
    CHECK_EQ(vimg_internal_decompress_partial(VIMG_COMPRESS_ZLIB, out,
                                              zlen + 100, back,
                                              sizeof back), 3000);
    CHECK(memcmp(in, back, 3000) == 0);
    CHECK_EQ(vimg_internal_decompress(VIMG_COMPRESS_ZLIB, out, zlen, back,
                                      3000), 0);
    /* Exact-length decompression of a short stream fails. */
    CHECK_EQ(vimg_internal_decompress(VIMG_COMPRESS_ZLIB, out, zlen, back,
                                      sizeof back), -EIO);
    /* A stream longer than the room, truncated, or damaged fails. */
    CHECK_EQ(vimg_internal_decompress_partial(VIMG_COMPRESS_ZLIB, out, zlen,
                                              back, 2999), -EIO);
    CHECK_EQ(vimg_internal_decompress_partial(VIMG_COMPRESS_ZLIB, out,
                                              zlen / 2, back, sizeof back),
             -EIO);
    out[zlen - 1] ^= 0x55; /* Adler-32 */
    CHECK_EQ(vimg_internal_decompress_partial(VIMG_COMPRESS_ZLIB, out, zlen,
                                              back, sizeof back), -EIO);
    CHECK_EQ(vimg_internal_decompress_partial(VIMG_COMPRESS_ZSTD, out, zlen,
                                              back, sizeof back), -EINVAL);
}

/* bzip2 streams as DMG stores them (libbz2's own output): read back to the
 * exact length only; short, damaged or truncated streams fail; nothing is
 * compressed with bzip2. */
static void test_bzip2(void)
{
    static uint8_t in[CLUSTER], out[CLUSTER + 1024], back[CLUSTER];
    unsigned int n = sizeof out;

    fill_text(in, sizeof in, 17);
    CHECK_EQ(BZ2_bzBuffToBuffCompress((char *)out, &n, (char *)in,
                                      sizeof in, 9, 0, 0), BZ_OK);
    memset(back, 0xee, sizeof back);
    CHECK_EQ(vimg_internal_decompress(VIMG_COMPRESS_BZIP2, out, n, back,
                                      sizeof back), 0);
    CHECK(memcmp(in, back, sizeof in) == 0);
    /* Trailing bytes after the stream are ignored. */
    memset(out + n, 0, 100);
    CHECK_EQ(vimg_internal_decompress(VIMG_COMPRESS_BZIP2, out, n + 100,
                                      back, sizeof back), 0);
    CHECK_EQ(vimg_internal_decompress(VIMG_COMPRESS_BZIP2, out, n, back,
                                      sizeof back - 1), -EIO);
    CHECK_EQ(vimg_internal_decompress(VIMG_COMPRESS_BZIP2, out, n, back,
                                      sizeof back - 512), -EIO);
    CHECK_EQ(vimg_internal_decompress(VIMG_COMPRESS_BZIP2, out, n / 2, back,
                                      sizeof back), -EIO);
    out[n / 2] ^= 0x55;
    CHECK_EQ(vimg_internal_decompress(VIMG_COMPRESS_BZIP2, out, n, back,
                                      sizeof back), -EIO);
    CHECK_EQ(vimg_internal_compress(VIMG_COMPRESS_BZIP2, 0, in, sizeof in,
                                    out, sizeof out), -EINVAL);
    CHECK_EQ(vimg_internal_decompress_partial(VIMG_COMPRESS_BZIP2, out, n,
                                              back, sizeof back), -EINVAL);
}

/* Random bytes do not shrink: the caller is told to store them plain. */
static void test_incompressible(enum vimg_compress_algo algo)
{
    static uint8_t in[CLUSTER], out[CLUSTER];
    rng = 99;
    for (size_t i = 0; i < sizeof in; i++) {
        in[i] = next_byte();
    }
    CHECK_EQ(vimg_internal_compress(algo, 0, in, sizeof in, out,
                                    CLUSTER - 1), -ENOSPC);
}

/* Random 8 KiB repeated: a 32 KiB window would find the repeats, but
 * QEMU reads with a 4 KiB window, so our streams must not use them. */
static void test_deflate_window(void)
{
    static uint8_t in[CLUSTER], out[2 * CLUSTER], back[CLUSTER];
    rng = 3;
    for (size_t i = 0; i < 8192; i++) {
        in[i] = next_byte();
    }
    for (size_t i = 8192; i < sizeof in; i++) {
        in[i] = in[i - 8192];
    }
    long n = vimg_internal_compress(VIMG_COMPRESS_DEFLATE_4K, 9, in,
                                    sizeof in, out, sizeof out);
    CHECK(n > CLUSTER - 1024); /* nothing found within 4 KiB */
    CHECK(n > 0 && qemu_inflates(out, (size_t)n, back, sizeof back));
    CHECK(memcmp(in, back, sizeof in) == 0);
}

/* A zstd frame that demands a 1 GiB window is refused, not allocated. */
static void test_zstd_huge_window(void)
{
    static uint8_t in[CLUSTER], out[CLUSTER], back[CLUSTER];
    fill_text(in, sizeof in, 5);
    ZSTD_CCtx *c = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, 30);
    ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0);
    ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, 3);
    /* Streamed in two steps, so zstd cannot shrink the window to fit. */
    ZSTD_inBuffer ib = { in, sizeof in / 2, 0 };
    ZSTD_outBuffer ob = { out, sizeof out, 0 };
    ZSTD_compressStream2(c, &ob, &ib, ZSTD_e_continue);
    ib.size = sizeof in;
    size_t zr = ZSTD_compressStream2(c, &ob, &ib, ZSTD_e_end);
    CHECK(zr == 0);
    ZSTD_freeCCtx(c);
    CHECK_EQ(vimg_internal_decompress(VIMG_COMPRESS_ZSTD, out, ob.pos, back,
                                      sizeof back), -EIO);
}

struct worker {
    enum vimg_compress_algo algo;
    unsigned seed;
    int failures;
};

static void *worker_main(void *p)
{
    struct worker *w = p;
    uint8_t *in = malloc(CLUSTER), *out = malloc(CLUSTER), *back =
        malloc(CLUSTER);
    for (int i = 0; in && out && back && i < 50; i++) {
        fill_text(in, CLUSTER, w->seed + (unsigned)i);
        long n = vimg_internal_compress(w->algo, 0, in, CLUSTER, out,
                                        CLUSTER - 1);
        if (n <= 0 || vimg_internal_decompress(w->algo, out, (size_t)n,
                                               back, CLUSTER) != 0 ||
            memcmp(in, back, CLUSTER) != 0) {
            w->failures++;
        }
    }
    free(in);
    free(out);
    free(back);
    return NULL;
}

static void test_threads(void)
{
    pthread_t t[4];
    struct worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker){ i % 2 ? VIMG_COMPRESS_ZSTD
                                      : VIMG_COMPRESS_DEFLATE_4K,
                                (unsigned)i * 1000, 0 };
        CHECK_EQ(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        CHECK_EQ(w[i].failures, 0);
    }
}

int main(void)
{
    test_round_trip(VIMG_COMPRESS_DEFLATE_4K);
    test_round_trip(VIMG_COMPRESS_ZSTD);
    test_incompressible(VIMG_COMPRESS_DEFLATE_4K);
    test_incompressible(VIMG_COMPRESS_ZSTD);
    test_round_trip(VIMG_COMPRESS_ZLIB);
    test_incompressible(VIMG_COMPRESS_ZLIB);
    test_zlib_stream();
    test_bzip2();
    test_deflate_window();
    test_zstd_huge_window();
    test_threads();
    TEST_MAIN_END();
}
