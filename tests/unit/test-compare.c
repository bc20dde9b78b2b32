/* vimg_compare on raw images in memory: identical images, the first
 * differing sector (qemu-img reports sectors, not bytes), sizes that
 * differ with a zero or non-zero tail, strict mode, and progress. */
#include "internal.h"
#include "test.h"

#define SIZE (3u << 20)

static struct vimg_image *mem_raw(const void *data, size_t len)
{
    struct vimg_open_params p = { .format = "raw" };
    struct vimg_image *img = vimg_open_buffer(data, len, "cmp.img", &p);
    CHECK(img != NULL);
    return img;
}

static int compare(const void *a, size_t la, const void *b, size_t lb,
                   bool strict, uint64_t *diff)
{
    struct vimg_image *ia = mem_raw(a, la), *ib = mem_raw(b, lb);
    *diff = UINT64_MAX;
    int r = vimg_compare(ia, ib, strict, diff, NULL, NULL);
    vimg_close(ia);
    vimg_close(ib);
    return r;
}

static void on_progress(void *opaque, uint64_t done, uint64_t total)
{
    uint64_t *last = opaque;
    CHECK(done >= *last && done <= total);
    *last = done;
}

int main(void)
{
    unsigned char *a = malloc(SIZE + 65536), *b = malloc(SIZE + 65536);
    uint64_t diff;

    for (size_t i = 0; i < SIZE; i++) {
        a[i] = (unsigned char)(i * 31 + 7);
    }
    memset(a + SIZE, 0, 65536);
    memcpy(b, a, SIZE + 65536);

    CHECK_EQ(compare(a, SIZE, b, SIZE, false, &diff), 0);
    CHECK_EQ(compare(a, SIZE, b, SIZE, true, &diff), 0);

    /* A byte in the second MiB chunk: reported as its sector. */
    b[(1u << 20) + 5000] ^= 0xff;
    CHECK_EQ(compare(a, SIZE, b, SIZE, false, &diff), 1);
    CHECK_EQ(diff, (1u << 20) + 4608);
    /* The first difference wins over later ones. */
    b[SIZE - 1] ^= 0xff;
    CHECK_EQ(compare(a, SIZE, b, SIZE, false, &diff), 1);
    CHECK_EQ(diff, (1u << 20) + 4608);
    /* A difference in byte 0. */
    memcpy(b, a, SIZE);
    b[0] ^= 1;
    CHECK_EQ(compare(a, SIZE, b, SIZE, false, &diff), 1);
    CHECK_EQ(diff, 0);
    memcpy(b, a, SIZE);

    /* B is longer with a zero tail: identical unless strict, either way
     * round. */
    CHECK_EQ(compare(a, SIZE, b, SIZE + 65536, false, &diff), 0);
    CHECK_EQ(compare(b, SIZE + 65536, a, SIZE, false, &diff), 0);
    CHECK_EQ(compare(a, SIZE, b, SIZE + 65536, true, &diff), 1);
    CHECK_EQ(diff, SIZE);
    /* A non-zero byte in the tail: its sector. */
    b[SIZE + 1000] = 1;
    CHECK_EQ(compare(a, SIZE, b, SIZE + 65536, false, &diff), 1);
    CHECK_EQ(diff, SIZE + 512);
    CHECK_EQ(compare(b, SIZE + 65536, a, SIZE, false, &diff), 1);
    CHECK_EQ(diff, SIZE + 512);
    /* Raw sizes round up to whole sectors, as in qemu-img, so these are
     * SIZE + 512 and SIZE + 1024 bytes and differ inside the first. */
    memset(b + SIZE, 0, 65536);
    b[SIZE + 10] = 1;
    struct vimg_image *odd = mem_raw(a, SIZE + 3);
    CHECK_EQ(vimg_get_size(odd), SIZE + 512);
    vimg_close(odd);
    CHECK_EQ(compare(a, SIZE + 3, b, SIZE + 700, false, &diff), 1);
    CHECK_EQ(diff, SIZE);
    CHECK_EQ(compare(a, SIZE + 3, a, SIZE + 700, false, &diff), 0);

    /* Progress ends at the larger size. */
    struct vimg_image *ia = mem_raw(a, SIZE), *ib = mem_raw(a, SIZE);
    uint64_t last = 0;
    CHECK_EQ(vimg_compare(ia, ib, false, &diff, on_progress, &last), 0);
    CHECK_EQ(last, SIZE);
    vimg_close(ia);
    vimg_close(ib);
    free(a);
    free(b);
    TEST_MAIN_END();
}
