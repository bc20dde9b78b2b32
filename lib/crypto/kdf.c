/* PBKDF2 (PKCS #5 v2.0) and the anti-forensic information splitter of the
 * LUKS1 specification ("AF-Splitter"), with the hashes LUKS headers name,
 * on OpenSSL. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "crypto.h"

static const char *const luks_hashes[] = {
    "sha1", "sha224", "sha256", "sha384", "sha512", "ripemd160", "md5",
};

static const EVP_MD *get_md(const char *hash)
{
    for (size_t i = 0; i < sizeof luks_hashes / sizeof luks_hashes[0]; i++) {
        if (!strcmp(hash, luks_hashes[i])) {
            return EVP_get_digestbyname(hash);
        }
    }
    return NULL;
}

bool vimg_internal_hash_known(const char *hash)
{
    return get_md(hash) != NULL;
}

size_t vimg_internal_hash_len(const char *hash)
{
    const EVP_MD *md = get_md(hash);
    return md ? (size_t)EVP_MD_get_size(md) : 0;
}

int vimg_internal_pbkdf2(const char *hash, const void *pass, size_t pass_len,
                         const uint8_t *salt, size_t salt_len, uint32_t iter,
                         uint8_t *out, size_t out_len)
{
    const EVP_MD *md = get_md(hash);
    static const char empty[1];

    if (!md || iter == 0 || iter > INT32_MAX || pass_len > INT32_MAX) {
        return vimg_internal_error(EINVAL, "PBKDF2 with %s and %u "
                                   "iterations is not possible", hash, iter);
    }
    if (!PKCS5_PBKDF2_HMAC(pass_len ? pass : empty, (int)pass_len, salt,
                           (int)salt_len, (int)iter, md, (int)out_len,
                           out)) {
        return vimg_internal_error(EIO, "PBKDF2 with %s failed in OpenSSL",
                                   hash);
    }
    return 0;
}

static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* As QEMU's qcrypto_pbkdf2_count_iters, on CPU time (so a busy machine
 * does not shrink the count), but measured over 100 ms rather than 500. */
int vimg_internal_pbkdf2_rate(const char *hash, uint64_t *per_second)
{
    size_t dlen = vimg_internal_hash_len(hash);
    uint8_t salt[LUKS_SALT_LEN] = { 0 }, out[64];
    uint32_t iter = 1u << 12;
    int r;

    if (!dlen) {
        return vimg_internal_error(EINVAL, "unknown hash '%s'", hash);
    }
    for (;;) {
        uint64_t t0 = thread_cpu_ns();
        if ((r = vimg_internal_pbkdf2(hash, "vimg", 4, salt, sizeof salt,
                                      iter, out, dlen)) < 0) {
            return r;
        }
        uint64_t dt = thread_cpu_ns() - t0;
        if (dt >= 100000000u || iter >= (1u << 30)) {
            *per_second = (uint64_t)iter * 1000000000u / (dt ? dt : 1);
            return 0;
        }
        iter *= dt < 10000000u ? 8 : 2;
    }
}

/* The specification's diffuse function H1: the buffer as digest-sized
 * blocks (the last may be short), each replaced by the hash of its
 * big-endian index followed by the block, cut to the block's length. */
static int diffuse(const EVP_MD *md, uint8_t *buf, size_t len)
{
    size_t ds = (size_t)EVP_MD_get_size(md);
    uint8_t digest[EVP_MAX_MD_SIZE];
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx != NULL;

    for (size_t i = 0; ok && i * ds < len; i++) {
        uint8_t be[4];
        size_t n = len - i * ds < ds ? len - i * ds : ds;
        store_be32(be, (uint32_t)i);
        ok = EVP_DigestInit_ex(ctx, md, NULL) &&
             EVP_DigestUpdate(ctx, be, 4) &&
             EVP_DigestUpdate(ctx, buf + i * ds, n) &&
             EVP_DigestFinal_ex(ctx, digest, NULL);
        memcpy(buf + i * ds, digest, n);
    }
    EVP_MD_CTX_free(ctx);
    return ok ? 0 : vimg_internal_error(EIO, "hashing failed in OpenSSL");
}

static void xor_into(uint8_t *d, const uint8_t *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        d[i] ^= s[i];
    }
}

/* d = 0; for each stripe but the last, d = H1(d ^ stripe). */
static int af_chain(const EVP_MD *md, const uint8_t *stripes, size_t len,
                    uint32_t n, uint8_t *d)
{
    memset(d, 0, len);
    for (uint32_t i = 0; i + 1 < n; i++) {
        xor_into(d, stripes + (size_t)i * len, len);
        int r = diffuse(md, d, len);
        if (r < 0) {
            return r;
        }
    }
    return 0;
}

int vimg_internal_af_split(const char *hash, const uint8_t *in, size_t len,
                           uint32_t stripes, uint8_t *out)
{
    const EVP_MD *md = get_md(hash);
    uint8_t *d;
    int r;

    if (!md || stripes == 0) {
        return vimg_internal_error(EINVAL, "AF split with '%s' is not "
                                   "possible", hash);
    }
    if (RAND_bytes(out, (int)(len * (stripes - 1))) != 1) {
        return vimg_internal_error(EIO, "no random bytes from OpenSSL");
    }
    if (!(d = vimg_internal_secure_alloc(len))) {
        return vimg_internal_error(ENOMEM, "out of memory");
    }
    if ((r = af_chain(md, out, len, stripes, d)) == 0) {
        uint8_t *last = out + (size_t)(stripes - 1) * len;
        memcpy(last, in, len);
        xor_into(last, d, len);
    }
    vimg_internal_secure_free(d, len);
    return r;
}

int vimg_internal_af_merge(const char *hash, const uint8_t *in, size_t len,
                           uint32_t stripes, uint8_t *out)
{
    const EVP_MD *md = get_md(hash);
    int r;

    if (!md || stripes == 0) {
        return vimg_internal_error(EINVAL, "AF merge with '%s' is not "
                                   "possible", hash);
    }
    if ((r = af_chain(md, in, len, stripes, out)) == 0) {
        xor_into(out, in + (size_t)(stripes - 1) * len, len);
    }
    return r;
}
