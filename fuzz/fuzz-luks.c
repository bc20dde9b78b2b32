/* Fuzz the LUKS1 header parser (lib/crypto/luks.c) and the luks driver:
 * parse the input against a generous region and against its own length,
 * open it as a luks image without a key (info), and, when its key slots
 * are cheap to try (few PBKDF2 iterations), with a passphrase, reading a
 * little of what it unlocks. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "internal.h"

/* Unlocking costs every active slot's PBKDF2 iterations: keep runs fast. */
#define MAX_FUZZ_ITERATIONS 2000

static bool cheap(const struct vimg_luks *l)
{
    if (l->mk_iterations > MAX_FUZZ_ITERATIONS) {
        return false;
    }
    for (unsigned i = 0; i < LUKS_NUM_SLOTS; i++) {
        if (l->slots[i].active &&
            l->slots[i].iterations > MAX_FUZZ_ITERATIONS) {
            return false;
        }
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct vimg_luks l;
    bool try_key = false;

    if (vimg_internal_luks_parse(data, size, 4u << 20, "fuzz", &l) == 0) {
        try_key = cheap(&l);
    }
    (void)vimg_internal_luks_parse(data, size, size, "fuzz", &l);

    struct vimg_open_params p = { .format = "luks",
                                  .flags = VIMG_OPEN_NO_IO,
                                  .refs = VIMG_REFS_NEVER };
    struct vimg_image *img = vimg_open_buffer(data, size, "fuzz.luks", &p);
    if (img) {
        vimg_value_free(vimg_get_info(img));
        vimg_close(img);
    }
    if (!try_key) {
        return 0;
    }
    static const struct vimg_secret s = { "k", "fuzz", 4 };
    p.flags = 0;
    p.options = "key-secret=k";
    p.secrets = &s;
    p.n_secrets = 1;
    if ((img = vimg_open_buffer(data, size, "fuzz.luks", &p))) {
        uint8_t buf[4096];
        int64_t n = vimg_get_size(img);
        (void)vimg_pread(img, buf, n < 4096 ? (size_t)n : 4096, 0);
        vimg_close(img);
    }
    return 0;
}
