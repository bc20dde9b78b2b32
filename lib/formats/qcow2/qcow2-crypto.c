/* qcow2 encryption (QEMU docs/interop/qcow2.txt, "Full disk encryption
 * header pointer" and crypt_method): LUKS1 with its header inside the
 * image, IVs from the host offset of each sector; and the legacy AES
 * method (AES-128-CBC keyed by the passphrase itself, IVs from the guest
 * sector), read only. Ciphers run in the calling thread, outside the
 * metadata lock. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../../common/rounding.h"
#include "../../crypto/crypto.h"
#include "qcow2.h"

/* Data is encrypted through a bounce buffer of at most this much. */
#define CRYPT_CHUNK (1u << 20)

struct qcow2_crypto {
    struct vimg_luks luks;      /* LUKS: the parsed header */
    struct vimg_cipher legacy;  /* AES: the cipher */
    bool keyed;                 /* data can be read and written */
};

static int open_luks(struct vimg_image *img, struct qcow2_crypto *c,
                     const struct vimg_opts *opts)
{
    struct qcow2_state *s = qcow2_state(img);
    uint8_t h[LUKS_HDR_SIZE];
    const uint8_t *pass;
    size_t pass_len;
    int r;

    if (!s->crypto_length) {
        return vimg_internal_img_error(img, EINVAL, "LUKS encryption needs "
                                       "the full disk encryption header "
                                       "extension, which is missing");
    }
    if (s->crypto_length < LUKS_HDR_SIZE) {
        return vimg_internal_img_error(img, EINVAL, "the LUKS header (%llu "
                                       "bytes) is truncated",
                                       (unsigned long long)s->crypto_length);
    }
    if ((r = vimg_internal_pread(img->file, h, sizeof h,
                                 s->crypto_offset)) < 0 ||
        (r = vimg_internal_luks_parse(h, sizeof h, s->crypto_length,
                                      img->filename, &c->luks)) < 0) {
        return r;
    }
    if (img->params.flags & VIMG_OPEN_NO_IO) {
        return 0;
    }
    if ((r = vimg_internal_image_key(img, opts, "encrypt.key-secret", &pass,
                                     &pass_len)) < 0 ||
        (r = vimg_internal_luks_unlock(&c->luks, img->file,
                                       s->crypto_offset, pass, pass_len,
                                       img->filename)) < 0) {
        return r;
    }
    c->keyed = true;
    return 0;
}

static int open_legacy(struct vimg_image *img, struct qcow2_crypto *c,
                       const struct vimg_opts *opts)
{
    const uint8_t *pass;
    size_t pass_len;
    int r;

    if (img->writable && !(img->params.flags & VIMG_OPEN_CHECK)) {
        return vimg_internal_img_error(img, ENOTSUP, "legacy AES "
                                       "encryption is not secure and vimg "
                                       "only reads it; convert the image "
                                       "(to encrypt.format=luks, say) to "
                                       "write");
    }
    if (img->params.flags & VIMG_OPEN_NO_IO) {
        return 0;
    }
    if ((r = vimg_internal_image_key(img, opts, "encrypt.key-secret", &pass,
                                     &pass_len)) < 0 ||
        (r = vimg_internal_cipher_init_aes_legacy(&c->legacy, pass,
                                                  pass_len)) < 0) {
        return r;
    }
    c->keyed = true;
    return 0;
}

int qcow2_crypto_open(struct vimg_image *img, const struct vimg_opts *opts)
{
    struct qcow2_state *s = qcow2_state(img);
    int r;

    if (s->crypto_length && s->crypt_method != QCOW2_CRYPT_LUKS) {
        return vimg_internal_img_error(img, EINVAL, "full disk encryption "
                                       "header extension in an image not "
                                       "encrypted with LUKS");
    }
    if (!s->crypt_method) {
        return 0;
    }
    if (!(s->crypto = calloc(1, sizeof *s->crypto))) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    r = s->crypt_method == QCOW2_CRYPT_LUKS ? open_luks(img, s->crypto, opts)
                                            : open_legacy(img, s->crypto,
                                                          opts);
    if (r < 0) {
        qcow2_crypto_close(s);
        return r;
    }
    /* Ciphers work on whole sectors: the core bounces smaller requests. */
    img->request_alignment = MAX(img->request_alignment, 512u);
    return 0;
}

void qcow2_crypto_close(struct qcow2_state *s)
{
    if (s->crypto) {
        vimg_internal_luks_free(&s->crypto->luks);
        vimg_internal_cipher_free(&s->crypto->legacy);
        free(s->crypto);
        s->crypto = NULL;
    }
}

int qcow2_crypto_ready(struct vimg_image *img)
{
    struct qcow2_state *s = qcow2_state(img);
    if (s->crypt_method && !s->crypto->keyed) {
        return vimg_internal_img_error(img, ENOKEY, "image is encrypted and "
                                       "was opened without its passphrase "
                                       "(metadata only)");
    }
    return 0;
}

/* LUKS IVs come from the host offset, the legacy method's from the guest
 * offset (QEMU's crypt_physical_offset). */
static int run(struct vimg_image *img, bool encrypt, uint64_t host,
               uint64_t guest, const void *in, void *out, uint64_t len)
{
    struct qcow2_state *s = qcow2_state(img);
    if (s->crypt_method == QCOW2_CRYPT_LUKS) {
        return vimg_internal_cipher_run(&s->crypto->luks.cipher, encrypt,
                                        host / LUKS_SECTOR_SIZE, in, out,
                                        len);
    }
    return vimg_internal_cipher_run(&s->crypto->legacy, encrypt,
                                    guest / LUKS_SECTOR_SIZE, in, out, len);
}

int qcow2_crypto_pread(struct vimg_image *img, void *buf, uint64_t len,
                       uint64_t host, uint64_t guest)
{
    struct qcow2_state *s = qcow2_state(img);
    int r = vimg_internal_pread(s->data, buf, len, host);
    if (r < 0 || !s->crypt_method) {
        return r;
    }
    if ((r = run(img, false, host, guest, buf, buf, len)) < 0) {
        return vimg_internal_img_error(img, -r, "decrypting data at host "
                                       "offset 0x%llx failed",
                                       (unsigned long long)host);
    }
    return 0;
}

int qcow2_crypto_pwrite(struct vimg_image *img, const void *buf,
                        uint64_t len, uint64_t host, uint64_t guest)
{
    struct qcow2_state *s = qcow2_state(img);
    const uint8_t *in = buf;
    uint8_t *bounce;
    int r = 0;

    if (!s->crypt_method) {
        return vimg_internal_pwrite(s->data, buf, len, host, 0);
    }
    if (!(bounce = malloc(MIN(len, CRYPT_CHUNK)))) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    for (uint64_t done = 0, n; r == 0 && done < len; done += n) {
        n = MIN(len - done, CRYPT_CHUNK);
        r = run(img, true, host + done, guest + done, in + done, bounce, n);
        if (r == 0) {
            r = vimg_internal_pwrite(s->data, bounce, n, host + done, 0);
        }
    }
    free(bounce);
    return r;
}

int qcow2_crypto_info(struct vimg_image *img, struct vimg_value *data)
{
    struct qcow2_state *s = qcow2_state(img);
    struct vimg_value *enc = vimg_internal_value_new(VIMG_VALUE_OBJECT);
    int r;

    if (!enc) {
        return -ENOMEM;
    }
    if (s->crypt_method == QCOW2_CRYPT_LUKS) {
        r = vimg_internal_luks_info(&s->crypto->luks, true, enc);
    } else {
        r = vimg_internal_value_set_str(enc, "format", "aes");
    }
    if (r < 0) {
        vimg_value_free(enc);
        return r;
    }
    return vimg_internal_value_add(data, "encrypt", enc);
}

/* ---- Creating --------------------------------------------------------- */

int qcow2_crypto_create_params(const struct vimg_create_ctx *c,
                               struct vimg_luks_create *o, bool *luks,
                               const uint8_t **pass, size_t *pass_len)
{
    const struct vimg_opts *opts = c->opts;
    const char *fmt = vimg_internal_opts_get(opts, "encrypt.format", NULL);
    bool legacy = false;
    int r;

    *luks = false;
    if ((r = vimg_internal_opts_get_bool(opts, "encryption", false,
                                         &legacy)) < 0) {
        return r;
    }
    if (legacy && fmt) {
        return vimg_internal_error(EINVAL, "%s: encrypt.format and "
                                   "encryption are mutually exclusive",
                                   c->filename);
    }
    if (legacy || (fmt && !strcmp(fmt, "aes"))) {
        return vimg_internal_error(ENOTSUP, "%s: vimg does not create "
                                   "images with the legacy AES encryption, "
                                   "which is not secure; use "
                                   "encrypt.format=luks", c->filename);
    }
    if (!fmt) {
        static const char *const others[] = {
            "encrypt.key-secret", "encrypt.cipher-alg", "encrypt.cipher-mode",
            "encrypt.ivgen-alg", "encrypt.ivgen-hash-alg",
            "encrypt.hash-alg", "encrypt.iter-time",
        };
        for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
            if (vimg_internal_opts_get(opts, others[i], NULL)) {
                return vimg_internal_error(EINVAL, "%s: %s needs "
                                           "encrypt.format", c->filename,
                                           others[i]);
            }
        }
        return 0;
    }
    if (strcmp(fmt, "luks")) {
        return vimg_internal_error(EINVAL, "%s: encrypt.format '%s' is not "
                                   "supported (luks)", c->filename, fmt);
    }
    const char *id = vimg_internal_opts_get(opts, "encrypt.key-secret",
                                            NULL);
    if (!id) {
        return vimg_internal_error(EINVAL, "%s: Parameter "
                                   "'encrypt.key-secret' is required for "
                                   "cipher", c->filename);
    }
    if ((r = vimg_internal_secret_find(c->secrets, c->n_secrets, id,
                                       c->filename, pass, pass_len)) < 0 ||
        (r = vimg_internal_opts_get_size(opts, "encrypt.iter-time", 0,
                                         &o->iter_time_ms)) < 0) {
        return r;
    }
    o->cipher_alg = vimg_internal_opts_get(opts, "encrypt.cipher-alg", NULL);
    o->cipher_mode = vimg_internal_opts_get(opts, "encrypt.cipher-mode",
                                            NULL);
    o->ivgen_alg = vimg_internal_opts_get(opts, "encrypt.ivgen-alg", NULL);
    o->ivgen_hash = vimg_internal_opts_get(opts, "encrypt.ivgen-hash-alg",
                                           NULL);
    o->hash_alg = vimg_internal_opts_get(opts, "encrypt.hash-alg", NULL);
    *luks = true;
    return 0;
}

/* Put a full disk encryption header extension into the header cluster,
 * before the feature name table as QEMU orders them, and set the LUKS
 * method. */
static int add_extension(struct vimg_image *img)
{
    struct qcow2_state *s = qcow2_state(img);
    const unsigned ext = QCOW2_EXT_DATA + QCOW2_CRYPTO_EXT_SIZE;
    uint64_t cs = s->cluster_size, pos = s->header_length, end;
    uint64_t boff = load_be64(s->hdr + QCOW2_HDR_BACKING_FILE_OFFSET);
    uint32_t blen = load_be32(s->hdr + QCOW2_HDR_BACKING_FILE_SIZE);
    uint8_t *c = s->cluster0;

    memcpy(c, s->hdr, MIN(sizeof s->hdr, cs));
    for (;;) {
        uint32_t type = load_be32(c + pos + QCOW2_EXT_TYPE);
        if (type == QCOW2_EXT_END || type == QCOW2_EXT_FEATURE_TABLE) {
            break;
        }
        pos += QCOW2_EXT_DATA +
               ROUND_UP((uint64_t)load_be32(c + pos + QCOW2_EXT_LENGTH), 8);
    }
    for (end = pos; load_be32(c + end + QCOW2_EXT_TYPE) != QCOW2_EXT_END;) {
        end += QCOW2_EXT_DATA +
               ROUND_UP((uint64_t)load_be32(c + end + QCOW2_EXT_LENGTH), 8);
    }
    end += QCOW2_EXT_DATA;
    if (boff) {
        end = boff + blen;
    }
    if (end + ext > cs) {
        return vimg_internal_img_error(img, EINVAL, "no room in the header "
                                       "cluster for the encryption header "
                                       "extension");
    }
    memmove(c + pos + ext, c + pos, end - pos);
    store_be32(c + pos + QCOW2_EXT_TYPE, QCOW2_EXT_CRYPTO_HEADER);
    store_be32(c + pos + QCOW2_EXT_LENGTH, QCOW2_CRYPTO_EXT_SIZE);
    store_be64(c + pos + QCOW2_EXT_DATA + QCOW2_CRYPTO_EXT_OFFSET,
               s->crypto_offset);
    store_be64(c + pos + QCOW2_EXT_DATA + QCOW2_CRYPTO_EXT_LENGTH,
               s->crypto_length);
    if (boff) {
        store_be64(c + QCOW2_HDR_BACKING_FILE_OFFSET, boff + ext);
    }
    store_be32(c + QCOW2_HDR_CRYPT_METHOD, QCOW2_CRYPT_LUKS);
    memcpy(s->hdr, c, MIN(sizeof s->hdr, cs));
    return qcow2_write_meta(img, QCOW2_ROLE_HEADER, c, cs, 0);
}

int qcow2_crypto_create(struct vimg_image *img,
                        const struct vimg_luks_create *o,
                        const uint8_t *pass, size_t pass_len)
{
    struct qcow2_state *s = qcow2_state(img);
    struct vimg_luks l;
    uint64_t off, len, clusters;
    int r;

    if ((r = vimg_internal_luks_format(&l, o, pass, pass_len,
                                       img->filename)) < 0) {
        return r;
    }
    len = vimg_internal_luks_header_len(&l);
    clusters = DIV_ROUND_UP(len, s->cluster_size);
    /* As QEMU: the header's clusters are zeroed first, since only one of
     * the eight key slots is written. */
    if ((r = qcow2_alloc_clusters(img, clusters, &off)) == 0 &&
        (r = vimg_internal_zero(img->file, off, clusters * s->cluster_size,
                                0)) == 0 &&
        (r = vimg_internal_luks_write(&l, img->file, off)) == 0 &&
        (r = qcow2_flush_metadata(img)) == 0) {
        s->crypto_offset = off;
        s->crypto_length = len;
        s->crypt_method = QCOW2_CRYPT_LUKS;
        r = add_extension(img);
    }
    vimg_internal_luks_free(&l);
    return r;
}

/* ---- Key slots -------------------------------------------------------- */

int qcow2_crypto_amend_check(struct vimg_image *img,
                             const struct vimg_luks_amend *a,
                             const struct vimg_amend_params *p)
{
    struct qcow2_state *s = qcow2_state(img);
    int r;

    /* The key slots are written in place: the region, validated at open
     * against the file, must hold nothing else. */
    if ((r = qcow2_crypto_ready(img)) < 0 ||
        (r = qcow2_overlap_check(img, QCOW2_ROLE_CRYPTO, s->crypto_offset,
                                 s->crypto_length)) < 0) {
        return r;
    }
    return vimg_internal_luks_amend_check(&s->crypto->luks, a, p->force,
                                          p->secrets, p->n_secrets,
                                          img->filename);
}

int qcow2_crypto_amend(struct vimg_image *img,
                       const struct vimg_luks_amend *a,
                       const struct vimg_amend_params *p)
{
    struct qcow2_state *s = qcow2_state(img);
    int r = qcow2_crypto_amend_check(img, a, p);

    if (r < 0) {
        return r;
    }
    return vimg_internal_luks_amend(&s->crypto->luks, img->file,
                                    s->crypto_offset, a, p->force,
                                    p->secrets, p->n_secrets,
                                    img->filename);
}
