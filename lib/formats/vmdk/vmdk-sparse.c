/* Hosted sparse extents (VMDK 5.0 technical note, "Hosted Sparse Extent
 * Header", "Stream-Optimized Compressed Sparse Extents"): header and footer
 * validation, the grain directory and where a stream continues. Grain
 * tables and grains are in vmdk-grain.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../../common/checked-overflow.h"
#include "../../../common/iszero.h"
#include "../../../common/rounding.h"
#include "vmdk.h"

/* A footer (GD at end) is the last three sectors but one: footer marker,
 * footer, end-of-stream marker. */
#define FOOTER_BYTES (3 * VMDK_SECTOR)

/* ---- Header validation ------------------------------------------------ */

int vmdk_sparse_check_header(struct vimg_image *img, const uint8_t *h,
                             uint64_t file_size, struct vmdk_sparse *sp)
{
    uint64_t capacity, grain, gd_bytes, per_gt, tables;

    if (load_le32(h + VMDK_HDR_MAGIC) != VMDK4_MAGIC) {
        return vimg_internal_img_error(img, EINVAL, "not a VMDK sparse "
                                       "extent");
    }
    sp->version = load_le32(h + VMDK_HDR_VERSION);
    sp->flags = load_le32(h + VMDK_HDR_FLAGS);
    if (sp->version < 1 || sp->version > 3) {
        return vimg_internal_img_error(img, ENOTSUP, "unsupported VMDK "
                                       "version %u", sp->version);
    }
    uint32_t unknown = sp->flags & VMDK_FLAG_INCOMPAT &
                       ~(VMDK_FLAG_COMPRESSED | VMDK_FLAG_MARKERS);
    if (unknown) {
        return vimg_internal_img_error(img, ENOTSUP, "unsupported "
                                       "incompatible VMDK flags 0x%08x",
                                       unknown);
    }
    if ((sp->flags & VMDK_FLAG_NL_DETECT) &&
        (h[VMDK_HDR_NL_SINGLE] != '\n' || h[VMDK_HDR_NL_NON] != ' ' ||
         h[VMDK_HDR_NL_DOUBLE1] != '\r' || h[VMDK_HDR_NL_DOUBLE2] != '\n')) {
        return vimg_internal_img_error(img, EINVAL, "the header's newline "
                                       "check bytes are wrong (copied in "
                                       "text mode?)");
    }
    uint16_t algo = load_le16(h + VMDK_HDR_COMPRESS_ALGO);
    if (algo > VMDK_COMPRESS_DEFLATE) {
        return vimg_internal_img_error(img, ENOTSUP, "unsupported VMDK "
                                       "compression algorithm %u", algo);
    }
    /* As QEMU: the algorithm, not the flag, says whether grains are
     * compressed. Markers only exist in compressed streams. */
    sp->compressed = algo == VMDK_COMPRESS_DEFLATE;
    sp->markers = sp->flags & VMDK_FLAG_MARKERS;
    sp->zero_grain = sp->flags & VMDK_FLAG_ZERO_GRAIN;
    if (sp->markers && !sp->compressed) {
        return vimg_internal_img_error(img, EINVAL, "stream markers "
                                       "without compression");
    }
    capacity = load_le64(h + VMDK_HDR_CAPACITY);
    grain = load_le64(h + VMDK_HDR_GRAIN_SIZE);
    sp->gtes = load_le32(h + VMDK_HDR_NUM_GTES);
    if (capacity > (uint64_t)INT64_MAX / VMDK_SECTOR) {
        return vimg_internal_img_error(img, EINVAL, "capacity of %llu "
                                       "sectors is too large",
                                       (unsigned long long)capacity);
    }
    if (grain == 0 || grain > VMDK_MAX_GRAIN_SECTORS) {
        return vimg_internal_img_error(img, EINVAL, "grain size of %llu "
                                       "sectors is outside 1..%d",
                                       (unsigned long long)grain,
                                       VMDK_MAX_GRAIN_SECTORS);
    }
    if (sp->gtes == 0 || sp->gtes > VMDK_MAX_GTES) {
        return vimg_internal_img_error(img, EINVAL, "%u entries per grain "
                                       "table is outside 1..%d", sp->gtes,
                                       VMDK_MAX_GTES);
    }
    sp->capacity = capacity;
    sp->grain_bytes = grain * VMDK_SECTOR;
    sp->gt_bytes = (uint64_t)sp->gtes * 4;
    per_gt = grain * sp->gtes;
    tables = DIV_ROUND_UP(capacity, per_gt);
    gd_bytes = tables * 4;
    if (gd_bytes > VMDK_MAX_GD_BYTES) {
        return vimg_internal_img_error(img, EFBIG, "grain directory of "
                                       "%llu entries is too large",
                                       (unsigned long long)tables);
    }
    sp->gd_entries = (uint32_t)tables;

    uint64_t gd = load_le64(h + VMDK_HDR_GD_OFFSET);
    uint64_t rgd = load_le64(h + VMDK_HDR_RGD_OFFSET);
    uint64_t desc = load_le64(h + VMDK_HDR_DESC_OFFSET);
    uint64_t desc_size = load_le64(h + VMDK_HDR_DESC_SIZE);
    uint64_t overhead = load_le64(h + VMDK_HDR_OVERHEAD);
    if (gd == VMDK_GD_AT_END) {
        sp->gd_offset = VMDK_GD_AT_END;
    } else if (gd > (uint64_t)INT64_MAX / VMDK_SECTOR ||
               range_outside(gd * VMDK_SECTOR, gd_bytes, file_size) ||
               (gd == 0 && tables)) {
        return vimg_internal_img_error(img, EINVAL, "grain directory at "
                                       "sector %llu lies outside the file",
                                       (unsigned long long)gd);
    } else {
        sp->gd_offset = gd * VMDK_SECTOR;
    }
    sp->rgd_offset = 0;
    if ((sp->flags & VMDK_FLAG_RGD) && rgd && gd != VMDK_GD_AT_END) {
        if (rgd > (uint64_t)INT64_MAX / VMDK_SECTOR ||
            range_outside(rgd * VMDK_SECTOR, gd_bytes, file_size)) {
            return vimg_internal_img_error(img, EINVAL, "redundant grain "
                                           "directory at sector %llu lies "
                                           "outside the file",
                                           (unsigned long long)rgd);
        }
        sp->rgd_offset = rgd * VMDK_SECTOR;
    }
    sp->desc_offset = sp->desc_size = 0;
    if (desc) {
        if (desc_size > VMDK_MAX_DESC_BYTES / VMDK_SECTOR ||
            desc > (uint64_t)INT64_MAX / VMDK_SECTOR ||
            range_outside(desc * VMDK_SECTOR, desc_size * VMDK_SECTOR,
                          file_size)) {
            return vimg_internal_img_error(img, EINVAL, "descriptor (%llu "
                                           "sectors at sector %llu) is too "
                                           "large or outside the file",
                                           (unsigned long long)desc_size,
                                           (unsigned long long)desc);
        }
        sp->desc_offset = desc * VMDK_SECTOR;
        sp->desc_size = desc_size * VMDK_SECTOR;
    }
    if (overhead > (uint64_t)INT64_MAX / VMDK_SECTOR ||
        overhead * VMDK_SECTOR > file_size) {
        return vimg_internal_img_error(img, EINVAL, "file truncated: the "
                                       "header expects at least %llu "
                                       "sectors",
                                       (unsigned long long)overhead);
    }
    sp->overhead = overhead * VMDK_SECTOR;
    sp->meta_start = VMDK_SECTOR;
    sp->file_size = file_size;
    return 0;
}

/* An ESX COWD header (VMDK3_HDR_SIZE bytes in H): the one place its fields
 * are checked. Its tables are allocated among the grains as the disk is
 * written, so they are only kept clear of the header, the directory and
 * each other (check_tables); the extent is read-only. */
static int check_cowd_header(struct vimg_image *img, const uint8_t *h,
                             uint64_t file_size, struct vmdk_sparse *sp)
{
    uint64_t capacity = load_le32(h + VMDK3_HDR_CAPACITY);
    uint64_t grain = load_le32(h + VMDK3_HDR_GRAIN);
    uint64_t gd = load_le32(h + VMDK3_HDR_GD_OFFSET);
    uint64_t entries = load_le32(h + VMDK3_HDR_GD_ENTRIES);

    if (grain == 0 || grain > VMDK_MAX_GRAIN_SECTORS) {
        return vimg_internal_img_error(img, EINVAL, "COWD grain size of "
                                       "%llu sectors is outside 1..%d",
                                       (unsigned long long)grain,
                                       VMDK_MAX_GRAIN_SECTORS);
    }
    uint64_t tables = DIV_ROUND_UP(capacity, grain * VMDK3_GTES);
    if (tables * 4 > VMDK_MAX_GD_BYTES) {
        return vimg_internal_img_error(img, EFBIG, "grain directory of "
                                       "%llu entries is too large",
                                       (unsigned long long)tables);
    }
    /* QEMU reads as many entries as the header gives and fails reads
     * beyond them; a directory too short for the disk is refused here. */
    if (entries < tables) {
        return vimg_internal_img_error(img, EINVAL, "COWD grain directory "
                                       "of %llu entries is too short for "
                                       "%llu sectors",
                                       (unsigned long long)entries,
                                       (unsigned long long)capacity);
    }
    if (gd * VMDK_SECTOR < VMDK3_HDR_SIZE ||
        range_outside(gd * VMDK_SECTOR, tables * 4, file_size)) {
        return vimg_internal_img_error(img, EINVAL, "grain directory at "
                                       "sector %llu lies outside the file",
                                       (unsigned long long)gd);
    }
    sp->cowd = true;
    sp->version = load_le32(h + VMDK3_HDR_VERSION);
    sp->flags = 0;
    sp->capacity = capacity;
    sp->grain_bytes = grain * VMDK_SECTOR;
    sp->gtes = VMDK3_GTES;
    sp->gt_bytes = (uint64_t)VMDK3_GTES * 4;
    sp->gd_entries = (uint32_t)tables;
    sp->gd_offset = gd * VMDK_SECTOR;
    sp->meta_start = VMDK3_HDR_SIZE;
    sp->overhead = VMDK3_HDR_SIZE;
    sp->file_size = file_size;
    return 0;
}

/* The footer of a stream whose grain directory follows the grains: its
 * header copy replaces the one at the start (which lacks the directory's
 * place). */
static int read_footer(struct vimg_image *img, struct vimg_image *file,
                       uint64_t file_size, struct vmdk_sparse *sp)
{
    uint8_t f[FOOTER_BYTES];
    int r;

    if (file_size < VMDK_SECTOR + FOOTER_BYTES) {
        return vimg_internal_img_error(img, EINVAL, "stream is too short "
                                       "to hold its footer");
    }
    if ((r = vimg_internal_pread(file, f, sizeof f,
                                 file_size - FOOTER_BYTES)) < 0) {
        return r;
    }
    const uint8_t *marker = f, *footer = f + VMDK_SECTOR,
                  *eos = f + 2 * VMDK_SECTOR;
    if (load_le32(marker + VMDK_MARKER_SIZE) != 0 ||
        load_le32(marker + VMDK_MARKER_TYPE) != VMDK_MARKER_FOOTER ||
        load_le64(eos + VMDK_MARKER_VAL) != 0 ||
        load_le32(eos + VMDK_MARKER_SIZE) != 0 ||
        load_le32(eos + VMDK_MARKER_TYPE) != VMDK_MARKER_EOS ||
        load_le32(footer + VMDK_HDR_MAGIC) != VMDK4_MAGIC) {
        return vimg_internal_img_error(img, EINVAL, "invalid footer: the "
                                       "header puts the grain directory at "
                                       "the end, but the file does not end "
                                       "with footer and end-of-stream "
                                       "markers");
    }
    uint64_t capacity = sp->capacity, grain = sp->grain_bytes;
    if ((r = vmdk_sparse_check_header(img, footer, file_size, sp)) < 0) {
        return r;
    }
    if (sp->gd_offset == VMDK_GD_AT_END) {
        return vimg_internal_img_error(img, EINVAL, "invalid footer: it "
                                       "does not locate the grain "
                                       "directory");
    }
    if (sp->capacity != capacity || sp->grain_bytes != grain) {
        return vimg_internal_img_error(img, EINVAL, "footer disagrees with "
                                       "the header on the capacity or grain "
                                       "size");
    }
    sp->footer = true;
    return 0;
}

static int read_directory(struct vimg_image *img, struct vimg_image *file,
                          struct vmdk_sparse *sp, uint64_t offset,
                          uint32_t **out)
{
    uint64_t n = sp->gd_entries;
    uint8_t *raw = malloc(n * 4 + 1);
    uint32_t *gd = malloc(n * sizeof *gd + 1);
    int r = 0;

    if (!raw || !gd) {
        r = vimg_internal_img_error(img, ENOMEM, "out of memory for the "
                                    "grain directory");
    } else if (n) {
        r = vimg_internal_pread(file, raw, n * 4, offset);
    }
    for (uint64_t i = 0; r == 0 && i < n; i++) {
        gd[i] = load_le32(raw + 4 * i);
        if (gd[i] && range_outside((uint64_t)gd[i] * VMDK_SECTOR,
                                   sp->gt_bytes, sp->file_size)) {
            r = vimg_internal_img_error(img, EINVAL, "grain table %llu at "
                                        "sector %u lies past the end of "
                                        "the file", (unsigned long long)i,
                                        gd[i]);
        }
    }
    free(raw);
    if (r < 0) {
        free(gd);
        return r;
    }
    *out = gd;
    return 0;
}

static bool overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    return alen && blen && a < b + blen && b < a + alen;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Grain tables are metadata: each must lie after the header, clear of the
 * descriptor and both directories, and apart from every other table; in a
 * file whose directory is in front, below the first grain (the technical
 * note's "overhead"), as must the descriptor. Otherwise a table or a CID
 * written back would land on a grain or on other metadata. COWD extents
 * place tables among the grains, and are never written. */
static int check_tables(struct vimg_image *img, struct vmdk_sparse *sp)
{
    uint64_t n = 0, dir_bytes = (uint64_t)sp->gd_entries * 4;
    uint32_t *all = malloc(2 * (uint64_t)sp->gd_entries * sizeof *all + 1);
    int r = 0;

    if (!all) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    if (!sp->footer && sp->desc_offset + sp->desc_size > sp->overhead) {
        free(all);
        return vimg_internal_img_error(img, EINVAL, "the descriptor "
                                       "overlaps the grains");
    }
    for (int d = 0; d < 2; d++) {
        const uint32_t *dir = d ? sp->rgd : sp->gd;
        for (uint32_t i = 0; dir && i < sp->gd_entries; i++) {
            if (dir[i]) {
                all[n++] = dir[i];
            }
        }
    }
    qsort(all, n, sizeof *all, cmp_u32);
    for (uint64_t i = 0; r == 0 && i < n; i++) {
        uint64_t at = (uint64_t)all[i] * VMDK_SECTOR;
        if (at < sp->meta_start ||
            overlap(at, sp->gt_bytes, sp->desc_offset, sp->desc_size) ||
            overlap(at, sp->gt_bytes, sp->gd_offset, dir_bytes) ||
            overlap(at, sp->gt_bytes, sp->rgd_offset,
                    sp->rgd_offset ? dir_bytes : 0) ||
            (!sp->footer && !sp->cowd &&
             at + sp->gt_bytes > sp->overhead) ||
            (i + 1 < n &&
             (uint64_t)all[i + 1] * VMDK_SECTOR < at + sp->gt_bytes)) {
            r = vimg_internal_img_error(img, EINVAL, "grain table at sector "
                                        "%u overlaps other metadata or the "
                                        "grains", all[i]);
        }
    }
    free(all);
    return r;
}

/* Where a writable stream continues: over its end-of-stream marker (an
 * all-zero last sector), else at the end of the file. */
static int find_stream_end(struct vimg_image *file, struct vmdk_sparse *sp)
{
    uint8_t last[VMDK_SECTOR];
    uint64_t end = ROUND_UP(sp->file_size, VMDK_SECTOR);
    int r;

    sp->next = MAX(end, sp->overhead);
    if (end >= sp->overhead + VMDK_SECTOR) {
        if ((r = vimg_internal_pread(file, last, VMDK_SECTOR,
                                     end - VMDK_SECTOR)) < 0) {
            return r;
        }
        if (is_zero(last, VMDK_SECTOR)) {
            sp->next = end - VMDK_SECTOR;
        }
    }
    return 0;
}

/* The rest of vmdk_sparse_open for a COWD extent. */
static int open_cowd(struct vimg_image *img, struct vimg_image *file,
                     uint64_t file_size, bool writable, struct vmdk_sparse *sp)
{
    uint8_t h[VMDK3_HDR_SIZE];
    int r;

    if (writable) {
        return vimg_internal_img_error(img, EROFS, "COWD (vmfsSparse) "
                                       "extent '%s' can only be opened "
                                       "read-only", file->filename);
    }
    if (file_size < VMDK3_HDR_SIZE) {
        return vimg_internal_img_error(img, EINVAL, "COWD extent '%s' is "
                                       "truncated", file->filename);
    }
    if ((r = vimg_internal_pread(file, h, sizeof h, 0)) < 0 ||
        (r = check_cowd_header(img, h, file_size, sp)) < 0 ||
        (r = read_directory(img, file, sp, sp->gd_offset, &sp->gd)) < 0 ||
        (r = check_tables(img, sp)) < 0) {
        return r;
    }
    sp->orig_size = file_size;
    sp->next = ROUND_UP(file_size, VMDK_SECTOR);
    if (!(sp->verified = calloc(1, sp->gd_entries / 8 + 1))) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    return 0;
}

void vmdk_sparse_free(struct vmdk_sparse *sp)
{
    if (sp) {
        free(sp->gd);
        free(sp->rgd);
        free(sp->verified);
        free(sp);
    }
}

int vmdk_sparse_open(struct vimg_image *img, struct vimg_image *file,
                     bool writable, struct vmdk_sparse **out)
{
    uint64_t file_size = (uint64_t)vimg_internal_get_size(file);
    uint8_t h[VMDK_HDR_SIZE];
    struct vmdk_sparse *sp = calloc(1, sizeof *sp);
    int r;

    *out = NULL;
    if (!sp) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    if (file_size < VMDK_HDR_SIZE) {
        r = vimg_internal_img_error(img, EINVAL, "sparse extent '%s' is "
                                    "truncated", file->filename);
        goto fail;
    }
    if ((r = vimg_internal_pread(file, h, sizeof h, 0)) < 0) {
        goto fail;
    }
    if (load_le32(h) == VMDK3_MAGIC) {
        r = open_cowd(img, file, file_size, writable, sp);
        if (r < 0) {
            goto fail;
        }
        *out = sp;
        return 0;
    }
    if ((r = vmdk_sparse_check_header(img, h, file_size, sp)) < 0 ||
        (sp->gd_offset == VMDK_GD_AT_END &&
         (r = read_footer(img, file, file_size, sp)) < 0)) {
        goto fail;
    }
    if (writable && sp->version == 3 && !sp->compressed) {
        /* Version 3 adds changed-block tracking that we would not keep
         * up to date; QEMU opens it read-only for the same reason. */
        r = vimg_internal_img_error(img, EROFS, "VMDK version 3 extents "
                                    "can only be opened read-only");
        goto fail;
    }
    if ((r = read_directory(img, file, sp, sp->gd_offset, &sp->gd)) < 0 ||
        (sp->rgd_offset &&
         (r = read_directory(img, file, sp, sp->rgd_offset, &sp->rgd)) <
             0) ||
        (r = check_tables(img, sp)) < 0) {
        goto fail;
    }
    sp->orig_size = file_size;
    if (!(sp->verified = calloc(1, sp->gd_entries / 8 + 1))) {
        r = vimg_internal_img_error(img, ENOMEM, "out of memory");
        goto fail;
    }
    sp->stream = sp->compressed;
    if (sp->compressed) {
        if ((r = find_stream_end(file, sp)) < 0) {
            goto fail;
        }
    } else {
        /* As QEMU: new grains start at the next grain boundary past the
         * end of the file. */
        sp->next = ROUND_UP(MAX(file_size, sp->overhead), sp->grain_bytes);
    }
    *out = sp;
    return 0;

fail:
    vmdk_sparse_free(sp);
    return r;
}
