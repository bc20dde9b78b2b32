/* Grains of hosted sparse extents (VMDK 5.0 technical note, "Grain
 * Directories and Grain Tables", "Stream-Optimized Compressed Sparse
 * Extents"): a small cache of grain tables, grain reads (plain or
 * compressed with markers), allocating writes, zeroed grains, appending
 * compressed grains to a stream, block status, flush and QEMU's check. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../../common/checked-overflow.h"
#include "../../../common/rounding.h"
#include "../../compress/compress.h"
#include "vmdk.h"

/* ---- Grain tables ----------------------------------------------------- */

static int write_table(struct vimg_image *img, const struct vmdk_extent *e,
                       uint32_t index, const uint32_t *table)
{
    const struct vmdk_sparse *sp = e->sp;
    uint8_t *raw = malloc(sp->gt_bytes);
    int r;

    if (!raw) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    for (uint32_t i = 0; i < sp->gtes; i++) {
        store_le32(raw + 4 * i, table[i]);
    }
    r = vimg_internal_pwrite(e->file, raw, sp->gt_bytes,
                             (uint64_t)sp->gd[index] * VMDK_SECTOR, 0);
    if (r == 0 && sp->rgd && sp->rgd[index]) {
        r = vimg_internal_pwrite(e->file, raw, sp->gt_bytes,
                                 (uint64_t)sp->rgd[index] * VMDK_SECTOR, 0);
    }
    free(raw);
    return r;
}

static int evict(struct vimg_image *img, struct vmdk_gt_slot *slot)
{
    int r = 0;
    if (slot->ext && slot->dirty) {
        r = write_table(img, slot->ext, slot->index, slot->table);
    }
    if (r == 0) {
        slot->dirty = false;
        slot->ext = NULL;
    }
    return r;
}

/* Whether a grain table entry read from disk can be used: empty, zeroed
 * (where the extent has zeroed grains), or a sector in the grain area
 * below LIMIT: the end of the file as it was opened, for a table read for
 * the first time (the file grows as grains are added, and an entry past
 * its old end would alias a new grain), the current end for a table
 * checked before (its newer entries are ours). */
static bool entry_ok(const struct vmdk_sparse *sp, uint32_t v, uint64_t limit)
{
    uint64_t at = (uint64_t)v * VMDK_SECTOR;
    return v == VMDK_GTE_EMPTY || (v == VMDK_GTE_ZEROED && sp->zero_grain) ||
           (at >= sp->overhead && at < limit);
}

static bool verified(const struct vmdk_sparse *sp, uint32_t index)
{
    return sp->verified[index / 8] & (1u << (index % 8));
}

static void set_verified(struct vmdk_sparse *sp, uint32_t index)
{
    sp->verified[index / 8] |= (uint8_t)(1u << (index % 8));
}

/* The grain table INDEX of E, cached. With VALIDATE every entry must pass
 * entry_ok (check reads tables without it, to count the bad entries). */
static int get_table(struct vimg_image *img, const struct vmdk_extent *e,
                     uint32_t index, bool validate, struct vmdk_gt_slot **out)
{
    struct vmdk_state *s = vmdk_state(img);
    struct vmdk_gt_slot *victim = &s->gt[0];
    int r;

    for (int i = 0; i < VMDK_GT_CACHE_SLOTS; i++) {
        struct vmdk_gt_slot *slot = &s->gt[i];
        if (slot->ext == e && slot->index == index &&
            (slot->valid || !validate)) {
            slot->lru = ++s->tick;
            *out = slot;
            return 0;
        }
        if (slot->ext == e && slot->index == index) {
            victim = slot; /* cached unvalidated: load it again */
            break;
        }
        if (!slot->ext || (victim->ext && slot->lru < victim->lru)) {
            victim = slot;
        }
    }
    if ((r = evict(img, victim)) < 0) {
        return r;
    }
    struct vmdk_sparse *sp = e->sp;
    uint64_t limit = verified(sp, index) ? sp->file_size : sp->orig_size;
    uint8_t *raw = malloc(sp->gt_bytes);
    if (!raw) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    r = vimg_internal_pread(e->file, raw, sp->gt_bytes,
                            (uint64_t)sp->gd[index] * VMDK_SECTOR);
    bool valid = true;
    for (uint32_t i = 0; r == 0 && i < sp->gtes; i++) {
        victim->table[i] = load_le32(raw + 4 * i);
        if (validate && !entry_ok(sp, victim->table[i], limit)) {
            r = vimg_internal_img_error(img, EIO, "grain table entry of "
                                        "sector %llu in '%s' points to "
                                        "sector %u, outside the grains",
                                        (unsigned long long)(
                                            ((uint64_t)index * sp->gtes + i) *
                                            sp->grain_bytes / VMDK_SECTOR),
                                        e->file->filename, victim->table[i]);
        }
        valid = valid && entry_ok(sp, victim->table[i], limit);
    }
    free(raw);
    if (r < 0) {
        return r;
    }
    if (valid) {
        set_verified(sp, index);
    }
    victim->ext = e;
    victim->index = index;
    victim->valid = valid;
    victim->lru = ++s->tick;
    *out = victim;
    return 0;
}

/* The grain table entry of GRAIN (extent-relative), validated (see
 * entry_ok): 0 empty, VMDK_GTE_ZEROED, or a grain's sector. ALLOC (the
 * caller will write) refuses a missing table. *SLOT is where it lives
 * (NULL without a table). */
static int lookup(struct vimg_image *img, struct vmdk_extent *e,
                  uint64_t grain, bool alloc, uint32_t *entry,
                  struct vmdk_gt_slot **slot)
{
    struct vmdk_sparse *sp = e->sp;
    uint64_t index = grain / sp->gtes;
    int r;

    *slot = NULL;
    *entry = VMDK_GTE_EMPTY;
    if (index >= sp->gd_entries) {
        return vimg_internal_img_error(img, EIO, "grain %llu of '%s' lies "
                                       "beyond its grain directory",
                                       (unsigned long long)grain,
                                       e->file->filename);
    }
    if (!sp->gd[index]) {
        if (!alloc) {
            return 0;
        }
        /* VMware, QEMU and vimg make every table with the disk; a table
         * added at the end of the file would sit among the grains. */
        return vimg_internal_img_error(img, ENOTSUP, "grain table %llu of "
                                       "'%s' is missing; only images made "
                                       "with all their grain tables can be "
                                       "written", (unsigned long long)index,
                                       e->file->filename);
    }
    if ((r = get_table(img, e, (uint32_t)index, true, slot)) < 0) {
        return r;
    }
    *entry = (*slot)->table[grain % sp->gtes];
    return 0;
}

static void set_entry(struct vmdk_gt_slot *slot, const struct vmdk_sparse *sp,
                      uint64_t grain, uint32_t v)
{
    slot->table[grain % sp->gtes] = v;
    slot->dirty = true;
}

/* ---- Reading ---------------------------------------------------------- */

/* Bytes of GRAIN inside the extent (the last one may be short). */
static uint64_t grain_len(const struct vmdk_extent *e, uint64_t grain)
{
    uint64_t start = grain * e->sp->grain_bytes;
    return MIN(e->sp->grain_bytes, e->length - start);
}

/* Read and inflate the compressed grain at sector V into s->cache. */
static int read_compressed(struct vimg_image *img, struct vmdk_extent *e,
                           uint64_t grain, uint32_t v)
{
    struct vmdk_state *s = vmdk_state(img);
    struct vmdk_sparse *sp = e->sp;
    uint64_t at = (uint64_t)v * VMDK_SECTOR, len;
    const uint8_t *data = s->cbuf;
    int r;

    if (s->cache_ext == e && s->cache_grain == grain) {
        return 0;
    }
    if (sp->markers) {
        uint8_t m[VMDK_GRAIN_MARKER_SIZE];
        if ((r = vimg_internal_pread(e->file, m, sizeof m, at)) < 0) {
            return r;
        }
        uint64_t lba = load_le64(m + VMDK_MARKER_VAL);
        len = load_le32(m + VMDK_MARKER_SIZE);
        if (lba != grain * sp->grain_bytes / VMDK_SECTOR) {
            return vimg_internal_img_error(img, EIO, "grain marker at "
                                           "sector %u of '%s' is for sector "
                                           "%llu, not %llu", v,
                                           e->file->filename,
                                           (unsigned long long)lba,
                                           (unsigned long long)(
                                               grain * sp->grain_bytes /
                                               VMDK_SECTOR));
        }
        if (len == 0 || len > s->cbuf_size - VMDK_GRAIN_MARKER_SIZE ||
            range_outside(at + VMDK_GRAIN_MARKER_SIZE, len, sp->file_size)) {
            return vimg_internal_img_error(img, EIO, "grain marker at "
                                           "sector %u of '%s' claims %llu "
                                           "bytes, more than a grain or the "
                                           "file holds", v,
                                           e->file->filename,
                                           (unsigned long long)len);
        }
        at += VMDK_GRAIN_MARKER_SIZE;
    } else {
        /* Without markers the length is unknown: as QEMU, up to two
         * grains, bounded by the file. */
        len = MIN(s->cbuf_size, sp->file_size - at);
    }
    if ((r = vimg_internal_pread(e->file, s->cbuf, len, at)) < 0) {
        return r;
    }
    s->cache_ext = NULL;
    long n = vimg_internal_decompress_partial(VIMG_COMPRESS_ZLIB, data, len,
                                              s->cache, sp->grain_bytes);
    if (n < 0 || (uint64_t)n < grain_len(e, grain)) {
        return vimg_internal_img_error(img, EIO, "compressed grain at "
                                       "sector %u of '%s' is damaged", v,
                                       e->file->filename);
    }
    s->cache_ext = e;
    s->cache_grain = grain;
    s->cache_len = (uint64_t)n;
    return 0;
}

/* The parent's CID must still be the one this image was made against
 * (QEMU's vmdk_is_cid_valid); a parent of another format has none. */
static int check_parent(struct vimg_image *img)
{
    struct vmdk_state *s = vmdk_state(img);
    struct vimg_image *b = img->backing;

    if (s->parent_checked || !b || b->drv != &vimg_driver_vmdk) {
        return 0;
    }
    uint32_t cid = vmdk_state(b)->desc.cid;
    if (cid != s->desc.parent_cid) {
        return vimg_internal_img_error(img, EINVAL, "parent CID %08x does "
                                       "not match the CID %08x of '%s' "
                                       "(the parent changed)",
                                       s->desc.parent_cid, cid,
                                       b->filename);
    }
    s->parent_checked = true;
    return 0;
}

int vmdk_read_backing(struct vimg_image *img, struct vmdk_extent *e,
                      uint8_t *buf, uint64_t count, uint64_t offset)
{
    int r = check_parent(img);
    return r < 0 ? r : vimg_internal_read_backing(img, buf, count,
                                                  e->start + offset);
}

int vmdk_sparse_read(struct vimg_image *img, struct vmdk_extent *e,
                     uint8_t *buf, uint64_t count, uint64_t offset)
{
    struct vmdk_state *s = vmdk_state(img);
    struct vmdk_sparse *sp = e->sp;
    struct vmdk_gt_slot *slot;
    uint32_t v;
    int r;

    while (count) {
        uint64_t grain = offset / sp->grain_bytes;
        uint64_t in = offset % sp->grain_bytes;
        uint64_t n = MIN(count, sp->grain_bytes - in);
        if ((r = lookup(img, e, grain, false, &v, &slot)) < 0) {
            return r;
        }
        if (v == VMDK_GTE_EMPTY) {
            r = vmdk_read_backing(img, e, buf, n, offset);
        } else if (v == VMDK_GTE_ZEROED) {
            memset(buf, 0, n);
        } else if (sp->compressed) {
            if ((r = read_compressed(img, e, grain, v)) == 0) {
                memcpy(buf, s->cache + in, n);
            }
        } else {
            r = vimg_internal_pread(e->file, buf, n,
                                    (uint64_t)v * VMDK_SECTOR + in);
        }
        if (r < 0) {
            return r;
        }
        buf += n;
        offset += n;
        count -= n;
    }
    return 0;
}

/* ---- Writing ---------------------------------------------------------- */

/* The grain's current contents, for a partial write of an unallocated or
 * zeroed grain: the backing file's (unallocated only) or zeros. */
static int fill_grain(struct vimg_image *img, struct vmdk_extent *e,
                      uint64_t grain, uint32_t v, uint8_t *out)
{
    uint64_t len = grain_len(e, grain);
    memset(out, 0, e->sp->grain_bytes);
    if (v == VMDK_GTE_EMPTY && img->backing_name) {
        return vmdk_read_backing(img, e, out, len, grain * e->sp->grain_bytes);
    }
    return 0;
}

/* Append a compressed grain (DATA: LEN bytes of zlib stream placed at
 * s->cbuf + marker) to a stream and point GRAIN's entry at it. */
static int append_grain(struct vimg_image *img, struct vmdk_extent *e,
                        uint64_t grain, struct vmdk_gt_slot *slot,
                        uint64_t len)
{
    struct vmdk_state *s = vmdk_state(img);
    struct vmdk_sparse *sp = e->sp;
    uint64_t total = ROUND_UP(VMDK_GRAIN_MARKER_SIZE + len, VMDK_SECTOR);
    int r;

    if ((sp->next + total) / VMDK_SECTOR >= VMDK_MAX_SPARSE_FILE_SECTORS) {
        return vimg_internal_img_error(img, EFBIG, "stream '%s' is full",
                                       e->file->filename);
    }
    store_le64(s->cbuf + VMDK_MARKER_VAL,
               grain * sp->grain_bytes / VMDK_SECTOR);
    store_le32(s->cbuf + VMDK_MARKER_SIZE, (uint32_t)len);
    memset(s->cbuf + VMDK_GRAIN_MARKER_SIZE + len, 0,
           total - VMDK_GRAIN_MARKER_SIZE - len);
    if ((r = vimg_internal_pwrite(e->file, s->cbuf, total, sp->next, 0)) <
        0) {
        return r;
    }
    set_entry(slot, sp, grain, (uint32_t)(sp->next / VMDK_SECTOR));
    sp->next += total;
    sp->file_size = MAX(sp->file_size, sp->next);
    sp->stream_dirty = true;
    if (s->cache_ext == e && s->cache_grain == grain) {
        s->cache_ext = NULL;
    }
    return 0;
}

static int stream_refused(struct vimg_image *img, const char *why)
{
    return vimg_internal_img_error(img, EIO, "streamOptimized images are "
                                   "written by appending: %s", why);
}

int vmdk_sparse_writable(struct vimg_image *img, struct vmdk_extent *e)
{
    if (e->sp->compressed && (!e->sp->markers || e->sp->footer)) {
        return stream_refused(img, "this stream's layout (grain directory "
                                   "at the end, or no markers) cannot be "
                                   "appended to");
    }
    return 0;
}

/* Compress the LEN bytes of DATA as GRAIN and append them. */
static int write_stream_grain(struct vimg_image *img, struct vmdk_extent *e,
                              uint64_t grain, struct vmdk_gt_slot *slot,
                              const uint8_t *data, uint64_t len)
{
    struct vmdk_state *s = vmdk_state(img);
    long n = vimg_internal_compress(VIMG_COMPRESS_ZLIB, 0, data, len,
                                    s->cbuf + VMDK_GRAIN_MARKER_SIZE,
                                    s->cbuf_size - VMDK_GRAIN_MARKER_SIZE -
                                        VMDK_SECTOR);
    if (n < 0) {
        return vimg_internal_img_error(img, n == -ENOMEM ? ENOMEM : EIO,
                                       "cannot compress a grain");
    }
    return append_grain(img, e, grain, slot, (uint64_t)n);
}

int vmdk_sparse_write(struct vimg_image *img, struct vmdk_extent *e,
                      const uint8_t *buf, uint64_t count, uint64_t offset)
{
    struct vmdk_state *s = vmdk_state(img);
    struct vmdk_sparse *sp = e->sp;
    struct vmdk_gt_slot *slot;
    uint32_t v;
    int r;

    while (count) {
        uint64_t grain = offset / sp->grain_bytes;
        uint64_t in = offset % sp->grain_bytes;
        uint64_t n = MIN(count, sp->grain_bytes - in);
        uint64_t glen = grain_len(e, grain);
        bool whole = in == 0 && n == glen;
        if ((r = lookup(img, e, grain, true, &v, &slot)) < 0) {
            return r;
        }
        if (v != VMDK_GTE_EMPTY && v != VMDK_GTE_ZEROED) {
            if (sp->compressed) {
                return stream_refused(img, "a grain cannot be written "
                                           "twice");
            }
            r = vimg_internal_pwrite(e->file, buf, n,
                                     (uint64_t)v * VMDK_SECTOR + in, 0);
        } else {
            const uint8_t *data = buf;
            if (!whole) {
                if ((r = fill_grain(img, e, grain, v, s->grain_buf)) < 0) {
                    return r;
                }
                memcpy(s->grain_buf + in, buf, n);
                data = s->grain_buf;
            }
            if (sp->compressed) {
                r = write_stream_grain(img, e, grain, slot, data, glen);
            } else if (sp->next / VMDK_SECTOR + sp->grain_bytes /
                       VMDK_SECTOR > VMDK_MAX_SPARSE_FILE_SECTORS) {
                r = vimg_internal_img_error(img, EFBIG, "extent '%s' is "
                                            "full", e->file->filename);
            } else {
                /* A whole grain, also at the disk's end, as QEMU writes
                 * it: the file grows in grains. */
                if (glen < sp->grain_bytes && data != s->grain_buf) {
                    memcpy(s->grain_buf, data, glen);
                    memset(s->grain_buf + glen, 0, sp->grain_bytes - glen);
                    data = s->grain_buf;
                }
                r = vimg_internal_pwrite(e->file, data, sp->grain_bytes,
                                         sp->next, 0);
                if (r == 0) {
                    set_entry(slot, sp, grain,
                              (uint32_t)(sp->next / VMDK_SECTOR));
                    sp->next += sp->grain_bytes;
                    sp->file_size = MAX(sp->file_size, sp->next);
                }
            }
        }
        if (r < 0) {
            return r;
        }
        buf += n;
        offset += n;
        count -= n;
    }
    return 0;
}

int vmdk_sparse_write_compressed(struct vimg_image *img,
                                 struct vmdk_extent *e, uint64_t offset,
                                 const uint8_t *zdata, uint64_t len)
{
    struct vmdk_state *s = vmdk_state(img);
    struct vmdk_sparse *sp = e->sp;
    uint64_t grain = offset / sp->grain_bytes;
    uint64_t glen = grain_len(e, grain);
    struct vmdk_gt_slot *slot;
    uint32_t v;
    int r;

    if ((r = lookup(img, e, grain, true, &v, &slot)) < 0) {
        return r;
    }
    if (v != VMDK_GTE_EMPTY) {
        return stream_refused(img, "a grain cannot be written twice");
    }
    if (glen < sp->grain_bytes) {
        /* The disk's last grain is stored as long as the disk, as
         * open-vmdk stores it: the block came zero-padded. */
        if (vimg_internal_decompress(VIMG_COMPRESS_ZLIB, zdata, len,
                                     s->grain_buf, sp->grain_bytes) < 0) {
            return vimg_internal_img_error(img, EIO, "cannot recompress the "
                                           "last grain");
        }
        return write_stream_grain(img, e, grain, slot, s->grain_buf, glen);
    }
    if (len > s->cbuf_size - VMDK_GRAIN_MARKER_SIZE - VMDK_SECTOR) {
        return vimg_internal_img_error(img, EINVAL, "compressed grain of "
                                       "%llu bytes is too large",
                                       (unsigned long long)len);
    }
    memcpy(s->cbuf + VMDK_GRAIN_MARKER_SIZE, zdata, len);
    return append_grain(img, e, grain, slot, len);
}

int vmdk_sparse_zero(struct vimg_image *img, struct vmdk_extent *e,
                     uint64_t offset, uint64_t count)
{
    struct vmdk_sparse *sp = e->sp;
    struct vmdk_gt_slot *slot;
    uint32_t v;
    int r;

    /* A dry run first, as QEMU: either every grain can be zeroed without
     * writing data, or the core writes zeros over the whole range. */
    for (int pass = 0; pass < 2; pass++) {
        for (uint64_t off = offset; off < offset + count;) {
            uint64_t grain = off / sp->grain_bytes;
            uint64_t in = off % sp->grain_bytes;
            uint64_t n = MIN(offset + count - off, sp->grain_bytes - in);
            bool whole = in == 0 && n == grain_len(e, grain);
            if ((r = lookup(img, e, grain, false, &v, &slot)) < 0) {
                return r;
            }
            bool reads_zero = v == VMDK_GTE_ZEROED ||
                              (v == VMDK_GTE_EMPTY && !img->backing_name);
            if (!reads_zero && !(sp->zero_grain && whole)) {
                return -ENOTSUP;
            }
            if (pass == 1 && !reads_zero) {
                if (!slot && (r = lookup(img, e, grain, true, &v, &slot)) <
                                 0) {
                    return r;
                }
                set_entry(slot, sp, grain, VMDK_GTE_ZEROED);
            }
            off += n;
        }
    }
    return 0;
}

/* ---- Block status, flush, check --------------------------------------- */

int vmdk_sparse_block_status(struct vimg_image *img, struct vmdk_extent *e,
                             uint64_t offset, uint64_t count,
                             uint64_t *pnum, uint64_t *map)
{
    struct vmdk_sparse *sp = e->sp;
    struct vmdk_gt_slot *slot;
    uint64_t done = 0, first_host = 0;
    int status = 0, r;
    uint32_t v;

    /* Neighbouring grains of one kind merge (data only where the file
     * holds them back to back); a missing grain table is skipped whole. */
    while (done < count) {
        uint64_t off = offset + done;
        uint64_t grain = off / sp->grain_bytes;
        uint64_t in = off % sp->grain_bytes;
        uint64_t n = MIN(count - done, sp->grain_bytes - in);
        if (grain / sp->gtes < sp->gd_entries && !sp->gd[grain / sp->gtes]) {
            uint64_t table_end = (grain / sp->gtes + 1) * sp->gtes *
                                 sp->grain_bytes;
            n = MIN(count - done, table_end - off);
            if (done > 0 && status != 0) {
                break;
            }
            status = 0;
            done += n;
            continue;
        }
        if ((r = lookup(img, e, grain, false, &v, &slot)) < 0) {
            return r;
        }
        int st;
        uint64_t host = 0;
        if (v == VMDK_GTE_EMPTY) {
            st = 0;
        } else if (v == VMDK_GTE_ZEROED) {
            st = VIMG_BS_ZERO | VIMG_BS_ALLOCATED;
        } else if (sp->compressed) {
            st = VIMG_BS_DATA | VIMG_BS_ALLOCATED;
        } else {
            st = VIMG_BS_DATA | VIMG_BS_ALLOCATED | VIMG_BS_OFFSET_VALID;
            host = (uint64_t)v * VMDK_SECTOR + in;
        }
        if (done == 0) {
            status = st;
            first_host = host;
        } else if (st != status ||
                   (st & VIMG_BS_OFFSET_VALID && host != first_host + done)) {
            break;
        }
        done += n;
    }
    *pnum = done;
    *map = first_host;
    return status;
}

int vmdk_sparse_flush(struct vimg_image *img)
{
    struct vmdk_state *s = vmdk_state(img);
    static const uint8_t eos[VMDK_SECTOR];
    int r;

    for (int i = 0; i < VMDK_GT_CACHE_SLOTS; i++) {
        struct vmdk_gt_slot *slot = &s->gt[i];
        if (slot->ext && slot->dirty) {
            if ((r = write_table(img, slot->ext, slot->index,
                                 slot->table)) < 0) {
                return r;
            }
            slot->dirty = false;
        }
    }
    for (size_t i = 0; i < s->n_extents; i++) {
        struct vmdk_sparse *sp = s->extents[i].sp;
        if (sp && sp->stream_dirty) {
            /* The end-of-stream marker after the last grain; the next
             * grain appended overwrites it. */
            if ((r = vimg_internal_pwrite(s->extents[i].file, eos,
                                          sizeof eos, sp->next, 0)) < 0) {
                return r;
            }
            sp->file_size = MAX(sp->file_size, sp->next + sizeof eos);
            sp->stream_dirty = false;
        }
    }
    return 0;
}

int vmdk_sparse_check(struct vimg_image *img, struct vmdk_extent *e,
                      struct vimg_check_result *res, vimg_report_fn report,
                      void *opaque)
{
    struct vmdk_sparse *sp = e->sp;
    uint64_t grains = DIV_ROUND_UP(e->length, sp->grain_bytes);
    struct vmdk_gt_slot *slot;
    int r;

    for (uint64_t g = 0; g < grains; g++) {
        uint32_t index = (uint32_t)(g / sp->gtes);
        if (!sp->gd[index]) {
            g += sp->gtes - 1 - g % sp->gtes;
            continue;
        }
        if ((r = get_table(img, e, index, false, &slot)) < 0) {
            return r;
        }
        uint32_t v = slot->table[g % sp->gtes];
        if (v == VMDK_GTE_EMPTY || (v == VMDK_GTE_ZEROED && sp->zero_grain)) {
            continue;
        }
        if ((uint64_t)v * VMDK_SECTOR >= sp->file_size) {
            char msg[160];
            snprintf(msg, sizeof msg, "ERROR: cluster offset for sector "
                     "%llu points after EOF",
                     (unsigned long long)((e->start + g * sp->grain_bytes) /
                                          VMDK_SECTOR));
            if (report) {
                report(opaque, msg);
            }
            /* As QEMU: the check stops at the first bad grain and fails
             * (qemu-img exits 1, "Check failed"). */
            res->corruptions++;
            return -EINVAL;
        }
    }
    return 0;
}
