/* The LUKS1 header (LUKS On-Disk Format Specification 1.2.x): parsing and
 * validation in one place, unlocking a key slot with a passphrase, and
 * formatting a new header with QEMU's layout and defaults. Used by the
 * qcow2 driver (the header inside the image) and the luks driver. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "../../common/checked-overflow.h"
#include "../../common/rounding.h"
#include "crypto.h"

/* QEMU's floor for PBKDF2 iterations of new headers. */
#define LUKS_MIN_ITERATIONS 1000
#define LUKS_DEFAULT_ITER_TIME_MS 2000

static const char *const mode_names[] = { "ecb", "cbc", "xts", "ctr" };
static const char *const ivgen_names[] = { "plain", "plain64", "essiv" };

/* A NUL-padded name field: at most LEN bytes, printable, not empty. */
static bool copy_name(char *dst, const uint8_t *src, size_t len)
{
    size_t n = strnlen((const char *)src, len);
    memcpy(dst, src, n);
    dst[n] = 0;
    for (size_t i = 0; i < n; i++) {
        if (src[i] < 0x20 || src[i] > 0x7e) {
            return false;
        }
    }
    return n > 0;
}

int vimg_internal_luks_parse(const uint8_t *buf, size_t len,
                             uint64_t region, const char *what,
                             struct vimg_luks *l)
{
    uint64_t hdr_end = LUKS_HDR_SIZE, material, payload;
    int r;

    memset(l, 0, sizeof *l);
    if (len < LUKS_HDR_SIZE || region < LUKS_HDR_SIZE ||
        memcmp(buf, LUKS_MAGIC, LUKS_MAGIC_LEN)) {
        return vimg_internal_error(EINVAL, "%s: %s", what,
                                   len < LUKS_HDR_SIZE ||
                                           region < LUKS_HDR_SIZE
                                       ? "LUKS header is truncated"
                                       : "not a LUKS header (bad magic)");
    }
    memcpy(l->raw, buf, LUKS_HDR_SIZE);
    if (load_be16(buf + LUKS_HDR_VERSION) != LUKS_VERSION) {
        return vimg_internal_error(ENOTSUP, "%s: LUKS version %u is not "
                                   "supported (only LUKS1)", what,
                                   load_be16(buf + LUKS_HDR_VERSION));
    }
    if (!copy_name(l->cipher_name, buf + LUKS_HDR_CIPHER_NAME,
                   LUKS_NAME_LEN) ||
        !copy_name(l->cipher_mode, buf + LUKS_HDR_CIPHER_MODE,
                   LUKS_NAME_LEN) ||
        !copy_name(l->hash, buf + LUKS_HDR_HASH_SPEC, LUKS_NAME_LEN)) {
        return vimg_internal_error(EINVAL, "%s: LUKS header has an empty "
                                   "or unprintable cipher or hash name",
                                   what);
    }
    /* The uuid is only shown; unprintable bytes end it. */
    (void)copy_name(l->uuid, buf + LUKS_HDR_UUID, LUKS_UUID_LEN);
    l->payload_offset = load_be32(buf + LUKS_HDR_PAYLOAD_OFFSET);
    l->key_bytes = load_be32(buf + LUKS_HDR_KEY_BYTES);
    memcpy(l->mk_digest, buf + LUKS_HDR_MK_DIGEST, LUKS_DIGEST_LEN);
    memcpy(l->mk_salt, buf + LUKS_HDR_MK_DIGEST_SALT, LUKS_SALT_LEN);
    l->mk_iterations = load_be32(buf + LUKS_HDR_MK_DIGEST_ITER);
    if (!vimg_internal_hash_known(l->hash)) {
        return vimg_internal_error(ENOTSUP, "%s: LUKS hash '%s' is not "
                                   "supported", what, l->hash);
    }
    if ((r = vimg_internal_cipher_parse(l->cipher_name, l->cipher_mode,
                                        l->key_bytes, what,
                                        &l->spec)) < 0) {
        return r;
    }
    if (l->mk_iterations == 0 || l->mk_iterations > INT32_MAX) {
        return vimg_internal_error(EINVAL, "%s: LUKS master key digest has "
                                   "%u iterations", what, l->mk_iterations);
    }
    payload = (uint64_t)l->payload_offset * LUKS_SECTOR_SIZE;
    /* Key material is key_bytes (at most 64) times the stripes (exactly
     * 4000): at most 250 KiB per slot, read one slot at a time. */
    material = (uint64_t)l->key_bytes * LUKS_STRIPES;
    for (unsigned i = 0; i < LUKS_NUM_SLOTS; i++) {
        const uint8_t *p = buf + LUKS_HDR_KEYSLOTS + i * LUKS_SLOT_SIZE;
        struct vimg_luks_slot *s = &l->slots[i];
        uint32_t active = load_be32(p + LUKS_SLOT_ACTIVE);
        s->active = active == LUKS_SLOT_ENABLED;
        s->iterations = load_be32(p + LUKS_SLOT_ITERATIONS);
        memcpy(s->salt, p + LUKS_SLOT_SALT, LUKS_SALT_LEN);
        s->key_offset = load_be32(p + LUKS_SLOT_KEY_OFFSET);
        s->stripes = load_be32(p + LUKS_SLOT_STRIPES);
        uint64_t start = (uint64_t)s->key_offset * LUKS_SECTOR_SIZE;
        if (active != LUKS_SLOT_ENABLED && active != LUKS_SLOT_DISABLED) {
            return vimg_internal_error(EINVAL, "%s: LUKS key slot %u has an "
                                       "invalid state 0x%08x", what, i,
                                       active);
        }
        if (s->stripes != LUKS_STRIPES) {
            return vimg_internal_error(EINVAL, "%s: LUKS key slot %u has %u "
                                       "stripes (LUKS1 uses %u)", what, i,
                                       s->stripes, LUKS_STRIPES);
        }
        if (s->active && (s->iterations == 0 ||
                          s->iterations > INT32_MAX)) {
            return vimg_internal_error(EINVAL, "%s: LUKS key slot %u has %u "
                                       "iterations", what, i,
                                       s->iterations);
        }
        if (start < hdr_end || range_outside(start, material, region) ||
            (payload && start + material > payload)) {
            return vimg_internal_error(EINVAL, "%s: key material of LUKS "
                                       "slot %u (sector %u) overlaps the "
                                       "header or the payload, or lies "
                                       "past the end", what, i,
                                       s->key_offset);
        }
        for (unsigned j = 0; j < i; j++) {
            uint64_t o = (uint64_t)l->slots[j].key_offset *
                         LUKS_SECTOR_SIZE;
            if (start < o + material && o < start + material) {
                return vimg_internal_error(EINVAL, "%s: key material of "
                                           "LUKS slots %u and %u overlaps",
                                           what, j, i);
            }
        }
    }
    return 0;
}

/* The master key slot S unlocks with PASS, into MK (key_bytes), or 1 when
 * PASS is not the slot's passphrase. */
static int try_slot(struct vimg_luks *l, const struct vimg_luks_slot *s,
                    struct vimg_image *file, uint64_t base,
                    const uint8_t *pass, size_t pass_len, uint8_t *mk)
{
    size_t kb = l->key_bytes, mlen = kb * s->stripes;
    uint8_t *key = vimg_internal_secure_alloc(kb);
    uint8_t *split = vimg_internal_secure_alloc(mlen);
    uint8_t digest[LUKS_DIGEST_LEN];
    struct vimg_cipher c = { 0 };
    int r = -ENOMEM;

    if (!key || !split) {
        r = vimg_internal_error(ENOMEM, "out of memory");
        goto out;
    }
    if ((r = vimg_internal_pbkdf2(l->hash, pass, pass_len, s->salt,
                                  LUKS_SALT_LEN, s->iterations, key,
                                  kb)) < 0 ||
        (r = vimg_internal_pread(file, split, mlen,
                                 base + (uint64_t)s->key_offset *
                                            LUKS_SECTOR_SIZE)) < 0 ||
        (r = vimg_internal_cipher_init(&c, &l->spec, key, kb)) < 0 ||
        (r = vimg_internal_cipher_run(&c, false, 0, split, split,
                                      mlen)) < 0 ||
        (r = vimg_internal_af_merge(l->hash, split, kb, s->stripes,
                                    mk)) < 0 ||
        (r = vimg_internal_pbkdf2(l->hash, mk, kb, l->mk_salt,
                                  LUKS_SALT_LEN, l->mk_iterations, digest,
                                  sizeof digest)) < 0) {
        goto out;
    }
    r = CRYPTO_memcmp(digest, l->mk_digest, LUKS_DIGEST_LEN) ? 1 : 0;
out:
    vimg_internal_cipher_free(&c);
    vimg_internal_secure_free(key, kb);
    vimg_internal_secure_free(split, mlen);
    return r;
}

int vimg_internal_luks_unlock(struct vimg_luks *l, struct vimg_image *file,
                              uint64_t base, const uint8_t *pass,
                              size_t pass_len, const char *what)
{
    uint8_t *mk = vimg_internal_secure_alloc(l->key_bytes);
    int r = 1;

    if (!mk) {
        return vimg_internal_error(ENOMEM, "out of memory");
    }
    for (unsigned i = 0; i < LUKS_NUM_SLOTS && r == 1; i++) {
        if (l->slots[i].active) {
            r = try_slot(l, &l->slots[i], file, base, pass, pass_len, mk);
        }
    }
    if (r == 0 && (r = vimg_internal_cipher_init(&l->cipher, &l->spec, mk,
                                                 l->key_bytes)) == 0) {
        l->unlocked = true;
    }
    vimg_internal_secure_free(mk, l->key_bytes);
    if (r == 1) {
        /* Says nothing of the passphrase itself. */
        return vimg_internal_error(EKEYREJECTED, "%s: invalid passphrase: "
                                   "it unlocks no LUKS key slot", what);
    }
    return r;
}

static int pick(const char *const *names, size_t n, const char *value,
                const char *option, const char *what)
{
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(names[i], value)) {
            return (int)i;
        }
    }
    return vimg_internal_error(EINVAL, "%s: %s '%s' is not supported", what,
                               option, value);
}

static int make_spec(const struct vimg_luks_create *o, const char *what,
                     struct vimg_cipher_spec *spec)
{
    static const char *const algs[] = { "aes-128", "aes-192", "aes-256" };
    int a, m, g;

    memset(spec, 0, sizeof *spec);
    if ((a = pick(algs, 3, o->cipher_alg ? o->cipher_alg : "aes-256",
                  "cipher-alg", what)) < 0 ||
        (m = pick(mode_names, 4, o->cipher_mode ? o->cipher_mode : "xts",
                  "cipher-mode", what)) < 0 ||
        (g = pick(ivgen_names, 3, o->ivgen_alg ? o->ivgen_alg : "plain64",
                  "ivgen-alg", what)) < 0) {
        return a < 0 ? a : m < 0 ? m : g;
    }
    spec->aes_bits = 128 + 64 * (unsigned)a;
    spec->mode = (enum vimg_cipher_mode)m;
    spec->ivgen = (enum vimg_ivgen)g;
    if (spec->mode == VIMG_CMODE_XTS && spec->aes_bits == 192) {
        return vimg_internal_error(ENOTSUP, "%s: aes-192 in xts mode is not "
                                   "supported", what);
    }
    if (spec->ivgen == VIMG_IVGEN_ESSIV) {
        const char *h = o->ivgen_hash ? o->ivgen_hash : "sha256";
        size_t hl = vimg_internal_hash_len(h);
        if (hl != 16 && hl != 24 && hl != 32) {
            return vimg_internal_error(EINVAL, "%s: ivgen-hash-alg '%s' "
                                       "gives no AES key", what, h);
        }
        snprintf(spec->ivhash, sizeof spec->ivhash, "%s", h);
    } else if (o->ivgen_hash && !vimg_internal_hash_known(o->ivgen_hash)) {
        return vimg_internal_error(EINVAL, "%s: ivgen-hash-alg '%s' is not "
                                   "supported", what, o->ivgen_hash);
    }
    return 0;
}

/* QEMU's layout (which follows cryptsetup's) for KB-byte keys: slots of
 * key material 4 KiB aligned after the first 4 KiB, the payload after all
 * eight. In sectors. */
static void layout(size_t kb, uint32_t *first, uint32_t *stride,
                   uint32_t *payload)
{
    *stride = (uint32_t)ROUND_UP(DIV_ROUND_UP(kb * LUKS_STRIPES,
                                              LUKS_SECTOR_SIZE),
                                 LUKS_KEY_SLOT_OFFSET / LUKS_SECTOR_SIZE);
    *first = LUKS_KEY_SLOT_OFFSET / LUKS_SECTOR_SIZE;
    *payload = *first + *stride * LUKS_NUM_SLOTS;
}

int vimg_internal_luks_header_size(const struct vimg_luks_create *o,
                                   const char *what, uint64_t *len)
{
    struct vimg_cipher_spec spec;
    uint32_t first, stride, payload;
    int r = make_spec(o, what, &spec);

    if (r == 0) {
        layout(vimg_internal_cipher_key_len(&spec), &first, &stride,
               &payload);
        *len = (uint64_t)payload * LUKS_SECTOR_SIZE;
    }
    return r;
}

/* ITER_TIME milliseconds of PBKDF2 at RATE (per output block per second)
 * for BLOCKS output blocks, divided by DIV; at least QEMU's floor. */
static int scale_iterations(uint64_t rate, uint64_t iter_time, size_t blocks,
                            unsigned div, const char *what, uint32_t *out)
{
    uint64_t it;
    if (CHECKED_MUL(rate / blocks, iter_time, &it) ||
        (it = it / 1000 / div) > UINT32_MAX / 2) {
        return vimg_internal_error(ERANGE, "%s: iter-time gives too many "
                                   "PBKDF2 iterations", what);
    }
    *out = (uint32_t)MAX(it, LUKS_MIN_ITERATIONS);
    return 0;
}

int vimg_internal_luks_format(struct vimg_luks *l,
                              const struct vimg_luks_create *o,
                              const uint8_t *pass, size_t pass_len,
                              const char *what)
{
    const char *hash = o->hash_alg ? o->hash_alg : "sha256";
    uint64_t iter_time = o->iter_time_ms ? o->iter_time_ms
                                         : LUKS_DEFAULT_ITER_TIME_MS;
    uint8_t *mk = NULL, *key = NULL, *split = NULL, u[16];
    struct vimg_cipher c = { 0 };
    uint64_t rate;
    size_t kb, mlen;
    int r;

    memset(l, 0, sizeof *l);
    if ((r = make_spec(o, what, &l->spec)) < 0) {
        return r;
    }
    if (!vimg_internal_hash_known(hash)) {
        return vimg_internal_error(EINVAL, "%s: hash-alg '%s' is not "
                                   "supported", what, hash);
    }
    kb = vimg_internal_cipher_key_len(&l->spec);
    mlen = kb * LUKS_STRIPES;
    l->key_bytes = (uint32_t)kb;
    snprintf(l->cipher_name, sizeof l->cipher_name, "aes");
    if (l->spec.ivhash[0]) {
        snprintf(l->cipher_mode, sizeof l->cipher_mode, "%s-%s:%s",
                 mode_names[l->spec.mode], ivgen_names[l->spec.ivgen],
                 l->spec.ivhash);
    } else {
        snprintf(l->cipher_mode, sizeof l->cipher_mode, "%s-%s",
                 mode_names[l->spec.mode], ivgen_names[l->spec.ivgen]);
    }
    snprintf(l->hash, sizeof l->hash, "%s", hash);
    uint32_t first, stride;
    layout(kb, &first, &stride, &l->payload_offset);
    for (unsigned i = 0; i < LUKS_NUM_SLOTS; i++) {
        l->slots[i].key_offset = first + stride * i;
        l->slots[i].stripes = LUKS_STRIPES;
    }
    l->slots[0].active = true;

    mk = vimg_internal_secure_alloc(kb);
    key = vimg_internal_secure_alloc(kb);
    split = vimg_internal_secure_alloc(mlen);
    l->material = malloc(mlen);
    if (!mk || !key || !split || !l->material) {
        r = vimg_internal_error(ENOMEM, "out of memory");
        goto out;
    }
    if (RAND_priv_bytes(mk, (int)kb) != 1 ||
        RAND_bytes(l->mk_salt, LUKS_SALT_LEN) != 1 ||
        RAND_bytes(l->slots[0].salt, LUKS_SALT_LEN) != 1 ||
        RAND_bytes(u, sizeof u) != 1) {
        r = vimg_internal_error(EIO, "%s: no random bytes from OpenSSL",
                                what);
        goto out;
    }
    u[6] = (uint8_t)((u[6] & 0x0f) | 0x40); /* random UUID, version 4 */
    u[8] = (uint8_t)((u[8] & 0x3f) | 0x80);
    snprintf(l->uuid, sizeof l->uuid,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
             "%02x%02x%02x%02x%02x%02x", u[0], u[1], u[2], u[3], u[4], u[5],
             u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14],
             u[15]);
    size_t dlen = vimg_internal_hash_len(hash);
    /* As QEMU: the master key digest takes an eighth of ITER_TIME (as
     * cryptsetup), the slot the whole of it. */
    if ((r = vimg_internal_pbkdf2_rate(hash, &rate)) < 0 ||
        (r = scale_iterations(rate, iter_time,
                              DIV_ROUND_UP(LUKS_DIGEST_LEN, dlen), 8, what,
                              &l->mk_iterations)) < 0 ||
        (r = scale_iterations(rate, iter_time, DIV_ROUND_UP(kb, dlen), 1,
                              what, &l->slots[0].iterations)) < 0 ||
        (r = vimg_internal_pbkdf2(hash, mk, kb, l->mk_salt, LUKS_SALT_LEN,
                                  l->mk_iterations, l->mk_digest,
                                  LUKS_DIGEST_LEN)) < 0 ||
        (r = vimg_internal_pbkdf2(hash, pass, pass_len, l->slots[0].salt,
                                  LUKS_SALT_LEN, l->slots[0].iterations,
                                  key, kb)) < 0 ||
        (r = vimg_internal_af_split(hash, mk, kb, LUKS_STRIPES,
                                    split)) < 0 ||
        (r = vimg_internal_cipher_init(&c, &l->spec, key, kb)) < 0 ||
        (r = vimg_internal_cipher_run(&c, true, 0, split, l->material,
                                      mlen)) < 0 ||
        (r = vimg_internal_cipher_init(&l->cipher, &l->spec, mk, kb)) < 0) {
        goto out;
    }
    l->unlocked = true;
out:
    vimg_internal_cipher_free(&c);
    vimg_internal_secure_free(mk, kb);
    vimg_internal_secure_free(key, kb);
    vimg_internal_secure_free(split, mlen);
    if (r < 0) {
        vimg_internal_luks_free(l);
    }
    return r;
}

int vimg_internal_luks_write(struct vimg_luks *l, struct vimg_image *file,
                             uint64_t base)
{
    uint8_t h[LUKS_HDR_SIZE] = { 0 };
    int r;

    memcpy(h + LUKS_HDR_MAGIC, LUKS_MAGIC, LUKS_MAGIC_LEN);
    store_be16(h + LUKS_HDR_VERSION, LUKS_VERSION);
    memcpy(h + LUKS_HDR_CIPHER_NAME, l->cipher_name,
           strlen(l->cipher_name));
    memcpy(h + LUKS_HDR_CIPHER_MODE, l->cipher_mode,
           strlen(l->cipher_mode));
    memcpy(h + LUKS_HDR_HASH_SPEC, l->hash, strlen(l->hash));
    store_be32(h + LUKS_HDR_PAYLOAD_OFFSET, l->payload_offset);
    store_be32(h + LUKS_HDR_KEY_BYTES, l->key_bytes);
    memcpy(h + LUKS_HDR_MK_DIGEST, l->mk_digest, LUKS_DIGEST_LEN);
    memcpy(h + LUKS_HDR_MK_DIGEST_SALT, l->mk_salt, LUKS_SALT_LEN);
    store_be32(h + LUKS_HDR_MK_DIGEST_ITER, l->mk_iterations);
    memcpy(h + LUKS_HDR_UUID, l->uuid, strlen(l->uuid));
    for (unsigned i = 0; i < LUKS_NUM_SLOTS; i++) {
        uint8_t *p = h + LUKS_HDR_KEYSLOTS + i * LUKS_SLOT_SIZE;
        const struct vimg_luks_slot *s = &l->slots[i];
        store_be32(p + LUKS_SLOT_ACTIVE, s->active ? LUKS_SLOT_ENABLED
                                                   : LUKS_SLOT_DISABLED);
        store_be32(p + LUKS_SLOT_ITERATIONS, s->iterations);
        memcpy(p + LUKS_SLOT_SALT, s->salt, LUKS_SALT_LEN);
        store_be32(p + LUKS_SLOT_KEY_OFFSET, s->key_offset);
        store_be32(p + LUKS_SLOT_STRIPES, s->stripes);
    }
    if ((r = vimg_internal_pwrite(file, h, sizeof h, base, 0)) < 0) {
        return r;
    }
    if (l->material) {
        r = vimg_internal_pwrite(file, l->material,
                                 (uint64_t)l->key_bytes * LUKS_STRIPES,
                                 base + (uint64_t)l->slots[0].key_offset *
                                            LUKS_SECTOR_SIZE, 0);
    }
    return r;
}

void vimg_internal_luks_free(struct vimg_luks *l)
{
    vimg_internal_cipher_free(&l->cipher);
    free(l->material);
    l->material = NULL;
    l->unlocked = false;
}

int vimg_internal_luks_info(const struct vimg_luks *l, bool format,
                            struct vimg_value *obj)
{
    struct vimg_value *slots = vimg_internal_value_new(VIMG_VALUE_ARRAY);
    char alg[16];
    int r;

    if (!slots) {
        return -ENOMEM;
    }
    for (unsigned i = 0; i < LUKS_NUM_SLOTS; i++) {
        const struct vimg_luks_slot *s = &l->slots[i];
        struct vimg_value *o = vimg_internal_value_new(VIMG_VALUE_OBJECT);
        if (!o || vimg_internal_value_set_bool(o, "active", s->active) < 0 ||
            (s->active && vimg_internal_value_set_int(o, "iters",
                                                      s->iterations) < 0) ||
            vimg_internal_value_set_int(o, "key-offset",
                                        (int64_t)s->key_offset *
                                            LUKS_SECTOR_SIZE) < 0 ||
            (s->active && vimg_internal_value_set_int(o, "stripes",
                                                      s->stripes) < 0) ||
            vimg_internal_value_append(slots, o) < 0) {
            vimg_value_free(o);
            vimg_value_free(slots);
            return -ENOMEM;
        }
    }
    snprintf(alg, sizeof alg, "aes-%u", l->spec.aes_bits);
    /* qemu-img's order (its dictionary's hash order). */
    if ((r = vimg_internal_value_set_str(obj, "ivgen-alg",
                                         ivgen_names[l->spec.ivgen])) < 0 ||
        (r = vimg_internal_value_set_str(obj, "hash-alg", l->hash)) < 0 ||
        (r = vimg_internal_value_set_str(obj, "cipher-alg", alg)) < 0 ||
        (r = vimg_internal_value_set_str(obj, "uuid", l->uuid)) < 0 ||
        (l->spec.ivhash[0] &&
         (r = vimg_internal_value_set_str(obj, "ivgen-hash-alg",
                                          l->spec.ivhash)) < 0) ||
        (format &&
         (r = vimg_internal_value_set_str(obj, "format", "luks")) < 0) ||
        (r = vimg_internal_value_set_str(obj, "cipher-mode",
                                         mode_names[l->spec.mode])) < 0) {
        vimg_value_free(slots);
        return r;
    }
    if ((r = vimg_internal_value_add(obj, "slots", slots)) < 0 ||
        (r = vimg_internal_value_set_int(obj, "payload-offset",
                                         (int64_t)l->payload_offset *
                                             LUKS_SECTOR_SIZE)) < 0 ||
        (r = vimg_internal_value_set_int(obj, "master-key-iters",
                                         l->mk_iterations)) < 0) {
        return r;
    }
    return 0;
}

/* ---- Key slots (qemu-img amend) ---------------------------------------- */

static unsigned count_active(const struct vimg_luks *l)
{
    unsigned n = 0;
    for (unsigned i = 0; i < LUKS_NUM_SLOTS; i++) {
        n += l->slots[i].active;
    }
    return n;
}

/* Write the header with slot I as it is in memory and every other byte as
 * read (one 592-byte write inside the first sector), then flush. */
static int store_slot(struct vimg_luks *l, unsigned i,
                      struct vimg_image *file, uint64_t base)
{
    uint8_t h[LUKS_HDR_SIZE];
    uint8_t *p = h + LUKS_HDR_KEYSLOTS + i * LUKS_SLOT_SIZE;
    const struct vimg_luks_slot *s = &l->slots[i];
    int r;

    memcpy(h, l->raw, sizeof h);
    store_be32(p + LUKS_SLOT_ACTIVE, s->active ? LUKS_SLOT_ENABLED
                                               : LUKS_SLOT_DISABLED);
    store_be32(p + LUKS_SLOT_ITERATIONS, s->iterations);
    memcpy(p + LUKS_SLOT_SALT, s->salt, LUKS_SALT_LEN);
    if ((r = vimg_internal_pwrite(file, h, sizeof h, base, 0)) < 0 ||
        (r = vimg_internal_flush(file)) < 0) {
        return r;
    }
    memcpy(l->raw, h, sizeof h);
    return 0;
}

/* Protect the master key with PASS in slot I (QEMU's
 * qcrypto_block_luks_store_key): the material first, flushed, and only
 * then the header that makes the slot active, so that a crash leaves the
 * slot as it was or complete. */
static int store_key(struct vimg_luks *l, unsigned i, const uint8_t *pass,
                     size_t pass_len, uint64_t iter_time,
                     struct vimg_image *file, uint64_t base, const char *what)
{
    struct vimg_luks_slot *s = &l->slots[i], saved = *s;
    size_t kb = l->key_bytes, mlen = kb * s->stripes;
    uint8_t *key = vimg_internal_secure_alloc(kb);
    uint8_t *split = vimg_internal_secure_alloc(mlen);
    struct vimg_cipher c = { 0 };
    uint8_t salt[LUKS_SALT_LEN];
    uint32_t iterations = 0;
    uint64_t rate;
    int r;

    if (!key || !split) {
        r = vimg_internal_error(ENOMEM, "out of memory");
        goto out;
    }
    if (RAND_bytes(salt, sizeof salt) != 1) {
        r = vimg_internal_error(EIO, "%s: no random bytes from OpenSSL",
                                what);
        goto out;
    }
    if ((r = vimg_internal_pbkdf2_rate(l->hash, &rate)) < 0 ||
        (r = scale_iterations(rate, iter_time,
                              DIV_ROUND_UP(kb,
                                           vimg_internal_hash_len(l->hash)),
                              1, what, &iterations)) < 0 ||
        (r = vimg_internal_pbkdf2(l->hash, pass, pass_len, salt,
                                  sizeof salt, iterations, key, kb)) < 0 ||
        (r = vimg_internal_af_split(l->hash, l->cipher.key, kb, s->stripes,
                                    split)) < 0 ||
        (r = vimg_internal_cipher_init(&c, &l->spec, key, kb)) < 0 ||
        (r = vimg_internal_cipher_run(&c, true, 0, split, split,
                                      mlen)) < 0 ||
        (r = vimg_internal_pwrite(file, split, mlen,
                                  base + (uint64_t)s->key_offset *
                                             LUKS_SECTOR_SIZE, 0)) < 0 ||
        (r = vimg_internal_flush(file)) < 0) {
        goto out;
    }
    s->active = true;
    s->iterations = iterations;
    memcpy(s->salt, salt, sizeof salt);
    if ((r = store_slot(l, i, file, base)) < 0) {
        *s = saved;
    }
out:
    vimg_internal_cipher_free(&c);
    vimg_internal_secure_free(key, kb);
    vimg_internal_secure_free(split, mlen);
    return r;
}

/* Erase slot I (QEMU's qcrypto_block_luks_erase_key): inactive in the
 * header first, flushed, then its material overwritten with random
 * bytes, as QEMU even when the header write failed. One pass: through
 * the page cache, more passes would reach the disk as one write. */
static int erase_key(struct vimg_luks *l, unsigned i, struct vimg_image *file,
                     uint64_t base, const char *what)
{
    struct vimg_luks_slot *s = &l->slots[i];
    size_t mlen = (size_t)l->key_bytes * s->stripes;
    uint8_t *junk = malloc(mlen);
    int r, r2;

    if (!junk) {
        return vimg_internal_error(ENOMEM, "out of memory");
    }
    s->active = false;
    s->iterations = 0;
    memset(s->salt, 0, sizeof s->salt);
    r = store_slot(l, i, file, base);
    if (RAND_bytes(junk, (int)mlen) != 1) {
        /* Zeros still destroy the key. */
        memset(junk, 0, mlen);
    }
    if ((r2 = vimg_internal_pwrite(file, junk, mlen,
                                   base + (uint64_t)s->key_offset *
                                              LUKS_SECTOR_SIZE, 0)) == 0) {
        r2 = vimg_internal_flush(file);
    }
    free(junk);
    if (r == 0 && r2 < 0) {
        r = vimg_internal_error(-r2, "%s: erasing the key material of "
                                "LUKS key slot %u failed", what, i);
    }
    return r;
}

int vimg_internal_luks_amend_parse(const struct vimg_opts *opts,
                                   const char *prefix, const char *what,
                                   struct vimg_luks_amend *a, bool *any)
{
    static const char *const names[] = { "state", "keyslot", "new-secret",
                                         "old-secret", "iter-time" };
    const char *v[5];
    char key[32];

    memset(a, 0, sizeof *a);
    *any = false;
    for (unsigned i = 0; i < 5; i++) {
        snprintf(key, sizeof key, "%s%s", prefix, names[i]);
        v[i] = vimg_internal_opts_get(opts, key, NULL);
        *any = *any || v[i];
    }
    if (!*any) {
        return 0;
    }
    /* qemu-img's words: its option visitor names the key without the
     * prefix. */
    if (!v[0]) {
        return vimg_internal_error(EINVAL, "%s: Parameter 'state' is "
                                   "missing", what);
    }
    if (strcmp(v[0], "active") && strcmp(v[0], "inactive")) {
        return vimg_internal_error(EINVAL, "%s: Parameter 'state' does not "
                                   "accept value '%s'", what, v[0]);
    }
    /* The option parser let only digits through for the numbers. */
    a->activate = !strcmp(v[0], "active");
    a->has_keyslot = v[1];
    a->keyslot = v[1] ? strtoull(v[1], NULL, 10) : 0;
    a->new_secret = v[2];
    a->old_secret = v[3];
    a->has_iter_time = v[4];
    a->iter_time_ms = v[4] ? strtoull(v[4], NULL, 10) : 0;
    return 0;
}

/* The checks of an addition that need no key derivation, in QEMU's
 * order; the slot to write into *SLOT. */
static int check_add(const struct vimg_luks *l,
                     const struct vimg_luks_amend *a, bool force,
                     const struct vimg_secret *secrets, size_t n,
                     const char *what, unsigned *slot)
{
    const uint8_t *pass;
    size_t pass_len;

    if (!a->new_secret) {
        return vimg_internal_error(EINVAL, "%s: 'new-secret' is required "
                                   "to activate a keyslot", what);
    }
    if (a->old_secret) {
        return vimg_internal_error(EINVAL, "%s: 'old-secret' must not be "
                                   "given when activating keyslots", what);
    }
    *slot = 0;
    if (a->has_keyslot) {
        if (a->keyslot >= LUKS_NUM_SLOTS) {
            return vimg_internal_error(EINVAL, "%s: Invalid keyslot %llu "
                                       "specified, must be between 0 and "
                                       "%u", what,
                                       (unsigned long long)a->keyslot,
                                       LUKS_NUM_SLOTS - 1);
        }
        *slot = (unsigned)a->keyslot;
    } else {
        while (*slot < LUKS_NUM_SLOTS && l->slots[*slot].active) {
            (*slot)++;
        }
        if (*slot == LUKS_NUM_SLOTS) {
            return vimg_internal_error(ENOSPC, "%s: Can't add a keyslot - "
                                       "all keyslots are in use", what);
        }
    }
    if (!force && l->slots[*slot].active) {
        return vimg_internal_error(EEXIST, "%s: Refusing to overwrite "
                                   "active keyslot %u - please erase it "
                                   "first", what, *slot);
    }
    /* The passphrase the image was opened with unlocked the master key,
     * which the cipher holds. */
    if (!l->unlocked) {
        return vimg_internal_error(ENOKEY, "%s: image is encrypted and was "
                                   "opened without its passphrase "
                                   "(metadata only)", what);
    }
    return vimg_internal_secret_find(secrets, n, a->new_secret, what, &pass,
                                     &pass_len);
}

/* The same for an erase; the checks that need the old passphrase tried
 * on the slots come in erase_keys. */
static int check_erase(const struct vimg_luks *l,
                       const struct vimg_luks_amend *a, bool force,
                       const struct vimg_secret *secrets, size_t n,
                       const char *what)
{
    const uint8_t *pass;
    size_t pass_len;
    int r;

    if (a->new_secret) {
        return vimg_internal_error(EINVAL, "%s: 'new-secret' must not be "
                                   "given when erasing keyslots", what);
    }
    if (a->has_iter_time) {
        return vimg_internal_error(EINVAL, "%s: 'iter-time' must not be "
                                   "given when erasing keyslots", what);
    }
    if (a->old_secret &&
        (r = vimg_internal_secret_find(secrets, n, a->old_secret, what,
                                       &pass, &pass_len)) < 0) {
        return r;
    }
    if (a->has_keyslot && a->keyslot >= LUKS_NUM_SLOTS) {
        return vimg_internal_error(EINVAL, "%s: Invalid keyslot %llu "
                                   "specified, must be between 0 and %u",
                                   what, (unsigned long long)a->keyslot,
                                   LUKS_NUM_SLOTS - 1);
    }
    if (!a->has_keyslot && !a->old_secret) {
        return vimg_internal_error(EINVAL, "%s: To erase keyslot(s), either "
                                   "explicit keyslot index or the password "
                                   "currently contained in them must be "
                                   "given", what);
    }
    if (a->has_keyslot && !a->old_secret) {
        unsigned i = (unsigned)a->keyslot;
        if (!force && !l->slots[i].active) {
            return vimg_internal_error(EINVAL, "%s: Given keyslot %u is "
                                       "already erased (inactive)", what, i);
        }
        if (!force && count_active(l) == 1) {
            return vimg_internal_error(EPERM, "%s: Attempt to erase the only "
                                       "active keyslot %u which will erase "
                                       "all the data in the image "
                                       "irreversibly - refusing operation",
                                       what, i);
        }
    }
    return 0;
}

int vimg_internal_luks_amend_check(const struct vimg_luks *l,
                                   const struct vimg_luks_amend *a,
                                   bool force,
                                   const struct vimg_secret *secrets,
                                   size_t n_secrets, const char *what)
{
    unsigned slot;
    return a->activate ? check_add(l, a, force, secrets, n_secrets, what,
                                   &slot)
                       : check_erase(l, a, force, secrets, n_secrets, what);
}

static int erase_keys(struct vimg_luks *l, struct vimg_image *file,
                      uint64_t base, const struct vimg_luks_amend *a,
                      bool force, const struct vimg_secret *secrets,
                      size_t n, const char *what)
{
    const uint8_t *pass = NULL;
    size_t pass_len = 0;
    uint8_t *mk = NULL;
    bool match[LUKS_NUM_SLOTS] = { false };
    unsigned matched = 0;
    int r;

    if ((r = check_erase(l, a, force, secrets, n, what)) < 0) {
        return r;
    }
    if (a->old_secret) {
        if ((r = vimg_internal_secret_find(secrets, n, a->old_secret, what,
                                           &pass, &pass_len)) < 0) {
            return r;
        }
        if (!(mk = vimg_internal_secure_alloc(l->key_bytes))) {
            return vimg_internal_error(ENOMEM, "out of memory");
        }
    }
    /* The slots the old passphrase opens: only the given one, or all. */
    for (unsigned i = 0; pass && i < LUKS_NUM_SLOTS; i++) {
        if ((a->has_keyslot && i != a->keyslot) || !l->slots[i].active) {
            continue;
        }
        if ((r = try_slot(l, &l->slots[i], file, base, pass, pass_len,
                          mk)) < 0) {
            goto out;
        }
        match[i] = r == 0;
        matched += match[i];
        r = 0;
    }
    if (a->has_keyslot) {
        unsigned i = (unsigned)a->keyslot;
        if (pass && !match[i]) {
            r = vimg_internal_error(EKEYREJECTED, "%s: Given keyslot %u "
                                    "doesn't contain the given old password "
                                    "for erase operation", what, i);
        } else if (!force && count_active(l) == 1) {
            r = vimg_internal_error(EPERM, "%s: Attempt to erase the only "
                                    "active keyslot %u which will erase all "
                                    "the data in the image irreversibly - "
                                    "refusing operation", what, i);
        } else {
            r = erase_key(l, i, file, base, what);
        }
        goto out;
    }
    if (matched == 0) {
        r = vimg_internal_error(EKEYREJECTED, "%s: No keyslots match given "
                                "(old) password for erase operation", what);
    } else if (!force && matched == count_active(l)) {
        r = vimg_internal_error(EPERM, "%s: All the active keyslots match "
                                "the (old) password that was given and "
                                "erasing them will erase all the data in "
                                "the image irreversibly - refusing "
                                "operation", what);
    }
    for (unsigned i = 0; r == 0 && i < LUKS_NUM_SLOTS; i++) {
        if (match[i]) {
            r = erase_key(l, i, file, base, what);
        }
    }
out:
    vimg_internal_secure_free(mk, l->key_bytes);
    return r;
}

int vimg_internal_luks_amend(struct vimg_luks *l, struct vimg_image *file,
                             uint64_t base, const struct vimg_luks_amend *a,
                             bool force, const struct vimg_secret *secrets,
                             size_t n_secrets, const char *what)
{
    const uint8_t *pass;
    size_t pass_len;
    unsigned slot;
    int r;

    if (!a->activate) {
        return erase_keys(l, file, base, a, force, secrets, n_secrets, what);
    }
    if ((r = check_add(l, a, force, secrets, n_secrets, what, &slot)) < 0 ||
        (r = vimg_internal_secret_find(secrets, n_secrets, a->new_secret,
                                       what, &pass, &pass_len)) < 0) {
        return r;
    }
    return store_key(l, slot, pass, pass_len,
                     a->has_iter_time ? a->iter_time_ms
                                      : LUKS_DEFAULT_ITER_TIME_MS,
                     file, base, what);
}
