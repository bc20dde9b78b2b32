/* lib/crypto: PBKDF2 (RFC 6070), AES-XTS (IEEE 1619 vector 1), the AF
 * splitter round trip, a LUKS1 header made, written, parsed and unlocked,
 * the header validation refusing hostile fields, each read from an
 * exactly-sized buffer, and key slots added and erased with a crash at
 * every write and flush; the passphrase callback asked for a backing
 * file's key, and again when commit reopens that file read-write. */
#define _GNU_SOURCE
#include <stdint.h>
#include <unistd.h>

#include "crypto/crypto.h"
#include "test.h"

static int hex(const char *s, uint8_t *out)
{
    int n = 0;
    for (; s[0] && s[1]; s += 2) {
        unsigned v;
        sscanf(s, "%2x", &v);
        out[n++] = (uint8_t)v;
    }
    return n;
}

static void test_pbkdf2(void)
{
    uint8_t out[20], want[20];
    hex("0c60c80f961f0e71f3a9b524af6012062fe037a6", want);
    CHECK_EQ(vimg_internal_pbkdf2("sha1", "password", 8,
                                  (const uint8_t *)"salt", 4, 1, out, 20), 0);
    CHECK(!memcmp(out, want, 20));
    hex("4b007901b765489abead49d926f721d065a429c1", want);
    CHECK_EQ(vimg_internal_pbkdf2("sha1", "password", 8,
                                  (const uint8_t *)"salt", 4, 4096, out,
                                  20), 0);
    CHECK(!memcmp(out, want, 20));
    CHECK(vimg_internal_pbkdf2("whirlpool", "p", 1, out, 4, 1, out, 20) < 0);
}

static void test_xts(void)
{
    struct vimg_cipher_spec spec;
    struct vimg_cipher c;
    uint8_t key[32], buf[32], plain[32], want[32];

    /* IEEE 1619 vector 2: the data unit number is the plain64 IV. */
    memset(key, 0x11, 16);
    memset(key + 16, 0x22, 16);
    memset(plain, 0x44, 32);
    memcpy(buf, plain, 32);
    hex("c454185e6a16936e39334038acef838bfb186fff7480adc4289382ecd6d394f0",
        want);
    CHECK_EQ(vimg_internal_cipher_parse("aes", "xts-plain64", 32, "t",
                                        &spec), 0);
    CHECK_EQ(spec.aes_bits, 128);
    CHECK_EQ(vimg_internal_cipher_init(&c, &spec, key, sizeof key), 0);
    CHECK_EQ(vimg_internal_cipher_run(&c, true, 0x3333333333ull, buf, buf,
                                      32), 0);
    CHECK(!memcmp(buf, want, 32));
    CHECK_EQ(vimg_internal_cipher_run(&c, false, 0x3333333333ull, buf, buf,
                                      32), 0);
    CHECK(!memcmp(buf, plain, 32));
    vimg_internal_cipher_free(&c);
    CHECK_EQ(vimg_internal_cipher_parse("aes", "cbc-essiv:sha256", 16, "t",
                                        &spec), 0);
    vimg_internal_error_clear();
    CHECK_EQ(vimg_internal_cipher_parse("twofish", "xts-plain64", 64, "t",
                                        &spec), -ENOTSUP);
    CHECK_ERROR(ENOTSUP, "t: cipher 'twofish' is not supported");
    CHECK_EQ(vimg_internal_cipher_parse("aes", "xts-plain64", 48, "t",
                                        &spec), -ENOTSUP);
    CHECK_EQ(vimg_internal_cipher_parse("aes", "cbc-bogus", 32, "t",
                                        &spec), -ENOTSUP);
}

static void test_af(void)
{
    uint8_t key[64], back[64];
    static uint8_t split[64 * LUKS_STRIPES];
    for (int i = 0; i < 64; i++) {
        key[i] = (uint8_t)(i * 7 + 3);
    }
    CHECK_EQ(vimg_internal_af_split("sha256", key, 64, LUKS_STRIPES, split),
             0);
    CHECK_EQ(vimg_internal_af_merge("sha256", split, 64, LUKS_STRIPES, back),
             0);
    CHECK(!memcmp(key, back, 64));
    split[100] ^= 1; /* any damaged stripe loses the key */
    CHECK_EQ(vimg_internal_af_merge("sha256", split, 64, LUKS_STRIPES, back),
             0);
    CHECK(memcmp(key, back, 64));
}

/* A header made by format with a short iteration time, as bytes. */
static struct vimg_image *mem;
static uint8_t hdr[LUKS_HDR_SIZE];

static void make_header(void)
{
    struct vimg_luks l;
    struct vimg_luks_create o = { .cipher_mode = "cbc", .cipher_alg =
                                  "aes-128", .ivgen_alg = "essiv",
                                  .iter_time_ms = 1 };
    mem = vimg_internal_memory_new("t.luks", NULL, 0, 4u << 20);
    CHECK(mem != NULL);
    CHECK_EQ(vimg_internal_luks_format(&l, &o, (const uint8_t *)"pw", 2,
                                       "t.luks"), 0);
    CHECK_EQ(l.payload_offset, 1032); /* QEMU's layout for 16-byte keys */
    CHECK_EQ(vimg_internal_luks_write(&l, mem, 0), 0);
    vimg_internal_luks_free(&l);
    CHECK_EQ(vimg_internal_pread(mem, hdr, sizeof hdr, 0), 0);
}

static void test_unlock(void)
{
    struct vimg_luks l;
    uint64_t region = 1032 * 512;

    CHECK_EQ(vimg_internal_luks_parse(hdr, sizeof hdr, region, "t.luks", &l),
             0);
    vimg_internal_error_clear();
    CHECK_EQ(vimg_internal_luks_unlock(&l, mem, 0, (const uint8_t *)"px", 2,
                                       "t.luks"), -EKEYREJECTED);
    CHECK_ERROR(EKEYREJECTED, "t.luks: invalid passphrase");
    CHECK(!strstr(vimg_get_error(), "px"));
    CHECK_EQ(vimg_internal_luks_unlock(&l, mem, 0, (const uint8_t *)"pw", 2,
                                       "t.luks"), 0);
    CHECK(l.unlocked);
    vimg_internal_luks_free(&l);
}

/* Parse HDR with one field changed at OFF (4 bytes, big-endian V). */
static int parse_with(unsigned off, uint32_t v, size_t len, uint64_t region)
{
    uint8_t *b = malloc(len); /* exactly sized: ASan sees an over-read */
    struct vimg_luks l;
    memcpy(b, hdr, len);
    vimg_internal_error_clear();
    if (off < len) {
        store_be32(b + off, v);
    }
    int r = vimg_internal_luks_parse(b, len, region, "t.luks", &l);
    free(b);
    return r;
}

static void test_hostile(void)
{
    uint64_t region = 1032 * 512;
    unsigned slot1 = LUKS_HDR_KEYSLOTS + LUKS_SLOT_SIZE;

    CHECK_EQ(parse_with(~0u, 0, LUKS_HDR_SIZE - 1, region), -EINVAL);
    CHECK_ERROR(EINVAL, "t.luks: LUKS header is truncated");
    CHECK_EQ(parse_with(0, 0x4c554b00, LUKS_HDR_SIZE, region), -EINVAL);
    CHECK_ERROR(EINVAL, "t.luks: not a LUKS header");
    CHECK_EQ(parse_with(4, 0xbabe0002, LUKS_HDR_SIZE, region), -ENOTSUP);
    CHECK_ERROR(ENOTSUP, "t.luks: LUKS version 2 is not supported");
    CHECK_EQ(parse_with(LUKS_HDR_KEY_BYTES, 20, LUKS_HDR_SIZE, region),
             -ENOTSUP);
    CHECK_EQ(parse_with(LUKS_HDR_HASH_SPEC, 0x77686972, LUKS_HDR_SIZE,
                        region), -ENOTSUP);
    CHECK_ERROR(ENOTSUP, "t.luks: LUKS hash 'whir");
    CHECK_EQ(parse_with(LUKS_HDR_MK_DIGEST_ITER, 0, LUKS_HDR_SIZE, region),
             -EINVAL);
    CHECK_EQ(parse_with(slot1 + LUKS_SLOT_STRIPES, 3999, LUKS_HDR_SIZE,
                        region), -EINVAL);
    CHECK_ERROR(EINVAL, "t.luks: LUKS key slot 1 has 3999 stripes");
    CHECK_EQ(parse_with(slot1 + LUKS_SLOT_ACTIVE, 0x12345678, LUKS_HDR_SIZE,
                        region), -EINVAL);
    CHECK_EQ(parse_with(LUKS_HDR_KEYSLOTS + LUKS_SLOT_ITERATIONS, 0,
                        LUKS_HDR_SIZE, region), -EINVAL);
    /* Key material past the region, over the header, over the payload,
     * over another slot. */
    CHECK_EQ(parse_with(~0u, 0, LUKS_HDR_SIZE, 4096), -EINVAL);
    CHECK_ERROR(EINVAL, "t.luks: key material of LUKS slot 0");
    CHECK_EQ(parse_with(slot1 + LUKS_SLOT_KEY_OFFSET, 0, LUKS_HDR_SIZE,
                        region), -EINVAL);
    CHECK_EQ(parse_with(slot1 + LUKS_SLOT_KEY_OFFSET, 0xffffffff,
                        LUKS_HDR_SIZE, region), -EINVAL);
    CHECK_EQ(parse_with(LUKS_HDR_PAYLOAD_OFFSET, 100, LUKS_HDR_SIZE, region),
             -EINVAL);
    CHECK_EQ(parse_with(slot1 + LUKS_SLOT_KEY_OFFSET, 9, LUKS_HDR_SIZE,
                        region), -EINVAL);
    CHECK_ERROR(EINVAL, "t.luks: key material of LUKS slots 0 and 1");
    CHECK_EQ(parse_with(~0u, 0, LUKS_HDR_SIZE, region), 0);
}

/* What a LUKS image in M opens with after a crash: PW ("pw") must still
 * open it; SLOT is active exactly when NEW opens it. */
static bool slot_state(struct vimg_image *m, unsigned slot, const char *new)
{
    uint8_t h[LUKS_HDR_SIZE];
    struct vimg_luks l;
    bool active;

    CHECK_EQ(vimg_internal_pread(m, h, sizeof h, 0), 0);
    CHECK_EQ(vimg_internal_luks_parse(h, sizeof h, 1032 * 512, "t.luks", &l),
             0);
    active = l.slots[slot].active;
    CHECK_EQ(vimg_internal_luks_unlock(&l, m, 0, (const uint8_t *)"pw", 2,
                                       "t.luks"), 0);
    vimg_internal_luks_free(&l);
    int r = vimg_internal_luks_unlock(&l, m, 0, (const uint8_t *)new,
                                      strlen(new), "t.luks");
    CHECK_EQ(r, active ? 0 : -EKEYREJECTED);
    vimg_internal_luks_free(&l);
    return active;
}

/* Run A on a copy of IMAGE (*LEN bytes) with the Nth write-like call and
 * every later one failing, for N = 1, 2, ... until A completes; after
 * each crash the slot is either as before or complete (slot_state). The
 * completed image's bytes go to *OUT (the caller frees them), their
 * length to *LEN. */
static void crash_each(const uint8_t *image, size_t *len,
                       const struct vimg_luks_amend *a, unsigned slot,
                       const char *new, bool active_after, uint8_t **out)
{
    static const struct vimg_secret secrets[] = {
        { "new", "new-pass", 8 }, { "pw", "pw", 2 },
    };
    for (unsigned n = 1; n < 64; n++) {
        struct vimg_image *m = vimg_internal_memory_new("t.luks", image,
                                                        *len, 4u << 20);
        uint8_t h[LUKS_HDR_SIZE];
        struct vimg_luks l;
        CHECK_EQ(vimg_internal_pread(m, h, sizeof h, 0), 0);
        CHECK_EQ(vimg_internal_luks_parse(h, sizeof h, 1032 * 512,
                                          "t.luks", &l), 0);
        CHECK_EQ(vimg_internal_luks_unlock(&l, m, 0, (const uint8_t *)"pw",
                                           2, "t.luks"), 0);
        vimg_internal_memory_fail_after(m, n);
        int r = vimg_internal_luks_amend(&l, m, 0, a, false, secrets, 2,
                                         "t.luks");
        vimg_internal_memory_fail_after(m, 0);
        vimg_internal_luks_free(&l);
        bool active = slot_state(m, slot, new);
        if (r == 0) {
            CHECK_EQ(active, active_after);
            CHECK(n > 2); /* at least a write and a flush */
            const void *d = vimg_internal_memory_data(m, len);
            *out = malloc(*len);
            memcpy(*out, d, *len);
            vimg_close(m);
            return;
        }
        CHECK_EQ(r, -EIO);
        vimg_close(m);
    }
    CHECK(!"the amend never completed");
}

static void test_amend(void)
{
    size_t len, n;
    const void *d = vimg_internal_memory_data(mem, &len);
    uint8_t *before = malloc(len), *added = NULL, *erased = NULL;
    struct vimg_luks_amend add = { .activate = true, .new_secret = "new",
                                   .has_iter_time = true };
    struct vimg_luks_amend erase = { .old_secret = "new" };

    memcpy(before, d, len);
    n = len;
    crash_each(before, &n, &add, 1, "new-pass", true, &added);
    crash_each(added, &n, &erase, 1, "new-pass", false, &erased);
    /* The erased slot's key material was overwritten. */
    uint64_t at = (uint64_t)load_be32(hdr + LUKS_HDR_KEYSLOTS +
                                      LUKS_SLOT_SIZE +
                                      LUKS_SLOT_KEY_OFFSET) * 512;
    CHECK(added && erased && memcmp(added + at, erased + at, 16 * 4000));

    /* qemu-img's refusals, changing nothing. */
    static const struct vimg_secret pw[] = { { "pw", "pw", 2 } };
    struct vimg_luks l;
    CHECK_EQ(vimg_internal_luks_parse(hdr, sizeof hdr, 1032 * 512, "t.luks",
                                      &l), 0);
    CHECK_EQ(vimg_internal_luks_unlock(&l, mem, 0, (const uint8_t *)"pw", 2,
                                       "t.luks"), 0);
    struct vimg_luks_amend over = { .activate = true, .new_secret = "pw",
                                    .has_keyslot = true };
    vimg_internal_error_clear();
    CHECK_EQ(vimg_internal_luks_amend(&l, mem, 0, &over, false, pw, 1,
                                      "t.luks"), -EEXIST);
    CHECK_ERROR(EEXIST, "t.luks: Refusing to overwrite active keyslot 0");
    struct vimg_luks_amend last = { .has_keyslot = true };
    vimg_internal_error_clear();
    CHECK_EQ(vimg_internal_luks_amend(&l, mem, 0, &last, false, pw, 1,
                                      "t.luks"), -EPERM);
    CHECK_ERROR(EPERM, "t.luks: Attempt to erase the only active keyslot 0");
    struct vimg_luks_amend all = { .old_secret = "pw" };
    vimg_internal_error_clear();
    CHECK_EQ(vimg_internal_luks_amend(&l, mem, 0, &all, false, pw, 1,
                                      "t.luks"), -EPERM);
    CHECK_ERROR(EPERM, "t.luks: All the active keyslots match");
    struct vimg_luks_amend none = { .activate = true };
    vimg_internal_error_clear();
    CHECK_EQ(vimg_internal_luks_amend(&l, mem, 0, &none, false, pw, 1,
                                      "t.luks"), -EINVAL);
    CHECK_ERROR(EINVAL, "t.luks: 'new-secret' is required");
    vimg_internal_luks_free(&l);
    d = vimg_internal_memory_data(mem, &len);
    CHECK(!memcmp(d, before, len));
    free(before);
    free(added);
    free(erased);
}

/* The passphrase callback: answers with the passphrase in OPAQUE (NULL:
 * declines) and records how often and for which file it was asked. */
static int asked;
static char asked_for[4096];
static int answer(void *opaque, const char *filename, const void **data,
                  size_t *len)
{
    asked++;
    snprintf(asked_for, sizeof asked_for, "%s", filename);
    if (!opaque) {
        return -1;
    }
    *data = opaque;
    *len = strlen(opaque);
    return 0;
}

static struct vimg_image *open_top(const char *top, unsigned flags,
                                   const char *pass, const char *options,
                                   const struct vimg_secret *sec)
{
    struct vimg_open_params p = { .flags = flags, .options = options,
                                  .secrets = sec, .n_secrets = sec ? 1 : 0,
                                  .passphrase = pass ? answer : NULL,
                                  .passphrase_opaque = (void *)pass };
    asked = 0;
    asked_for[0] = 0;
    return vimg_open(top, &p);
}

static void test_chain_passphrase(void)
{
    char dir[] = "/tmp/vimg-crypto-chain.XXXXXX", base[64], top[64];
    static const struct vimg_secret sec = { "k", "base-pass", 9 };
    uint8_t buf[4096];

    CHECK(mkdtemp(dir) != NULL);
    snprintf(base, sizeof base, "%s/base.luks", dir);
    snprintf(top, sizeof top, "%s/top.qcow2", dir);
    struct vimg_create_params bp = { .format = "luks", .size = 1 << 20,
                                     .size_given = true,
                                     .options = "key-secret=k,iter-time=10",
                                     .secrets = &sec, .n_secrets = 1 };
    struct vimg_create_params tp = { .format = "qcow2", .backing_file = base,
                                     .backing_format = "luks", .unsafe = true,
                                     .size = 1 << 20, .size_given = true };
    CHECK_EQ(vimg_create(base, &bp), 0);
    CHECK_EQ(vimg_create(top, &tp), 0);

    /* No key and no callback; a declining callback, asked for the base. */
    CHECK(!open_top(top, 0, NULL, NULL, NULL));
    CHECK(strstr(vimg_get_error(), "base.luks: image is encrypted; its "
                 "passphrase is needed (backing.key-secret=ID") != NULL);
    CHECK_EQ(vimg_get_errno(), ENOKEY);
    struct vimg_open_params decline = { .passphrase = answer };
    asked = 0;
    CHECK(!vimg_open(top, &decline));
    CHECK_EQ(vimg_get_errno(), ENOKEY);
    CHECK_EQ(asked, 1);
    CHECK(!strcmp(asked_for, base));
    CHECK(!open_top(top, 0, "wrong", NULL, NULL));
    CHECK_EQ(vimg_get_errno(), EKEYREJECTED);

    /* The callback again when commit reopens the base read-write. */
    struct vimg_image *img = open_top(top, VIMG_OPEN_RDWR, "base-pass", NULL,
                                      NULL);
    CHECK(img != NULL);
    CHECK_EQ(asked, 1);
    memset(buf, 0x5a, sizeof buf);
    CHECK_EQ(vimg_pwrite(img, buf, sizeof buf, 8192, 0), 0);
    CHECK_EQ(vimg_commit(img, NULL), 0);
    CHECK_EQ(asked, 2);
    CHECK(!strcmp(asked_for, base));
    CHECK_EQ(vimg_close(img), 0);

    /* A key given as backing.key-secret: commit needs the secret too. */
    img = open_top(top, VIMG_OPEN_RDWR, NULL, "backing.key-secret=k", &sec);
    CHECK(img != NULL);
    CHECK_EQ(vimg_pwrite(img, buf, sizeof buf, 0, 0), 0);
    CHECK_EQ(vimg_commit(img, NULL), -1);
    CHECK_ERROR(ENOENT, base);
    /* Without its key the base could not be put back either. */
    CHECK(vimg_get_backing(img) == NULL);
    vimg_close(img);
    img = open_top(top, VIMG_OPEN_RDWR, NULL, "backing.key-secret=k", &sec);
    struct vimg_commit_params cp = { .secrets = &sec, .n_secrets = 1 };
    CHECK_EQ(vimg_commit(img, &cp), 0);
    CHECK_EQ(vimg_close(img), 0);

    /* The base holds both writes. */
    struct vimg_open_params rp = { .options = "key-secret=k",
                                   .secrets = &sec, .n_secrets = 1 };
    img = vimg_open(base, &rp);
    CHECK(img != NULL);
    memset(buf, 0, sizeof buf);
    CHECK(img && vimg_pread(img, buf, sizeof buf, 8192) == 0);
    CHECK(buf[0] == 0x5a && buf[sizeof buf - 1] == 0x5a);
    CHECK(img && vimg_pread(img, buf, sizeof buf, 0) == 0);
    CHECK(buf[0] == 0x5a);
    vimg_close(img);
    unlink(top);
    unlink(base);
    rmdir(dir);
}

int main(void)
{
    test_pbkdf2();
    test_xts();
    test_af();
    make_header();
    test_unlock();
    test_hostile();
    test_amend();
    vimg_close(mem);
    test_chain_passphrase();
    TEST_MAIN_END();
}
