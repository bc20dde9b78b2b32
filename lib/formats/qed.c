/* The QED format (QEMU Enhanced Disk, docs/interop/qed_spec.txt): a
 * header in the first clusters, an L1 table of L2 table offsets, L2
 * tables of data cluster offsets (1: a zero cluster), everything appended
 * at the end of the file as it is allocated. Read, written and created as
 * QEMU 7.2's block/qed.c does, with its consistency check (qed-check.c)
 * and the need-check flag kept as QEMU keeps it; new images in
 * qed-create.c. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/rounding.h"
#include "qed.h"

static int qed_probe(const uint8_t *buf, size_t len, const char *filename)
{
    (void)filename;
    return len >= QED_HDR_LENGTH &&
                   load_le32(buf + QED_HDR_MAGIC) == QED_MAGIC
               ? 100 : 0;
}

/* ---- Header ----------------------------------------------------------- */

/* The one place header fields are checked ("Header" and "Tables" of the
 * spec, with QEMU's open-time checks and vimg's memory cap). Fills the
 * geometry of S and the backing name's place. */
static int validate_header(struct vimg_image *img, struct qed_state *s,
                           const uint8_t *h, uint64_t file_size)
{
    s->cluster_size = load_le32(h + QED_HDR_CLUSTER_SIZE);
    s->table_size = load_le32(h + QED_HDR_TABLE_SIZE);
    s->header_size = load_le32(h + QED_HDR_HEADER_SIZE);
    s->features = load_le64(h + QED_HDR_FEATURES);
    s->compat = load_le64(h + QED_HDR_COMPAT_FEATURES);
    s->autoclear = load_le64(h + QED_HDR_AUTOCLEAR_FEATURES);
    s->l1_offset = load_le64(h + QED_HDR_L1_TABLE_OFFSET);
    s->image_size = load_le64(h + QED_HDR_IMAGE_SIZE);
    s->backing_off = load_le32(h + QED_HDR_BACKING_FILENAME_OFFSET);
    s->backing_len = load_le32(h + QED_HDR_BACKING_FILENAME_SIZE);

    if (load_le32(h + QED_HDR_MAGIC) != QED_MAGIC) {
        return vimg_internal_img_error(img, EINVAL, "not a QED image");
    }
    if (s->features & ~(uint64_t)QED_FEATURE_MASK) {
        return vimg_internal_img_error(img, ENOTSUP, "QED image uses "
                                       "unsupported feature bits 0x%llx",
                                       (unsigned long long)(s->features &
                                       ~(uint64_t)QED_FEATURE_MASK));
    }
    if (s->cluster_size < QED_MIN_CLUSTER_SIZE ||
        s->cluster_size > QED_MAX_CLUSTER_SIZE || !qed_pow2(s->cluster_size)) {
        return vimg_internal_img_error(img, EINVAL, "QED cluster size %u is "
                                       "invalid (a power of two from 4 KiB "
                                       "to 64 MiB)", s->cluster_size);
    }
    if (s->table_size < QED_MIN_TABLE_SIZE ||
        s->table_size > QED_MAX_TABLE_SIZE || !qed_pow2(s->table_size)) {
        return vimg_internal_img_error(img, EINVAL, "QED table size %u is "
                                       "invalid (a power of two from 1 to "
                                       "16 clusters)", s->table_size);
    }
    s->table_bytes = (uint64_t)s->cluster_size * s->table_size;
    if (s->table_bytes > QED_MAX_TABLE_BYTES) {
        return vimg_internal_img_error(img, EFBIG, "QED tables of %llu "
                                       "bytes are larger than vimg reads "
                                       "(%u MiB)",
                                       (unsigned long long)s->table_bytes,
                                       QED_MAX_TABLE_BYTES >> 20);
    }
    s->entries = s->table_bytes / QED_ENTRY_SIZE;
    s->cluster_bits = (unsigned)__builtin_ctzll(s->cluster_size);
    s->l1_shift = s->cluster_bits + (unsigned)__builtin_ctzll(s->entries);
    if (s->image_size % 512 || s->image_size > INT64_MAX ||
        s->image_size > qed_max_image_size(s->cluster_size, s->table_size)) {
        return vimg_internal_img_error(img, EINVAL, "QED image size %llu is "
                                       "invalid (a multiple of 512 that the "
                                       "tables can map)",
                                       (unsigned long long)s->image_size);
    }
    /* QEMU uses the file in whole clusters: a partial last one is
     * overwritten by the next allocation. */
    s->file_size = ROUND_DOWN(file_size, s->cluster_size);
    s->orig_size = s->file_size;
    s->header_end = (uint64_t)s->header_size * s->cluster_size;
    if (s->header_size == 0 || s->header_end > s->file_size) {
        return vimg_internal_img_error(img, EINVAL, "QED header size of %u "
                                       "clusters is invalid",
                                       s->header_size);
    }
    if (s->l1_offset % s->cluster_size || s->l1_offset < s->header_end ||
        range_outside(s->l1_offset, s->table_bytes, s->file_size)) {
        return vimg_internal_img_error(img, EINVAL, "L1 table at 0x%llx "
                                       "lies outside the file, over the "
                                       "header or unaligned",
                                       (unsigned long long)s->l1_offset);
    }
    if (s->features & QED_F_BACKING_FILE) {
        if (s->backing_len > QED_MAX_BACKING_NAME) {
            return vimg_internal_img_error(img, EINVAL, "backing file name "
                                           "too long (%u bytes)",
                                           s->backing_len);
        }
        if (range_outside(s->backing_off, s->backing_len, s->header_end)) {
            return vimg_internal_img_error(img, EINVAL, "backing file name "
                                           "at %u lies outside the header",
                                           s->backing_off);
        }
    }
    img->size = s->image_size;
    return 0;
}

/* S's header fields as they lie on disk, in the QED_HDR_LENGTH bytes at H. */
static void store_header(const struct qed_state *s, uint8_t *h)
{
    memset(h, 0, QED_HDR_LENGTH);
    store_le32(h + QED_HDR_MAGIC, QED_MAGIC);
    store_le32(h + QED_HDR_CLUSTER_SIZE, s->cluster_size);
    store_le32(h + QED_HDR_TABLE_SIZE, s->table_size);
    store_le32(h + QED_HDR_HEADER_SIZE, s->header_size);
    store_le64(h + QED_HDR_FEATURES, s->features);
    store_le64(h + QED_HDR_COMPAT_FEATURES, s->compat);
    store_le64(h + QED_HDR_AUTOCLEAR_FEATURES, s->autoclear);
    store_le64(h + QED_HDR_L1_TABLE_OFFSET, s->l1_offset);
    store_le64(h + QED_HDR_IMAGE_SIZE, s->image_size);
    store_le32(h + QED_HDR_BACKING_FILENAME_OFFSET, s->backing_off);
    store_le32(h + QED_HDR_BACKING_FILENAME_SIZE, s->backing_len);
}

/* Write the header fields from S over the first QED_HDR_LENGTH bytes (what
 * follows them, the backing name, stays). */
int qed_write_header(struct vimg_image *img)
{
    uint8_t h[QED_HDR_LENGTH];

    store_header(qed_state(img), h);
    return vimg_internal_pwrite(img->file, h, sizeof h, 0,
                                VIMG_INTERNAL_WRITE_METADATA);
}

/* ---- Metadata bounds --------------------------------------------------- */

int qed_corrupt(struct vimg_image *img, const char *what, uint64_t off)
{
    qed_state(img)->corrupt = true;
    return vimg_internal_img_error(img, EIO, "%s at 0x%llx lies outside the "
                                   "file, unaligned, or on its metadata "
                                   "(header, L1 or L2 tables)",
                                   what, (unsigned long long)off);
}

/* Whether [AT, AT+LEN) meets one of the L2 tables the L1 table named at
 * open (tables added later lie past the file's old end, where no checked
 * entry points). All tables have one length, so their ends sort as their
 * starts do. */
static bool on_table(const struct qed_state *s, uint64_t at, uint64_t len)
{
    uint64_t lo = 0, hi = s->n_tables;
    while (lo < hi) {       /* first table ending after AT */
        uint64_t mid = (lo + hi) / 2;
        if (s->tables[mid] + s->table_bytes <= at) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo < s->n_tables && s->tables[lo] < at + len;
}

/* A table or cluster of LEN bytes at OFF: aligned, past the header, inside
 * the first LIMIT bytes of the file, clear of the L1 table and (ON_TABLES)
 * of the L2 tables. */
static bool place_ok(const struct qed_state *s, uint64_t off, uint64_t len,
                     uint64_t limit, bool on_tables)
{
    return off % s->cluster_size == 0 && off >= s->header_end &&
           !range_outside(off, len, limit) &&
           (off + len <= s->l1_offset ||
            off >= s->l1_offset + s->table_bytes) &&
           !(on_tables && on_table(s, off, len));
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Index the L2 tables the L1 table names and mark the entries that cannot
 * be used: a bad place, or a table shared with another entry (writes
 * through one would change the other). Nothing is refused here: check
 * must be able to open such an image and report it (and calls this
 * again after clearing entries). */
int qed_index_tables(struct vimg_image *img)
{
    struct qed_state *s = qed_state(img);
    uint64_t n = 0;

    free(s->tables);
    free(s->bad);
    s->tables = NULL;
    s->bad = NULL;
    s->n_tables = 0;
    for (uint64_t i = 0; i < s->entries; i++) {
        n += s->l1[i] != 0;
    }
    if (!(s->tables = malloc((n ? n : 1) * sizeof *s->tables)) ||
        !(s->bad = calloc(1, s->entries / 8 + 1))) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    for (uint64_t i = 0; i < s->entries; i++) {
        if (s->l1[i]) {
            s->tables[s->n_tables++] = s->l1[i];
        }
    }
    qsort(s->tables, s->n_tables, sizeof *s->tables, cmp_u64);
    for (uint64_t i = 0; i < s->entries; i++) {
        uint64_t t = s->l1[i];
        if (!t) {
            continue;
        }
        bool ok = place_ok(s, t, s->table_bytes, s->orig_size, false);
        /* Shared or overlapping: another table starts within T's span, or
         * T starts within the one before it. */
        uint64_t lo = 0, hi = s->n_tables;
        while (lo < hi) {
            uint64_t mid = (lo + hi) / 2;
            if (s->tables[mid] < t) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if ((lo + 1 < s->n_tables &&
             s->tables[lo + 1] < t + s->table_bytes) ||
            (lo > 0 && s->tables[lo - 1] + s->table_bytes > t)) {
            ok = false;
        }
        if (!ok) {
            s->bad[i / 8] |= (uint8_t)(1u << (i % 8));
        }
    }
    return 0;
}

/* ---- Open and close ---------------------------------------------------- */

static void free_state(struct qed_state *s)
{
    free(s->l1);
    free(s->tables);
    free(s->bad);
    free(s->verified);
    for (unsigned i = 0; i < QED_L2_SLOTS; i++) {
        free(s->slots[i].table);
    }
    free(s->fill);
    memset(s, 0, sizeof *s);
}

/* Read the L1 table into S->l1 (host order). */
static int read_l1(struct vimg_image *img, struct qed_state *s)
{
    int r;

    if (!(s->l1 = malloc(s->table_bytes))) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    r = vimg_internal_pread(img->file, s->l1, s->table_bytes, s->l1_offset);
    for (uint64_t i = 0; r == 0 && i < s->entries; i++) {
        s->l1[i] = load_le64(&s->l1[i]); /* in place, one entry each */
    }
    return r;
}

static int read_backing_name(struct vimg_image *img, struct qed_state *s)
{
    char *name = calloc(1, (size_t)s->backing_len + 1);
    int r;

    if (!name) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    if ((r = vimg_internal_pread(img->file, name, s->backing_len,
                                 s->backing_off)) < 0) {
        free(name);
        return r;
    }
    img->backing_name = name;
    if ((s->features & QED_F_BACKING_FORMAT_NO_PROBE) &&
        !(img->backing_format = strdup("raw"))) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    return 0;
}

/* A writable image left dirty (a crash while allocating) is checked and
 * repaired before use, as QEMU does; what cannot be repaired is refused
 * (QEMU would go on writing into it). */
static int repair_on_open(struct vimg_image *img)
{
    struct vimg_check_result res = { .image_end_offset = -1 };
    int r = qed_check(img, VIMG_CHECK_FIX_ERRORS, &res, NULL, NULL);

    if (r < 0) {
        return r;
    }
    if (res.corruptions || res.check_errors) {
        return vimg_internal_img_error(img, EIO, "the image was not closed "
                                       "cleanly and has %lld corruptions "
                                       "that check cannot repair",
                                       (long long)(res.corruptions +
                                                   res.check_errors));
    }
    return 0;
}

static int qed_open(struct vimg_image *img, const struct vimg_opts *opts)
{
    struct qed_state *s = qed_state(img);
    uint64_t len;
    uint8_t h[QED_HDR_LENGTH];
    int r;

    (void)opts;
    if ((r = vimg_internal_read_header(img, h, sizeof h, "a QED header",
                                       &len)) < 0 ||
        (r = validate_header(img, s, h, len)) < 0 ||
        (r = read_l1(img, s)) < 0 || (r = qed_index_tables(img)) < 0 ||
        ((s->features & QED_F_BACKING_FILE) &&
         (r = read_backing_name(img, s)) < 0)) {
        goto fail;
    }
    s->verified = calloc(1, s->entries / 8 + 1);
    s->slot_count = (unsigned)MAX(1, MIN(QED_L2_SLOTS, QED_L2_CACHE_BYTES /
                                                        s->table_bytes));
    s->fill_size = MIN(s->cluster_size, QED_FILL_BYTES);
    if (!s->verified || !(s->fill = malloc(s->fill_size))) {
        r = vimg_internal_img_error(img, ENOMEM, "out of memory");
        goto fail;
    }
    if (img->writable && !(img->params.flags & VIMG_OPEN_CHECK)) {
        /* Unknown autoclear bits are cleared by a writer (the spec:
         * whatever they promised is no longer kept). */
        if (s->autoclear) {
            s->autoclear = 0;
            if ((r = qed_write_header(img)) < 0 ||
                (r = vimg_internal_flush(img->file)) < 0) {
                goto fail;
            }
        }
        if ((s->features & QED_F_NEED_CHECK) &&
            (r = repair_on_open(img)) < 0) {
            goto fail;
        }
    }
    return 0;

fail:
    free_state(s);
    return r;
}

/* Clear the need-check flag once everything it guarded is on disk. */
int qed_mark_clean(struct vimg_image *img)
{
    struct qed_state *s = qed_state(img);
    int r;

    if (!(s->features & QED_F_NEED_CHECK)) {
        return 0;
    }
    if ((r = vimg_internal_flush(img->file)) < 0) {
        return r;
    }
    s->features &= ~(uint64_t)QED_F_NEED_CHECK;
    if ((r = qed_write_header(img)) < 0) {
        s->features |= QED_F_NEED_CHECK;
        return r;
    }
    s->need_check_ours = false;
    return vimg_internal_flush(img->file);
}

static int qed_close(struct vimg_image *img)
{
    struct qed_state *s = qed_state(img);
    int r = 0;

    if (img->writable && s->need_check_ours && !s->corrupt) {
        r = qed_mark_clean(img);
    }
    free_state(s);
    return r;
}

/* ---- L2 tables -------------------------------------------------------- */

/* Drop every cached L2 table (check rewrote some). */
void qed_drop_cache(struct qed_state *s)
{
    for (unsigned i = 0; i < QED_L2_SLOTS; i++) {
        s->slots[i].offset = 0;
    }
}

static bool bit(const uint8_t *map, uint64_t i)
{
    return map[i / 8] & (1u << (i % 8));
}

/* The L2 table of L1 entry INDEX (at OFFSET), cached; every entry of a
 * table read from disk is checked: 0, 1, or a cluster clear of the
 * metadata and below LIMIT: the end of the file at open for a table read
 * for the first time (the file grows as clusters are added, and an old
 * entry past its old end would alias a new cluster), the current end for
 * a table seen before (its newer entries are ours). NEW_TABLE gives a
 * zeroed table. */
static int get_l2(struct vimg_image *img, uint64_t index, uint64_t offset,
                  bool new_table, uint64_t **out)
{
    struct qed_state *s = qed_state(img);
    struct qed_l2_slot *victim = &s->slots[0];
    int r;

    for (unsigned i = 0; i < s->slot_count; i++) {
        if (s->slots[i].offset == offset && s->slots[i].table) {
            s->slots[i].lru = ++s->tick;
            *out = s->slots[i].table;
            return 0;
        }
        if (s->slots[i].lru < victim->lru) {
            victim = &s->slots[i];
        }
    }
    victim->offset = 0;
    if (!victim->table &&
        !(victim->table = malloc(s->entries * sizeof *victim->table))) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    if (new_table) {
        memset(victim->table, 0, s->table_bytes);
    } else {
        uint8_t *raw = (uint8_t *)victim->table;
        uint64_t limit = bit(s->verified, index) ? s->file_size
                                                 : s->orig_size;
        if ((r = vimg_internal_pread(img->file, raw, s->table_bytes,
                                     offset)) < 0) {
            return r;
        }
        for (uint64_t i = 0; i < s->entries; i++) {
            uint64_t e = load_le64(raw + i * QED_ENTRY_SIZE);
            victim->table[i] = e;
            if (e > QED_ZERO_CLUSTER &&
                !place_ok(s, e, s->cluster_size, limit, true)) {
                return qed_corrupt(img, "data cluster", e);
            }
        }
    }
    s->verified[index / 8] |= (uint8_t)(1u << (index % 8));
    victim->offset = offset;
    victim->lru = ++s->tick;
    *out = victim->table;
    return 0;
}

/* The L2 table for guest OFFSET, or *TABLE NULL when none is allocated. */
static int lookup(struct vimg_image *img, uint64_t offset, uint64_t **table)
{
    struct qed_state *s = qed_state(img);
    uint64_t index = offset >> s->l1_shift;

    *table = NULL;
    if (!s->l1[index]) {
        return 0;
    }
    if (bit(s->bad, index)) {
        return qed_corrupt(img, "L2 table", s->l1[index]);
    }
    return get_l2(img, index, s->l1[index], false, table);
}

/* The run of entries from L2 index I (at most N) that are of one kind:
 * unallocated, zero, or data clusters contiguous in the file. */
static uint64_t run_length(const struct qed_state *s, const uint64_t *table,
                           uint64_t i, uint64_t n)
{
    uint64_t first = table ? table[i] : 0, k = 1;

    if (!table) {
        return n;
    }
    while (k < n) {
        uint64_t e = table[i + k];
        if (first > QED_ZERO_CLUSTER
                ? e != first + k * s->cluster_size
                : e != first) {
            break;
        }
        k++;
    }
    return k;
}

/* Clusters from guest OFFSET, COUNT bytes, that one L2 table covers. */
static uint64_t clusters_in_table(const struct qed_state *s, uint64_t offset,
                                  uint64_t count)
{
    uint64_t in = offset & (s->cluster_size - 1);
    uint64_t l2i = (offset >> s->cluster_bits) & (s->entries - 1);
    uint64_t n = DIV_ROUND_UP(in + count, s->cluster_size);
    return MIN(n, s->entries - l2i);
}

/* ---- Data path -------------------------------------------------------- */

/* The guest bytes [OFFSET, OFFSET+COUNT) of a range this layer does not
 * hold: the backing file's, zeros past the virtual size. */
static int read_unallocated(struct vimg_image *img, void *buf, uint64_t count,
                            uint64_t offset)
{
    uint64_t n = offset < img->size ? MIN(count, img->size - offset) : 0;
    memset((uint8_t *)buf + n, 0, count - n);
    return n ? vimg_internal_read_backing(img, buf, n, offset) : 0;
}

static int qed_pread(struct vimg_image *img, void *buf, uint64_t count,
                     uint64_t offset)
{
    struct qed_state *s = qed_state(img);
    uint8_t *p = buf;
    uint64_t *table;
    int r;

    while (count) {
        uint64_t in = offset & (s->cluster_size - 1);
        uint64_t l2i = (offset >> s->cluster_bits) & (s->entries - 1);
        if ((r = lookup(img, offset, &table)) < 0) {
            return r;
        }
        uint64_t k = run_length(s, table,  l2i,
                                clusters_in_table(s, offset, count));
        uint64_t n = MIN(count, k * s->cluster_size - in);
        uint64_t e = table ? table[l2i] : 0;
        if (e == 0) {
            r = read_unallocated(img, p, n, offset);
        } else if (e == QED_ZERO_CLUSTER) {
            memset(p, 0, n);
        } else {
            r = vimg_internal_pread(img->file, p, n, e + in);
        }
        if (r < 0) {
            return r;
        }
        p += n;
        offset += n;
        count -= n;
    }
    return 0;
}

/* Metadata found corrupt while the image was in use: no more writes. */
static int refuse_corrupt(struct vimg_image *img)
{
    if (!qed_state(img)->corrupt) {
        return 0;
    }
    return vimg_internal_img_error(img, EIO, "the image is corrupt; writes "
                                   "are refused");
}

/* Before the first change to the tables, mark the image as needing a
 * check, as QEMU does, unless a backing file is in use: then every new
 * cluster's data is flushed before a table points at it, which keeps the
 * image consistent without one. */
static int need_check(struct vimg_image *img)
{
    struct qed_state *s = qed_state(img);
    int r;

    if ((r = refuse_corrupt(img)) < 0) {
        return r;
    }
    if (img->backing_name || (s->features & QED_F_NEED_CHECK)) {
        return 0;
    }
    s->features |= QED_F_NEED_CHECK;
    if ((r = qed_write_header(img)) < 0) {
        s->features &= ~(uint64_t)QED_F_NEED_CHECK;
        return r;
    }
    s->need_check_ours = true;
    return vimg_internal_flush(img->file);
}

/* N new clusters (or a table) at the end of the file. */
static int append(struct vimg_image *img, uint64_t bytes, uint64_t *at)
{
    struct qed_state *s = qed_state(img);
    uint64_t end;

    if (CHECKED_ADD(s->file_size, bytes, &end) || end > INT64_MAX) {
        return vimg_internal_img_error(img, EFBIG, "the image file is full");
    }
    *at = s->file_size;
    s->file_size = end;
    return 0;
}

/* Fill [AT, AT+LEN) of the file with guest bytes [POS, POS+LEN) as they
 * read before the write: zeros for a zero cluster (ZERO), else what the
 * backing file holds. */
static int fill(struct vimg_image *img, uint64_t pos, uint64_t len,
                uint64_t at, bool zero)
{
    struct qed_state *s = qed_state(img);
    int r;

    while (len) {
        uint64_t n = MIN(len, s->fill_size);
        if (zero) {
            memset(s->fill, 0, n);
        } else if ((r = read_unallocated(img, s->fill, n, pos)) < 0) {
            return r;
        }
        if ((r = vimg_internal_pwrite(img->file, s->fill, n, at, 0)) < 0) {
            return r;
        }
        pos += n;
        at += n;
        len -= n;
    }
    return 0;
}

/* Point K entries of the L2 table for guest OFFSET (TABLE, or none yet)
 * at VALUE (a zero cluster, or clusters from VALUE on). A new table goes
 * at the end of the file, whole, and is flushed before the L1 table
 * points at it. */
static int set_entries(struct vimg_image *img, uint64_t offset,
                       uint64_t *table, uint64_t k, uint64_t value)
{
    struct qed_state *s = qed_state(img);
    uint64_t index = offset >> s->l1_shift;
    uint64_t l2i = (offset >> s->cluster_bits) & (s->entries - 1);
    uint64_t at = s->l1[index], first = l2i, count = k;
    uint8_t *raw;
    int r;

    if (!table) {
        if ((r = append(img, s->table_bytes, &at)) < 0 ||
            (r = get_l2(img, index, at, true, &table)) < 0) {
            return r;
        }
        first = 0;
        count = s->entries;
    }
    for (uint64_t i = 0; i < k; i++) {
        table[l2i + i] = value == QED_ZERO_CLUSTER
                             ? value : value + i * s->cluster_size;
    }
    if (!(raw = malloc(count * QED_ENTRY_SIZE))) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    for (uint64_t i = 0; i < count; i++) {
        store_le64(raw + i * QED_ENTRY_SIZE, table[first + i]);
    }
    r = vimg_internal_pwrite(img->file, raw, count * QED_ENTRY_SIZE,
                             at + first * QED_ENTRY_SIZE,
                             VIMG_INTERNAL_WRITE_METADATA);
    free(raw);
    if (r < 0 || s->l1[index] == at) {
        return r;
    }
    uint8_t be[QED_ENTRY_SIZE];
    store_le64(be, at);
    if ((r = vimg_internal_flush(img->file)) < 0 ||
        (r = vimg_internal_pwrite(img->file, be, sizeof be,
                                  s->l1_offset + index * QED_ENTRY_SIZE,
                                  VIMG_INTERNAL_WRITE_METADATA)) < 0) {
        return r;
    }
    s->l1[index] = at;
    return 0;
}

/* Write N guest bytes at OFFSET into K new clusters (unallocated or zero
 * clusters, starting with entry FIRST): the rest of the first and last
 * cluster as the guest saw it, data before the table entries. */
static int write_new(struct vimg_image *img, const void *p, uint64_t n,
                     uint64_t offset, uint64_t *table, uint64_t k,
                     uint64_t first)
{
    struct qed_state *s = qed_state(img);
    uint64_t in = offset & (s->cluster_size - 1);
    uint64_t start = offset - in, at = 0;
    uint64_t tail = k * s->cluster_size - in - n;
    int r;

    if ((r = need_check(img)) < 0 ||
        (r = append(img, k * s->cluster_size, &at)) < 0 ||
        (r = fill(img, start, in, at, first == QED_ZERO_CLUSTER)) < 0 ||
        (r = vimg_internal_pwrite(img->file, p, n, at + in, 0)) < 0 ||
        (r = fill(img, offset + n, tail, at + in + n,
                  first == QED_ZERO_CLUSTER)) < 0) {
        return r;
    }
    /* Flushed so that a crash cannot leave the table pointing at a
     * cluster without the backing file's data around the write. */
    if (img->backing_name && (r = vimg_internal_flush(img->file)) < 0) {
        return r;
    }
    return set_entries(img, offset, table, k, at);
}

static int qed_pwrite(struct vimg_image *img, const void *buf,
                      uint64_t count, uint64_t offset, unsigned flags)
{
    struct qed_state *s = qed_state(img);
    const uint8_t *p = buf;
    uint64_t *table;
    int r;

    if ((r = refuse_corrupt(img)) < 0) {
        return r;
    }
    while (count) {
        uint64_t in = offset & (s->cluster_size - 1);
        uint64_t l2i = (offset >> s->cluster_bits) & (s->entries - 1);
        if ((r = lookup(img, offset, &table)) < 0) {
            return r;
        }
        /* A run of data clusters is written in place; a run of
         * unallocated or of zero clusters is allocated anew (the fill of
         * its first and last cluster depends on which). */
        uint64_t e = table ? table[l2i] : 0;
        uint64_t k = run_length(s, table, l2i,
                                clusters_in_table(s, offset, count));
        uint64_t n = MIN(count, k * s->cluster_size - in);
        k = DIV_ROUND_UP(in + n, s->cluster_size);
        if (e > QED_ZERO_CLUSTER) {
            r = vimg_internal_pwrite(img->file, p, n, e + in, 0);
        } else {
            r = write_new(img, p, n, offset, table, k, e);
        }
        if (r < 0) {
            return r;
        }
        p += n;
        offset += n;
        count -= n;
    }
    /* Tables are written through as they change: FUA needs only the
     * file's flush. */
    return flags & VIMG_WRITE_FUA ? vimg_internal_flush(img->file) : 0;
}

/* As QEMU: whole clusters only (the core writes zeros for the rest).
 * Clusters with data are zeroed in place; the others become zero
 * clusters. */
static int qed_zero(struct vimg_image *img, uint64_t offset, uint64_t count,
                    unsigned flags)
{
    struct qed_state *s = qed_state(img);
    uint64_t *table;
    int r;

    (void)flags;
    if ((offset | count) & (s->cluster_size - 1)) {
        return -ENOTSUP;
    }
    if ((r = refuse_corrupt(img)) < 0) {
        return r;
    }
    while (count) {
        uint64_t l2i = (offset >> s->cluster_bits) & (s->entries - 1);
        if ((r = lookup(img, offset, &table)) < 0) {
            return r;
        }
        uint64_t k = run_length(s, table, l2i,
                                clusters_in_table(s, offset, count));
        uint64_t e = table ? table[l2i] : 0, n = k * s->cluster_size;
        if (e > QED_ZERO_CLUSTER) {
            r = vimg_internal_zero(img->file, e, n, 0);
        } else if (e == 0 && (r = need_check(img)) == 0) {
            r = set_entries(img, offset, table, k, QED_ZERO_CLUSTER);
        }
        if (r < 0) {
            return r;
        }
        offset += n;
        count -= n;
    }
    return 0;
}

static int qed_block_status(struct vimg_image *img, uint64_t offset,
                            uint64_t count, uint64_t *pnum, uint64_t *map,
                            const char **file)
{
    struct qed_state *s = qed_state(img);
    uint64_t in = offset & (s->cluster_size - 1);
    uint64_t l2i = (offset >> s->cluster_bits) & (s->entries - 1);
    uint64_t *table;
    int r;

    if ((r = lookup(img, offset, &table)) < 0) {
        return r;
    }
    uint64_t k = run_length(s, table, l2i,
                            clusters_in_table(s, offset, count));
    uint64_t e = table ? table[l2i] : 0;
    *pnum = MIN(count, k * s->cluster_size - in);
    if (e == 0) {
        return 0;
    }
    if (e == QED_ZERO_CLUSTER) {
        return VIMG_BS_ZERO | VIMG_BS_ALLOCATED;
    }
    *map = e + in;
    *file = img->file->filename;
    return VIMG_BS_DATA | VIMG_BS_ALLOCATED | VIMG_BS_OFFSET_VALID;
}

/* Grow only, as QEMU: the header's size is all that changes. */
static int qed_truncate(struct vimg_image *img, uint64_t size, unsigned flags,
                        enum vimg_prealloc prealloc)
{
    struct qed_state *s = qed_state(img);
    uint64_t old = s->image_size;
    int r;

    (void)flags;
    if (prealloc != VIMG_PREALLOC_OFF) {
        return vimg_internal_img_error(img, ENOTSUP, "Unsupported "
                                       "preallocation mode for QED");
    }
    if (size % 512 || size > INT64_MAX ||
        size > qed_max_image_size(s->cluster_size, s->table_size)) {
        return vimg_internal_img_error(img, EINVAL, "Invalid image size "
                                       "specified");
    }
    if (size < old) {
        return vimg_internal_img_error(img, ENOTSUP, "Shrinking images is "
                                       "currently not supported");
    }
    if ((r = refuse_corrupt(img)) < 0) {
        return r;
    }
    s->image_size = size;
    if ((r = qed_write_header(img)) < 0) {
        s->image_size = old;
        return r;
    }
    img->size = size;
    return 0;
}

/* As QEMU: the header and the new name right after it, in the header
 * clusters, in one write after everything else is on disk. Only a raw
 * backing file's format is recorded (QED_F_BACKING_FORMAT_NO_PROBE);
 * others are probed when the image is opened again. */
static int qed_change_backing(struct vimg_image *img, const char *name,
                              const char *format)
{
    struct qed_state *s = qed_state(img);
    size_t len = name ? strlen(name) : 0;
    bool raw = name && format && strcmp(format, "raw") == 0;
    char *iname = NULL, *iformat = NULL;
    uint8_t *buf;
    int r;

    if (name && s->compat) {
        return vimg_internal_img_error(img, ENOTSUP, "unknown compat "
                                       "features 0x%llx may use the header "
                                       "space: the backing file cannot "
                                       "change",
                                       (unsigned long long)s->compat);
    }
    if (len > QED_MAX_BACKING_NAME || QED_HDR_LENGTH + len > s->header_end) {
        return vimg_internal_img_error(img, ENOSPC, "backing file name too "
                                       "long for the header");
    }
    if ((name && !(iname = strdup(name))) ||
        (name && format && !(iformat = strdup(format))) ||
        !(buf = calloc(1, QED_HDR_LENGTH + len))) {
        free(iname);
        free(iformat);
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    uint64_t old_features = s->features;
    uint32_t old_off = s->backing_off, old_len = s->backing_len;
    s->features &= ~(uint64_t)(QED_F_BACKING_FILE |
                               QED_F_BACKING_FORMAT_NO_PROBE);
    s->features |= (name ? QED_F_BACKING_FILE : 0) |
                   (raw ? QED_F_BACKING_FORMAT_NO_PROBE : 0);
    s->backing_off = QED_HDR_LENGTH;
    s->backing_len = (uint32_t)len;
    store_header(s, buf);
    if (len) {
        memcpy(buf + QED_HDR_LENGTH, name, len);
    }
    if ((r = refuse_corrupt(img)) == 0 &&
        (r = vimg_internal_flush(img->file)) == 0) {
        r = vimg_internal_pwrite(img->file, buf, QED_HDR_LENGTH + len, 0,
                                 VIMG_INTERNAL_WRITE_METADATA);
    }
    free(buf);
    if (r == 0) {
        r = vimg_internal_flush(img->file);
    }
    if (r < 0) {
        s->features = old_features;
        s->backing_off = old_off;
        s->backing_len = old_len;
        free(iname);
        free(iformat);
        return r;
    }
    free(img->backing_name);
    free(img->backing_format);
    img->backing_name = iname;
    img->backing_format = iformat;
    return 0;
}

/* As qemu-img 7.2: the cluster size only. QEMU does not report the
 * need-check flag as the image's dirty flag, so neither does vimg (the
 * core reports it false); check finds what it guards. */
static int qed_get_info(struct vimg_image *img, struct vimg_value *info)
{
    return vimg_internal_value_set_int(info, "cluster-size",
                                       (int64_t)qed_state(img)->cluster_size);
}

/* ---- Driver ------------------------------------------------------------ */

const struct vimg_driver vimg_driver_qed = {
    .name = "qed",
    .kind = VIMG_DRIVER_FORMAT,
    .instance_size = sizeof(struct qed_state),
    .thread_safe = false,
    .has_zero_init = true,
    .create_opts = qed_create_opts,
    .probe = qed_probe,
    .open = qed_open,
    .close = qed_close,
    .create = qed_create,
    .pread = qed_pread,
    .pwrite = qed_pwrite,
    .zero = qed_zero,
    .truncate = qed_truncate,
    .block_status = qed_block_status,
    .get_info = qed_get_info,
    .change_backing = qed_change_backing,
    .check = qed_check,
};
