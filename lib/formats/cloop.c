/* cloop (compressed loop) images, version 2.0, read-only as in QEMU 7.2's
 * block/cloop.c: a shell-script preamble, the block size and count, a
 * table of n_blocks + 1 file offsets (block i is the zlib stream between
 * offsets i and i + 1), then the streams. Every block inflates to exactly
 * block_size bytes; the last decompressed block is kept for the next
 * read. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/byteswap.h"
#include "../../common/checked-overflow.h"
#include "../../common/rounding.h"
#include "../compress/compress.h"
#include "../internal.h"

/* Layout (big-endian): the preamble fills the first 128 bytes. */
#define CLOOP_PREAMBLE_SIZE 128u
#define CLOOP_BLOCK_SIZE    128u /* u32: bytes per block, a multiple of 512 */
#define CLOOP_N_BLOCKS      132u /* u32 */
#define CLOOP_OFFSETS       136u /* u64[n_blocks + 1] */
_Static_assert(CLOOP_N_BLOCKS == CLOOP_BLOCK_SIZE + 4, "layout");
_Static_assert(CLOOP_OFFSETS == CLOOP_N_BLOCKS + 4, "layout");

/* What cloop's create_compressed_fs writes first (then "exit $?"). */
#define CLOOP_MAGIC_V2 "#!/bin/sh\n#V2.0 Format\n" \
    "modprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\n"

/* QEMU's caps: a block of at most 64 MiB (a buffer that size is kept), an
 * offsets table of at most 512 MiB (16 TiB of 256 KiB blocks). The table
 * must also lie in the file, so a small file never asks for much. */
#define CLOOP_MAX_BLOCK_SIZE (64u << 20)
#define CLOOP_MAX_OFFSETS_BYTES (512u << 20)
/* A stored (incompressible) block grows by a few bytes per 64 KiB. */
#define CLOOP_SLACK 4096u

struct cloop_state {
    uint32_t block_size;
    uint32_t n_blocks;
    uint64_t *offsets;          /* host order, n_blocks + 1 */
    uint64_t max_compressed;    /* the longest stream */
    uint8_t *compressed;        /* max_compressed bytes, on first read */
    uint8_t *block;             /* block_size bytes, on first read */
    uint32_t cached;            /* the block in BLOCK, or n_blocks */
};

static struct cloop_state *cloop_state(struct vimg_image *img)
{
    return img->opaque;
}

static int cloop_probe(const uint8_t *buf, size_t len, const char *filename)
{
    size_t n = strlen(CLOOP_MAGIC_V2);

    (void)filename;
    return len >= n && memcmp(buf, CLOOP_MAGIC_V2, n) == 0 ? 100 : 0;
}

/* The header's block size and count, for a file of FILE_SIZE bytes. */
static int validate_header(struct vimg_image *img, const uint8_t *h,
                           uint64_t file_size)
{
    struct cloop_state *s = cloop_state(img);
    uint64_t table;

    s->block_size = load_be32(h + CLOOP_BLOCK_SIZE);
    s->n_blocks = load_be32(h + CLOOP_N_BLOCKS);
    if (s->block_size == 0 || s->block_size % 512) {
        return vimg_internal_img_error(img, EINVAL, "block_size %u must be "
                                       "a non-zero multiple of 512",
                                       s->block_size);
    }
    if (s->block_size > CLOOP_MAX_BLOCK_SIZE) {
        return vimg_internal_img_error(img, EINVAL, "block_size %u must be "
                                       "%u MB or less", s->block_size,
                                       CLOOP_MAX_BLOCK_SIZE >> 20);
    }
    table = ((uint64_t)s->n_blocks + 1) * 8;
    if (table > CLOOP_MAX_OFFSETS_BYTES) {
        return vimg_internal_img_error(img, EINVAL, "image requires too "
                                       "many offsets (%u blocks), try "
                                       "increasing block size", s->n_blocks);
    }
    if (range_outside(CLOOP_OFFSETS, table, file_size)) {
        return vimg_internal_img_error(img, EINVAL, "offsets table (%u "
                                       "blocks) lies past the end of the "
                                       "file", s->n_blocks);
    }
    img->size = (uint64_t)s->n_blocks * s->block_size;
    return 0;
}

/* Offsets rise, start after the table, end inside the file, and no stream
 * is longer than twice its block (QEMU allows twice the largest block:
 * "maybe compression performed poorly"). */
static int read_offsets(struct vimg_image *img, uint64_t file_size)
{
    struct cloop_state *s = cloop_state(img);
    uint64_t count = (uint64_t)s->n_blocks + 1;
    uint64_t bound = 2 * (uint64_t)s->block_size + CLOOP_SLACK;
    int r;

    s->offsets = malloc(count * 8);
    if (!s->offsets) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    if ((r = vimg_internal_pread(img->file, s->offsets, count * 8,
                                 CLOOP_OFFSETS)) < 0) {
        return r;
    }
    for (uint64_t i = 0; i < count; i++) {
        s->offsets[i] = load_be64(&s->offsets[i]);
    }
    if (s->offsets[0] < CLOOP_OFFSETS + count * 8 ||
        s->offsets[s->n_blocks] > file_size) {
        return vimg_internal_img_error(img, EINVAL, "compressed blocks "
                                       "from 0x%llx to 0x%llx lie over the "
                                       "offsets table or past the end of "
                                       "the file",
                                       (unsigned long long)s->offsets[0],
                                       (unsigned long long)
                                       s->offsets[s->n_blocks]);
    }
    for (uint32_t i = 1; i <= s->n_blocks; i++) {
        if (s->offsets[i] < s->offsets[i - 1]) {
            return vimg_internal_img_error(img, EINVAL, "offsets not "
                                           "monotonically increasing at "
                                           "index %u, image file is "
                                           "corrupt", i);
        }
        uint64_t len = s->offsets[i] - s->offsets[i - 1];
        if (len > bound) {
            return vimg_internal_img_error(img, EINVAL, "invalid compressed "
                                           "block size %llu at index %u "
                                           "(blocks are %u bytes), image "
                                           "file is corrupt",
                                           (unsigned long long)len, i,
                                           s->block_size);
        }
        s->max_compressed = MAX(s->max_compressed, len);
    }
    return 0;
}

static int cloop_open(struct vimg_image *img, const struct vimg_opts *opts)
{
    struct cloop_state *s = cloop_state(img);
    uint64_t file_size;
    uint8_t h[CLOOP_OFFSETS];
    int r;

    (void)opts;
    if ((r = vimg_internal_read_header(img, h, sizeof h, "a cloop header",
                                       &file_size)) < 0 ||
        (r = validate_header(img, h, file_size)) < 0 ||
        (r = read_offsets(img, file_size)) < 0) {
        free(s->offsets);
        s->offsets = NULL;
        return r;
    }
    s->cached = s->n_blocks;
    return 0;
}

static int cloop_close(struct vimg_image *img)
{
    struct cloop_state *s = cloop_state(img);
    free(s->offsets);
    free(s->compressed);
    free(s->block);
    memset(s, 0, sizeof *s);
    return 0;
}

/* Make block IDX the cached one. */
static int load_block(struct vimg_image *img, uint32_t idx)
{
    struct cloop_state *s = cloop_state(img);
    uint64_t len = s->offsets[idx + 1] - s->offsets[idx];
    int r;

    if (s->cached == idx) {
        return 0;
    }
    if ((!s->compressed &&
         !(s->compressed = malloc(s->max_compressed ? s->max_compressed
                                                    : 1))) ||
        (!s->block && !(s->block = malloc(s->block_size)))) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    s->cached = s->n_blocks;
    if ((r = vimg_internal_pread(img->file, s->compressed, len,
                                 s->offsets[idx])) < 0) {
        return r;
    }
    r = vimg_internal_decompress(VIMG_COMPRESS_ZLIB, s->compressed, len,
                                 s->block, s->block_size);
    if (r < 0) {
        return vimg_internal_img_error(img, r == -ENOMEM ? ENOMEM : EIO,
                                       "compressed block %u at 0x%llx does "
                                       "not inflate to %u bytes", idx,
                                       (unsigned long long)s->offsets[idx],
                                       s->block_size);
    }
    s->cached = idx;
    return 0;
}

static int cloop_pread(struct vimg_image *img, void *buf, uint64_t count,
                       uint64_t offset)
{
    struct cloop_state *s = cloop_state(img);
    uint8_t *p = buf;

    while (count > 0) {
        uint32_t idx = (uint32_t)(offset / s->block_size);
        uint64_t in = offset % s->block_size;
        uint64_t n = MIN(count, s->block_size - in);
        int r = load_block(img, idx);
        if (r < 0) {
            return r;
        }
        memcpy(p, s->block + in, n);
        p += n;
        offset += n;
        count -= n;
    }
    return 0;
}

/* Read-only (no pwrite, no create), and like QEMU no block status: every
 * byte is reported as data. */
const struct vimg_driver vimg_driver_cloop = {
    .name = "cloop",
    .kind = VIMG_DRIVER_FORMAT,
    .instance_size = sizeof(struct cloop_state),
    .thread_safe = false,
    .probe = cloop_probe,
    .open = cloop_open,
    .close = cloop_close,
    .pread = cloop_pread,
};
