/* Key material in locked memory, and the caller's secrets. */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "crypto.h"

void *vimg_internal_secure_alloc(size_t len)
{
    if (len == 0) {
        len = 1;
    }
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        return NULL;
    }
    /* Best effort: over RLIMIT_MEMLOCK the key stays usable, only
     * swappable. Keys never belong in a core dump either way. */
    (void)mlock(p, len);
    (void)madvise(p, len, MADV_DONTDUMP);
    return p;
}

void vimg_internal_secure_free(void *p, size_t len)
{
    if (!p) {
        return;
    }
    if (len == 0) {
        len = 1;
    }
    explicit_bzero(p, len);
    (void)munlock(p, len);
    munmap(p, len);
}

int vimg_internal_secret_find(const struct vimg_secret *secrets, size_t n,
                              const char *id, const char *what,
                              const uint8_t **data, size_t *len)
{
    for (size_t i = 0; secrets && i < n; i++) {
        if (secrets[i].id && !strcmp(secrets[i].id, id)) {
            *data = secrets[i].data;
            *len = secrets[i].len;
            return 0;
        }
    }
    /* The id is a name the user chose, never secret itself. */
    return vimg_internal_error(ENOENT, "%s: no secret with id '%s'", what,
                               id);
}

int vimg_internal_image_key(struct vimg_image *img,
                            const struct vimg_opts *opts, const char *option,
                            const uint8_t **pass, size_t *pass_len)
{
    const char *id = vimg_internal_opts_get(opts, option, NULL);
    char name[128] = "";
    size_t n = 0;

    if (id) {
        return vimg_internal_secret_find(img->params.secrets,
                                         img->params.n_secrets, id,
                                         img->filename, pass, pass_len);
    }
    /* The caller's prompt, at any depth of the chain, as QEMU asks per
     * image; the bytes stay the caller's. */
    if (img->params.passphrase) {
        const void *data = NULL;
        size_t len = 0;
        if (img->params.passphrase(img->params.passphrase_opaque,
                                   img->filename, &data, &len) == 0 &&
            data) {
            *pass = data;
            *pass_len = len;
            return 0;
        }
    }
    /* A backing file's options come from its overlay's, under
     * "backing." (QEMU's syntax), once per level. */
    for (const struct vimg_image *p = img->parent;
         p && n + 8 < sizeof name; p = p->parent) {
        memcpy(name + n, "backing.", 8);
        n += 8;
        name[n] = 0;
    }
    return vimg_internal_img_error(img, ENOKEY, "image is encrypted; its "
                                   "passphrase is needed (%s%s=ID naming a "
                                   "secret)", name, option);
}
