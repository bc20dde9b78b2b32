/* The luks format (QEMU's block/crypto.c "luks" driver): a LUKS1 header
 * and key material, then the encrypted guest disk from the payload offset
 * on, its IVs from the guest sector number (as dm-crypt). The header is
 * parsed and validated in lib/crypto/luks.c; ciphers run in the calling
 * thread, so the driver is thread-safe. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/rounding.h"
#include "../crypto/crypto.h"
#include "../internal.h"

/* Data is encrypted through a bounce buffer of at most this much. */
#define CRYPT_CHUNK (1u << 20)

struct luks_state {
    struct vimg_luks luks;
    uint64_t payload;          /* bytes from the start of the file */
};

static const struct vimg_opt_desc luks_create_opts[] = {
    { "size", VIMG_OPT_SIZE, "Virtual disk size" },
    { "key-secret", VIMG_OPT_STRING,
      "ID of the secret that provides the keyslot passphrase" },
    { "cipher-alg", VIMG_OPT_STRING,
      "Name of encryption cipher algorithm (aes-128, aes-192, aes-256)" },
    { "cipher-mode", VIMG_OPT_STRING,
      "Name of encryption cipher mode (xts, cbc, ecb, ctr)" },
    { "ivgen-alg", VIMG_OPT_STRING,
      "Name of IV generator algorithm (plain, plain64, essiv)" },
    { "ivgen-hash-alg", VIMG_OPT_STRING,
      "Name of IV generator hash algorithm" },
    { "hash-alg", VIMG_OPT_STRING, "Name of encryption hash algorithm" },
    { "iter-time", VIMG_OPT_NUMBER, "Time to spend in PBKDF in milliseconds" },
    { "preallocation", VIMG_OPT_STRING,
      "Preallocation mode (allowed values: off, falloc, full)" },
    { NULL, 0, NULL },
};

static const struct vimg_opt_desc luks_runtime_opts[] = {
    { "key-secret", VIMG_OPT_STRING,
      "ID of the secret that provides the keyslot passphrase" },
    { NULL, 0, NULL },
};

/* qemu-img's key-slot options (block/crypto.c). */
static const struct vimg_opt_desc luks_amend_opts[] = {
    { "iter-time", VIMG_OPT_NUMBER, "Time to spend in PBKDF in milliseconds" },
    { "keyslot", VIMG_OPT_NUMBER,
      "Select a single keyslot to modify explicitly" },
    { "new-secret", VIMG_OPT_STRING,
      "New secret to set in the matching keyslots. Empty string to erase" },
    { "old-secret", VIMG_OPT_STRING,
      "Select all keyslots that match this password" },
    { "state", VIMG_OPT_STRING,
      "Select new state of affected keyslots (active/inactive)" },
    { NULL, 0, NULL },
};

static int luks_probe(const uint8_t *buf, size_t len, const char *filename)
{
    (void)filename;
    return len >= 8 && !memcmp(buf, LUKS_MAGIC, LUKS_MAGIC_LEN) &&
                   load_be16(buf + LUKS_HDR_VERSION) == LUKS_VERSION
               ? 100 : 0;
}

static int luks_open(struct vimg_image *img, const struct vimg_opts *opts)
{
    struct luks_state *s = img->opaque;
    uint64_t file_size = (uint64_t)vimg_internal_get_size(img->file);
    uint8_t h[LUKS_HDR_SIZE] = { 0 };
    const uint8_t *pass;
    size_t pass_len;
    int r;

    if ((r = vimg_internal_pread(img->file, h,
                                 MIN(file_size, sizeof h), 0)) < 0 ||
        (r = vimg_internal_luks_parse(h, MIN(file_size, sizeof h),
                                      file_size, img->filename,
                                      &s->luks)) < 0) {
        return r;
    }
    s->payload = vimg_internal_luks_header_len(&s->luks);
    if (s->payload > file_size || s->payload == 0) {
        return vimg_internal_img_error(img, EINVAL, "LUKS payload offset "
                                       "%llu lies outside the file",
                                       (unsigned long long)s->payload);
    }
    img->size = ROUND_DOWN(file_size - s->payload, LUKS_SECTOR_SIZE);
    img->request_alignment = MAX(img->request_alignment, LUKS_SECTOR_SIZE);
    if (img->params.flags & VIMG_OPEN_NO_IO) {
        return 0;
    }
    if ((r = vimg_internal_image_key(img, opts, "key-secret", &pass,
                                     &pass_len)) < 0 ||
        (r = vimg_internal_luks_unlock(&s->luks, img->file, 0, pass,
                                       pass_len, img->filename)) < 0) {
        vimg_internal_luks_free(&s->luks);
        return r;
    }
    return 0;
}

static int luks_close(struct vimg_image *img)
{
    struct luks_state *s = img->opaque;
    vimg_internal_luks_free(&s->luks);
    return 0;
}

static int keyed(struct vimg_image *img)
{
    struct luks_state *s = img->opaque;
    if (!s->luks.unlocked) {
        return vimg_internal_img_error(img, ENOKEY, "image is encrypted and "
                                       "was opened without its passphrase "
                                       "(metadata only)");
    }
    return 0;
}

static int luks_pread(struct vimg_image *img, void *buf, uint64_t count,
                      uint64_t offset)
{
    struct luks_state *s = img->opaque;
    int r;

    if ((r = keyed(img)) < 0 ||
        (r = vimg_internal_pread(img->file, buf, count,
                                 s->payload + offset)) < 0) {
        return r;
    }
    return vimg_internal_cipher_run(&s->luks.cipher, false,
                                    offset / LUKS_SECTOR_SIZE, buf, buf,
                                    count);
}

static int luks_pwrite(struct vimg_image *img, const void *buf,
                       uint64_t count, uint64_t offset, unsigned flags)
{
    struct luks_state *s = img->opaque;
    const uint8_t *in = buf;
    uint8_t *bounce;
    int r;

    if ((r = keyed(img)) < 0) {
        return r;
    }
    if (!(bounce = malloc(MIN(count, CRYPT_CHUNK)))) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    for (uint64_t done = 0, n; r == 0 && done < count; done += n) {
        n = MIN(count - done, CRYPT_CHUNK);
        r = vimg_internal_cipher_run(&s->luks.cipher, true,
                                     (offset + done) / LUKS_SECTOR_SIZE,
                                     in + done, bounce, n);
        if (r == 0) {
            r = vimg_internal_pwrite(img->file, bounce, n,
                                     s->payload + offset + done,
                                     done + n == count ? flags : 0);
        }
    }
    free(bounce);
    return r;
}

static int luks_truncate(struct vimg_image *img, uint64_t size,
                         unsigned flags, enum vimg_prealloc prealloc)
{
    struct luks_state *s = img->opaque;
    if (prealloc == VIMG_PREALLOC_METADATA) {
        return vimg_internal_img_error(img, EINVAL, "preallocation mode "
                                       "'metadata' is not supported by "
                                       "luks");
    }
    int r = vimg_internal_truncate(img->file, s->payload + size, flags,
                                   prealloc);
    if (r == 0) {
        img->size = size;
    }
    return r;
}

static int luks_create(struct vimg_image *file,
                       const struct vimg_create_ctx *c)
{
    const struct vimg_opts *o = c->opts;
    const char *id = vimg_internal_opts_get(o, "key-secret", NULL);
    struct vimg_luks_create lo = {
        .cipher_alg = vimg_internal_opts_get(o, "cipher-alg", NULL),
        .cipher_mode = vimg_internal_opts_get(o, "cipher-mode", NULL),
        .ivgen_alg = vimg_internal_opts_get(o, "ivgen-alg", NULL),
        .ivgen_hash = vimg_internal_opts_get(o, "ivgen-hash-alg", NULL),
        .hash_alg = vimg_internal_opts_get(o, "hash-alg", NULL),
    };
    enum vimg_prealloc prealloc;
    struct vimg_luks l;
    const uint8_t *pass;
    size_t pass_len;
    int r;

    if (!id) {
        return vimg_internal_error(EINVAL, "%s: Parameter 'key-secret' is "
                                   "required for cipher", c->filename);
    }
    if ((r = vimg_internal_opts_get_prealloc(o, &prealloc)) < 0 ||
        (r = vimg_internal_opts_get_size(o, "iter-time", 0,
                                         &lo.iter_time_ms)) < 0 ||
        (r = vimg_internal_secret_find(c->secrets, c->n_secrets, id,
                                       c->filename, &pass, &pass_len)) < 0) {
        return r;
    }
    if (prealloc == VIMG_PREALLOC_METADATA) {
        return vimg_internal_error(EINVAL, "%s: preallocation mode "
                                   "'metadata' is not supported by luks",
                                   c->filename);
    }
    if ((r = vimg_internal_luks_format(&l, &lo, pass, pass_len,
                                       c->filename)) < 0) {
        return r;
    }
    uint64_t size = ROUND_UP(c->size, LUKS_SECTOR_SIZE);
    /* As QEMU: the header, then the file grown to the payload's end (the
     * payload reads as whatever zeros decrypt to until written). */
    if ((r = vimg_internal_luks_write(&l, file, 0)) == 0) {
        r = vimg_internal_truncate(file,
                                   vimg_internal_luks_header_len(&l) + size,
                                   0, prealloc);
    }
    vimg_internal_luks_free(&l);
    return r;
}

/* Key slots, as qemu-img amend changes them; the header sits at the
 * start of the file. */
static int luks_amend(struct vimg_image *img, const struct vimg_opts *opts,
                      const struct vimg_amend_params *p)
{
    struct luks_state *s = img->opaque;
    struct vimg_luks_amend a;
    bool any;
    int r;

    /* Every amend option of luks is a key-slot one: ANY holds. */
    if ((r = vimg_internal_luks_amend_parse(opts, "", img->filename, &a,
                                            &any)) < 0) {
        return r;
    }
    return vimg_internal_luks_amend(&s->luks, img->file, 0, &a, p->force,
                                    p->secrets, p->n_secrets,
                                    img->filename);
}

static int luks_get_info(struct vimg_image *img, struct vimg_value *info)
{
    struct luks_state *s = img->opaque;
    struct vimg_value *spec = vimg_internal_value_new(VIMG_VALUE_OBJECT);
    struct vimg_value *data = vimg_internal_value_new(VIMG_VALUE_OBJECT);
    int r;

    if (!spec || !data) {
        vimg_value_free(spec);
        vimg_value_free(data);
        return -ENOMEM;
    }
    if ((r = vimg_internal_luks_info(&s->luks, false, data)) < 0 ||
        (r = vimg_internal_value_set_str(spec, "type", "luks")) < 0) {
        vimg_value_free(spec);
        vimg_value_free(data);
        return r;
    }
    if ((r = vimg_internal_value_add(spec, "data", data)) < 0) {
        vimg_value_free(spec);
        return r;
    }
    if ((r = vimg_internal_value_add(info, "format-specific", spec)) < 0) {
        return r;
    }
    return vimg_internal_value_set_bool(info, "encrypted", true);
}

const struct vimg_driver vimg_driver_luks = {
    .name = "luks",
    .kind = VIMG_DRIVER_FORMAT,
    .instance_size = sizeof(struct luks_state),
    .thread_safe = true,
    /* The payload reads as zeros decrypted: garbage until written. */
    .has_zero_init = false,
    .create_opts = luks_create_opts,
    .runtime_opts = luks_runtime_opts,
    .amend_opts = luks_amend_opts,
    .probe = luks_probe,
    .open = luks_open,
    .close = luks_close,
    .create = luks_create,
    .pread = luks_pread,
    .pwrite = luks_pwrite,
    .truncate = luks_truncate,
    .get_info = luks_get_info,
    .amend = luks_amend,
};
