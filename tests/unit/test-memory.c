/* The memory protocol, raw on top of it, and the simulated-crash hook. */
#include "internal.h"
#include "test.h"

struct seen {
    int n;
    enum vimg_memory_op op;
    uint64_t offset, len;
    unsigned flags;
    uint8_t old_byte;
    struct vimg_image *mem;
};

static void observer(void *opaque, enum vimg_memory_op op, uint64_t offset,
                     uint64_t len, unsigned flags)
{
    struct seen *s = opaque;
    s->n++;
    s->op = op;
    s->offset = offset;
    s->len = len;
    s->flags = flags;
    if (s->mem) {
        size_t n;
        const uint8_t *d = vimg_internal_memory_data(s->mem, &n);
        s->old_byte = offset < n ? d[offset] : 0;
    }
}

int main(void)
{
    uint8_t data[8192] = { 0 }, buf[8192];
    memcpy(data + 100, "payload", 7);

    /* Public buffer opens probe, read and refuse writes unless RDWR. */
    struct vimg_image *img = vimg_open_buffer(data, sizeof data, "m.img",
                                              NULL);
    CHECK(img != NULL);
    CHECK(!strcmp(vimg_get_format(img), "raw"));
    CHECK_EQ(vimg_get_size(img), 8192);
    CHECK_EQ(vimg_pread(img, buf, 7, 100), 0);
    CHECK(!memcmp(buf, "payload", 7));
    CHECK_EQ(vimg_pwrite(img, "x", 1, 0, 0), -1);
    CHECK_ERROR(EROFS, "m.img: image is opened read-only");
    CHECK_EQ(vimg_pread(img, buf, 2, 8191), -1);
    CHECK_ERROR(EINVAL, "m.img: request at offset 8191");
    CHECK_EQ(vimg_close(img), 0);

    /* A guessed-raw image is never opened for writing. */
    struct vimg_open_params rw = { .flags = VIMG_OPEN_RDWR };
    CHECK(vimg_open_buffer(data, sizeof data, "m.img", &rw) == NULL);
    CHECK_ERROR(EPERM, "m.img: the format was guessed to be raw");

    /* Explicit raw, read-write, on a growable memory protocol image. */
    struct vimg_image *mem = vimg_internal_memory_new("mem", data, 4096,
                                                      16384);
    struct vimg_open_params p = { .format = "raw", .flags = VIMG_OPEN_RDWR };
    img = vimg_internal_open_on(mem, &p);
    CHECK(img != NULL);
    CHECK_EQ(vimg_pwrite(img, "abc", 3, 10, 0), 0);
    CHECK_EQ(vimg_truncate(img, 16384, 0, VIMG_PREALLOC_OFF), 0);
    CHECK_EQ(vimg_get_size(img), 16384);
    CHECK_EQ(vimg_truncate(img, 20000, 0, VIMG_PREALLOC_OFF), -1);
    CHECK_ERROR(ENOSPC, "mem: memory image full");
    CHECK_EQ(vimg_truncate(img, 4096, 0, VIMG_PREALLOC_OFF), -1);
    CHECK_ERROR(EINVAL, "mem: shrinking from 16384 to 4096 bytes");
    CHECK_EQ(vimg_zero(img, 8192, 4096, 0), 0);
    CHECK_EQ(vimg_pread(img, buf, 3, 10), 0);
    CHECK(!memcmp(buf, "abc", 3));
    CHECK_EQ(vimg_pread(img, buf, 4096, 12288), 0);
    CHECK(buf[0] == 0 && buf[4095] == 0);

    /* The third write-like call from now fails, and all after it. */
    vimg_internal_memory_fail_after(mem, 3);
    CHECK_EQ(vimg_pwrite(img, "1", 1, 0, 0), 0);
    CHECK_EQ(vimg_pwrite(img, "2", 1, 1, 0), 0);
    CHECK_EQ(vimg_pwrite(img, "3", 1, 2, 0), -1);
    CHECK_ERROR(EIO, "mem: simulated I/O failure");
    CHECK_EQ(vimg_pwrite(img, "4", 1, 3, 0), -1);
    size_t len;
    const uint8_t *raw = vimg_internal_memory_data(mem, &len);
    CHECK_EQ(len, 16384);
    CHECK(raw[0] == '1' && raw[1] == '2' && raw[2] == 0 && raw[3] == 0);
    vimg_internal_memory_fail_after(mem, 0);

    /* The observer sees each change before it lands; discard punches. */
    struct seen seen = { .mem = mem };
    vimg_internal_memory_observe(mem, observer, &seen);
    CHECK_EQ(vimg_pwrite(img, "xyz", 3, 100, 0), 0);
    CHECK_EQ(seen.n, 1);
    CHECK(seen.op == VIMG_MEMORY_WRITE && seen.offset == 100 &&
          seen.len == 3 && seen.flags == 0 && seen.old_byte == 'p');
    /* Only formats mark metadata; public callers cannot. */
    CHECK_EQ(vimg_pwrite(img, "q", 1, 100,
                         VIMG_INTERNAL_WRITE_METADATA), 0);
    CHECK(seen.n == 2 && seen.flags == 0 && seen.old_byte == 'x');
    CHECK_EQ(vimg_internal_pwrite(mem, "m", 1, 5,
                                  VIMG_INTERNAL_WRITE_METADATA), 0);
    CHECK(seen.n == 3 && seen.flags == VIMG_INTERNAL_WRITE_METADATA);
    CHECK_EQ(vimg_discard(img, 0, 4096), 0);
    CHECK(seen.n == 4 && seen.op == VIMG_MEMORY_DISCARD &&
          seen.offset == 0 && seen.len == 4096);
    raw = vimg_internal_memory_data(mem, &len);
    CHECK(len == 16384 && raw[100] == 0 && raw[5] == 0);
    CHECK_EQ(vimg_zero(img, 4096, 512, 0), 0);
    CHECK(seen.n == 5 && seen.op == VIMG_MEMORY_ZERO);
    vimg_internal_memory_observe(mem, NULL, NULL);
    CHECK_EQ(vimg_pwrite(img, "x", 1, 0, 0), 0);
    CHECK_EQ(seen.n, 5);
    CHECK_EQ(vimg_close(img), 0);
    TEST_MAIN_END();
}
