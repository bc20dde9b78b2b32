/* Cluster (de)compression: zlib for deflate output (it can be told to keep
 * a 4 KiB window, which QEMU's reader requires), libdeflate for deflate
 * input (several times faster than zlib's inflate), libzstd for zstd.
 * libbz2 decompresses DMG's bzip2 chunks.
 * Raw deflate (qcow2, qcow) and zlib streams (VMDK) each have their own
 * zlib contexts, since the window bits are fixed when a context is made.
 * Contexts are per thread and reused: creating a zstd or zlib context costs
 * more than compressing a 64 KiB cluster.
 * ISA-L's igzip can keep a 4 KiB window too and is 9x faster, but on
 * 256 MiB of /usr binaries in 64 KiB clusters its best level wrote 2.6%
 * more than zlib's level 6 (QEMU's), over the 2% the output may grow. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include <bzlib.h>
#include <libdeflate.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "compress.h"

#define ZLIB_WINDOW_BITS (-12) /* raw deflate, 4 KiB window */
#define ZLIB_MEM_LEVEL 9
#define ZLIB_DEFAULT_LEVEL 6
/* zlib streams as zlib's compress() makes them (what QEMU's VMDK driver
 * and VMware's open-vmdk write): 32 KiB window, default memory level. */
#define ZSTREAM_WINDOW_BITS 15
#define ZSTREAM_MEM_LEVEL 8
/* A hostile zstd frame may ask for a window of up to 2 GiB; a cluster is at
 * most 2 MiB and compressors size the window to the input, so 8 MiB is
 * ample and bounds memory per thread. */
#define ZSTD_WINDOW_LOG_MAX 23

/* A zlib context made once per thread with fixed window bits. */
struct zctx {
    z_stream z;
    bool ready;
    int level;
};

struct contexts {
    struct zctx deflate, inflate;         /* raw, 4 KiB window */
    struct zctx zdeflate, zinflate;       /* zlib streams */
    struct libdeflate_decompressor *libdeflate;
    ZSTD_CCtx *zstd_c;
    ZSTD_DCtx *zstd_d;
};

static pthread_key_t contexts_key;
static pthread_once_t contexts_once = PTHREAD_ONCE_INIT;
static bool contexts_key_ok;

static void free_contexts(void *p)
{
    struct contexts *c = p;
    if (c->deflate.ready) {
        deflateEnd(&c->deflate.z);
    }
    if (c->zdeflate.ready) {
        deflateEnd(&c->zdeflate.z);
    }
    if (c->inflate.ready) {
        inflateEnd(&c->inflate.z);
    }
    if (c->zinflate.ready) {
        inflateEnd(&c->zinflate.z);
    }
    if (c->libdeflate) {
        libdeflate_free_decompressor(c->libdeflate);
    }
    ZSTD_freeCCtx(c->zstd_c);
    ZSTD_freeDCtx(c->zstd_d);
    free(c);
}

static void make_key(void)
{
    contexts_key_ok = pthread_key_create(&contexts_key, free_contexts) == 0;
}

/* Free the calling thread's contexts now (also done at thread exit). */
static void release_at_exit(void)
{
    if (contexts_key_ok) {
        struct contexts *c = pthread_getspecific(contexts_key);
        if (c) {
            pthread_setspecific(contexts_key, NULL);
            free_contexts(c);
        }
    }
}

static struct contexts *contexts(void)
{
    pthread_once(&contexts_once, make_key);
    if (!contexts_key_ok) {
        return NULL;
    }
    struct contexts *c = pthread_getspecific(contexts_key);
    if (!c && (c = calloc(1, sizeof *c))) {
        if (pthread_setspecific(contexts_key, c) != 0) {
            free(c);
            return NULL;
        }
    }
    return c;
}

/* The main thread's contexts are not freed by the key's destructor (it
 * never calls pthread_exit); free them when the program ends. */
__attribute__((destructor)) static void compress_fini(void)
{
    release_at_exit();
}

void vimg_internal_compress_levels(enum vimg_compress_algo algo, int *min,
                                   int *max)
{
    if (algo == VIMG_COMPRESS_ZSTD) {
        *min = 1;
        *max = ZSTD_maxCLevel();
    } else {
        *min = 1;
        *max = 9;
    }
}

/* Deflate with the context Z (made on first use with WINDOW_BITS and
 * MEM_LEVEL), the raw or the zlib-stream flavour. */
static long deflate_with(struct zctx *z, int window_bits, int mem_level,
                         int level, const void *in, size_t in_len, void *out,
                         size_t out_cap)
{
    if (!level) {
        level = ZLIB_DEFAULT_LEVEL;
    }
    if (!z->ready) {
        if (deflateInit2(&z->z, level, Z_DEFLATED, window_bits, mem_level,
                         Z_DEFAULT_STRATEGY) != Z_OK) {
            return -ENOMEM;
        }
        z->ready = true;
        z->level = level;
    } else {
        if (deflateReset(&z->z) != Z_OK) {
            return -EIO;
        }
        if (level != z->level) {
            if (deflateParams(&z->z, level, Z_DEFAULT_STRATEGY) != Z_OK) {
                return -EIO;
            }
            z->level = level;
        }
    }
    z->z.next_in = (Bytef *)in;
    z->z.avail_in = (uInt)in_len;
    z->z.next_out = out;
    z->z.avail_out = (uInt)out_cap;
    int zr = deflate(&z->z, Z_FINISH);
    if (zr == Z_STREAM_END) {
        return (long)(out_cap - z->z.avail_out);
    }
    return zr == Z_OK || zr == Z_BUF_ERROR ? -ENOSPC : -EIO;
}

static long zstd_compress(struct contexts *c, int level, const void *in,
                          size_t in_len, void *out, size_t out_cap)
{
    if (!c->zstd_c && !(c->zstd_c = ZSTD_createCCtx())) {
        return -ENOMEM;
    }
    ZSTD_CCtx_reset(c->zstd_c, ZSTD_reset_session_and_parameters);
    if (ZSTD_isError(ZSTD_CCtx_setParameter(c->zstd_c,
                                            ZSTD_c_compressionLevel,
                                            level ? level
                                                  : ZSTD_CLEVEL_DEFAULT))) {
        return -EINVAL;
    }
    size_t n = ZSTD_compress2(c->zstd_c, out, out_cap, in, in_len);
    if (ZSTD_isError(n)) {
        return ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall ? -ENOSPC
                                                                   : -EIO;
    }
    return (long)n;
}

long vimg_internal_compress(enum vimg_compress_algo algo, int level,
                            const void *in, size_t in_len,
                            void *out, size_t out_cap)
{
    int min, max;
    vimg_internal_compress_levels(algo, &min, &max);
    if (level && (level < min || level > max)) {
        return -EINVAL;
    }
    if (in_len > UINT_MAX || out_cap > UINT_MAX) {
        return -EINVAL;
    }
    struct contexts *c = contexts();
    if (!c) {
        return -ENOMEM;
    }
    switch (algo) {
    case VIMG_COMPRESS_ZSTD:
        return zstd_compress(c, level, in, in_len, out, out_cap);
    case VIMG_COMPRESS_ZLIB:
        return deflate_with(&c->zdeflate, ZSTREAM_WINDOW_BITS,
                            ZSTREAM_MEM_LEVEL, level, in, in_len, out,
                            out_cap);
    case VIMG_COMPRESS_BZIP2:
        return -EINVAL;
    case VIMG_COMPRESS_DEFLATE_4K:
        break;
    }
    return deflate_with(&c->deflate, ZLIB_WINDOW_BITS, ZLIB_MEM_LEVEL, level,
                        in, in_len, out, out_cap);
}

/* zlib's inflate with the context Z (WINDOW_BITS fixed at creation), for
 * the streams libdeflate refuses that QEMU accepts: a stream that fills
 * the output before it ends, or whose end lies past the bytes we have
 * (Z_BUF_ERROR with a full output). Returns the bytes produced; with
 * MUST_END the stream must end within IN. */
static long inflate_with(struct zctx *z, int window_bits, bool must_end,
                         const void *in, size_t in_len, void *out,
                         size_t out_len)
{
    if (!z->ready) {
        if (inflateInit2(&z->z, window_bits) != Z_OK) {
            return -ENOMEM;
        }
        z->ready = true;
    } else if (inflateReset(&z->z) != Z_OK) {
        return -EIO;
    }
    z->z.next_in = (Bytef *)in;
    z->z.avail_in = (uInt)in_len;
    z->z.next_out = out;
    z->z.avail_out = (uInt)out_len;
    int zr = inflate(&z->z, Z_FINISH);
    if (zr == Z_STREAM_END ||
        (!must_end && zr == Z_BUF_ERROR && z->z.avail_out == 0)) {
        return (long)(out_len - z->z.avail_out);
    }
    return -EIO;
}

static int inflate_4k(struct contexts *c, const void *in, size_t in_len,
                      void *out, size_t out_len)
{
    if (!c->libdeflate &&
        !(c->libdeflate = libdeflate_alloc_decompressor())) {
        return -ENOMEM;
    }
    size_t in_used, out_got;
    enum libdeflate_result lr = libdeflate_deflate_decompress_ex(
        c->libdeflate, in, in_len, out, out_len, &in_used, &out_got);
    if (lr == LIBDEFLATE_SUCCESS && out_got == out_len) {
        return 0;
    }
    if (lr == LIBDEFLATE_SUCCESS) {
        return -EIO; /* the stream ended short of a whole cluster */
    }
    long n = inflate_with(&c->inflate, ZLIB_WINDOW_BITS, false, in, in_len,
                          out, out_len);
    return n == (long)out_len ? 0 : -EIO;
}

/* A zlib stream into at most OUT_CAP bytes: the length it yields. */
static long inflate_stream(struct contexts *c, const void *in, size_t in_len,
                           void *out, size_t out_cap)
{
    if (!c->libdeflate &&
        !(c->libdeflate = libdeflate_alloc_decompressor())) {
        return -ENOMEM;
    }
    size_t in_used, out_got;
    enum libdeflate_result lr = libdeflate_zlib_decompress_ex(
        c->libdeflate, in, in_len, out, out_cap, &in_used, &out_got);
    if (lr == LIBDEFLATE_SUCCESS) {
        return (long)out_got;
    }
    /* libdeflate is stricter than zlib in corners (a preset dictionary
     * flag, for one); zlib decides. */
    return inflate_with(&c->zinflate, ZSTREAM_WINDOW_BITS, true, in, in_len,
                        out, out_cap);
}

static int zstd_decompress(struct contexts *c, const void *in, size_t in_len,
                           void *out, size_t out_len)
{
    if (!c->zstd_d) {
        if (!(c->zstd_d = ZSTD_createDCtx())) {
            return -ENOMEM;
        }
    } else {
        ZSTD_DCtx_reset(c->zstd_d, ZSTD_reset_session_and_parameters);
    }
    ZSTD_DCtx_setParameter(c->zstd_d, ZSTD_d_windowLogMax,
                           ZSTD_WINDOW_LOG_MAX);
    /* Streaming, because the input may end in padding that is no frame;
     * as in QEMU, a cluster may span several frames. */
    ZSTD_inBuffer ib = { in, in_len, 0 };
    ZSTD_outBuffer ob = { out, out_len, 0 };
    while (ob.pos < ob.size) {
        size_t in_pos = ib.pos, out_pos = ob.pos;
        size_t zr = ZSTD_decompressStream(c->zstd_d, &ob, &ib);
        if (ZSTD_isError(zr) || (ib.pos == in_pos && ob.pos == out_pos)) {
            return -EIO; /* damaged, or no progress: the input ran out */
        }
    }
    return ob.pos == ob.size ? 0 : -EIO;
}

/* One bzip2 stream yielding exactly OUT_LEN bytes. libbz2 keeps no state
 * worth reusing between chunks (its tables are sized by each stream's
 * block size), so each call makes and frees its own: at most about 3.6 MiB
 * for the largest block size. */
static int bzip2_decompress(const void *in, size_t in_len, void *out,
                            size_t out_len)
{
    unsigned int got = (unsigned int)out_len;
    int br = BZ2_bzBuffToBuffDecompress(out, &got, (char *)in,
                                        (unsigned int)in_len, 0, 0);

    if (br == BZ_MEM_ERROR) {
        return -ENOMEM;
    }
    return br == BZ_OK && got == out_len ? 0 : -EIO;
}

int vimg_internal_decompress(enum vimg_compress_algo algo,
                             const void *in, size_t in_len,
                             void *out, size_t out_len)
{
    if (in_len > UINT_MAX || out_len > UINT_MAX) {
        return -EINVAL;
    }
    struct contexts *c = contexts();
    if (!c) {
        return -ENOMEM;
    }
    switch (algo) {
    case VIMG_COMPRESS_ZSTD:
        return zstd_decompress(c, in, in_len, out, out_len);
    case VIMG_COMPRESS_ZLIB: {
        long n = inflate_stream(c, in, in_len, out, out_len);
        return n < 0 ? (int)n : n == (long)out_len ? 0 : -EIO;
    }
    case VIMG_COMPRESS_BZIP2:
        return bzip2_decompress(in, in_len, out, out_len);
    case VIMG_COMPRESS_DEFLATE_4K:
        break;
    }
    return inflate_4k(c, in, in_len, out, out_len);
}

long vimg_internal_decompress_partial(enum vimg_compress_algo algo,
                                      const void *in, size_t in_len,
                                      void *out, size_t out_cap)
{
    if (in_len > UINT_MAX || out_cap > UINT_MAX ||
        algo == VIMG_COMPRESS_ZSTD || algo == VIMG_COMPRESS_BZIP2) {
        return -EINVAL;
    }
    struct contexts *c = contexts();
    if (!c) {
        return -ENOMEM;
    }
    if (algo == VIMG_COMPRESS_ZLIB) {
        return inflate_stream(c, in, in_len, out, out_cap);
    }
    if (!c->libdeflate &&
        !(c->libdeflate = libdeflate_alloc_decompressor())) {
        return -ENOMEM;
    }
    size_t in_used, out_got;
    if (libdeflate_deflate_decompress_ex(c->libdeflate, in, in_len, out,
                                         out_cap, &in_used, &out_got) ==
        LIBDEFLATE_SUCCESS) {
        return (long)out_got;
    }
    return inflate_with(&c->inflate, ZLIB_WINDOW_BITS, true, in, in_len, out,
                        out_cap);
}
