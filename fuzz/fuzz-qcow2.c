/* Fuzz the qcow2 driver: open the input read-only (info, block status,
 * reads, check) and read-write on a memory image (writes, zeroing,
 * discard, flush, check with and without repair, reads). All work is
 * bounded: a few requests of at most 64 KiB, a capped number of extents,
 * and a file that may grow by at most 8 MiB. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define MAX_EXTENTS 512
#define MAX_GROWTH (8u << 20)
#define IO_SIZE 65536u

static uint8_t io_buf[IO_SIZE];

static void walk(struct vimg_image *img, uint64_t size)
{
    uint64_t off = 0;

    for (int i = 0; i < MAX_EXTENTS && off < size; i++) {
        struct vimg_extent e;
        if (vimg_block_status(img, off, size - off, VIMG_BS_CHAIN, &e) < 0) {
            break;
        }
        uint64_t n = e.length < IO_SIZE ? e.length : IO_SIZE;
        if (vimg_pread(img, io_buf, n, off) < 0) {
            break;
        }
        off += e.length;
    }
}

static void read_only(const uint8_t *data, size_t len)
{
    struct vimg_open_params p = { .format = "qcow2",
                                  .flags = VIMG_OPEN_NO_BACKING,
                                  .refs = VIMG_REFS_NEVER };
    struct vimg_image *img = vimg_open_buffer(data, len, "fuzz.qcow2", &p);
    struct vimg_check_result res;

    if (!img) {
        return;
    }
    vimg_value_free(vimg_get_info(img));
    walk(img, (uint64_t)vimg_get_size(img));
    vimg_check(img, 0, &res, NULL, NULL);
    vimg_close(img);
}

/* A request of up to IO_SIZE bytes at a place chosen by SEED, inside
 * SIZE (which is non-zero). */
static void pick(uint64_t size, uint64_t seed, uint64_t *off, uint64_t *n)
{
    *off = seed % size;
    *n = 1 + seed % IO_SIZE;
    if (*n > size - *off) {
        *n = size - *off;
    }
}

static void read_write(const uint8_t *data, size_t len)
{
    struct vimg_image *mem = vimg_internal_memory_new("fuzz.qcow2", data,
                                                      len, len + MAX_GROWTH);
    struct vimg_open_params p = { .format = "qcow2",
                                  .flags = VIMG_OPEN_RDWR |
                                           VIMG_OPEN_NO_BACKING,
                                  .refs = VIMG_REFS_NEVER };
    struct vimg_check_result res;
    struct vimg_image *img;
    uint64_t size, off, n;

    if (!mem || !(img = vimg_internal_open_on(mem, &p))) {
        return;
    }
    size = (uint64_t)vimg_get_size(img);
    if (size > 0) {
        uint64_t seeds[4] = { 0, size / 2 + 4095, size - 1, len * 7919 };
        memset(io_buf, 0xa5, sizeof io_buf);
        for (int i = 0; i < 4; i++) {
            pick(size, seeds[i], &off, &n);
            vimg_pwrite(img, io_buf, n, off, 0);
        }
        pick(size, seeds[3] / 3, &off, &n);
        vimg_zero(img, off, n, VIMG_ZERO_MAY_UNMAP);
        pick(size, seeds[1] / 5, &off, &n);
        vimg_zero(img, off, n, 0);
        pick(size, seeds[3] / 11, &off, &n);
        vimg_discard(img, off, n);
        vimg_flush(img);
    }
    vimg_check(img, 0, &res, NULL, NULL);
    vimg_check(img, VIMG_CHECK_FIX_LEAKS | VIMG_CHECK_FIX_ERRORS, &res,
               NULL, NULL);
    walk(img, size);
    vimg_close(img);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    read_only(data, size);
    read_write(data, size);
    return 0;
}
