/* The QED driver's private state and the functions its files share:
 * qed.c (header, tables, data path), qed-check.c (consistency check and
 * repair), qed-create.c (new images). */
#ifndef VIMG_QED_H
#define VIMG_QED_H

#include <stdbool.h>
#include <stdint.h>

#include "../../common/checked-overflow.h"
#include "../internal.h"
#include "qed-ondisk.h"

/* Tables are read whole: 64 MiB covers every cluster size at table_size
 * 1 and qemu-img's default table_size 4 up to 16 MiB clusters; the spec's
 * largest (64 MiB clusters, 16 per table) would be 1 GiB per table. */
#define QED_MAX_TABLE_BYTES (64u << 20)
/* L2 tables cached: up to 16, within 16 MiB (at least one). */
#define QED_L2_SLOTS 16u
#define QED_L2_CACHE_BYTES (16u << 20)
/* Copy-on-write fills go through a buffer of at most this many bytes. */
#define QED_FILL_BYTES (1u << 20)
/* QEMU reads the backing name into a 4096-byte buffer with its NUL. */
#define QED_MAX_BACKING_NAME 4095u

struct qed_l2_slot {
    uint64_t offset;           /* 0: empty */
    uint64_t lru;
    uint64_t *table;           /* host order, allocated on first use */
};

struct qed_state {
    /* Header fields, host order. */
    uint32_t cluster_size, table_size, header_size;
    uint64_t features, compat, autoclear;
    uint64_t l1_offset, image_size;
    uint32_t backing_off, backing_len;
    /* Geometry. */
    unsigned cluster_bits, l1_shift;
    uint64_t entries;          /* per table */
    uint64_t table_bytes;
    uint64_t header_end;       /* header_size clusters */
    uint64_t file_size;        /* whole clusters; new ones go here */
    uint64_t orig_size;        /* file_size at open */
    uint64_t *l1;              /* host order */
    uint64_t *tables;          /* L2 table offsets at open, sorted */
    uint64_t n_tables;
    uint8_t *bad;              /* bit per L1 entry: unusable table */
    uint8_t *verified;         /* bit per L1 entry: its table checked */
    struct qed_l2_slot slots[QED_L2_SLOTS];
    unsigned slot_count;
    uint64_t tick;
    uint8_t *fill;             /* copy-on-write buffer */
    uint64_t fill_size;
    bool need_check_ours;      /* we set QED_F_NEED_CHECK */
    bool corrupt;              /* found at run time: writes refused */
};

static inline struct qed_state *qed_state(struct vimg_image *img)
{
    return img->opaque;
}

static inline bool qed_pow2(uint64_t v)
{
    return v && !(v & (v - 1));
}

/* The spec's bound, image_size <= entries * entries * cluster_size, or
 * UINT64_MAX when the product does not fit 64 bits (every size fits). */
static inline uint64_t qed_max_image_size(uint64_t cluster_size,
                                          uint64_t table_size)
{
    uint64_t entries = cluster_size * table_size / QED_ENTRY_SIZE, span, max;
    if (CHECKED_MUL(entries, cluster_size, &span) ||
        CHECKED_MUL(span, entries, &max)) {
        return UINT64_MAX;
    }
    return max;
}

/* qed.c */
/* Write S's header fields over the first QED_HDR_LENGTH bytes. */
int qed_write_header(struct vimg_image *img);
/* Record metadata found corrupt at OFF (WHAT names it) and refuse further
 * writes; returns -EIO. */
int qed_corrupt(struct vimg_image *img, const char *what, uint64_t off);
/* Clear QED_F_NEED_CHECK after a flush (nothing when it is clear). */
int qed_mark_clean(struct vimg_image *img);
/* (Re)build the sorted index of L2 tables and the unusable L1 entries. */
int qed_index_tables(struct vimg_image *img);
/* Forget the cached L2 tables (check rewrote some on disk). */
void qed_drop_cache(struct qed_state *s);

/* qed-check.c: QEMU's qed_check. FIX (any VIMG_CHECK_FIX_*) clears
 * entries that point outside the file, and the need-check flag when
 * nothing unrepaired is left. */
int qed_check(struct vimg_image *img, unsigned fix,
              struct vimg_check_result *res, vimg_report_fn report,
              void *opaque);

/* qed-create.c */
extern const struct vimg_opt_desc qed_create_opts[];
int qed_create(struct vimg_image *file, const struct vimg_create_ctx *c);

#endif
