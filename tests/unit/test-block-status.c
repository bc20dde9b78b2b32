/* Block status through a backing chain: a fake format whose odd 64 KiB
 * blocks are unallocated, stacked on itself, checks how the core walks the
 * chain, clamps to shorter backing files and reports depth. */
#include "internal.h"
#include "test.h"

#define BLOCK 65536

/* Layer N allocates block B when (B + N) is even. */
struct fake { int layer; };

static int fake_block_status(struct vimg_image *img, uint64_t offset,
                             uint64_t count, uint64_t *pnum, uint64_t *map,
                             const char **file)
{
    struct fake *f = img->opaque;
    uint64_t b = offset / BLOCK, end = (b + 1) * BLOCK - offset;
    (void)map;
    (void)file;
    *pnum = count < end ? count : end;
    return (b + (uint64_t)f->layer) % 2 == 0
               ? VIMG_BS_DATA | VIMG_BS_ALLOCATED : 0;
}

static int fake_pread(struct vimg_image *img, void *buf, uint64_t count,
                      uint64_t offset)
{
    (void)img; (void)offset;
    memset(buf, 0, count);
    return 0;
}

static const struct vimg_driver fake_driver = {
    .name = "fake", .kind = VIMG_DRIVER_FORMAT,
    .instance_size = sizeof(struct fake),
    .pread = fake_pread, .block_status = fake_block_status,
};

static struct vimg_image *layer(int n, uint64_t size)
{
    struct vimg_image *img = calloc(1, sizeof *img);
    struct fake *f = calloc(1, sizeof *f);
    f->layer = n;
    img->drv = &fake_driver;
    img->opaque = f;
    img->size = size;
    img->filename = strdup("fake");
    vimg_internal_mutex_init(&img->lock);
    return img;
}

int main(void)
{
    struct vimg_extent e;
    struct vimg_image *top = layer(0, 8 * BLOCK);
    struct vimg_image *mid = layer(1, 8 * BLOCK);
    top->backing = mid;
    top->backing_name = strdup("mid");

    /* Block 0: allocated in top. */
    CHECK_EQ(vimg_block_status(top, 0, 8 * BLOCK, VIMG_BS_CHAIN, &e), 0);
    CHECK_EQ(e.length, BLOCK);
    CHECK_EQ(e.depth, 0);
    CHECK(e.flags & VIMG_BS_DATA);
    /* Block 1: not in top, allocated in mid (depth 1). */
    CHECK_EQ(vimg_block_status(top, BLOCK, 7 * BLOCK, VIMG_BS_CHAIN, &e), 0);
    CHECK_EQ(e.length, BLOCK);
    CHECK_EQ(e.depth, 1);
    CHECK(e.flags & VIMG_BS_ALLOCATED);
    /* Without CHAIN, top alone says "not here". */
    CHECK_EQ(vimg_block_status(top, BLOCK, 7 * BLOCK, 0, &e), 0);
    CHECK_EQ(e.flags, 0);
    /* A request in the middle of a block stops at the block's end. */
    CHECK_EQ(vimg_block_status(top, BLOCK + 100, 10 * 1000, VIMG_BS_CHAIN,
                               &e), 0);
    CHECK_EQ(e.length, 10 * 1000);

    /* Shrink mid: past its end the chain reads zeros, decided by top
     * (depth 0, as qemu-img map reports it). */
    mid->size = BLOCK + BLOCK / 2;
    CHECK_EQ(vimg_block_status(top, 3 * BLOCK, BLOCK, VIMG_BS_CHAIN, &e), 0);
    CHECK_EQ(e.flags, VIMG_BS_ZERO);
    CHECK_EQ(e.depth, 0);
    /* Straddling mid's end: clamped to what mid covers. */
    CHECK_EQ(vimg_block_status(top, BLOCK, BLOCK, VIMG_BS_CHAIN, &e), 0);
    CHECK_EQ(e.length, BLOCK / 2);

    /* A named but unopened backing file is an error, not zeros. */
    top->backing = NULL;
    CHECK_EQ(vimg_block_status(top, BLOCK, BLOCK, VIMG_BS_CHAIN, &e), -1);
    CHECK_ERROR(EIO, "fake: backing file 'mid' was not opened");
    /* No backing at all: unallocated reads as zeros at depth 0. */
    free(top->backing_name);
    top->backing_name = NULL;
    CHECK_EQ(vimg_block_status(top, BLOCK, BLOCK, VIMG_BS_CHAIN, &e), 0);
    CHECK_EQ(e.flags, VIMG_BS_ZERO);
    CHECK_EQ(e.depth, 0);
    /* Out of range and empty requests are refused by the core. */
    CHECK_EQ(vimg_block_status(top, 8 * BLOCK, 1, 0, &e), -1);
    CHECK_EQ(vimg_get_errno(), EINVAL);
    CHECK_EQ(vimg_block_status(top, 0, 0, 0, &e), -1);

    for (struct vimg_image *l = top; l; l = l == top ? mid : NULL) {
        pthread_mutex_destroy(&l->lock);
        free(l->opaque);
        free(l->filename);
        free(l);
    }
    TEST_MAIN_END();
}
