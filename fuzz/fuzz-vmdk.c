/* Fuzz the VMDK driver: sparse headers, footers, grain directories and
 * tables, stream markers and descriptors (embedded, or a descriptor file
 * whose extents the memory image's policy never opens). Read-only: info,
 * block status, reads, check. Read-write on a memory image: writes (plain
 * or compressed grains), zeroing and flushes, after which every write that
 * succeeded must read back (nothing else overwrote it). All work is
 * bounded: a few requests of at most 64 KiB, a capped number of extents,
 * and a file that may grow by at most 8 MiB. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define MAX_EXTENTS 512
#define MAX_GROWTH (8u << 20)
#define IO_SIZE 65536u

static uint8_t io_buf[IO_SIZE], back[IO_SIZE];

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
    struct vimg_open_params p = { .format = "vmdk",
                                  .flags = VIMG_OPEN_NO_BACKING,
                                  .refs = VIMG_REFS_NEVER };
    struct vimg_image *img = vimg_open_buffer(data, len, "fuzz.vmdk", &p);
    struct vimg_check_result res;

    if (!img) {
        return;
    }
    vimg_value_free(vimg_get_info(img));
    walk(img, (uint64_t)vimg_get_size(img));
    vimg_check(img, 0, &res, NULL, NULL);
    vimg_close(img);
}

/* A request of up to IO_SIZE bytes, 512-aligned, at a place chosen by
 * SEED inside SIZE (a non-zero multiple of 512). */
static void pick(uint64_t size, uint64_t seed, uint64_t *off, uint64_t *n)
{
    *off = seed % size / 512 * 512;
    *n = (1 + seed % (IO_SIZE / 512)) * 512;
    if (*n > size - *off) {
        *n = size - *off;
    }
}

static bool overlap(uint64_t a, uint64_t an, uint64_t b, uint64_t bn)
{
    return a < b + bn && b < a + an;
}

static void read_write(const uint8_t *data, size_t len)
{
    struct vimg_image *mem = vimg_internal_memory_new("fuzz.vmdk", data,
                                                      len, len + MAX_GROWTH);
    struct vimg_open_params p = { .format = "vmdk",
                                  .flags = VIMG_OPEN_RDWR |
                                           VIMG_OPEN_NO_BACKING,
                                  .refs = VIMG_REFS_NEVER };
    struct vimg_image *img;
    uint64_t size, off, n, zoff, zn;

    if (!mem || !(img = vimg_internal_open_on(mem, &p))) {
        return;
    }
    size = (uint64_t)vimg_get_size(img);
    if (size > 0) {
        uint64_t seeds[3] = { len * 7919, size / 2 + 4095, 0 };
        bool ok = false;
        for (int i = 0; i < 3; i++) {
            memset(io_buf, 0xa5 + i, sizeof io_buf);
            pick(size, seeds[i], &off, &n);
            ok = vimg_pwrite(img, io_buf, n, off, 0) == 0;
        }
        /* OFF, N and io_buf are now the last write's. */
        pick(size, seeds[0] / 3, &zoff, &zn);
        vimg_zero(img, zoff, zn, VIMG_ZERO_MAY_UNMAP);
        uint64_t cn = size < IO_SIZE ? size : IO_SIZE;
        vimg_write_compressed(img, back, cn, size - cn);
        ok = ok && !overlap(off, n, zoff, zn) &&
             !overlap(off, n, size - cn, cn);
        vimg_flush(img);
        /* No later metadata write may have landed on the data. */
        if (ok && vimg_pread(img, back, n, off) == 0 &&
            memcmp(back, io_buf, n) != 0) {
            abort();
        }
    }
    walk(img, size);
    vimg_close(img);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    read_only(data, size);
    read_write(data, size);
    return 0;
}
