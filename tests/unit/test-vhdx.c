/* The VHDX driver: randomised writes and zeroes on new dynamic and fixed
 * images checked against a model after reopening; crash safety (the Nth
 * write-like call of a workload fails, and every later one, for every N):
 * the image left behind always opens, reads every block as it was before
 * or after the flush that was cut short (the log replays in memory on a
 * read-only open), and a repair writes the log out to the same contents;
 * and hostile log entries in exactly-sized buffers. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/crc32c.h"
#include "common/rounding.h"
#include "formats/vhdx/vhdx-ondisk.h"
#include "internal.h"
#include "test.h"

#define MIB (1u << 20)

static uint64_t rng = 5;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static char dir[] = "/tmp/vimg-vhdx-XXXXXX";

/* A new image's bytes, read into memory (the caller frees). */
static uint8_t *new_image(const char *options, uint64_t size, size_t *len)
{
    char *path;
    struct vimg_create_params cp = { .format = "vhdx", .size = size,
                                     .size_given = true,
                                     .options = options };
    uint8_t *buf = NULL;
    FILE *f;

    CHECK(asprintf(&path, "%s/new.vhdx", dir) > 0);
    CHECK_EQ(vimg_create(path, &cp), 0);
    if ((f = fopen(path, "rb"))) {
        fseek(f, 0, SEEK_END);
        *len = (size_t)ftell(f);
        rewind(f);
        buf = malloc(*len);
        CHECK(fread(buf, 1, *len, f) == *len);
        fclose(f);
    }
    unlink(path);
    free(path);
    return buf;
}

static void rw(const char *options)
{
    char *path;
    struct vimg_create_params cp = { .format = "vhdx", .size = 7000000,
                                     .size_given = true,
                                     .options = options };
    CHECK(asprintf(&path, "%s/rw.vhdx", dir) > 0);
    CHECK_EQ(vimg_create(path, &cp), 0);
    struct vimg_open_params p = { .format = "vhdx",
                                  .flags = VIMG_OPEN_RDWR };
    struct vimg_image *img = vimg_open(path, &p);
    CHECK(img != NULL);
    if (!img) {
        fprintf(stderr, "%s\n", vimg_get_error());
        free(path);
        return;
    }
    uint64_t size = (uint64_t)vimg_get_size(img);
    uint8_t *model = calloc(1, size), *buf = malloc(size);
    for (int i = 0; i < 150; i++) {
        uint64_t off = next_rand() % size;
        uint64_t n = 1 + next_rand() % (700u << 10);
        n = MIN(n, size - off);
        if (next_rand() % 4 == 0) {
            CHECK_EQ(vimg_zero(img, off, n, VIMG_ZERO_MAY_UNMAP), 0);
            memset(model + off, 0, n);
        } else {
            memset(model + off, (int)(i + 1), n);
            CHECK_EQ(vimg_pwrite(img, model + off, n, off, 0), 0);
        }
        if (i % 50 == 49) {
            CHECK_EQ(vimg_flush(img), 0);
        }
    }
    CHECK_EQ(vimg_pread(img, buf, size, 0), 0);
    CHECK(memcmp(buf, model, size) == 0);
    CHECK_EQ(vimg_close(img), 0);
    img = vimg_open(path, &(struct vimg_open_params){ .format = "vhdx" });
    CHECK(img != NULL);
    if (img) {
        memset(buf, 0xee, size);
        CHECK_EQ(vimg_pread(img, buf, size, 0), 0);
        CHECK(memcmp(buf, model, size) == 0);
        vimg_close(img);
    }
    unlink(path);
    free(path);
    free(model);
    free(buf);
}

/* ---- Crashes ----------------------------------------------------------- */

#define CRASH_SIZE (6u * MIB)
#define CRASH_BLOCK MIB

/* Blocks 0..5 of 1 MiB: the first flush commits blocks 1 and 4, the
 * second blocks 0 and 5 (block 4 is rewritten in place). */
static void workload(struct vimg_image *img, uint8_t *before, uint8_t *after,
                     int *flushes)
{
    static uint8_t block[CRASH_BLOCK];
    static const uint64_t phase[2][3] = { { 1, 4, 6 }, { 0, 4, 5 } };

    for (int ph = 0; ph < 2; ph++) {
        memset(block, 0x41 + ph, sizeof block);
        for (int k = 0; k < 3 && phase[ph][k] < 6; k++) {
            /* The model changes first: a failed write may still land. */
            memset(after + phase[ph][k] * MIB, 0x41 + ph, MIB);
            if (vimg_pwrite(img, block, sizeof block, phase[ph][k] * MIB,
                            0) < 0) {
                return;
            }
        }
        if (vimg_flush(img) < 0) {
            return;
        }
        memcpy(before, after, CRASH_SIZE);
        (*flushes)++;
    }
}

/* Each 1 MiB block reads as it was before or after the interrupted
 * flush. Block 4 is rewritten in place, so it may be either whatever the
 * BAT says. */
static bool plausible(const uint8_t *got, const uint8_t *before,
                      const uint8_t *after)
{
    for (uint64_t b = 0; b < CRASH_SIZE / MIB; b++) {
        if (memcmp(got + b * MIB, before + b * MIB, MIB) != 0 &&
            memcmp(got + b * MIB, after + b * MIB, MIB) != 0) {
            fprintf(stderr, "block %llu reads neither old nor new data\n",
                    (unsigned long long)b);
            return false;
        }
    }
    return true;
}

static void crash(void)
{
    size_t len = 0;
    uint8_t *base = new_image("block_size=1M", CRASH_SIZE, &len);
    uint8_t *before = malloc(CRASH_SIZE), *after = malloc(CRASH_SIZE);
    uint8_t *got = malloc(CRASH_SIZE);
    bool completed = false;
    unsigned replays = 0;

    CHECK(base != NULL);
    for (uint64_t n = 1; base && !completed && n < 2000; n++) {
        struct vimg_image *mem = vimg_internal_memory_new("crash.vhdx", base,
                                                          len, 64u << 20);
        struct vimg_open_params p = { .format = "vhdx",
                                      .flags = VIMG_OPEN_RDWR };
        struct vimg_image *img;
        int flushes = 0;

        memset(before, 0, CRASH_SIZE);
        memset(after, 0, CRASH_SIZE);
        vimg_internal_memory_fail_after(mem, n);
        img = vimg_internal_open_on(mem, &p);
        CHECK(img != NULL);
        if (!img) {
            break;
        }
        workload(img, before, after, &flushes);
        completed = flushes == 2;
        size_t dlen;
        const void *d = vimg_internal_memory_data(mem, &dlen);
        uint8_t *left = malloc(dlen);
        memcpy(left, d, dlen);
        vimg_close(img);

        /* Read-only: the log (if any) replays in memory. */
        struct vimg_open_params ro = { .format = "vhdx" };
        struct vimg_image *r = vimg_open_buffer(left, dlen, "crash.vhdx",
                                                &ro);
        CHECK(r != NULL);
        if (!r) {
            fprintf(stderr, "crash at %llu: %s\n", (unsigned long long)n,
                    vimg_get_error());
            free(left);
            continue;
        }
        CHECK_EQ(vimg_pread(r, got, CRASH_SIZE, 0), 0);
        if (!plausible(got, before, after)) {
            fprintf(stderr, "crash at write %llu\n", (unsigned long long)n);
            test_failures++;
        }
        struct vimg_check_result res;
        CHECK_EQ(vimg_check(r, 0, &res, NULL, NULL), 0);
        replays += res.corruptions > 0;
        vimg_close(r);

        /* A repair writes the log out; the contents do not change. */
        struct vimg_image *m2 = vimg_internal_memory_new("crash.vhdx", left,
                                                         dlen, 64u << 20);
        struct vimg_open_params fix = { .format = "vhdx",
                                        .flags = VIMG_OPEN_RDWR |
                                                 VIMG_OPEN_CHECK };
        struct vimg_image *w = vimg_internal_open_on(m2, &fix);
        uint8_t *again = malloc(CRASH_SIZE);
        CHECK(w != NULL);
        if (w) {
            CHECK_EQ(vimg_pread(w, again, CRASH_SIZE, 0), 0);
            CHECK(memcmp(again, got, CRASH_SIZE) == 0);
            vimg_close(w);
        }
        free(again);
        free(left);
    }
    CHECK(completed);
    /* Some crash points fall between the log entry and the BAT write. */
    CHECK(replays > 0);
    free(base);
    free(before);
    free(after);
    free(got);
}

/* ---- Hostile logs ------------------------------------------------------ */

/* A clean image with an entry in its log that rewrites the first BAT
 * sector; the headers name the log. */
static uint8_t *with_log(size_t *len, uint64_t *bat)
{
    uint8_t *b = new_image("block_size=1M", 4 * MIB, len);
    uint8_t guid[16] = { 1, 2, 3 };
    uint8_t *e;

    if (!b) {
        return NULL;
    }
    *bat = load_le64(b + VHDX_REGION_TABLE1_OFFSET + VHDX_RT_ENTRIES +
                     VHDX_RTE_FILE_OFFSET);
    e = b + VHDX_HEADER_SECTION_END; /* the log */
    memcpy(e, "loge", 4);
    store_le32(e + VHDX_LOGE_ENTRY_LENGTH, 2 * VHDX_LOG_SECTOR);
    store_le64(e + VHDX_LOGE_SEQUENCE, 9);
    store_le32(e + VHDX_LOGE_DESC_COUNT, 1);
    memcpy(e + VHDX_LOGE_LOG_GUID, guid, 16);
    store_le64(e + VHDX_LOGE_FLUSHED_OFFSET, *len);
    store_le64(e + VHDX_LOGE_LAST_OFFSET, *len);
    uint8_t *d = e + VHDX_LOG_HDR_SIZE;
    memcpy(d, "desc", 4);
    store_le64(d + VHDX_DESC_FILE_OFFSET, *bat);
    store_le64(d + VHDX_DESC_SEQUENCE, 9);
    uint8_t *ds = e + VHDX_LOG_SECTOR;
    memcpy(ds, "data", 4);
    store_le32(ds + VHDX_DATA_SEQUENCE_LOW, 9);
    store_le32(e + VHDX_LOGE_CHECKSUM,
               crc32c_skip(e, 2 * VHDX_LOG_SECTOR, VHDX_LOGE_CHECKSUM));
    for (int i = 0; i < 2; i++) {
        uint8_t *h = b + (i ? VHDX_HEADER2_OFFSET : VHDX_HEADER1_OFFSET);
        memcpy(h + VHDX_HDR_LOG_GUID, guid, 16);
        store_le32(h + VHDX_HDR_CHECKSUM,
                   crc32c_skip(h, VHDX_HEADER_SIZE, VHDX_HDR_CHECKSUM));
    }
    return b;
}

static void reseal_log(uint8_t *b)
{
    uint8_t *e = b + VHDX_HEADER_SECTION_END;
    store_le32(e + VHDX_LOGE_CHECKSUM,
               crc32c_skip(e, 2 * VHDX_LOG_SECTOR, VHDX_LOGE_CHECKSUM));
}

static void logs(void)
{
    size_t len;
    uint64_t bat;
    uint8_t *b = with_log(&len, &bat);
    struct vimg_open_params p = { .format = "vhdx" };
    struct vimg_image *img;

    if (!b) {
        return;
    }
    /* Valid: replayed in memory (the BAT sector becomes zeros). */
    img = vimg_open_buffer(b, len, "log.vhdx", &p);
    CHECK(img != NULL);
    vimg_close(img);
    /* Truncated since the entry was written: refused. */
    img = vimg_open_buffer(b, len - MIB, "log.vhdx", &p);
    CHECK(img == NULL);
    CHECK_ERROR(EINVAL, "log.vhdx: ");
    /* An entry whose data sector lies about its sequence is not valid:
     * nothing to replay, and the image opens as it is. */
    store_le32(b + VHDX_HEADER_SECTION_END + VHDX_LOG_SECTOR +
               VHDX_DATA_SEQUENCE_LOW, 8);
    reseal_log(b);
    img = vimg_open_buffer(b, len, "log.vhdx", &p);
    CHECK(img != NULL);
    if (img) {
        struct vimg_check_result res;
        CHECK_EQ(vimg_check(img, 0, &res, NULL, NULL), 0);
        CHECK_EQ(res.corruptions, 0);
        vimg_close(img);
    }
    /* Forged headers in every sector, each claiming the whole log: the
     * search gives up after its checksum budget instead of spending
     * minutes. */
    for (uint64_t s = 0; s < MIB / VHDX_LOG_SECTOR; s++) {
        uint8_t *e = b + VHDX_HEADER_SECTION_END + s * VHDX_LOG_SECTOR;
        memcpy(e, b + VHDX_HEADER_SECTION_END, VHDX_LOG_HDR_SIZE);
        store_le32(e + VHDX_LOGE_ENTRY_LENGTH, MIB);
        store_le32(e + VHDX_LOGE_CHECKSUM, 0);
    }
    img = vimg_open_buffer(b, len, "log.vhdx", &p);
    CHECK(img == NULL);
    CHECK_ERROR(EINVAL, "log.vhdx: log is too damaged");
    free(b);
}

/* An image without a log reads, but is not written: its BAT could not
 * be updated safely. */
static void no_log(void)
{
    size_t len;
    uint8_t *b = new_image(NULL, 4 * MIB, &len);
    struct vimg_open_params ro = { .format = "vhdx" };
    struct vimg_open_params rw = { .format = "vhdx",
                                   .flags = VIMG_OPEN_RDWR };
    struct vimg_image *img;

    if (!b) {
        return;
    }
    for (int i = 0; i < 2; i++) {
        uint8_t *h = b + (i ? VHDX_HEADER2_OFFSET : VHDX_HEADER1_OFFSET);
        store_le32(h + VHDX_HDR_LOG_LENGTH, 0);
        store_le32(h + VHDX_HDR_CHECKSUM,
                   crc32c_skip(h, VHDX_HEADER_SIZE, VHDX_HDR_CHECKSUM));
    }
    img = vimg_open_buffer(b, len, "nolog.vhdx", &ro);
    CHECK(img != NULL);
    vimg_close(img);
    img = vimg_open_buffer(b, len, "nolog.vhdx", &rw);
    CHECK(img == NULL);
    CHECK_ERROR(ENOTSUP, "nolog.vhdx: the image has no log");
    free(b);
}

/* ---- Differencing images ---------------------------------------------- */

/* Write a parent locator with the N key/value pairs KV at ITEM (in
 * metadata table entry 5 of the table at MD); returns its length. */
static uint32_t put_locator(uint8_t *item, uint8_t *md, const char *const *kv,
                            int n)
{
    static const uint8_t type[16] = VHDX_GUID_VHDX_LOCATOR_TYPE;
    static const uint8_t id[16] = VHDX_GUID_PARENT_LOCATOR;
    uint32_t at = VHDX_PL_HEADER_SIZE + (uint32_t)n * VHDX_PLE_SIZE;

    memcpy(item + VHDX_PL_TYPE, type, 16);
    store_le16(item + VHDX_PL_KEY_VALUE_COUNT, (uint16_t)n);
    for (int i = 0; i < n; i++) {
        uint8_t *e = item + VHDX_PL_HEADER_SIZE + i * VHDX_PLE_SIZE;
        for (int kvi = 0; kvi < 2; kvi++) {
            const char *str = kv[2 * i + kvi];
            store_le32(e + (kvi ? VHDX_PLE_VALUE_OFFSET
                                : VHDX_PLE_KEY_OFFSET), at);
            store_le16(e + (kvi ? VHDX_PLE_VALUE_LENGTH
                                : VHDX_PLE_KEY_LENGTH),
                       (uint16_t)(2 * strlen(str)));
            for (size_t c = 0; str[c]; c++, at += 2) {
                store_le16(item + at, (uint8_t)str[c]);
            }
        }
    }
    uint8_t *e = md + VHDX_MD_ENTRIES + 5 * VHDX_MDE_SIZE;
    memcpy(e + VHDX_MDE_ITEM_ID, id, 16);
    store_le32(e + VHDX_MDE_OFFSET, (uint32_t)(item - md));
    store_le32(e + VHDX_MDE_LENGTH, at);
    store_le32(e + VHDX_MDE_FLAGS, VHDX_MDE_IS_REQUIRED);
    store_le16(md + VHDX_MD_ENTRY_COUNT, 6);
    return at;
}

/* A new 4 MiB image with 1 MiB blocks made a differencing one: block 0
 * partially present (its first 8 sectors, 0x5a), the rest the parent's,
 * the locator (KV, N pairs) the last item of the metadata. The buffer is
 * exactly *LEN bytes. *ITEM and *MD locate the locator and the table. */
static uint8_t *diff_image(size_t *len, const char *const *kv, int n,
                           uint8_t **item, uint8_t **md)
{
    uint8_t *b = new_image("block_size=1M", 4 * MIB, len);
    uint8_t *rt = b ? b + VHDX_REGION_TABLE1_OFFSET + VHDX_RT_ENTRIES : NULL;

    if (!b) {
        return NULL;
    }
    uint64_t bat = load_le64(rt + VHDX_RTE_FILE_OFFSET);
    uint64_t md_off = load_le64(rt + VHDX_RTE_SIZE + VHDX_RTE_FILE_OFFSET);
    uint64_t block = *len, sb = *len + MIB;
    uint8_t *grown = realloc(b, *len + 2 * MIB);
    if (!grown) {
        free(b);
        return NULL;
    }
    b = grown;
    *len += 2 * MIB;
    *md = b + md_off;
    memset(b + block, 0x5a, MIB);
    memset(b + sb, 0, MIB);
    b[sb] = 0xff;
    memset(b + bat, 0, 4097 * 8);
    store_le64(b + bat, block | VHDX_PAYLOAD_PARTIALLY_PRESENT);
    store_le64(b + bat + 4096 * 8, sb | VHDX_SB_BLOCK_PRESENT);
    uint8_t *params = *md + load_le32(*md + VHDX_MD_ENTRIES + VHDX_MDE_OFFSET);
    store_le32(params + VHDX_PARAM_FLAGS, VHDX_PARAM_HAS_PARENT);
    /* The items vimg writes take 40 bytes after the table. */
    *item = *md + VHDX_METADATA_TABLE_SIZE + 40;
    put_locator(*item, *md, kv, n);
    return b;
}

static void differencing(void)
{
    static const char *const good[] = {
        "parent_linkage", "{83ed0ec3-24c8-49a6-a959-5e4bf1288bfb}",
        "volume_path", "\\\\?\\Volume{26a21bda}\\p.vhdx",
        "relative_path", ".\\sub\\p.vhdx",
    };
    struct vimg_open_params ro = { .format = "vhdx" };
    struct vimg_open_params rw = { .format = "vhdx",
                                   .flags = VIMG_OPEN_RDWR };
    uint8_t *b, *item, *md, buf[4096];
    struct vimg_image *img;
    size_t len;

    if (!(b = diff_image(&len, good, 3, &item, &md))) {
        return;
    }
    img = vimg_open_buffer(b, len, "d.vhdx", &ro);
    CHECK(img != NULL);
    if (img) {
        /* The relative path with "/" for each backslash; the volume
         * path is skipped. */
        CHECK(strcmp(vimg_get_backing_name(img), "sub/p.vhdx") == 0);
        CHECK_EQ(vimg_pread(img, buf, 4096, 0), 0);
        CHECK(buf[0] == 0x5a && buf[4095] == 0x5a);
        /* The parent's sectors: the untrusted buffer opened no parent. */
        CHECK_EQ(vimg_pread(img, buf, 512, 4096), -1);
        CHECK_ERROR(EIO, "d.vhdx: backing file 'sub/p.vhdx' was not opened");
        vimg_close(img);
    }
    CHECK(vimg_open_buffer(b, len, "d.vhdx", &rw) == NULL);
    CHECK_ERROR(ENOTSUP, "d.vhdx: differencing VHDX images");

    /* The last value one unit longer than the item: refused, not read
     * past the (exactly allocated) locator. */
    uint8_t *e = item + VHDX_PL_HEADER_SIZE + 2 * VHDX_PLE_SIZE;
    store_le16(e + VHDX_PLE_VALUE_LENGTH,
               (uint16_t)(load_le16(e + VHDX_PLE_VALUE_LENGTH) + 2));
    CHECK(vimg_open_buffer(b, len, "d.vhdx", &ro) == NULL);
    CHECK_ERROR(EINVAL, "d.vhdx: parent locator entry 2 lies outside");
    put_locator(item, md, good, 3);
    store_le16(item + VHDX_PL_KEY_VALUE_COUNT, 4000);
    CHECK(vimg_open_buffer(b, len, "d.vhdx", &ro) == NULL);
    CHECK_ERROR(EINVAL, "d.vhdx: parent locator has 4000 entries");
    put_locator(item, md, good, 1);
    CHECK(vimg_open_buffer(b, len, "d.vhdx", &ro) == NULL);
    CHECK_ERROR(ENOENT, "d.vhdx: the parent locator gives no parent path");
    put_locator(item, md, good + 2, 2);
    CHECK(vimg_open_buffer(b, len, "d.vhdx", &ro) == NULL);
    CHECK_ERROR(EINVAL, "d.vhdx: parent locator has no parent_linkage");
    static const char *const bad_guid[] = {
        "parent_linkage", "{83ed0ec3-24c8-49a6-a959-5e4bf1288bfZ}",
        "relative_path", "p.vhdx",
    };
    put_locator(item, md, bad_guid, 2);
    CHECK(vimg_open_buffer(b, len, "d.vhdx", &ro) == NULL);
    CHECK_ERROR(EINVAL, "d.vhdx: parent locator's parent_linkage");
    put_locator(item, md, good, 3);
    item[0] ^= 1;
    CHECK(vimg_open_buffer(b, len, "d.vhdx", &ro) == NULL);
    CHECK_ERROR(ENOTSUP, "d.vhdx: parent locator type");
    free(b);
}

int main(void)
{
    CHECK(mkdtemp(dir) != NULL);
    rw(NULL);
    rw("subformat=fixed");
    rw("subformat=fixed,block_state_zero=off");
    rw("block_size=1M,log_size=2M");
    crash();
    logs();
    no_log();
    differencing();
    rmdir(dir);
    TEST_MAIN_END();
}
