/* qcow2 measure: the file size a new qcow2 image needs, computed with the
 * same arithmetic as `qemu-img measure -O qcow2` so that both tools print
 * the same numbers (tools size volumes from them). The estimate counts the
 * metadata of a fully allocated image in both results, as QEMU does. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../../common/checked-overflow.h"
#include "../../../common/rounding.h"
#include "../../crypto/crypto.h"
#include "qcow2.h"

#define MEASURE_MIN_CLUSTER 512u
#define MEASURE_MAX_CLUSTER (2u * 1024 * 1024)
/* Extended L2 entries split a cluster into 32 subclusters of at least
 * 512 bytes each. */
#define MEASURE_MIN_EXTL2_CLUSTER (16u * 1024)
/* The L1 table limit QEMU enforces when measuring a size (not a source);
 * larger images cannot be opened by QEMU. */
#define MEASURE_MAX_L1_BYTES (32u * 1024 * 1024)
#define MEASURE_L1E_SIZE 8u
#define MEASURE_REFTABLE_ENTRY_SIZE 8u

struct measure_params {
    uint64_t cluster_size;
    unsigned refcount_order;
    int version;
    bool extended_l2;
    bool has_backing;
    enum vimg_prealloc prealloc;
};

static int parse_params(const struct vimg_opts *opts,
                        struct measure_params *p)
{
    uint64_t refcount_bits;
    const char *compat;
    int r;

    memset(p, 0, sizeof *p);
    r = vimg_internal_opts_get_bool(opts, "extended_l2", false,
                                    &p->extended_l2);
    if (r < 0) {
        return r;
    }
    r = vimg_internal_opts_get_size(opts, "cluster_size", 65536,
                                    &p->cluster_size);
    if (r < 0) {
        return r;
    }
    if (!is_power_of_2(p->cluster_size) ||
        p->cluster_size < MEASURE_MIN_CLUSTER ||
        p->cluster_size > MEASURE_MAX_CLUSTER) {
        return vimg_internal_error(EINVAL, "qcow2: cluster size must be a "
                                   "power of two between %u and %uk",
                                   MEASURE_MIN_CLUSTER,
                                   MEASURE_MAX_CLUSTER / 1024);
    }
    if (p->extended_l2 && p->cluster_size < MEASURE_MIN_EXTL2_CLUSTER) {
        return vimg_internal_error(EINVAL, "qcow2: extended L2 entries are "
                                   "only supported with cluster sizes of "
                                   "at least %u bytes",
                                   MEASURE_MIN_EXTL2_CLUSTER);
    }
    compat = vimg_internal_opts_get(opts, "compat", NULL);
    if (!compat || !strcmp(compat, "1.1") || !strcmp(compat, "v3")) {
        p->version = 3;
    } else if (!strcmp(compat, "0.10") || !strcmp(compat, "v2")) {
        p->version = 2;
    } else {
        return vimg_internal_error(EINVAL, "qcow2: invalid compatibility "
                                   "level: '%s'", compat);
    }
    r = vimg_internal_opts_get_size(opts, "refcount_bits", 16,
                                    &refcount_bits);
    if (r < 0) {
        return r;
    }
    if (!is_power_of_2(refcount_bits) || refcount_bits > 64) {
        return vimg_internal_error(EINVAL, "qcow2: refcount width must be "
                                   "a power of two and may not exceed 64 "
                                   "bits");
    }
    if (p->version < 3 && refcount_bits != 16) {
        return vimg_internal_error(EINVAL, "qcow2: refcount widths other "
                                   "than 16 bits require compat=1.1");
    }
    p->refcount_order = (unsigned)__builtin_ctzll(refcount_bits);
    r = vimg_internal_opts_get_prealloc(opts, &p->prealloc);
    if (r < 0) {
        return r;
    }
    p->has_backing = vimg_internal_opts_get(opts, "backing_file",
                                            NULL) != NULL;
    return 0;
}

/* Bytes of refcount table and blocks needed to count CLUSTERS clusters
 * plus the refcount metadata itself: iterate to the fixed point where
 * counting the new refcount clusters needs no further ones. */
static uint64_t refcount_metadata_size(uint64_t clusters,
                                       uint64_t cluster_size,
                                       unsigned refcount_order)
{
    uint64_t per_table_cluster = cluster_size / MEASURE_REFTABLE_ENTRY_SIZE;
    uint64_t per_block = cluster_size * 8 >> refcount_order;
    uint64_t table = 0, blocks = 0, n = 0, last;

    do {
        last = n;
        blocks = DIV_ROUND_UP(clusters + table + blocks, per_block);
        table = DIV_ROUND_UP(blocks, per_table_cluster);
        n = clusters + blocks + table;
    } while (n != last);
    return (blocks + table) * cluster_size;
}

/* File size of an image of SIZE bytes (cluster-aligned) with every
 * cluster allocated: header, L1, L2 tables, refcounts, data. */
static uint64_t fully_allocated_size(uint64_t size,
                                     const struct measure_params *p)
{
    uint64_t cs = p->cluster_size;
    uint64_t l2e_size = p->extended_l2 ? 16 : 8;
    uint64_t meta = cs; /* the header cluster */
    uint64_t nl2e, nl1e;

    nl2e = ROUND_UP(size / cs, cs / l2e_size);
    meta += nl2e * l2e_size;
    nl1e = ROUND_UP(nl2e * l2e_size / cs, cs / MEASURE_L1E_SIZE);
    meta += nl1e * MEASURE_L1E_SIZE;
    meta += refcount_metadata_size((meta + size) / cs, cs,
                                   p->refcount_order);
    return meta + size;
}

/* Data bytes the contents of SRC need, in whole clusters; zero extents
 * need none (there is no backing file to shine through). */
static int source_data_size(struct vimg_image *src, uint64_t ssize,
                            uint64_t cs, uint64_t *out)
{
    const unsigned want = VIMG_BS_DATA | VIMG_BS_ALLOCATED;
    uint64_t off = 0, used = 0;

    while (off < ssize) {
        struct vimg_extent e;
        int r = vimg_internal_block_status(src, off, ssize - off,
                                           VIMG_BS_CHAIN, &e);
        if (r < 0) {
            return r;
        }
        uint64_t len = e.length;
        if (!(e.flags & VIMG_BS_ZERO) && (e.flags & want) == want) {
            /* Round the extent's end up to a cluster boundary and count
             * from the start of its first cluster, as QEMU does (a cluster
             * shared by two data extents counts twice). */
            len = ROUND_UP(off + len, cs) - off;
            used += off % cs + len;
        }
        off += len;
    }
    *out = used;
    return 0;
}

/* Persistent bitmaps of SRC, sized as QEMU sizes them for the target:
 * each bitmap fully allocated in clusters of the new CLUSTER_SIZE, plus its
 * bitmap table, plus the directory. Reported only when SRC could hold
 * bitmaps at all (a qcow2 v3 image). The directory was validated (offset,
 * size capped) when SRC was opened. */
static int source_bitmaps(struct vimg_image *src, uint64_t cs, bool *has,
                          uint64_t *size)
{
    struct qcow2_state *s;
    uint64_t total = 0, dir_total = 0, vsize = src->size;

    *has = false;
    *size = 0;
    if (src->drv != &vimg_driver_qcow2) {
        return 0;
    }
    s = qcow2_state(src);
    *has = s->version >= 3;
    /* Every bitmap the source holds, inconsistent ones too, as QEMU
     * counts them. */
    for (uint32_t i = 0; *has && i < s->bm_count; i++) {
        const struct qcow2_bitmap *b = &s->bm[i];
        uint64_t bits = DIV_ROUND_UP(vsize, UINT64_C(1) << b->gran_bits);
        uint64_t clusters = DIV_ROUND_UP(DIV_ROUND_UP(bits, 8), cs);
        total += clusters * cs + ROUND_UP(clusters * 8, cs);
        /* The new directory has no extra data. */
        dir_total += ROUND_UP(QCOW2_BMDIR_FIXED_SIZE +
                              (uint64_t)strlen(b->name), 8);
    }
    *size = total + ROUND_UP(dir_total, cs);
    return 0;
}

int qcow2_measure(const struct vimg_opts *opts, uint64_t size,
                  struct vimg_image *src, struct vimg_measure *out)
{
    struct measure_params p;
    uint64_t vsize, required = 0;
    int r = parse_params(opts, &p);

    if (r < 0) {
        return r;
    }
    /* Sizes are at most INT64_MAX, so rounding up cannot overflow. */
    vsize = ROUND_UP(size, p.cluster_size);
    uint64_t l2e_size = p.extended_l2 ? 16 : 8;
    uint64_t l2_tables = DIV_ROUND_UP(vsize / p.cluster_size,
                                      p.cluster_size / l2e_size);
    if (l2_tables > MEASURE_MAX_L1_BYTES / MEASURE_L1E_SIZE) {
        return vimg_internal_error(EFBIG, "qcow2: the image size is too "
                                   "large (try using a larger cluster "
                                   "size)");
    }
    if (src) {
        int64_t ssize = vimg_internal_get_size(src);
        if (ssize < 0) {
            return (int)ssize;
        }
        vsize = ROUND_UP((uint64_t)ssize, p.cluster_size);
        if (p.has_backing) {
            /* The new image's backing file may share nothing with SRC:
             * assume every cluster gets written. */
            required = vsize;
        } else {
            r = source_data_size(src, (uint64_t)ssize, p.cluster_size,
                                 &required);
            if (r < 0) {
                return r;
            }
        }
    }
    if (p.prealloc == VIMG_PREALLOC_FULL ||
        p.prealloc == VIMG_PREALLOC_FALLOC) {
        required = vsize;
    }
    out->fully_allocated = fully_allocated_size(vsize, &p);
    out->required = out->fully_allocated - vsize + required;
    /* A LUKS header takes whole clusters of its own, as qemu-img counts. */
    const char *enc = vimg_internal_opts_get(opts, "encrypt.format", NULL);
    if (enc && !strcmp(enc, "luks")) {
        struct vimg_luks_create lo = {
            .cipher_alg = vimg_internal_opts_get(opts, "encrypt.cipher-alg",
                                                 NULL),
            .cipher_mode = vimg_internal_opts_get(opts,
                                                  "encrypt.cipher-mode",
                                                  NULL),
        };
        uint64_t hl;
        if ((r = vimg_internal_luks_header_size(&lo, "qcow2", &hl)) < 0) {
            return r;
        }
        out->fully_allocated += ROUND_UP(hl, p.cluster_size);
        out->required += ROUND_UP(hl, p.cluster_size);
    }
    /* Bitmaps are reported when both ends could store them: a v3 target
     * and a qcow2 v3 source. */
    if (src && p.version >= 3) {
        return source_bitmaps(src, p.cluster_size, &out->has_bitmaps,
                              &out->bitmaps);
    }
    return 0;
}
