/* Cluster compression behind one small interface, shared by every format
 * that stores compressed blocks (qcow2, qcow, streamOptimized VMDK; cloop
 * and DMG read through it).
 *
 * Each call is self-contained and thread-safe: the library keeps one
 * (de)compression context per thread and algorithm, reused across calls and
 * freed when the thread exits, so workers never share state and never pay
 * for a context per cluster. */
#ifndef VIMG_COMPRESS_H
#define VIMG_COMPRESS_H

#include <stddef.h>

enum vimg_compress_algo {
    /* Raw deflate with a 4 KiB window (windowBits -12), as QEMU writes and
     * reads qcow2 zlib clusters: no stream we write needs a larger window. */
    VIMG_COMPRESS_DEFLATE_4K,
    /* zstd frames, as qcow2 compression_type=zstd stores them. */
    VIMG_COMPRESS_ZSTD,
    /* zlib streams (RFC 1950: header, 32 KiB window, Adler-32), as VMDK
     * stores compressed grains and zlib's compress()/uncompress() make and
     * read them. */
    VIMG_COMPRESS_ZLIB,
    /* bzip2 streams, as DMG images store UDBZ chunks: read only (the
     * compressing calls refuse it with -EINVAL). */
    VIMG_COMPRESS_BZIP2,
};

/* The level each algorithm uses when the caller passes 0: QEMU's, so that
 * output sizes match qemu-img's (zlib 6, zstd's default 3). */
#define VIMG_COMPRESS_DEFAULT_LEVEL 0

/* Compress IN_LEN bytes of IN into at most OUT_CAP bytes of OUT and return
 * the compressed length. -ENOSPC: the result would not fit in OUT_CAP
 * (the caller stores the block uncompressed); -EINVAL: a bad level; -ENOMEM,
 * -EIO: the compressor failed. No message is recorded: the caller knows
 * which file and block it is. */
long vimg_internal_compress(enum vimg_compress_algo algo, int level,
                            const void *in, size_t in_len,
                            void *out, size_t out_cap);

/* Decompress from at most IN_LEN bytes of IN exactly OUT_LEN bytes into OUT.
 * IN may carry trailing bytes past the end of the stream (qcow2 knows a
 * compressed length only to the sector). 0 on success, -EIO when the
 * stream is damaged or yields fewer than OUT_LEN bytes, -ENOMEM. */
int vimg_internal_decompress(enum vimg_compress_algo algo,
                             const void *in, size_t in_len,
                             void *out, size_t out_len);

/* Decompress one stream from at most IN_LEN bytes of IN into at most
 * OUT_CAP bytes of OUT and return the number of bytes it yields: for
 * formats whose last block may be stored short (a VMDK grain at the end of
 * the disk). The stream must end within IN_LEN and fit in OUT_CAP;
 * trailing bytes after it are ignored. -EIO when it is damaged, truncated
 * or too long, -ENOMEM; -EINVAL for VIMG_COMPRESS_ZSTD and
 * VIMG_COMPRESS_BZIP2. */
long vimg_internal_decompress_partial(enum vimg_compress_algo algo,
                                      const void *in, size_t in_len,
                                      void *out, size_t out_cap);

/* Valid levels for ALGO (for option checking). */
void vimg_internal_compress_levels(enum vimg_compress_algo algo, int *min,
                                   int *max);

#endif
