/* Internal snapshots (QEMU docs/interop/qcow2.txt, "Snapshots") and the
 * other changes that replace the active L1 table as a whole: create,
 * apply and delete a snapshot, read one (convert -l), and empty the
 * active image (commit).
 *
 * Each change is one transaction (struct txn). Nothing the image uses is
 * written in place: every structure that changes is written anew into
 * clusters free before the change (the active L1 table, the L2 tables
 * whose COPIED flags change, the snapshot table, the refcount blocks whose
 * counts change and the refcount table), and one write of the header's
 * 48 bytes from the virtual size to the snapshot table offset then
 * switches from the old metadata to the new. A crash leaves one or the
 * other, each consistent, with no leak. Updating refcount blocks and L2
 * tables in place, as QEMU does, cannot avoid a moment where a COPIED
 * flag disagrees with its refcount (two writes to two clusters), which
 * qemu-img check counts as corruption.
 *
 * Refcounts count paths, as QEMU's do: a cluster an L2 table names has
 * one reference per L1 table (active or snapshot) that reaches that L2
 * table, so a table shared by the active image and a snapshot gives each
 * of its clusters two. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../../common/checked-overflow.h"
#include "../../../common/rounding.h"
#include "qcow2.h"

/* Host offsets live in bits 9-55 of table entries. */
#define MAX_HOST_OFFSET ((uint64_t)1 << 56)
/* Placing refcount blocks and the refcount table settles within a few
 * rounds (each round places what the previous one allocated). */
#define MAX_PLACE_ROUNDS 64

void qcow2_snapshots_free(struct qcow2_snapshot *v, uint32_t n)
{
    for (uint32_t i = 0; v && i < n; i++) {
        free(v[i].id);
        free(v[i].name);
        free(v[i].extra_unknown);
    }
    free(v);
}

/* The index of the first snapshot matching ID and NAME (either may be
 * NULL), or -1. */
static int64_t find_snapshot(const struct qcow2_state *s, const char *id,
                             const char *name)
{
    for (uint32_t i = 0; i < s->nb_snapshots; i++) {
        if ((!id || !strcmp(s->snapshots[i].id, id)) &&
            (!name || !strcmp(s->snapshots[i].name, name))) {
            return i;
        }
    }
    return -1;
}

static int not_found(struct vimg_image *img, const char *id,
                     const char *name)
{
    if (id && name) {
        return vimg_internal_img_error(img, ENOENT, "no snapshot with ID "
                                       "'%s' and name '%s'", id, name);
    }
    return vimg_internal_img_error(img, ENOENT, "no snapshot with %s '%s'",
                                   id ? "ID" : "name", id ? id : name);
}

/* ---- Transactions ----------------------------------------------------- */

struct txn {
    struct vimg_image *img;
    struct qcow2_state *s;
    /* The refcount blocks that change, by refcount table index: the new
     * contents (NULL: unchanged) and where they go (0: not placed yet). */
    uint8_t **shadow;
    uint64_t *placed;
    uint64_t nb;          /* entries of both */
    uint64_t next;        /* no cluster below this is handed out */
};

static void txn_free(struct txn *t)
{
    for (uint64_t i = 0; i < t->nb; i++) {
        free(t->shadow[i]);
    }
    free(t->shadow);
    free(t->placed);
    memset(t, 0, sizeof *t);
}

/* The refcount block for table index BT as it is on disk now (0: none). */
static int old_block(struct txn *t, uint64_t bt, uint64_t *off)
{
    struct qcow2_state *s = t->s;

    *off = bt < s->rt_entries ? s->rt[bt] & QCOW2_RTE_OFFSET_MASK : 0;
    if (*off & (s->cluster_size - 1)) {
        return qcow2_signal_corruption(t->img, *off, "refcount block %llu "
                                       "is not cluster aligned",
                                       (unsigned long long)bt);
    }
    return 0;
}

/* The new contents of refcount block BT, made from the old block (or
 * zeros) on first use. */
static int shadow_block(struct txn *t, uint64_t bt, uint8_t **blk)
{
    struct qcow2_state *s = t->s;
    uint64_t off;
    uint8_t *old;
    int r;

    if (bt >= t->nb) {
        uint64_t nb = MAX(bt + 1, t->nb * 2);
        uint8_t **sh = realloc(t->shadow, nb * sizeof *sh);
        if (sh) {
            t->shadow = sh;
        }
        uint64_t *pl = sh ? realloc(t->placed, nb * sizeof *pl) : NULL;
        if (!pl) {
            return vimg_internal_img_error(t->img, ENOMEM, "out of memory");
        }
        t->placed = pl;
        memset(t->shadow + t->nb, 0, (nb - t->nb) * sizeof *t->shadow);
        memset(t->placed + t->nb, 0, (nb - t->nb) * sizeof *t->placed);
        t->nb = nb;
    }
    if (!t->shadow[bt]) {
        uint8_t *b = calloc(1, s->cluster_size);
        if (!b) {
            return vimg_internal_img_error(t->img, ENOMEM, "out of memory");
        }
        if ((r = old_block(t, bt, &off)) < 0 ||
            (off && (r = qcow2_cache_get(t->img, &s->rb_cache, off, false,
                                         &old)) < 0)) {
            free(b);
            return r;
        }
        if (off) {
            memcpy(b, old, s->cluster_size);
        }
        t->shadow[bt] = b;
    }
    *blk = t->shadow[bt];
    return 0;
}

static uint64_t block_index(const struct qcow2_state *s, uint64_t c)
{
    return c & (((uint64_t)1 << s->rb_bits) - 1);
}

/* The refcount of cluster C after the transaction (as far as built). */
static int txn_refcount(struct txn *t, uint64_t c, uint64_t *rc)
{
    struct qcow2_state *s = t->s;
    uint64_t bt = c >> s->rb_bits;

    if (bt < t->nb && t->shadow[bt]) {
        *rc = qcow2_refcount_load(t->shadow[bt], s->refcount_order,
                                  block_index(s, c));
        return 0;
    }
    return qcow2_get_refcount(t->img, c, rc);
}

static uint64_t refcount_max(const struct qcow2_state *s)
{
    return s->refcount_order == 6
               ? UINT64_MAX
               : ((uint64_t)1 << (1u << s->refcount_order)) - 1;
}

/* Add DELTA to the refcount of cluster C. */
static int txn_add(struct txn *t, uint64_t c, int64_t delta)
{
    struct qcow2_state *s = t->s;
    uint8_t *blk = NULL;
    int r;

    if ((r = shadow_block(t, c >> s->rb_bits, &blk)) < 0) {
        return r;
    }
    uint64_t rc = qcow2_refcount_load(blk, s->refcount_order,
                                      block_index(s, c));
    if (delta < 0 && rc < (uint64_t)-delta) {
        return qcow2_signal_corruption(t->img, c * s->cluster_size,
                                       "refcount of cluster %llu would drop "
                                       "below 0", (unsigned long long)c);
    }
    if (delta > 0 && refcount_max(s) - rc < (uint64_t)delta) {
        return vimg_internal_img_error(t->img, ERANGE, "the refcount of "
                                       "cluster %llu would exceed %llu, the "
                                       "most %u-bit refcounts can count",
                                       (unsigned long long)c,
                                       (unsigned long long)refcount_max(s),
                                       1u << s->refcount_order);
    }
    qcow2_refcount_store(blk, s->refcount_order, block_index(s, c),
                         rc + (uint64_t)delta);
    return 0;
}

/* Add DELTA to every cluster of [OFFSET, OFFSET+LEN). */
static int txn_add_range(struct txn *t, uint64_t offset, uint64_t len,
                         int64_t delta)
{
    uint64_t cs = t->s->cluster_size;
    int r = 0;

    for (uint64_t c = offset / cs; len && r == 0 &&
                                   c <= (offset + len - 1) / cs; c++) {
        r = txn_add(t, c, delta);
    }
    return r;
}

/* N contiguous clusters that are free now and stay free until the switch
 * (so that writing them changes nothing the image uses), each given a
 * reference. */
static int txn_alloc(struct txn *t, uint64_t n, uint64_t *offset)
{
    struct qcow2_state *s = t->s;
    uint64_t start = t->next, run = 0, c = t->next;
    const char *what;
    int r;

    while (run < n) {
        uint64_t old, now;
        if ((c + 1) * s->cluster_size > MAX_HOST_OFFSET) {
            return vimg_internal_img_error(t->img, ENOSPC, "no room for "
                                           "%llu more clusters (host "
                                           "offsets are limited to 64 PiB)",
                                           (unsigned long long)n);
        }
        if ((r = qcow2_get_refcount(t->img, c, &old)) < 0 ||
            (r = txn_refcount(t, c, &now)) < 0) {
            return r;
        }
        if (old || now || c == 0) {
            run = 0;
            start = ++c;
            continue;
        }
        run++;
        c++;
    }
    /* Clusters with refcount 0 that hold metadata: the refcounts are
     * wrong, and writing there would destroy it. */
    if ((r = qcow2_metadata_at(t->img, 0, NULL, start * s->cluster_size,
                               n * s->cluster_size, &what)) < 0) {
        return r;
    }
    if (what) {
        return qcow2_signal_corruption(t->img, start * s->cluster_size,
                                       "Preventing allocation of clusters "
                                       "with refcount 0 that overlap with "
                                       "%s", what);
    }
    t->next = start + n;
    *offset = start * s->cluster_size;
    return txn_add_range(t, *offset, n * s->cluster_size, 1);
}

/* Write a new structure into clusters txn_alloc gave: free until the
 * switch, so they may overlap nothing (no role is ignored). */
static int txn_write(struct txn *t, const void *buf, uint64_t len,
                     uint64_t offset)
{
    return qcow2_write_meta(t->img, QCOW2_ROLE_DATA, buf, len, offset);
}

/* The host clusters of img->file that L2 entry E references: *FIRST and
 * *N (0 when none: unallocated, zero without a cluster, or data in an
 * external data file, which has no refcounts). */
static int entry_clusters(struct txn *t, uint64_t e, uint64_t *first,
                          uint64_t *n)
{
    struct qcow2_state *s = t->s;
    uint64_t cs = s->cluster_size;

    *n = 0;
    if (s->data != t->img->file) {
        return 0;
    }
    if (e & QCOW2_L2E_COMPRESSED) {
        unsigned x = qcow2_compressed_offset_bits(s->cluster_bits);
        uint64_t host = e & (((uint64_t)1 << x) - 1);
        uint64_t sectors = ((e & ~(QCOW2_L2E_COMPRESSED |
                                   QCOW2_L2E_COPIED)) >> x) + 1;
        uint64_t len = sectors * QCOW2_COMPRESSED_SECTOR_SIZE -
                       (host & (QCOW2_COMPRESSED_SECTOR_SIZE - 1));
        uint64_t file_size = (uint64_t)vimg_internal_get_size(t->img->file);
        /* As everywhere: at most the last cluster may lie past the end
         * of the file. */
        if (len > 2 * cs || (host + len > file_size &&
                             host + len - file_size >= cs)) {
            return qcow2_signal_corruption(t->img, host, "compressed "
                                           "cluster (%llu bytes at 0x%llx) "
                                           "is invalid",
                                           (unsigned long long)len,
                                           (unsigned long long)host);
        }
        *first = host / cs;
        *n = DIV_ROUND_UP(host + len, cs) - *first;
        return 0;
    }
    uint64_t host = e & QCOW2_L2E_OFFSET_MASK;
    if (!host) {
        return 0;
    }
    if (host & (cs - 1)) {
        return qcow2_signal_corruption(t->img, host, "L2 entry 0x%llx points "
                                       "at an unaligned cluster",
                                       (unsigned long long)e);
    }
    *first = host / cs;
    *n = 1;
    return 0;
}

/* A copy of the L2 table at OFFSET (read through the cache, which the
 * transaction never dirties) into BUF. */
static int read_l2(struct txn *t, uint64_t offset, uint8_t *buf)
{
    uint8_t *table;
    int r;

    if (offset & (t->s->cluster_size - 1)) {
        return qcow2_signal_corruption(t->img, offset, "L2 table offset "
                                       "0x%llx is not cluster aligned",
                                       (unsigned long long)offset);
    }
    if ((r = qcow2_cache_get(t->img, &t->s->l2_cache, offset, false,
                             &table)) < 0) {
        return r;
    }
    memcpy(buf, table, t->s->cluster_size);
    return 0;
}

/* Add DELTA to the references one L1 table's paths hold: each L2 table
 * that L1[0..N) names, and each cluster its entries reference. */
static int add_tree(struct txn *t, const uint64_t *l1, uint64_t n,
                    int64_t delta, uint8_t *buf)
{
    struct qcow2_state *s = t->s;
    int r;

    for (uint64_t i = 0; i < n; i++) {
        uint64_t l2 = l1[i] & QCOW2_L1E_OFFSET_MASK;
        if (!l2) {
            continue;
        }
        if ((r = read_l2(t, l2, buf)) < 0 ||
            (r = txn_add(t, l2 / s->cluster_size, delta)) < 0) {
            return r;
        }
        for (uint64_t j = 0; j < qcow2_l2_entries(s); j++) {
            uint64_t first, k;
            if ((r = entry_clusters(t, qcow2_l2e_get(s, buf, j), &first,
                                    &k)) < 0) {
                return r;
            }
            for (uint64_t c = first; c < first + k; c++) {
                if ((r = txn_add(t, c, delta)) < 0) {
                    return r;
                }
            }
        }
    }
    return 0;
}

/* Set the COPIED flags of the new active L1 table L1[0..N) and of the L2
 * tables it names from the refcounts the transaction leaves: a cluster
 * with refcount 1 is the active image's alone and may be written in
 * place. An L2 table whose flags change is written anew (the old one may
 * be shared, and is in use until the switch), the active image's
 * reference moving to the copy. */
static int set_copied(struct txn *t, uint64_t *l1, uint64_t n, uint8_t *buf)
{
    struct qcow2_state *s = t->s;
    uint64_t cs = s->cluster_size, rc;
    int r;

    for (uint64_t i = 0; i < n; i++) {
        uint64_t l2 = l1[i] & QCOW2_L1E_OFFSET_MASK;
        bool changed = false;
        if (!l2) {
            l1[i] = 0;
            continue;
        }
        if ((r = read_l2(t, l2, buf)) < 0) {
            return r;
        }
        for (uint64_t j = 0; j < qcow2_l2_entries(s); j++) {
            uint64_t e = qcow2_l2e_get(s, buf, j), want = e, first, k;
            if ((r = entry_clusters(t, e, &first, &k)) < 0) {
                return r;
            }
            if (e & QCOW2_L2E_COMPRESSED) {
                want = e & ~QCOW2_L2E_COPIED;
            } else if (k) {
                if ((r = txn_refcount(t, first, &rc)) < 0) {
                    return r;
                }
                want = rc == 1 ? e | QCOW2_L2E_COPIED
                               : e & ~QCOW2_L2E_COPIED;
            }
            if (want != e) {
                qcow2_l2e_set(s, buf, j, want);
                changed = true;
            }
        }
        if (changed) {
            uint64_t fresh;
            if ((r = txn_alloc(t, 1, &fresh)) < 0 ||
                (r = txn_write(t, buf, cs, fresh)) < 0 ||
                (r = txn_add(t, l2 / cs, -1)) < 0) {
                return r;
            }
            l2 = fresh;
        }
        if ((r = txn_refcount(t, l2 / cs, &rc)) < 0) {
            return r;
        }
        l1[i] = l2 | (rc == 1 ? QCOW2_L1E_COPIED : 0);
    }
    return 0;
}

/* Write L1[0..N) as a new table (host byte order in memory). */
static int write_l1(struct txn *t, const uint64_t *l1, uint64_t n,
                    uint64_t *offset)
{
    uint64_t bytes = ROUND_UP(n * 8, t->s->cluster_size);
    int r;

    *offset = 0;
    if (!n) {
        return 0;
    }
    uint8_t *buf = calloc(1, bytes);
    if (!buf) {
        return vimg_internal_img_error(t->img, ENOMEM, "out of memory");
    }
    for (uint64_t i = 0; i < n; i++) {
        store_be64(buf + i * 8, l1[i]);
    }
    if ((r = txn_alloc(t, bytes / t->s->cluster_size, offset)) == 0) {
        r = txn_write(t, buf, n * 8, *offset);
    }
    free(buf);
    return r;
}

/* A snapshot's L1 table, read and checked (host byte order; caller
 * frees). N is its size, or more to pad it with zeros. */
static int read_snapshot_l1(struct vimg_image *img,
                            const struct qcow2_snapshot *sn, uint64_t n,
                            uint64_t **out)
{
    struct qcow2_state *s = qcow2_state(img);
    uint64_t *l1 = calloc(n ? n : 1, sizeof *l1);
    uint8_t *raw = malloc(sn->l1_size ? sn->l1_size * 8ull : 1);
    int r = 0;

    *out = NULL;
    if (!l1 || !raw) {
        free(l1);
        free(raw);
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    if (sn->l1_size) {
        r = vimg_internal_pread(img->file, raw, sn->l1_size * 8ull,
                                sn->l1_offset);
    }
    for (uint64_t i = 0; r == 0 && i < sn->l1_size; i++) {
        l1[i] = load_be64(raw + i * 8);
        if (l1[i] & QCOW2_L1E_RESERVED) {
            r = qcow2_signal_corruption(img, sn->l1_offset + i * 8,
                                        "snapshot '%s' has an L1 entry with "
                                        "reserved bits set", sn->name);
        } else if ((l1[i] & QCOW2_L1E_OFFSET_MASK) & (s->cluster_size - 1)) {
            r = qcow2_signal_corruption(img, sn->l1_offset + i * 8,
                                        "snapshot '%s' has an unaligned L2 "
                                        "table", sn->name);
        }
    }
    free(raw);
    if (r < 0) {
        free(l1);
        return r;
    }
    *out = l1;
    return 0;
}

/* The snapshot table for V[0..N) in QEMU's layout: each entry with the
 * three extra fields (and any unknown extra data kept), 8-byte aligned.
 * *LEN excludes the last entry's padding, as QEMU counts it. */
static int build_table(struct vimg_image *img, const struct qcow2_snapshot *v,
                       uint32_t n, uint8_t **out, uint64_t *len)
{
    uint64_t size = 0, off = 0;
    uint8_t *buf;

    for (uint32_t i = 0; i < n; i++) {
        size = ROUND_UP(size, 8) + QCOW2_SN_FIXED_SIZE +
               QCOW2_SN_EXTRA_SIZE_MAX + v[i].extra_unknown_len +
               strlen(v[i].id) + strlen(v[i].name);
        if (size > QCOW2_MAX_SNAPSHOT_TABLE) {
            return vimg_internal_img_error(img, EFBIG, "the snapshot table "
                                           "would exceed %u bytes",
                                           QCOW2_MAX_SNAPSHOT_TABLE);
        }
    }
    if (!(buf = calloc(1, ROUND_UP(size, 8) + 1))) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    for (uint32_t i = 0; i < n; i++) {
        const struct qcow2_snapshot *sn = &v[i];
        size_t id_len = strlen(sn->id), name_len = strlen(sn->name);
        off = ROUND_UP(off, 8);
        uint8_t *e = buf + off;
        store_be64(e + QCOW2_SN_L1_TABLE_OFFSET, sn->l1_offset);
        store_be32(e + QCOW2_SN_L1_SIZE, sn->l1_size);
        store_be16(e + QCOW2_SN_ID_STR_SIZE, (uint16_t)id_len);
        store_be16(e + QCOW2_SN_NAME_SIZE, (uint16_t)name_len);
        store_be32(e + QCOW2_SN_DATE_SEC, sn->date_sec);
        store_be32(e + QCOW2_SN_DATE_NSEC, sn->date_nsec);
        store_be64(e + QCOW2_SN_VM_CLOCK_NSEC, sn->vm_clock_nsec);
        /* A VM state too large for 32 bits leaves the old field 0, so
         * older readers see a disk-only snapshot (as QEMU writes it). */
        store_be32(e + QCOW2_SN_VM_STATE_SIZE,
                   sn->vm_state_size <= UINT32_MAX
                       ? (uint32_t)sn->vm_state_size : 0);
        store_be32(e + QCOW2_SN_EXTRA_DATA_SIZE,
                   QCOW2_SN_EXTRA_SIZE_MAX + sn->extra_unknown_len);
        uint8_t *x = e + QCOW2_SN_FIXED_SIZE;
        store_be64(x + QCOW2_SN_EXTRA_VM_STATE_SIZE_LARGE, sn->vm_state_size);
        store_be64(x + QCOW2_SN_EXTRA_DISK_SIZE, sn->disk_size);
        store_be64(x + QCOW2_SN_EXTRA_ICOUNT, sn->icount);
        x += QCOW2_SN_EXTRA_SIZE_MAX;
        if (sn->extra_unknown_len) {
            memcpy(x, sn->extra_unknown, sn->extra_unknown_len);
            x += sn->extra_unknown_len;
        }
        memcpy(x, sn->id, id_len);
        memcpy(x + id_len, sn->name, name_len);
        off = (uint64_t)(x - buf) + id_len + name_len;
    }
    *out = buf;
    *len = size;
    return 0;
}

/* What a transaction leaves: the new active L1 table, size and snapshot
 * list (owned by the caller until txn_commit takes them). */
struct txn_result {
    uint64_t *l1;
    uint32_t l1_size;
    uint64_t size;
    struct qcow2_snapshot *snapshots;
    uint32_t nb_snapshots;
};

/* Free a transaction with what it was to install (RES) and its scratch
 * cluster BUF, whether it committed or not. */
static void txn_end(struct txn *t, struct txn_result *res, uint8_t *buf)
{
    free(res->l1);
    qcow2_snapshots_free(res->snapshots, res->nb_snapshots);
    free(buf);
    txn_free(t);
}

/* Place the changed refcount blocks and a new refcount table. Each
 * placement allocates, which may change more blocks (or need a larger
 * table): repeat until nothing moves. */
static int place_refcounts(struct txn *t, uint64_t *rt_offset,
                           uint64_t *rt_clusters)
{
    struct qcow2_state *s = t->s;
    uint64_t cs = s->cluster_size, k = 0, at = 0, entries;
    int r;

    if ((r = txn_add_range(t, s->rt_offset, s->rt_clusters * cs, -1)) < 0) {
        return r;
    }
    for (unsigned round = 0;; round++) {
        if (round > MAX_PLACE_ROUNDS) {
            return vimg_internal_img_error(t->img, EIO, "cannot find room "
                                           "for the new refcount "
                                           "structures");
        }
        bool moved = false;
        for (uint64_t bt = 0; bt < t->nb; bt++) {
            uint64_t old, fresh;
            if (!t->shadow[bt] || t->placed[bt]) {
                continue;
            }
            if ((r = txn_alloc(t, 1, &fresh)) < 0) {
                return r;
            }
            t->placed[bt] = fresh;
            if ((r = old_block(t, bt, &old)) < 0 ||
                (old && (r = txn_add(t, old / cs, -1)) < 0)) {
                return r;
            }
            moved = true;
        }
        if (moved) {
            continue;
        }
        /* The table covers every block, old or new. */
        entries = 0;
        for (uint64_t bt = 0; bt < MAX(t->nb, s->rt_entries); bt++) {
            if ((bt < t->nb && t->placed[bt]) ||
                (bt < s->rt_entries && s->rt[bt])) {
                entries = bt + 1;
            }
        }
        uint64_t need = MAX(1, DIV_ROUND_UP(entries * 8, cs));
        if (k >= need) {
            break;
        }
        if (need * cs > QCOW2_MAX_RT_BYTES) {
            return vimg_internal_img_error(t->img, ENOSPC, "the refcount "
                                           "table would exceed %u bytes",
                                           QCOW2_MAX_RT_BYTES);
        }
        /* A table too small for what its own clusters needed is given
         * back (free after the switch) and a larger one taken. */
        if (k && (r = txn_add_range(t, at, k * cs, -1)) < 0) {
            return r;
        }
        if ((r = txn_alloc(t, need, &at)) < 0) {
            return r;
        }
        k = need;
    }
    *rt_offset = at;
    *rt_clusters = k;
    return 0;
}

/* Clusters that the transaction frees (a reference before, none after),
 * merged into ranges, for giving the space back to the file system. */
static int freed_ranges(struct txn *t, struct qcow2_range **out, size_t *n)
{
    struct qcow2_state *s = t->s;
    uint64_t per = (uint64_t)1 << s->rb_bits, old;
    size_t cap = 0;
    int r;

    *out = NULL;
    *n = 0;
    for (uint64_t bt = 0; bt < t->nb; bt++) {
        for (uint64_t i = 0; t->shadow[bt] && i < per; i++) {
            uint64_t c = bt * per + i;
            if (qcow2_refcount_load(t->shadow[bt], s->refcount_order, i)) {
                continue;
            }
            if ((r = qcow2_get_refcount(t->img, c, &old)) < 0) {
                return r;
            }
            if (!old) {
                continue;
            }
            struct qcow2_range *last = *n ? &(*out)[*n - 1] : NULL;
            if (last && last->offset + last->len == c * s->cluster_size) {
                last->len += s->cluster_size;
                continue;
            }
            if (*n == cap) {
                cap = cap ? cap * 2 : 16;
                struct qcow2_range *v = realloc(*out, cap * sizeof *v);
                if (!v) {
                    return vimg_internal_img_error(t->img, ENOMEM, "out of "
                                                   "memory");
                }
                *out = v;
            }
            (*out)[(*n)++] = (struct qcow2_range){ c * s->cluster_size,
                                                   s->cluster_size };
        }
    }
    return 0;
}

/* Write the rest of the new metadata (refcount blocks, refcount table,
 * snapshot table; the caller wrote the L1 and L2 tables), make it
 * durable, switch the header to it in one write, and adopt RES in
 * memory. RES's arrays are taken on success. */
static int txn_commit(struct txn *t, struct txn_result *res)
{
    struct vimg_image *img = t->img;
    struct qcow2_state *s = t->s;
    uint64_t cs = s->cluster_size, rt_offset = 0, rt_clusters = 0;
    uint64_t sn_offset = 0, sn_len = 0, l1_offset = 0;
    uint8_t *table = NULL, *buf = NULL;
    uint64_t *rt = NULL;
    struct qcow2_range *freed = NULL;
    size_t nb_freed = 0;
    int r;

    /* The old snapshot table is replaced. */
    if (s->nb_snapshots &&
        (r = txn_add_range(t, s->snapshots_offset, s->snapshots_size,
                           -1)) < 0) {
        return r;
    }
    if (res->nb_snapshots &&
        ((r = build_table(img, res->snapshots, res->nb_snapshots, &table,
                          &sn_len)) < 0 ||
         (r = txn_alloc(t, DIV_ROUND_UP(sn_len, cs), &sn_offset)) < 0 ||
         (r = txn_write(t, table, sn_len, sn_offset)) < 0)) {
        goto out;
    }
    if ((r = write_l1(t, res->l1, res->l1_size, &l1_offset)) < 0 ||
        (r = place_refcounts(t, &rt_offset, &rt_clusters)) < 0) {
        goto out;
    }
    uint64_t rt_entries = rt_clusters * cs / 8;
    if (!(rt = calloc(rt_entries, sizeof *rt)) ||
        !(buf = calloc(1, rt_clusters * cs))) {
        r = vimg_internal_img_error(img, ENOMEM, "out of memory");
        goto out;
    }
    for (uint64_t bt = 0; bt < rt_entries; bt++) {
        if (bt < t->nb && t->placed[bt]) {
            rt[bt] = t->placed[bt];
            if ((r = txn_write(t, t->shadow[bt], cs, t->placed[bt])) < 0) {
                goto out;
            }
        } else if (bt < s->rt_entries) {
            rt[bt] = s->rt[bt];
        }
        store_be64(buf + bt * 8, rt[bt]);
    }
    if ((r = txn_write(t, buf, rt_clusters * cs, rt_offset)) < 0 ||
        (r = freed_ranges(t, &freed, &nb_freed)) < 0 ||
        (r = vimg_internal_flush(img->file)) < 0) {
        goto out;
    }

    /* The switch: size, L1 table, refcount table and snapshot table are
     * contiguous header fields, written at once. */
    uint8_t hdr[sizeof s->hdr];
    memcpy(hdr, s->hdr, sizeof hdr);
    store_be64(hdr + QCOW2_HDR_SIZE, res->size);
    store_be32(hdr + QCOW2_HDR_L1_SIZE, res->l1_size);
    store_be64(hdr + QCOW2_HDR_L1_TABLE_OFFSET, l1_offset);
    store_be64(hdr + QCOW2_HDR_REFCOUNT_TABLE_OFFSET, rt_offset);
    store_be32(hdr + QCOW2_HDR_REFCOUNT_TABLE_CLUSTERS,
               (uint32_t)rt_clusters);
    store_be32(hdr + QCOW2_HDR_NB_SNAPSHOTS, res->nb_snapshots);
    store_be64(hdr + QCOW2_HDR_SNAPSHOTS_OFFSET, sn_offset);
    _Static_assert(QCOW2_HDR_SNAPSHOTS_OFFSET + 8 - QCOW2_HDR_SIZE == 48,
                   "the switched fields are contiguous");
    r = vimg_internal_pwrite(img->file, hdr + QCOW2_HDR_SIZE, 48,
                             QCOW2_HDR_SIZE, VIMG_INTERNAL_WRITE_METADATA);
    if (r < 0) {
        /* Whether the header changed is unknown: nothing more may be
         * written through this handle. */
        s->corrupt = true;
        vimg_internal_error_append("; the image may be in its old or new "
                                   "state, and further writes through "
                                   "this handle are refused");
        goto out;
    }
    memcpy(s->hdr, hdr, sizeof hdr);
    free(s->l1);
    s->l1 = res->l1;
    s->l1_size = res->l1_size;
    s->l1_offset = l1_offset;
    s->l1_dirty = false;
    res->l1 = NULL;
    free(s->rt);
    s->rt = rt;
    rt = NULL;
    s->rt_entries = rt_entries;
    s->rt_offset = rt_offset;
    s->rt_clusters = (uint32_t)rt_clusters;
    qcow2_snapshots_free(s->snapshots, s->nb_snapshots);
    s->snapshots = res->snapshots;
    s->nb_snapshots = res->nb_snapshots;
    for (uint32_t i = 0; i < s->nb_snapshots; i++) {
        s->snapshots[i].short_extra = false; /* written whole above */
    }
    res->snapshots = NULL;
    res->nb_snapshots = 0;
    s->snapshots_offset = sn_offset;
    s->snapshots_size = sn_len;
    img->size = res->size;
    free(s->inactive_l2);
    s->inactive_l2 = NULL;
    s->nb_inactive_l2 = 0;
    s->inactive_l2_loaded = false;
    /* Every cached table is clean (flushed before the transaction) and
     * some now lie in free clusters. */
    qcow2_cache_reset(&s->l2_cache);
    qcow2_cache_reset(&s->rb_cache);
    s->free_hint = 1;
    s->free_byte_offset = 0;
    r = vimg_internal_flush(img->file);
    /* Best effort, as for every free: the space goes back to the file
     * system. */
    for (size_t i = 0; r == 0 && s->data == img->file && i < nb_freed; i++) {
        (void)vimg_internal_discard(img->file, freed[i].offset,
                                    freed[i].len);
    }
out:
    free(freed);
    free(rt);
    free(buf);
    free(table);
    return r;
}

/* Start a whole-image change: refuse what cannot have snapshots, and put
 * everything cached on disk, so that what the transaction reads is what
 * the old metadata says. */
static int txn_begin(struct vimg_image *img, struct txn *t, uint8_t **buf)
{
    struct qcow2_state *s = qcow2_state(img);
    int r;

    memset(t, 0, sizeof *t);
    *buf = NULL;
    if ((r = qcow2_begin_write(img)) < 0 ||
        (r = qcow2_flush_metadata(img)) < 0) {
        return r;
    }
    if (!(*buf = malloc(s->cluster_size))) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    t->img = img;
    t->s = s;
    t->next = MAX(1, s->free_hint);
    return 0;
}

/* A copy of the snapshot list with room for one more (caller frees with
 * qcow2_snapshots_free). */
static int copy_snapshots(struct vimg_image *img,
                          struct qcow2_snapshot **out)
{
    struct qcow2_state *s = qcow2_state(img);
    struct qcow2_snapshot *v = calloc(s->nb_snapshots + 1ull, sizeof *v);
    bool ok = v != NULL;

    for (uint32_t i = 0; ok && i < s->nb_snapshots; i++) {
        v[i] = s->snapshots[i];
        v[i].id = strdup(s->snapshots[i].id);
        v[i].name = strdup(s->snapshots[i].name);
        v[i].extra_unknown = NULL;
        if (s->snapshots[i].extra_unknown_len &&
            (v[i].extra_unknown = malloc(s->snapshots[i].extra_unknown_len))) {
            memcpy(v[i].extra_unknown, s->snapshots[i].extra_unknown,
                   s->snapshots[i].extra_unknown_len);
        }
        ok = v[i].id && v[i].name && (!v[i].extra_unknown_len ||
                                      v[i].extra_unknown);
    }
    if (!ok) {
        qcow2_snapshots_free(v, s->nb_snapshots);
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    *out = v;
    return 0;
}

static int refuse_data_file(struct vimg_image *img)
{
    if (qcow2_has_data_file(qcow2_state(img))) {
        return vimg_internal_img_error(img, ENOTSUP, "internal snapshots are "
                                       "not supported with an external data "
                                       "file");
    }
    return 0;
}

/* ---- Driver members --------------------------------------------------- */

int qcow2_snapshot_list(struct vimg_image *img, struct vimg_snapshot **list,
                        size_t *n)
{
    struct qcow2_state *s = qcow2_state(img);
    struct vimg_snapshot *v;

    *list = NULL;
    *n = 0;
    if (!s->nb_snapshots) {
        return 0;
    }
    if (!(v = calloc(s->nb_snapshots, sizeof *v))) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    for (uint32_t i = 0; i < s->nb_snapshots; i++) {
        const struct qcow2_snapshot *sn = &s->snapshots[i];
        v[i] = (struct vimg_snapshot){
            .id = strdup(sn->id),
            .name = strdup(sn->name),
            .vm_state_size = sn->vm_state_size,
            .disk_size = sn->disk_size,
            .date_sec = sn->date_sec,
            .date_nsec = sn->date_nsec,
            .vm_clock_nsec = sn->vm_clock_nsec,
            .icount = sn->has_icount ? sn->icount : VIMG_SNAPSHOT_NO_ICOUNT,
        };
        if (!v[i].id || !v[i].name) {
            vimg_snapshot_list_free(v, i + 1);
            return vimg_internal_img_error(img, ENOMEM, "out of memory");
        }
    }
    *list = v;
    *n = s->nb_snapshots;
    return 0;
}

int qcow2_snapshot_create(struct vimg_image *img,
                          const struct vimg_snapshot *in)
{
    struct qcow2_state *s = qcow2_state(img);
    struct txn_result res = { .size = img->size,
                              .l1_size = s->l1_size };
    struct txn t;
    uint8_t *buf;
    unsigned long max_id = 0;
    char id[24];
    int r;

    if ((r = refuse_data_file(img)) < 0) {
        return r;
    }
    if (s->nb_snapshots >= QCOW2_MAX_SNAPSHOTS) {
        return vimg_internal_img_error(img, EFBIG, "too many snapshots "
                                       "(%u)", s->nb_snapshots);
    }
    if (strlen(in->name) > UINT16_MAX) {
        return vimg_internal_img_error(img, EINVAL, "snapshot name too "
                                       "long");
    }
    /* The next ID, as QEMU picks it: one past the largest number. */
    for (uint32_t i = 0; i < s->nb_snapshots; i++) {
        unsigned long v = strtoul(s->snapshots[i].id, NULL, 10);
        max_id = MAX(max_id, v);
    }
    snprintf(id, sizeof id, "%lu", max_id + 1);
    if ((r = txn_begin(img, &t, &buf)) < 0 ||
        (r = copy_snapshots(img, &res.snapshots)) < 0) {
        goto out;
    }
    res.nb_snapshots = s->nb_snapshots + 1;
    /* The snapshot keeps the current L1 table as it is on disk; the
     * active image gets a new one reaching the same tables. */
    struct qcow2_snapshot *sn = &res.snapshots[s->nb_snapshots];
    *sn = (struct qcow2_snapshot){
        .l1_offset = s->l1_offset,
        .l1_size = s->l1_size,
        .vm_state_size = in->vm_state_size,
        .date_sec = in->date_sec,
        .date_nsec = in->date_nsec,
        .vm_clock_nsec = in->vm_clock_nsec,
        .icount = in->icount,
        .has_icount = in->icount != VIMG_SNAPSHOT_NO_ICOUNT,
        .disk_size = img->size,
        .id = strdup(id),
        .name = strdup(in->name),
    };
    res.l1 = malloc((s->l1_size ? s->l1_size : 1) * sizeof *res.l1);
    if (!sn->id || !sn->name || !res.l1) {
        r = vimg_internal_img_error(img, ENOMEM, "out of memory");
        goto out;
    }
    memcpy(res.l1, s->l1, s->l1_size * sizeof *res.l1);
    if ((r = add_tree(&t, s->l1, s->l1_size, 1, buf)) < 0 ||
        (r = set_copied(&t, res.l1, res.l1_size, buf)) < 0) {
        goto out;
    }
    r = txn_commit(&t, &res);
out:
    txn_end(&t, &res, buf);
    return r;
}

int qcow2_snapshot_apply(struct vimg_image *img, const char *id,
                         const char *name)
{
    struct qcow2_state *s = qcow2_state(img);
    struct txn_result res = { 0 };
    struct txn t;
    uint8_t *buf;
    int64_t i = find_snapshot(s, id, name);
    int r;

    if ((r = refuse_data_file(img)) < 0) {
        return r;
    }
    if (i < 0) {
        return not_found(img, id, name);
    }
    /* The bitmaps would not know what changed (QEMU refuses too, even
     * with every bitmap disabled). */
    if (s->bm_count) {
        return vimg_internal_img_error(img, EBUSY, "Device has active dirty "
                                       "bitmaps");
    }
    const struct qcow2_snapshot *sn = &s->snapshots[i];
    uint64_t need = DIV_ROUND_UP(sn->disk_size,
                                 s->cluster_size << s->l2_bits);
    if (sn->disk_size % 512 || sn->disk_size > INT64_MAX ||
        need * 8 > QCOW2_MAX_L1_BYTES) {
        return vimg_internal_img_error(img, EINVAL, "snapshot '%s' has an "
                                       "invalid disk size %llu", sn->name,
                                       (unsigned long long)sn->disk_size);
    }
    res.size = sn->disk_size;
    res.l1_size = (uint32_t)MAX(sn->l1_size, need);
    if ((r = txn_begin(img, &t, &buf)) < 0 ||
        (r = copy_snapshots(img, &res.snapshots)) < 0) {
        goto out;
    }
    res.nb_snapshots = s->nb_snapshots;
    /* The active image takes the snapshot's tables (VM state past the
     * disk included, as QEMU's loadvm wants it) and gives up its own. */
    if ((r = read_snapshot_l1(img, sn, res.l1_size, &res.l1)) < 0 ||
        (r = add_tree(&t, res.l1, sn->l1_size, 1, buf)) < 0 ||
        (r = add_tree(&t, s->l1, s->l1_size, -1, buf)) < 0 ||
        (r = txn_add_range(&t, s->l1_offset, s->l1_size * 8ull, -1)) < 0 ||
        (r = set_copied(&t, res.l1, res.l1_size, buf)) < 0) {
        goto out;
    }
    r = txn_commit(&t, &res);
out:
    txn_end(&t, &res, buf);
    return r;
}

int qcow2_snapshot_delete(struct vimg_image *img, const char *id,
                          const char *name)
{
    struct qcow2_state *s = qcow2_state(img);
    struct txn_result res = { .size = img->size, .l1_size = s->l1_size };
    struct txn t;
    uint8_t *buf;
    uint64_t *l1 = NULL;
    int64_t i = find_snapshot(s, id, name);
    int r;

    if (i < 0) {
        return not_found(img, id, name);
    }
    if ((r = txn_begin(img, &t, &buf)) < 0 ||
        (r = copy_snapshots(img, &res.snapshots)) < 0) {
        goto out;
    }
    const struct qcow2_snapshot *sn = &s->snapshots[i];
    free(res.snapshots[i].id);
    free(res.snapshots[i].name);
    free(res.snapshots[i].extra_unknown);
    memmove(&res.snapshots[i], &res.snapshots[i + 1],
            (s->nb_snapshots - (uint64_t)i - 1) * sizeof *res.snapshots);
    res.nb_snapshots = s->nb_snapshots - 1;
    res.l1 = malloc((s->l1_size ? s->l1_size : 1) * sizeof *res.l1);
    if (!res.l1) {
        r = vimg_internal_img_error(img, ENOMEM, "out of memory");
        goto out;
    }
    memcpy(res.l1, s->l1, s->l1_size * sizeof *res.l1);
    /* What only the snapshot held drops to 0; what it shared with the
     * active image may become the active image's alone (COPIED). */
    if ((r = read_snapshot_l1(img, sn, sn->l1_size, &l1)) < 0 ||
        (r = add_tree(&t, l1, sn->l1_size, -1, buf)) < 0 ||
        (r = txn_add_range(&t, sn->l1_offset, sn->l1_size * 8ull, -1)) < 0 ||
        (r = txn_add_range(&t, s->l1_offset, s->l1_size * 8ull, -1)) < 0 ||
        (r = set_copied(&t, res.l1, res.l1_size, buf)) < 0) {
        goto out;
    }
    r = txn_commit(&t, &res);
out:
    free(l1);
    txn_end(&t, &res, buf);
    return r;
}

int qcow2_snapshot_rewrite_table(struct vimg_image *img)
{
    struct qcow2_state *s = qcow2_state(img);
    struct txn_result res = { .size = img->size, .l1_size = s->l1_size };
    struct txn t;
    uint8_t *buf;
    int r;

    if ((r = txn_begin(img, &t, &buf)) < 0 ||
        (r = copy_snapshots(img, &res.snapshots)) < 0) {
        goto out;
    }
    res.nb_snapshots = s->nb_snapshots;
    res.l1 = malloc((s->l1_size ? s->l1_size : 1) * sizeof *res.l1);
    if (!res.l1) {
        r = vimg_internal_img_error(img, ENOMEM, "out of memory");
        goto out;
    }
    memcpy(res.l1, s->l1, s->l1_size * sizeof *res.l1);
    /* No reference changes: the active L1 table moves with the rest (the
     * transaction writes it anew), and set_copied finds every flag as it
     * is. */
    if ((r = txn_add_range(&t, s->l1_offset, s->l1_size * 8ull, -1)) < 0 ||
        (r = set_copied(&t, res.l1, res.l1_size, buf)) < 0) {
        goto out;
    }
    r = txn_commit(&t, &res);
out:
    txn_end(&t, &res, buf);
    return r;
}

int qcow2_make_empty(struct vimg_image *img)
{
    struct qcow2_state *s = qcow2_state(img);
    struct txn_result res = { .size = img->size, .l1_size = s->l1_size };
    struct txn t;
    uint8_t *buf;
    int r;

    if ((r = txn_begin(img, &t, &buf)) < 0 ||
        (r = copy_snapshots(img, &res.snapshots)) < 0) {
        goto out;
    }
    res.nb_snapshots = s->nb_snapshots;
    if (!(res.l1 = calloc(s->l1_size ? s->l1_size : 1, sizeof *res.l1))) {
        r = vimg_internal_img_error(img, ENOMEM, "out of memory");
        goto out;
    }
    if ((r = add_tree(&t, s->l1, s->l1_size, -1, buf)) < 0 ||
        (r = txn_add_range(&t, s->l1_offset, s->l1_size * 8ull, -1)) < 0) {
        goto out;
    }
    /* Every cluster of the layer is discarded: the bitmaps hear of it, as
     * QEMU's discards tell them. */
    if ((r = qcow2_bitmaps_mark(img, 0, img->size)) < 0) {
        goto out;
    }
    r = txn_commit(&t, &res);
out:
    txn_end(&t, &res, buf);
    return r;
}

int qcow2_snapshot_load(struct vimg_image *img, const char *id,
                        const char *name)
{
    struct qcow2_state *s = qcow2_state(img);
    int64_t i = find_snapshot(s, id, name);
    uint64_t *l1;
    int r;

    if (i < 0) {
        return not_found(img, id, name);
    }
    const struct qcow2_snapshot *sn = &s->snapshots[i];
    uint64_t need = DIV_ROUND_UP(sn->disk_size,
                                 s->cluster_size << s->l2_bits);
    if (sn->disk_size > INT64_MAX || need * 8 > QCOW2_MAX_L1_BYTES) {
        return vimg_internal_img_error(img, EINVAL, "snapshot '%s' has an "
                                       "invalid disk size %llu", sn->name,
                                       (unsigned long long)sn->disk_size);
    }
    /* Padded to cover the disk: a snapshot's table may be shorter. */
    if ((r = read_snapshot_l1(img, sn, MAX(sn->l1_size, need), &l1)) < 0) {
        return r;
    }
    free(s->l1);
    s->l1 = l1;
    s->l1_size = (uint32_t)MAX(sn->l1_size, need);
    s->l1_offset = sn->l1_offset;
    img->size = ROUND_DOWN(sn->disk_size, 512);
    return 0;
}
