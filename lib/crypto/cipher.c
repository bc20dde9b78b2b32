/* Sector ciphers as dm-crypt, cryptsetup and QEMU define them: AES in XTS,
 * CBC, CTR or ECB mode, each 512-byte sector with its own IV from the
 * plain, plain64 or ESSIV generator. The ciphers are OpenSSL's. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "crypto.h"

static const char *const mode_names[] = { "ecb", "cbc", "xts", "ctr" };
static const char *const ivgen_names[] = { "plain", "plain64", "essiv" };

static int lookup(const char *const *names, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(names[i], s)) {
            return (int)i;
        }
    }
    return -1;
}

int vimg_internal_cipher_parse(const char *name, const char *mode,
                               uint32_t key_bytes, const char *what,
                               struct vimg_cipher_spec *spec)
{
    char buf[LUKS_NAME_LEN + 1];
    char *iv, *hash;
    int m, g = VIMG_IVGEN_PLAIN;

    memset(spec, 0, sizeof *spec);
    if (strcmp(name, "aes")) {
        return vimg_internal_error(ENOTSUP, "%s: cipher '%s' is not "
                                   "supported (only aes)", what, name);
    }
    snprintf(buf, sizeof buf, "%s", mode);
    /* <mode>[-<ivgen>[:<hash>]], e.g. xts-plain64, cbc-essiv:sha256. */
    if ((iv = strchr(buf, '-'))) {
        *iv++ = 0;
        if ((hash = strchr(iv, ':'))) {
            *hash++ = 0;
            snprintf(spec->ivhash, sizeof spec->ivhash, "%s", hash);
        }
        g = lookup(ivgen_names, 3, iv);
    }
    m = lookup(mode_names, 4, buf);
    if (m < 0 || g < 0 || (!iv && m != VIMG_CMODE_ECB)) {
        return vimg_internal_error(ENOTSUP, "%s: cipher mode '%s' is not "
                                   "supported", what, mode);
    }
    spec->mode = (enum vimg_cipher_mode)m;
    spec->ivgen = (enum vimg_ivgen)g;
    if (spec->ivgen == VIMG_IVGEN_ESSIV) {
        size_t hl = vimg_internal_hash_len(spec->ivhash);
        if (hl != 16 && hl != 24 && hl != 32) {
            return vimg_internal_error(ENOTSUP, "%s: ESSIV hash '%s' gives "
                                       "no AES key", what, spec->ivhash);
        }
    } else {
        /* dm-crypt ignores a hash given to the other generators. */
        spec->ivhash[0] = 0;
    }
    uint32_t half = spec->mode == VIMG_CMODE_XTS ? key_bytes / 2 : key_bytes;
    if ((half != 16 && half != 24 && half != 32) ||
        (spec->mode == VIMG_CMODE_XTS && (key_bytes % 2 || half == 24))) {
        return vimg_internal_error(ENOTSUP, "%s: aes in %s mode with a "
                                   "%u-byte key is not supported", what,
                                   mode_names[m], key_bytes);
    }
    spec->aes_bits = half * 8;
    return 0;
}

size_t vimg_internal_cipher_key_len(const struct vimg_cipher_spec *spec)
{
    return spec->aes_bits / 8 * (spec->mode == VIMG_CMODE_XTS ? 2 : 1);
}

void vimg_internal_cipher_free(struct vimg_cipher *c)
{
    EVP_CIPHER_free(c->evp);
    EVP_CIPHER_free(c->essiv_evp);
    vimg_internal_secure_free(c->key, c->key_len);
    vimg_internal_secure_free(c->essiv_key, c->essiv_key_len);
    memset(c, 0, sizeof *c);
}

int vimg_internal_cipher_init(struct vimg_cipher *c,
                              const struct vimg_cipher_spec *spec,
                              const uint8_t *key, size_t key_len)
{
    char name[32];

    memset(c, 0, sizeof *c);
    c->spec = *spec;
    if (key_len != vimg_internal_cipher_key_len(spec)) {
        return vimg_internal_error(EINVAL, "key of %zu bytes for aes-%u",
                                   key_len, spec->aes_bits);
    }
    snprintf(name, sizeof name, "AES-%u-%s", spec->aes_bits,
             mode_names[spec->mode]);
    c->evp = EVP_CIPHER_fetch(NULL, name, NULL);
    c->key = vimg_internal_secure_alloc(key_len);
    if (!c->evp || !c->key) {
        vimg_internal_cipher_free(c);
        return vimg_internal_error(ENOTSUP, "OpenSSL has no %s cipher",
                                   name);
    }
    memcpy(c->key, key, key_len);
    c->key_len = key_len;
    if (spec->ivgen == VIMG_IVGEN_ESSIV) {
        /* ESSIV: the IV is the sector number encrypted with the hash of
         * the key, by AES with that hash's length as key size (dm-crypt's
         * rule, which QEMU follows). */
        const EVP_MD *md = EVP_get_digestbyname(spec->ivhash);
        unsigned int n = 0;
        c->essiv_key_len = vimg_internal_hash_len(spec->ivhash);
        c->essiv_key = vimg_internal_secure_alloc(EVP_MAX_MD_SIZE);
        snprintf(name, sizeof name, "AES-%zu-ECB", c->essiv_key_len * 8);
        c->essiv_evp = EVP_CIPHER_fetch(NULL, name, NULL);
        if (!md || !c->essiv_key || !c->essiv_evp ||
            !EVP_Digest(key, key_len, c->essiv_key, &n, md, NULL)) {
            c->essiv_key_len = EVP_MAX_MD_SIZE;
            vimg_internal_cipher_free(c);
            return vimg_internal_error(ENOTSUP, "ESSIV with %s failed in "
                                       "OpenSSL", spec->ivhash);
        }
        /* Freed with the size it was allocated with. */
        c->essiv_key_len = EVP_MAX_MD_SIZE;
    }
    return 0;
}

int vimg_internal_cipher_init_aes_legacy(struct vimg_cipher *c,
                                         const uint8_t *pass,
                                         size_t pass_len)
{
    static const struct vimg_cipher_spec spec = {
        .aes_bits = 128, .mode = VIMG_CMODE_CBC, .ivgen = VIMG_IVGEN_PLAIN64,
    };
    /* The key is at most the first 16 bytes of the passphrase. */
    uint8_t *key = vimg_internal_secure_alloc(16);
    int r;

    if (!key) {
        return vimg_internal_error(ENOMEM, "out of memory");
    }
    /* QEMU takes the passphrase as a C string. */
    pass_len = strnlen((const char *)pass, pass_len);
    memcpy(key, pass, pass_len < 16 ? pass_len : 16);
    r = vimg_internal_cipher_init(c, &spec, key, 16);
    vimg_internal_secure_free(key, 16);
    return r;
}

int vimg_internal_cipher_run(const struct vimg_cipher *c, bool encrypt,
                             uint64_t sector, const uint8_t *in,
                             uint8_t *out, size_t len)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    EVP_CIPHER_CTX *ivctx = NULL;
    uint8_t iv[16];
    int enc = encrypt ? 1 : 0, n, ok;

    ok = ctx && EVP_CipherInit_ex2(ctx, c->evp, c->key, NULL, enc, NULL) &&
         EVP_CIPHER_CTX_set_padding(ctx, 0);
    if (ok && c->essiv_evp) {
        ok = (ivctx = EVP_CIPHER_CTX_new()) &&
             EVP_EncryptInit_ex2(ivctx, c->essiv_evp, c->essiv_key, NULL,
                                 NULL) &&
             EVP_CIPHER_CTX_set_padding(ivctx, 0);
    }
    if (ok && c->spec.mode == VIMG_CMODE_ECB) {
        ok = len <= INT32_MAX && EVP_CipherUpdate(ctx, out, &n, in,
                                                   (int)len);
        len = 0;
    }
    /* A short last unit (key material of aes-192: 96000 bytes) is
     * processed as one, as QEMU and cryptsetup do. */
    for (size_t done = 0, unit; ok && done < len; done += unit, sector++) {
        unit = len - done < LUKS_SECTOR_SIZE ? len - done : LUKS_SECTOR_SIZE;
        memset(iv, 0, sizeof iv);
        if (c->spec.ivgen == VIMG_IVGEN_PLAIN) {
            store_le32(iv, (uint32_t)sector);
        } else {
            store_le64(iv, sector);
        }
        if (ivctx) {
            ok = EVP_EncryptUpdate(ivctx, iv, &n, iv, sizeof iv);
        }
        ok = ok && EVP_CipherInit_ex2(ctx, NULL, NULL, iv, enc, NULL) &&
             EVP_CipherUpdate(ctx, out + done, &n, in + done, (int)unit);
    }
    explicit_bzero(iv, sizeof iv);
    EVP_CIPHER_CTX_free(ctx);
    EVP_CIPHER_CTX_free(ivctx);
    return ok ? 0 : vimg_internal_error(EIO, "%scryption failed in OpenSSL",
                                        encrypt ? "en" : "de");
}
