/* Fuzz the qcow2 write paths on hostile images: open the input read-write
 * on a memory image and run a few writes, zero writes, discards and
 * resizes that its last 32 bytes describe, checking invariants throughout.
 * Any broken invariant aborts.
 *
 * (a) Nothing lands on metadata unless it is a metadata update: every
 *     change of the memory image that the driver did not mark
 *     VIMG_INTERNAL_WRITE_METADATA (guest data, zeroing, punched holes)
 *     must miss the header, the L1 table, the refcount table and blocks,
 *     the active L2 tables, the snapshot table and the snapshots' L1 and
 *     L2 tables, as the driver's state says at that moment (the L2 tables
 *     of snapshots are read from the image). A truncation must cut none
 *     of them.
 * (b) An image that check found clean before (no corruption, no check
 *     errors) is found without corruption afterwards, and no request on
 *     it may mark it corrupt.
 * (c) On such an image of at most MODEL_MAX bytes, whatever a request
 *     reported written or zeroed reads back so.
 *
 * Open-time repair of a dirty image runs before the observer is attached
 * (the image handle does not exist yet). Work is bounded: requests of at
 * most 64 KiB, sizes of at most 64 MiB, and a file that may grow by at
 * most 8 MiB. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/qcow2/qcow2.h"
#include "internal.h"

#define SCRIPT_OPS 8
#define SCRIPT_LEN (SCRIPT_OPS * 4)
#define MAX_GROWTH (8u << 20)
#define IO_SIZE 65536u
#define MODEL_MAX (4u << 20)
#define MAX_RESIZE (64u << 20)

enum op_kind { OP_WRITE, OP_WRITE_UNALIGNED, OP_ZERO, OP_ZERO_UNMAP,
               OP_DISCARD, OP_RESIZE, OP_KINDS };

struct ctx {
    struct vimg_image *img, *mem;
};

static uint8_t io_buf[IO_SIZE];

static void check(bool ok)
{
    if (!ok) {
        abort();
    }
}

static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    return alen && blen && a < b + blen && b < a + alen;
}

/* Whether [OFF, OFF+LEN) of the file touches metadata that S names,
 * reading the snapshots' L1 tables from DATA (LEN_DATA bytes). */
static bool hits_metadata(const struct qcow2_state *s, const uint8_t *data,
                          size_t len_data, uint64_t off, uint64_t len)
{
    uint64_t cs = s->cluster_size;

    if (overlaps(off, len, 0, cs) ||
        overlaps(off, len, s->l1_offset, s->l1_size * 8ull) ||
        overlaps(off, len, s->rt_offset, s->rt_clusters * cs) ||
        (s->nb_snapshots &&
         overlaps(off, len, s->snapshots_offset, s->snapshots_size))) {
        return true;
    }
    for (uint64_t i = 0; i < s->rt_entries; i++) {
        uint64_t b = s->rt[i] & QCOW2_RTE_OFFSET_MASK;
        if (b && overlaps(off, len, b, cs)) {
            return true;
        }
    }
    for (uint64_t i = 0; i < s->l1_size; i++) {
        uint64_t b = s->l1[i] & QCOW2_L1E_OFFSET_MASK;
        if (b && overlaps(off, len, b, cs)) {
            return true;
        }
    }
    for (uint32_t i = 0; i < s->nb_snapshots; i++) {
        const struct qcow2_snapshot *sn = &s->snapshots[i];
        if (overlaps(off, len, sn->l1_offset, sn->l1_size * 8ull)) {
            return true;
        }
        for (uint64_t j = 0; j < sn->l1_size; j++) {
            uint64_t at = sn->l1_offset + j * 8;
            if (at + 8 > len_data) {
                break;
            }
            uint64_t b = load_be64(data + at) & QCOW2_L1E_OFFSET_MASK;
            if (b && overlaps(off, len, b, cs)) {
                return true;
            }
        }
    }
    return false;
}

/* Invariant (a), before each change lands. */
static void observe(void *opaque, enum vimg_memory_op op, uint64_t offset,
                    uint64_t len, unsigned flags)
{
    struct ctx *c = opaque;
    const struct qcow2_state *s = c->img->opaque;
    size_t n;
    const uint8_t *data = vimg_internal_memory_data(c->mem, &n);

    if (!s->cluster0 || !s->l1 || !s->rt) {
        return; /* closing: the state is gone */
    }
    if (op == VIMG_MEMORY_WRITE && (flags & VIMG_INTERNAL_WRITE_METADATA)) {
        return;
    }
    if (op == VIMG_MEMORY_TRUNCATE) {
        /* What lies past the old end is not cut (it reads as zeros). */
        check(!hits_metadata(s, data, n, offset,
                             len > offset ? len - offset : 0));
        return;
    }
    check(!hits_metadata(s, data, n, offset, len));
}

/* One request of the script, from 4 bytes: kind (low 7 bits modulo
 * OP_KINDS; bit 7 flushes after it), position as a 16-bit fraction of the
 * virtual SIZE, length (or new size for a resize). */
struct req {
    enum op_kind kind;
    bool flush;
    uint64_t offset, len;
};

static struct req decode(const uint8_t *b, uint64_t size)
{
    struct req q = { .kind = (b[0] & 0x7f) % OP_KINDS,
                     .flush = b[0] & 0x80 };
    uint64_t frac = (uint64_t)b[1] << 8 | b[2];
    uint64_t pos = (size >> 16) * frac + ((size & 0xffff) * frac >> 16);

    if (q.kind == OP_RESIZE) {
        /* Shrink to a fraction or grow by up to four times, in sectors. */
        uint64_t to = b[3] < 128 ? size / 128 * b[3] : size / 64 * b[3];
        q.offset = (to < MAX_RESIZE ? to : MAX_RESIZE) & ~511ull;
        return q;
    }
    if (q.kind != OP_WRITE_UNALIGNED) {
        pos &= ~511ull;
    }
    q.len = q.kind == OP_WRITE_UNALIGNED ? 1 + b[3] * 131u % IO_SIZE
                                         : (b[3] % 128 + 1) * 512u;
    q.offset = pos;
    if (q.offset >= size) {
        q.len = 0;
    } else if (q.len > size - q.offset) {
        q.len = size - q.offset;
    }
    return q;
}

static uint8_t pattern(size_t step, uint64_t off)
{
    return (uint8_t)(step * 29 + off * 7 + (off >> 9) + 1) | 1;
}

static int run(struct vimg_image *img, size_t step, const struct req *q)
{
    switch (q->kind) {
    case OP_WRITE:
    case OP_WRITE_UNALIGNED:
        for (uint64_t i = 0; i < q->len; i++) {
            io_buf[i] = pattern(step, q->offset + i);
        }
        return vimg_pwrite(img, io_buf, q->len, q->offset, 0);
    case OP_ZERO:
        return vimg_zero(img, q->offset, q->len, 0);
    case OP_ZERO_UNMAP:
        return vimg_zero(img, q->offset, q->len, VIMG_ZERO_MAY_UNMAP);
    case OP_DISCARD:
        return vimg_discard(img, q->offset, q->len);
    default:
        return vimg_truncate(img, q->offset, VIMG_TRUNCATE_SHRINK,
                             VIMG_PREALLOC_OFF);
    }
}

/* Check the image in LEN bytes of DATA: 1 clean, 0 not, -1 unreadable. */
static int clean(const uint8_t *data, size_t len)
{
    struct vimg_open_params p = { .format = "qcow2",
                                  .flags = VIMG_OPEN_NO_BACKING,
                                  .refs = VIMG_REFS_NEVER };
    struct vimg_image *img = vimg_open_buffer(data, len, "fuzz.qcow2", &p);
    struct vimg_check_result res;
    int r;

    if (!img) {
        return -1;
    }
    r = vimg_check(img, 0, &res, NULL, NULL);
    vimg_close(img);
    if (r < 0) {
        return -1;
    }
    return !res.corruptions && !res.check_errors;
}

/* The guest contents of IMG, or NULL when they cannot all be read. */
static uint8_t *read_all(struct vimg_image *img, uint64_t size)
{
    uint8_t *buf = malloc(size ? size : 1);

    if (buf && size && vimg_pread(img, buf, size, 0) < 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct vimg_open_params p = { .format = "qcow2",
                                  .flags = VIMG_OPEN_RDWR |
                                           VIMG_OPEN_NO_BACKING,
                                  .refs = VIMG_REFS_NEVER };
    struct req script[SCRIPT_OPS];
    struct ctx c = { 0 };
    uint8_t *model = NULL, *known = NULL;
    bool was_clean;
    uint64_t vsize;

    if (size < SCRIPT_LEN) {
        return 0;
    }
    was_clean = clean(data, size) == 1;
    c.mem = vimg_internal_memory_new("fuzz.qcow2", data, size,
                                     size + MAX_GROWTH);
    if (!c.mem || !(c.img = vimg_internal_open_on(c.mem, &p))) {
        return 0;
    }
    vimg_internal_memory_observe(c.mem, observe, &c);
    vsize = (uint64_t)vimg_get_size(c.img);
    const uint8_t *tail = data + size - SCRIPT_LEN;
    bool resizes = false;
    for (size_t i = 0; i < SCRIPT_OPS; i++) {
        script[i] = decode(tail + i * 4, vsize);
        resizes |= script[i].kind == OP_RESIZE;
    }
    if (was_clean && !resizes && vsize <= MODEL_MAX &&
        (model = read_all(c.img, vsize))) {
        known = malloc(vsize ? vsize : 1);
        check(known != NULL);
        memset(known, 1, vsize);
    }
    for (size_t i = 0; i < SCRIPT_OPS; i++) {
        const struct req *q = &script[i];
        if (q->kind != OP_RESIZE && q->len == 0) {
            continue;
        }
        int r = run(c.img, i, q);
        /* (b): a clean image is never found corrupt by a request. */
        check(!was_clean || r == 0 ||
              !qcow2_state(c.img)->corrupt);
        if (model && q->kind != OP_RESIZE) {
            bool unknown = r < 0 || q->kind == OP_DISCARD;
            for (uint64_t b = q->offset; b < q->offset + q->len; b++) {
                known[b] = !unknown;
                model[b] = q->kind <= OP_WRITE_UNALIGNED ? pattern(i, b)
                                                         : 0;
            }
        }
        if (q->flush) {
            vimg_flush(c.img);
        }
    }
    if (model) {
        /* (c) */
        uint8_t *now = read_all(c.img, vsize);
        check(now != NULL);
        for (uint64_t b = 0; b < vsize; b++) {
            check(!known[b] || now[b] == model[b]);
        }
        free(now);
    }
    free(model);
    free(known);
    vimg_flush(c.img);
    size_t len;
    const uint8_t *after = vimg_internal_memory_data(c.mem, &len);
    uint8_t *copy = malloc(len ? len : 1);
    check(copy != NULL);
    memcpy(copy, after, len);
    vimg_close(c.img);
    /* (b) */
    check(!was_clean || clean(copy, len) == 1);
    free(copy);
    return 0;
}
