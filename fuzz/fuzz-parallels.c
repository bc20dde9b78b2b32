/* Fuzz the Parallels driver (header, BAT, cluster allocation, check and
 * its repairs). Corpus images use small clusters; inputs also run padded
 * with 1 MiB of zeros, so that a header cut before its clusters still
 * describes a whole image. On top of the common passes, a write pass
 * checks where writes land: guest data never in the header or the BAT,
 * metadata writes only there. */
#include <stdlib.h>

#define FUZZ_FORMAT "parallels"
#define FUZZ_NAME "fuzz.hdd"
#define FUZZ_PAD (1u << 20)
#define LLVMFuzzerTestOneInput fuzz_format_one
#include "fuzz-format.inc"
#undef LLVMFuzzerTestOneInput

#include "formats/parallels-ondisk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct bounds {
    uint64_t bat_end, data_off;
};

static void observe(void *opaque, enum vimg_memory_op op, uint64_t offset,
                    uint64_t len, unsigned flags)
{
    const struct bounds *b = opaque;

    if (op != VIMG_MEMORY_WRITE && op != VIMG_MEMORY_ZERO) {
        return;
    }
    if (flags & VIMG_INTERNAL_WRITE_METADATA) {
        if (offset + len > b->bat_end) {
            abort(); /* metadata written past the BAT */
        }
    } else if (offset < b->data_off) {
        abort(); /* guest data in the header or the BAT */
    }
}

static void write_pass(const uint8_t *data, size_t len)
{
    struct vimg_image *mem, *img;
    struct vimg_open_params p = { .format = FUZZ_FORMAT,
                                  .flags = VIMG_OPEN_RDWR |
                                           VIMG_OPEN_NO_BACKING,
                                  .refs = VIMG_REFS_NEVER };
    struct bounds b;
    uint64_t size;

    if (len < PRL_HEADER_SIZE) {
        return;
    }
    /* What an open that succeeds has validated. */
    b.bat_end = PRL_BAT + (uint64_t)load_le32(data + PRL_BAT_ENTRIES) * 4;
    b.data_off = (uint64_t)load_le32(data + PRL_DATA_OFF) * 512;
    if (!b.data_off) {
        b.data_off = (b.bat_end + 511) / 512 * 512;
    }
    mem = vimg_internal_memory_new(FUZZ_NAME, data, len, len + MAX_GROWTH);
    if (!mem || !(img = vimg_internal_open_on(mem, &p))) {
        return;
    }
    vimg_internal_memory_observe(mem, observe, &b);
    size = (uint64_t)vimg_get_size(img);
    memset(io_buf, 0x3c, sizeof io_buf);
    for (uint64_t i = 0; size && i < 8; i++) {
        uint64_t off, n;
        pick(size, len * (i + 3) * 2654435761u, &off, &n);
        vimg_pwrite(img, io_buf, n, off, 0);
    }
    vimg_flush(img);
    vimg_close(img);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_format_one(data, size);
    write_pass(data, size);
    return 0;
}
