/* Disk encryption shared by the qcow2 and luks drivers: locked memory for
 * key material, secrets from the caller, PBKDF2 and the anti-forensic
 * splitter of LUKS1, sector ciphers, and the LUKS1 header. All of it is
 * built on OpenSSL's libcrypto; nothing here is a hand-written cipher. */
#ifndef VIMG_CRYPTO_H
#define VIMG_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../internal.h"
#include "luks-ondisk.h"

/* ---- secret.c: key material and the caller's secrets ----------------- */

/* LEN zeroed bytes of memory locked against swapping where the
 * RLIMIT_MEMLOCK allows (unlocked otherwise), excluded from core dumps;
 * NULL when out of memory. */
void *vimg_internal_secure_alloc(size_t len);
/* Wipe (explicit_bzero) and release what vimg_internal_secure_alloc gave.
 * NULL is a no-op. */
void vimg_internal_secure_free(void *p, size_t len);

/* The bytes of the secret named ID among SECRETS (borrowed). WHAT names the
 * image in the message; -ENOENT when no secret has that id. */
int vimg_internal_secret_find(const struct vimg_secret *secrets, size_t n,
                              const char *id, const char *what,
                              const uint8_t **data, size_t *len);
/* The passphrase of IMG, an encrypted image in its driver's open: the
 * secret (from IMG's open parameters) that OPTION in OPTS names. -ENOKEY
 * when OPTS names none, with a message giving the option as the user
 * writes it at the top of the chain (backing.OPTION for a backing
 * file). */
int vimg_internal_image_key(struct vimg_image *img,
                            const struct vimg_opts *opts, const char *option,
                            const uint8_t **pass, size_t *pass_len);

/* ---- kdf.c: PBKDF2 and the LUKS1 anti-forensic splitter --------------- */

/* True when HASH is a hash name LUKS1 headers use that OpenSSL has
 * (sha1, sha224, sha256, sha384, sha512, ripemd160, md5). */
bool vimg_internal_hash_known(const char *hash);
/* Digest length of HASH, 0 when unknown. */
size_t vimg_internal_hash_len(const char *hash);
int vimg_internal_pbkdf2(const char *hash, const void *pass, size_t pass_len,
                         const uint8_t *salt, size_t salt_len, uint32_t iter,
                         uint8_t *out, size_t out_len);
/* PBKDF2 iterations of HASH this thread computes per second for one
 * digest-sized block of output (measured on CPU time). */
int vimg_internal_pbkdf2_rate(const char *hash, uint64_t *per_second);
/* LUKS1 AF-split: LEN bytes of IN into STRIPES * LEN bytes of OUT; merge
 * reverses it. OUT of merge is LEN bytes. */
int vimg_internal_af_split(const char *hash, const uint8_t *in, size_t len,
                           uint32_t stripes, uint8_t *out);
int vimg_internal_af_merge(const char *hash, const uint8_t *in, size_t len,
                           uint32_t stripes, uint8_t *out);

/* ---- cipher.c: sector ciphers ------------------------------------------ */

enum vimg_cipher_mode { VIMG_CMODE_ECB, VIMG_CMODE_CBC, VIMG_CMODE_XTS,
                        VIMG_CMODE_CTR };
enum vimg_ivgen { VIMG_IVGEN_PLAIN, VIMG_IVGEN_PLAIN64, VIMG_IVGEN_ESSIV };

/* What LUKS names a cipher: "aes" with KEY_BYTES (both halves for XTS),
 * a mode, an IV generator and, for ESSIV, its hash. */
struct vimg_cipher_spec {
    unsigned aes_bits;        /* 128, 192 or 256 (one XTS half) */
    enum vimg_cipher_mode mode;
    enum vimg_ivgen ivgen;
    char ivhash[16];          /* ESSIV hash, "" otherwise */
};

/* A sector cipher with its key. Immutable once made, so any number of
 * threads encrypt and decrypt with it at once; each call makes its own
 * OpenSSL context in the calling thread. */
struct vimg_cipher {
    struct vimg_cipher_spec spec;
    void *evp;                /* EVP_CIPHER of the data cipher */
    void *essiv_evp;          /* EVP_CIPHER (ECB) of ESSIV, or NULL */
    uint8_t *key;             /* locked memory */
    size_t key_len;
    uint8_t *essiv_key;       /* hash of the key (locked), or NULL */
    size_t essiv_key_len;
};

/* Parse "aes" + "xts-plain64" / "cbc-essiv:sha256" (LUKS header names)
 * with KEY_BYTES; WHAT names the image. -ENOTSUP for what OpenSSL or this
 * code cannot do, with a message. */
int vimg_internal_cipher_parse(const char *name, const char *mode,
                               uint32_t key_bytes, const char *what,
                               struct vimg_cipher_spec *spec);
/* Key bytes SPEC needs. */
size_t vimg_internal_cipher_key_len(const struct vimg_cipher_spec *spec);
/* Make C for SPEC with KEY (copied into locked memory). */
int vimg_internal_cipher_init(struct vimg_cipher *c,
                              const struct vimg_cipher_spec *spec,
                              const uint8_t *key, size_t key_len);
void vimg_internal_cipher_free(struct vimg_cipher *c);
/* Make C for QEMU's legacy "qcow" AES method (qcow v1 and qcow2
 * crypt_method 1): AES-128-CBC with plain64 IVs, keyed by PASS as a C
 * string cut or zero-padded to 16 bytes (QEMU crypto/block-qcow.c). The
 * caller numbers sectors from the guest offset. */
int vimg_internal_cipher_init_aes_legacy(struct vimg_cipher *c,
                                         const uint8_t *pass,
                                         size_t pass_len);
/* Encrypt (ENCRYPT) or decrypt LEN bytes from IN to OUT (may be the same
 * buffer) as 512-byte sectors (the last may be shorter, a multiple of the
 * block size), the first numbered SECTOR for the IV generator. */
int vimg_internal_cipher_run(const struct vimg_cipher *c, bool encrypt,
                             uint64_t sector, const uint8_t *in,
                             uint8_t *out, size_t len);

/* ---- luks.c: the LUKS1 header ------------------------------------------ */

struct vimg_luks_slot {
    bool active;
    uint32_t iterations;
    uint8_t salt[LUKS_SALT_LEN];
    uint32_t key_offset;      /* sectors from the header */
    uint32_t stripes;
};

/* A parsed and validated LUKS1 header, and once unlocked its cipher. */
struct vimg_luks {
    char cipher_name[LUKS_NAME_LEN + 1];
    char cipher_mode[LUKS_NAME_LEN + 1];
    char hash[LUKS_NAME_LEN + 1];
    char uuid[LUKS_UUID_LEN + 1];
    uint32_t payload_offset;  /* sectors */
    uint32_t key_bytes;
    uint8_t mk_digest[LUKS_DIGEST_LEN];
    uint8_t mk_salt[LUKS_SALT_LEN];
    uint32_t mk_iterations;
    struct vimg_luks_slot slots[LUKS_NUM_SLOTS];
    struct vimg_cipher_spec spec;
    struct vimg_cipher cipher; /* valid when unlocked */
    bool unlocked;
    uint8_t *material;        /* slot 0's encrypted key material, made by
                                 vimg_internal_luks_format until written */
    uint8_t raw[LUKS_HDR_SIZE]; /* the header as parsed: key-slot changes
                                 rewrite only their slot's bytes */
};

/* Validate the LUKS1 header in BUF (LEN bytes, at least LUKS_HDR_SIZE
 * read, LEN short only for a short file) against REGION bytes available
 * for it (the file, or qcow2's extension); WHAT names the image. The one
 * place header fields are checked: magic, version, names, key size,
 * iterations, stripes, key material inside REGION and apart. */
int vimg_internal_luks_parse(const uint8_t *buf, size_t len,
                             uint64_t region, const char *what,
                             struct vimg_luks *l);
/* Try PASS on every active key slot; key material is read from FILE at
 * BASE + its offset. -EKEYREJECTED when it unlocks none. */
int vimg_internal_luks_unlock(struct vimg_luks *l, struct vimg_image *file,
                              uint64_t base, const uint8_t *pass,
                              size_t pass_len, const char *what);
/* Options of a new LUKS1 header (QEMU's names), validated. */
struct vimg_luks_create {
    const char *cipher_alg;   /* aes-128 | aes-192 | aes-256 (default) */
    const char *cipher_mode;  /* xts (default) | cbc | ecb | ctr */
    const char *ivgen_alg;    /* plain64 (default) | plain | essiv */
    const char *ivgen_hash;   /* essiv's hash, default sha256 */
    const char *hash_alg;     /* PBKDF2 and AF hash, default sha256 */
    uint64_t iter_time_ms;    /* default 2000 */
};
/* Make a new header protected by PASS with one active slot: a random
 * master key (L unlocked with it), QEMU's layout. The header bytes are
 * written by vimg_internal_luks_write. */
int vimg_internal_luks_format(struct vimg_luks *l,
                              const struct vimg_luks_create *o,
                              const uint8_t *pass, size_t pass_len,
                              const char *what);
/* The header length (to the payload) a new header with O would have. */
int vimg_internal_luks_header_size(const struct vimg_luks_create *o,
                                   const char *what, uint64_t *len);
/* Bytes from the header to the payload (QEMU's header length). */
static inline uint64_t vimg_internal_luks_header_len(const struct vimg_luks *l)
{
    return (uint64_t)l->payload_offset * LUKS_SECTOR_SIZE;
}
/* Write the header and slot 0's key material made by format at BASE. */
int vimg_internal_luks_write(struct vimg_luks *l, struct vimg_image *file,
                             uint64_t base);
void vimg_internal_luks_free(struct vimg_luks *l);

/* A key-slot change as qemu-img amend makes it (QEMU's
 * QCryptoBlockAmendOptionsLUKS): add a passphrase (state=active) or erase
 * key slots (state=inactive). */
struct vimg_luks_amend {
    bool activate;
    bool has_keyslot;
    uint64_t keyslot;
    const char *new_secret;   /* secret ids; NULL: not given */
    const char *old_secret;
    bool has_iter_time;
    uint64_t iter_time_ms;
};
/* Read the amend options STATE, KEYSLOT, NEW-SECRET, OLD-SECRET and
 * ITER-TIME, each after PREFIX ("" for luks, "encrypt." for qcow2), from
 * OPTS into A; *ANY tells whether any is given (the others may be left
 * out then). EINVAL with qemu-img's message for a missing or bad
 * state. */
int vimg_internal_luks_amend_parse(const struct vimg_opts *opts,
                                   const char *prefix, const char *what,
                                   struct vimg_luks_amend *a, bool *any);
/* Apply A to L (unlocked) whose header is at BASE in FILE, with qemu-img's
 * checks and messages; FORCE allows overwriting an active slot and
 * erasing the last one. SECRETS hold what A names. A new slot's key
 * material is written and flushed before the header marks it active;
 * an erased slot is marked inactive (flushed) and then its material is
 * overwritten with random bytes. */
/* The checks of vimg_internal_luks_amend that need no key derivation
 * (options, slot numbers and states, the secrets named), to refuse a
 * change before anything else changes. */
int vimg_internal_luks_amend_check(const struct vimg_luks *l,
                                   const struct vimg_luks_amend *a,
                                   bool force,
                                   const struct vimg_secret *secrets,
                                   size_t n_secrets, const char *what);
int vimg_internal_luks_amend(struct vimg_luks *l, struct vimg_image *file,
                             uint64_t base, const struct vimg_luks_amend *a,
                             bool force, const struct vimg_secret *secrets,
                             size_t n_secrets, const char *what);
/* The fields qemu-img info shows, in its order, into OBJ; FORMAT adds
 * "format": "luks" where qcow2 shows it. */
int vimg_internal_luks_info(const struct vimg_luks *l, bool format,
                            struct vimg_value *obj);

#endif
