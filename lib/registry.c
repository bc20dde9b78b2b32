/* The static table of drivers: no constructors, so a static link keeps
 * them all. Formats probe in this order; ties go to the earlier entry. */
#include <string.h>

#include "internal.h"

static const struct vimg_driver *const drivers[] = {
    &vimg_driver_qcow2,
    &vimg_driver_luks,
    &vimg_driver_vpc,
    &vimg_driver_vdi,
    &vimg_driver_vhdx,
    &vimg_driver_vmdk,
    &vimg_driver_ova,
    &vimg_driver_qcow1,
    &vimg_driver_bochs,
    &vimg_driver_cloop,
    &vimg_driver_dmg,
    &vimg_driver_parallels,
    &vimg_driver_qed,
    &vimg_driver_raw,
    &vimg_driver_file,
    &vimg_driver_memory,
    &vimg_driver_nbd,
    &vimg_driver_rbd,
};

#define N_DRIVERS (sizeof drivers / sizeof drivers[0])

const struct vimg_driver *vimg_internal_find_driver(const char *name)
{
    for (size_t i = 0; i < N_DRIVERS; i++) {
        if (strcmp(drivers[i]->name, name) == 0) {
            return drivers[i];
        }
    }
    return NULL;
}

const struct vimg_driver *vimg_internal_probe(const uint8_t *buf, size_t len,
                                              const char *filename)
{
    const struct vimg_driver *best = NULL;
    int best_score = 0;

    for (size_t i = 0; i < N_DRIVERS; i++) {
        if (drivers[i]->kind != VIMG_DRIVER_FORMAT || !drivers[i]->probe) {
            continue;
        }
        int score = drivers[i]->probe(buf, len, filename);
        if (score > best_score) {
            best = drivers[i];
            best_score = score;
        }
    }
    return best;
}

const struct vimg_driver *vimg_internal_probe_tail(const uint8_t *tail,
                                                   size_t len,
                                                   uint64_t file_size,
                                                   const char *filename)
{
    const struct vimg_driver *best = NULL;
    int best_score = 0;

    for (size_t i = 0; i < N_DRIVERS; i++) {
        if (!drivers[i]->probe_tail) {
            continue;
        }
        int score = drivers[i]->probe_tail(tail, len, file_size, filename);
        if (score > best_score) {
            best = drivers[i];
            best_score = score;
        }
    }
    return best;
}

const char *const *vimg_list_formats(void)
{
    static const char *names[N_DRIVERS + 1];
    size_t n = 0;

    if (!names[0]) {
        for (size_t i = 0; i < N_DRIVERS; i++) {
            if (drivers[i]->kind == VIMG_DRIVER_FORMAT) {
                names[n++] = drivers[i]->name;
            }
        }
        names[n] = NULL;
    }
    return names;
}
