/* Crash safety of the metadata operations: persistent bitmap updates
 * (tracking writes, storing them at flush, add, merge, clear, enable,
 * disable, remove, resize) and amend (downgrade with zero clusters,
 * upgrade, refcount width changes, lazy refcounts, growing, backing
 * fields; upgrade and downgrade with internal snapshots, the upgrade
 * rewriting a snapshot table without the v3 extra data; LUKS key slots
 * added and erased). As in test-qcow2-crash.c, the Nth write-like call and every
 * later one fail, for every N until the workload completes; after each
 * crash the image as left must open (its bitmap directory valid), check
 * without corruption (leaks are allowed), read back what was flushed, keep
 * the named snapshot's bytes, and show no enabled bitmap as consistent
 * once the guest disk changed.
 *
 * With VIMG_CRASH_DUMP_DIR set, a sample of the crashed images is written
 * there (tests/interop/qcow2-crash-meta.sh has qemu-img check and read
 * them). */
#include <stdint.h>
#include <unistd.h>

#include "formats/qcow2/qcow2-ondisk.h"
#include "internal.h"
#include "common/rounding.h"
#include "../test.h"

#define SECTOR 512u
#define MAX_FILE (64u << 20)
#define MAX_CRASH_POINTS 20000u
#define SIZE (2u << 20)
#define GROWN (3u << 20)

static char dir[] = "/tmp/vimg-crash-meta-XXXXXX";

/* LUKS: two secrets with one passphrase, so that whichever key slots a
 * crash leaves active, the image opens with the first; the open options
 * of the configuration running (NULL: none). */
static const struct vimg_secret secrets[] = {
    { "sec0", "crash-pw", 8 },
    { "sec1", "crash-pw", 8 },
};
static const char *open_options;

/* Guest bytes after the last successful flush, and the sectors touched
 * since then (in doubt after a crash). */
struct model {
    uint8_t *data, *committed, *dirty;
    uint64_t size;
};

struct config {
    const char *name;
    /* Make the base image at PATH (through the public API: it ends
     * closed, clean). */
    void (*prepare)(const char *path);
    /* The operations under test, on IMG opened read-write. */
    int (*run)(struct vimg_image *img, struct model *m);
    bool backing;       /* the base names a backing file (not opened) */
    unsigned dump_every;
    const char *snap;   /* a snapshot whose bytes must stay (or NULL) */
    bool luks;          /* encrypted: opened with the key of "sec0" */
};

static uint8_t pattern(unsigned op, uint64_t off)
{
    return (uint8_t)((op * 29 + off / SECTOR * 7 + off % 253) | 1);
}

static void touch(struct model *m, uint64_t off, uint64_t len)
{
    for (uint64_t s = off / SECTOR; s * SECTOR < off + len; s++) {
        m->dirty[s] = 1;
    }
}

static int model_write(struct vimg_image *img, struct model *m, unsigned op,
                       uint64_t off, uint64_t len)
{
    uint8_t *buf = malloc(len);
    for (uint64_t i = 0; i < len; i++) {
        buf[i] = pattern(op, off + i);
    }
    touch(m, off, len);
    int r = vimg_pwrite(img, buf, len, off, 0);
    if (r == 0) {
        memcpy(m->data + off, buf, len);
    }
    free(buf);
    return r;
}

static int model_zero(struct vimg_image *img, struct model *m, uint64_t off,
                      uint64_t len, unsigned flags)
{
    touch(m, off, len);
    int r = vimg_zero(img, off, len, flags);
    if (r == 0) {
        memset(m->data + off, 0, len);
    }
    return r;
}

static int model_flush(struct vimg_image *img, struct model *m)
{
    int r = vimg_flush(img);
    if (r == 0) {
        memcpy(m->committed, m->data, m->size);
        memset(m->dirty, 0, m->size / SECTOR);
    }
    return r;
}

static struct vimg_image *open_file(const char *path, unsigned flags)
{
    struct vimg_open_params p = { .format = "qcow2",
                                  .flags = flags | VIMG_OPEN_NO_BACKING,
                                  .options = open_options,
                                  .secrets = secrets, .n_secrets = 2 };
    struct vimg_image *img = vimg_open(path, &p);
    if (!img) {
        fprintf(stderr, "%s: %s\n", path, vimg_get_error());
        test_failures++;
    }
    return img;
}

static int bitmap_op(struct vimg_image *img, enum vimg_bitmap_op op,
                     const char *name, const char *source, uint64_t gran)
{
    struct vimg_bitmap_params p = { .op = op, .name = name,
                                    .source = source, .granularity = gran };
    return vimg_bitmap(img, &p);
}

static void write_pattern(struct vimg_image *img, unsigned op, uint64_t off,
                          uint64_t len)
{
    uint8_t *buf = malloc(len);
    for (uint64_t i = 0; i < len; i++) {
        buf[i] = pattern(op, off + i);
    }
    CHECK_EQ(vimg_pwrite(img, buf, len, off, 0), 0);
    free(buf);
}

/* ---- Bitmaps ---------------------------------------------------------- */

static void prepare_bitmaps(const char *path)
{
    struct vimg_create_params cp = { .format = "qcow2", .size = SIZE,
                                     .size_given = true,
                                     .options = "cluster_size=512" };
    CHECK_EQ(vimg_create(path, &cp), 0);
    struct vimg_image *img = open_file(path, VIMG_OPEN_RDWR);
    if (!img) {
        return;
    }
    write_pattern(img, 100, 0, 64 * 1024);
    CHECK_EQ(bitmap_op(img, VIMG_BITMAP_ADD, "a", NULL, 0), 0);
    CHECK_EQ(bitmap_op(img, VIMG_BITMAP_ADD, "d", NULL, 512), 0);
    CHECK_EQ(bitmap_op(img, VIMG_BITMAP_DISABLE, "d", NULL, 0), 0);
    write_pattern(img, 101, 512 * 1024, 100 * 1024);
    CHECK_EQ(bitmap_op(img, VIMG_BITMAP_MERGE, "d", "a", 0), 0);
    CHECK_EQ(vimg_close(img), 0);
}

static int run_bitmaps(struct vimg_image *img, struct model *m)
{
    uint8_t cbuf[SECTOR];
    int r;

    memset(cbuf, 0x77, sizeof cbuf);
    if ((r = model_write(img, m, 1, 8192, 4096)) < 0 ||
        (r = model_zero(img, m, 65536, 65536, VIMG_ZERO_MAY_UNMAP)) < 0) {
        return r;
    }
    touch(m, 256 * 1024, 32 * 1024);
    if ((r = vimg_discard(img, 256 * 1024, 32 * 1024)) < 0) {
        return r;
    }
    /* Discarded bytes are unspecified until written again. */
    touch(m, 1u << 20, SECTOR);
    if ((r = vimg_write_compressed(img, cbuf, SECTOR, 1u << 20)) < 0) {
        return r;
    }
    memcpy(m->data + (1u << 20), cbuf, SECTOR);
    if ((r = model_flush(img, m)) < 0 ||
        (r = bitmap_op(img, VIMG_BITMAP_ADD, "n", NULL, 1024)) < 0 ||
        (r = bitmap_op(img, VIMG_BITMAP_MERGE, "n", "a", 0)) < 0 ||
        (r = bitmap_op(img, VIMG_BITMAP_CLEAR, "a", NULL, 0)) < 0 ||
        (r = bitmap_op(img, VIMG_BITMAP_DISABLE, "a", NULL, 0)) < 0 ||
        (r = bitmap_op(img, VIMG_BITMAP_ENABLE, "d", NULL, 0)) < 0 ||
        (r = model_write(img, m, 2, 300000, 1000)) < 0 ||
        (r = bitmap_op(img, VIMG_BITMAP_REMOVE, "d", NULL, 0)) < 0 ||
        (r = model_flush(img, m)) < 0 ||
        (r = vimg_truncate(img, GROWN, 0, VIMG_PREALLOC_OFF)) < 0 ||
        (r = model_write(img, m, 3, GROWN - 4096, 4096)) < 0) {
        return r;
    }
    return model_flush(img, m);
}

/* ---- Amend ------------------------------------------------------------ */

/* Data, then zero clusters of both kinds: plain (the data unmapped) and
 * preallocated (zeroed in place), and clusters never written. */
static void prepare_zeros(const char *path, const char *options,
                          const char *backing)
{
    struct vimg_create_params cp = { .format = "qcow2", .size = SIZE,
                                     .size_given = true,
                                     .options = options,
                                     .backing_file = backing,
                                     .backing_format = backing ? "raw"
                                                               : NULL,
                                     .secrets = secrets, .n_secrets = 2 };
    CHECK_EQ(vimg_create(path, &cp), 0);
    struct vimg_image *img = open_file(path, VIMG_OPEN_RDWR);
    if (!img) {
        return;
    }
    write_pattern(img, 200, 0, 96 * 1024);
    write_pattern(img, 201, 1u << 20, 8192);
    CHECK_EQ(vimg_zero(img, 4096, 8192, VIMG_ZERO_MAY_UNMAP), 0);
    CHECK_EQ(vimg_zero(img, 32 * 1024, 16 * 1024, 0), 0);
    CHECK_EQ(vimg_zero(img, 700 * 1024, 8192, 0), 0);
    CHECK_EQ(vimg_close(img), 0);
}

static void prepare_v3(const char *path)
{
    prepare_zeros(path, "cluster_size=512", NULL);
}

static void prepare_v3_backing(const char *path)
{
    char base[4096];
    snprintf(base, sizeof base, "%s.base", path);
    struct vimg_create_params cp = { .format = "raw", .size = SIZE,
                                     .size_given = true };
    CHECK_EQ(vimg_create(base, &cp), 0);
    prepare_zeros(path, "cluster_size=512", base);
}

static void prepare_v2(const char *path)
{
    prepare_zeros(path, "cluster_size=512,compat=0.10", NULL);
}

static void prepare_lazy(const char *path)
{
    prepare_zeros(path, "cluster_size=512,lazy_refcounts=on", NULL);
}

static int amend(struct vimg_image *img, const char *options)
{
    return vimg_amend(img, options, NULL, NULL);
}

static int run_downgrade(struct vimg_image *img, struct model *m)
{
    (void)m;
    return amend(img, "compat=0.10");
}

static int run_upgrade(struct vimg_image *img, struct model *m)
{
    int r;
    (void)m;
    if ((r = amend(img, "compat=1.1")) < 0) {
        return r;
    }
    return amend(img, "refcount_bits=4,lazy_refcounts=on");
}

static int run_refcounts(struct vimg_image *img, struct model *m)
{
    int r;
    (void)m;
    if ((r = amend(img, "refcount_bits=1")) < 0) {
        return r;
    }
    return amend(img, "refcount_bits=64");
}

static int run_misc(struct vimg_image *img, struct model *m)
{
    int r;
    (void)m;
    if ((r = amend(img, "lazy_refcounts=off,size=3M")) < 0) {
        return r;
    }
    return amend(img, "refcount_bits=8,compat=1.1");
}

static int run_backing(struct vimg_image *img, struct model *m)
{
    int r;
    (void)m;
    if ((r = amend(img, "compat=0.10")) < 0) {
        return r;
    }
    return amend(img, "backing_file=other.raw,backing_fmt=raw");
}

/* ---- Amend with internal snapshots ---------------------------------- */

/* Rewrite the snapshot table of the image at PATH in place as QEMU before
 * 1.1 wrote it: no extra data (so no disk size, no 64-bit VM state
 * size); the table only shrinks. */
static void strip_extra(const char *path)
{
    FILE *f = fopen(path, "r+b");
    uint8_t h[72], *t = calloc(1, 65536), *out = calloc(1, 65536);
    size_t p = 0, q = 0;

    CHECK(f != NULL);
    if (!f) {
        goto out;
    }
    CHECK_EQ(fread(h, 1, sizeof h, f), sizeof h);
    uint32_t nb = load_be32(h + QCOW2_HDR_NB_SNAPSHOTS);
    uint64_t off = load_be64(h + QCOW2_HDR_SNAPSHOTS_OFFSET);
    CHECK_EQ(fseek(f, (long)off, SEEK_SET), 0);
    CHECK(fread(t, 1, 65536, f) > QCOW2_SN_FIXED_SIZE);
    for (uint32_t i = 0; i < nb; i++) {
        uint32_t extra = load_be32(t + p + QCOW2_SN_EXTRA_DATA_SIZE);
        size_t names = load_be16(t + p + QCOW2_SN_ID_STR_SIZE) +
                       load_be16(t + p + QCOW2_SN_NAME_SIZE);
        memcpy(out + q, t + p, QCOW2_SN_FIXED_SIZE);
        store_be32(out + q + QCOW2_SN_EXTRA_DATA_SIZE, 0);
        memcpy(out + q + QCOW2_SN_FIXED_SIZE,
               t + p + QCOW2_SN_FIXED_SIZE + extra, names);
        p = ROUND_UP(p + QCOW2_SN_FIXED_SIZE + extra + names, 8);
        q = ROUND_UP(q + QCOW2_SN_FIXED_SIZE + names, 8);
    }
    CHECK_EQ(fseek(f, (long)off, SEEK_SET), 0);
    CHECK_EQ(fwrite(out, 1, p, f), p);
    CHECK_EQ(fclose(f), 0);
out:
    free(t);
    free(out);
}

/* A compat=0.10 image with two snapshots of different data, the table
 * as old QEMU wrote it. */
static void prepare_v2_snapshots(const char *path)
{
    prepare_zeros(path, "cluster_size=512,compat=0.10", NULL);
    struct vimg_image *img = open_file(path, VIMG_OPEN_RDWR);
    if (!img) {
        return;
    }
    CHECK_EQ(vimg_snapshot_create(img, "s1"), 0);
    write_pattern(img, 202, 16 * 1024, 64 * 1024);
    CHECK_EQ(vimg_snapshot_create(img, "s2"), 0);
    write_pattern(img, 203, 600 * 1024, 8192);
    CHECK_EQ(vimg_close(img), 0);
    strip_extra(path);
}

/* A v3 image whose snapshot shares zero clusters of both kinds with the
 * active image, which then has zero clusters of its own. */
static void prepare_v3_snapshots(const char *path)
{
    prepare_zeros(path, "cluster_size=512", NULL);
    struct vimg_image *img = open_file(path, VIMG_OPEN_RDWR);
    if (!img) {
        return;
    }
    CHECK_EQ(vimg_snapshot_create(img, "s1"), 0);
    write_pattern(img, 204, 4096, 4096);
    CHECK_EQ(vimg_zero(img, 64 * 1024, 8192, VIMG_ZERO_MAY_UNMAP), 0);
    CHECK_EQ(vimg_zero(img, 900 * 1024, 4096, 0), 0);
    CHECK_EQ(vimg_close(img), 0);
}

/* ---- Amend of LUKS key slots ---------------------------------------- */

static void prepare_luks(const char *path)
{
    prepare_zeros(path, "cluster_size=512,encrypt.format=luks,"
                  "encrypt.key-secret=sec0,encrypt.iter-time=1", NULL);
}

/* A key slot added, then the first erased: the passphrase opens the
 * image at every step (both secrets hold it). */
static int run_keyslots(struct vimg_image *img, struct model *m)
{
    struct vimg_amend_params p = { .secrets = secrets, .n_secrets = 2 };
    int r;
    (void)m;
    if ((r = vimg_amend_with(img, "encrypt.state=active,"
                             "encrypt.new-secret=sec1,encrypt.iter-time=1",
                             &p)) < 0) {
        return r;
    }
    return vimg_amend_with(img, "encrypt.state=inactive,encrypt.keyslot=0",
                           &p);
}

static const struct config configs[] = {
    { "bitmaps", prepare_bitmaps, run_bitmaps, false, 29 },
    { "downgrade", prepare_v3, run_downgrade, false, 3 },
    { "downgrade-backing", prepare_v3_backing, run_backing, true, 0 },
    { "upgrade", prepare_v2, run_upgrade, false, 1 },
    { "refcounts", prepare_v3, run_refcounts, false, 17 },
    { "lazy", prepare_lazy, run_misc, false, 7 },
    { "upgrade-snapshots", prepare_v2_snapshots, run_upgrade, false, 3,
      "s1" },
    { "downgrade-snapshots", prepare_v3_snapshots, run_downgrade, false, 5,
      "s1" },
    /* Not dumped: qemu-img check would need the key. */
    { "keyslots", prepare_luks, run_keyslots, false, 0, NULL, true },
};

/* ---- The harness ------------------------------------------------------ */

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *b = NULL;

    CHECK(f != NULL);
    if (f) {
        fseek(f, 0, SEEK_END);
        *len = (size_t)ftell(f);
        rewind(f);
        b = malloc(*len);
        CHECK_EQ(fread(b, 1, *len, f), *len);
        fclose(f);
    }
    return b;
}

/* Guest bytes of IMG into BUF, SIZE bytes; with a backing file that is
 * not open, sectors that would come from it read as 0xEE. */
static void read_guest(struct vimg_image *img, uint8_t *buf, uint64_t size)
{
    for (uint64_t off = 0; off < size; off += SECTOR) {
        if (vimg_pread(img, buf + off, SECTOR, off) < 0) {
            memset(buf + off, 0xee, SECTOR);
        }
    }
}

static void dump(const struct config *cfg, uint64_t n, const void *data,
                 size_t len)
{
    const char *d = getenv("VIMG_CRASH_DUMP_DIR");
    char path[4096];

    if (!d || !cfg->dump_every || n % cfg->dump_every) {
        return;
    }
    snprintf(path, sizeof path, "%s/%s-%06llu.qcow2", d, cfg->name,
             (unsigned long long)n);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (f) {
        CHECK_EQ(fwrite(data, 1, len, f), len);
        CHECK_EQ(fclose(f), 0);
    }
}

/* INITIAL: the guest bytes of the base image (SIZE bytes of them). */
static int count_run(void *opaque, uint64_t offset, uint64_t len)
{
    (void)opaque;
    (void)offset;
    (void)len;
    return 0;
}

/* The bytes of snapshot NAME of the image in DATA (SIZE of them) into
 * BUF; false if it cannot be read. */
static bool read_snapshot(const uint8_t *data, size_t len, const char *name,
                          uint8_t *buf)
{
    struct vimg_open_params p = { .format = "qcow2",
                                  .flags = VIMG_OPEN_NO_BACKING,
                                  .snapshot_name = name,
                                  .options = open_options,
                                  .secrets = secrets, .n_secrets = 2 };
    struct vimg_image *img = vimg_open_buffer(data, len, "snap.qcow2", &p);
    bool ok = img && vimg_get_size(img) == SIZE &&
              vimg_pread(img, buf, SIZE, 0) == 0;

    if (!ok) {
        fprintf(stderr, "snapshot %s: %s\n", name, vimg_get_error());
    }
    vimg_close(img);
    return ok;
}

static void verify(const struct config *cfg, uint64_t n, const uint8_t *data,
                   size_t len, const struct model *m, uint64_t size,
                   const uint8_t *initial, const uint8_t *snap)
{
    if (cfg->snap) {
        uint8_t *sb = malloc(SIZE);
        if (!read_snapshot(data, len, cfg->snap, sb) ||
            memcmp(sb, snap, SIZE)) {
            fprintf(stderr, "%s: crash point %llu: snapshot %s reads other "
                    "data\n", cfg->name, (unsigned long long)n, cfg->snap);
            test_failures++;
        }
        free(sb);
    }

    struct vimg_open_params p = { .format = "qcow2",
                                  .flags = VIMG_OPEN_NO_BACKING,
                                  .options = open_options,
                                  .secrets = secrets, .n_secrets = 2 };
    struct vimg_image *img = vimg_open_buffer(data, len, "crash.qcow2", &p);
    if (!img) {
        fprintf(stderr, "%s: crash point %llu: reopen: %s\n", cfg->name,
                (unsigned long long)n, vimg_get_error());
        test_failures++;
        return;
    }
    struct vimg_check_result res;
    CHECK_EQ(vimg_check(img, 0, &res, NULL, NULL), 0);
    if (res.corruptions || res.check_errors) {
        fprintf(stderr, "%s: crash point %llu: %lld corruptions, %lld check "
                "errors\n", cfg->name, (unsigned long long)n,
                (long long)res.corruptions, (long long)res.check_errors);
        test_failures++;
    }
    uint8_t *buf = malloc(size);
    read_guest(img, buf, MIN(size, (uint64_t)vimg_get_size(img)));
    for (uint64_t s = 0; s < MIN(size, (uint64_t)vimg_get_size(img)) / SECTOR;
         s++) {
        if (!m->dirty[s] && memcmp(buf + s * SECTOR,
                                   m->committed + s * SECTOR, SECTOR)) {
            fprintf(stderr, "%s: crash point %llu: flushed data at %llu "
                    "lost\n", cfg->name, (unsigned long long)n,
                    (unsigned long long)(s * SECTOR));
            test_failures++;
            break;
        }
    }
    /* Whether the guest disk changed (its size or bytes). */
    bool changed = (uint64_t)vimg_get_size(img) != SIZE ||
                   memcmp(buf, initial, SIZE) != 0;
    free(buf);
    /* Bitmaps: each consistent one readable, and none enabled and
     * consistent once the guest disk changed without a clean close. */
    struct vimg_internal_bitmap *v = NULL;
    size_t nb = 0;
    if (img->drv->bitmap_list(img, &v, &nb) < 0) {
        nb = 0;
    }
    for (size_t i = 0; i < nb; i++) {
        if (!v[i].inconsistent &&
            img->drv->bitmap_dirty(img, v[i].name, 0, img->size, count_run,
                                   NULL) < 0) {
            fprintf(stderr, "%s: crash point %llu: bitmap %s unreadable: "
                    "%s\n", cfg->name, (unsigned long long)n, v[i].name,
                    vimg_get_error());
            test_failures++;
        }
        if (v[i].enabled && !v[i].inconsistent && changed) {
            fprintf(stderr, "%s: crash point %llu: bitmap %s is enabled and "
                    "not in use after a write\n", cfg->name,
                    (unsigned long long)n, v[i].name);
            test_failures++;
        }
    }
    vimg_internal_bitmaps_free(v, nb);
    vimg_close(img);
}

static void run_config(const struct config *cfg)
{
    char path[4096];
    size_t base_len;
    uint64_t crashes = 0, n;
    bool completed = false;
    struct model m = { .size = GROWN };

    snprintf(path, sizeof path, "%s/%s.qcow2", dir, cfg->name);
    open_options = cfg->luks ? "encrypt.key-secret=sec0" : NULL;
    cfg->prepare(path);
    uint8_t *base = read_file(path, &base_len);
    uint8_t *initial = calloc(1, GROWN);
    uint8_t *snap = calloc(1, SIZE);
    m.data = calloc(1, GROWN);
    m.committed = calloc(1, GROWN);
    m.dirty = calloc(1, GROWN / SECTOR);
    if (!base) {
        goto out;
    }
    if (base && cfg->snap) {
        CHECK(read_snapshot(base, base_len, cfg->snap, snap));
    }
    struct vimg_image *ro = open_file(path, 0);
    if (ro) {
        read_guest(ro, initial, SIZE);
        vimg_close(ro);
    }
    for (n = 1; n < MAX_CRASH_POINTS && !completed; n++) {
        struct vimg_image *mem = vimg_internal_memory_new("crash.qcow2",
                                                          base, base_len,
                                                          MAX_FILE);
        struct vimg_open_params p = { .format = "qcow2",
                                      .flags = VIMG_OPEN_RDWR |
                                               (cfg->backing
                                                    ? VIMG_OPEN_NO_BACKING
                                                    : 0),
                                      .options = open_options,
                                      .secrets = secrets, .n_secrets = 2 };
        memcpy(m.data, initial, GROWN);
        memcpy(m.committed, initial, GROWN);
        memset(m.dirty, 0, GROWN / SECTOR);
        vimg_internal_memory_fail_after(mem, n);
        struct vimg_image *img = vimg_internal_open_on(mem, &p);
        bool crashed = img == NULL || cfg->run(img, &m) < 0;
        if (!crashed) {
            crashed = model_flush(img, &m) < 0;
        }
        size_t len;
        const uint8_t *data = base;
        len = base_len;
        if (img) {
            data = vimg_internal_memory_data(img->file, &len);
        }
        uint8_t *copy = malloc(len);
        memcpy(copy, data, len);
        vimg_close(img);
        if (crashed) {
            crashes++;
            dump(cfg, n, copy, len);
        } else {
            completed = true;
        }
        verify(cfg, n, copy, len, &m, GROWN, initial, snap);
        free(copy);
    }
    CHECK(completed);
    CHECK(crashes > 5);
    printf("%s: %llu crash points checked\n", cfg->name,
           (unsigned long long)crashes);
out:
    free(base);
    free(initial);
    free(snap);
    free(m.data);
    free(m.committed);
    free(m.dirty);
    unlink(path);
    strcat(path, ".base");
    unlink(path);
}

int main(int argc, char **argv)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++) {
        if (argc < 2 || !strcmp(argv[1], configs[i].name)) {
            run_config(&configs[i]);
        }
    }
    rmdir(dir);
    TEST_MAIN_END();
}
