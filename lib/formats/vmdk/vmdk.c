/* The VMDK format (VMware "Virtual Disk Format 5.0" technical note): probe,
 * open (a monolithic sparse file with its embedded descriptor, or a
 * descriptor file and its extent files, opened only through the core's
 * open policy), the data path across extents, the content-ID update on the
 * first write, info, check and the driver table. Sparse extents are in
 * vmdk-sparse.c, creation in vmdk-create.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "../../../common/checked-overflow.h"
#include "../../../common/rounding.h"
#include "../../compress/compress.h"
#include "vmdk.h"

/* createType values of descriptor files QEMU opens. */
static const char *const file_create_types[] = {
    "monolithicFlat", "vmfs", "twoGbMaxExtentSparse", "twoGbMaxExtentFlat",
    "vmfsSparse", "seSparse",
};

/* As QEMU's vmdk_probe: a sparse header, or text whose first line that is
 * not a comment or blank is version=1..3. */
static int vmdk_probe(const uint8_t *buf, size_t len, const char *filename)
{
    (void)filename;
    if (len >= 4 && (load_le32(buf) == VMDK4_MAGIC ||
                     load_le32(buf) == VMDK3_MAGIC)) {
        return 100;
    }
    const char *p = (const char *)buf, *end = p + len;
    while (p < end) {
        if (*p == '#') {
            while (p < end && *p != '\n') {
                p++;
            }
            p++;
            continue;
        }
        if (*p == ' ' || *p == '\r' || *p == '\n') {
            while (p < end && *p == ' ') {
                p++;
            }
            if (p < end && *p == '\r') {
                p++;
            }
            if (p == end || *p != '\n') {
                return 0;
            }
            p++;
            continue;
        }
        if (end - p >= 10 && !memcmp(p, "version=", 8) && p[8] >= '1' &&
            p[8] <= '3' && (p[9] == '\n' || (p[9] == '\r' && end - p >= 11 &&
                                             p[10] == '\n'))) {
            return 100;
        }
        return 0;
    }
    return 0;
}

/* ---- Opening ---------------------------------------------------------- */

/* Release everything; the first error of closing an extent file (its
 * final flush). */
static int free_state(struct vmdk_state *s)
{
    int r = 0;
    for (size_t i = 0; i < s->n_extents; i++) {
        struct vmdk_extent *e = &s->extents[i];
        if (e->own_file && e->file) {
            int r2 = vimg_internal_close(e->file);
            r = r < 0 ? r : r2;
        }
        vmdk_sparse_free(e->sp);
        vmdk_se_free(e->se);
        free(e->name);
        free(e->path);
    }
    free(s->extents);
    vmdk_desc_free(&s->desc);
    free(s->desc_text);
    free(s->grain_buf);
    free(s->cbuf);
    free(s->cache);
    free(s->gt[0].table);
    memset(s, 0, sizeof *s);
    return r;
}

/* Buffers sized for the largest grain and grain table of any extent. */
static int alloc_buffers(struct vimg_image *img)
{
    struct vmdk_state *s = vmdk_state(img);
    uint32_t gtes = 0;

    for (size_t i = 0; i < s->n_extents; i++) {
        struct vmdk_sparse *sp = s->extents[i].sp;
        if (sp) {
            s->max_grain = MAX(s->max_grain, sp->grain_bytes);
            gtes = MAX(gtes, sp->gtes);
        }
    }
    if (!s->max_grain) {
        return 0;
    }
    /* A compressed grain: its marker, up to twice the grain (zlib's bound
     * is far below), and a sector of padding. */
    s->cbuf_size = 2 * s->max_grain + 2 * VMDK_SECTOR;
    s->grain_buf = malloc(s->max_grain);
    s->cache = malloc(s->max_grain);
    s->cbuf = malloc(s->cbuf_size);
    uint32_t *tables = malloc((size_t)VMDK_GT_CACHE_SLOTS * gtes *
                              sizeof *tables);
    if (!s->grain_buf || !s->cache || !s->cbuf || !tables) {
        free(tables);
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    for (int i = 0; i < VMDK_GT_CACHE_SLOTS; i++) {
        s->gt[i].table = tables + (size_t)i * gtes;
    }
    return 0;
}

static struct vmdk_extent *add_extent(struct vmdk_state *s)
{
    struct vmdk_extent *x = realloc(s->extents, (s->n_extents + 1) *
                                                    sizeof *x);
    if (!x) {
        return NULL;
    }
    s->extents = x;
    x = &s->extents[s->n_extents++];
    memset(x, 0, sizeof *x);
    return x;
}

/* Open the extents a descriptor file names, each file through the open
 * policy (under "never", read-only opens leave them closed: info still
 * lists them, reads fail). */
static int open_extents(struct vimg_image *img)
{
    struct vmdk_state *s = vmdk_state(img);
    bool closed = img->params.refs == VIMG_REFS_NEVER && !img->writable;
    uint64_t start = 0;
    int r;

    for (size_t i = 0; i < s->desc.n_extents; i++) {
        const struct vmdk_desc_extent *d = &s->desc.extents[i];
        struct vmdk_extent *e = add_extent(s);
        if (!e) {
            return vimg_internal_img_error(img, ENOMEM, "out of memory");
        }
        e->type = d->type;
        e->type_name = d->type_name;
        e->rdonly = d->rdonly;
        e->start = start;
        e->length = d->sectors * VMDK_SECTOR;
        e->flat_offset = d->offset * VMDK_SECTOR;
        if (CHECKED_ADD(start, e->length, &start) || start > INT64_MAX) {
            return vimg_internal_img_error(img, EINVAL, "extents add up to "
                                           "more than the largest disk");
        }
        if (d->type == VMDK_EXT_ZERO) {
            continue;
        }
        if (!(e->name = strdup(d->name))) {
            return vimg_internal_img_error(img, ENOMEM, "out of memory");
        }
        if ((r = vimg_internal_resolve_reference(img, d->name,
                                                 &e->path)) < 0) {
            return r;
        }
        if (closed) {
            continue;
        }
        if ((r = vimg_internal_open_reference(img, d->name,
                                              img->writable && !d->rdonly,
                                              &e->file)) < 0) {
            return r;
        }
        e->own_file = true;
        if (d->type == VMDK_EXT_SPARSE) {
            if ((r = vmdk_sparse_open(img, e->file,
                                      img->writable && !d->rdonly,
                                      &e->sp)) < 0) {
                return r;
            }
        } else if (d->type == VMDK_EXT_SESPARSE &&
                   (r = vmdk_se_open(img, e->file,
                                     img->writable && !d->rdonly,
                                     &e->se)) < 0) {
            return r;
        }
        uint64_t holds = e->sp ? e->sp->capacity
                         : e->se ? vmdk_se_capacity(e->se) : UINT64_MAX;
        if (d->sectors > holds) {
            return vimg_internal_img_error(img, EINVAL, "extent '%s' holds "
                                           "%llu sectors, fewer than the "
                                           "%llu the descriptor gives it",
                                           d->name,
                                           (unsigned long long)holds,
                                           (unsigned long long)d->sectors);
        }
    }
    img->size = start;
    return 0;
}

static int read_text(struct vimg_image *img, uint64_t offset, uint64_t len)
{
    struct vmdk_state *s = vmdk_state(img);
    if (!(s->desc_text = malloc(len + 1))) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    s->desc_text[len] = '\0';
    int r = vimg_internal_pread(img->file, s->desc_text, len, offset);
    /* The text ends at the first NUL (the rest of an embedded
     * descriptor's sectors is padding). */
    s->desc_len = strlen(s->desc_text);
    return r;
}

/* A descriptor file: text naming the extents. */
static int open_descriptor_file(struct vimg_image *img, uint64_t offset,
                                uint64_t len)
{
    struct vmdk_state *s = vmdk_state(img);
    int r;

    if (len > VMDK_MAX_DESC_BYTES) {
        return vimg_internal_img_error(img, EFBIG, "descriptor of %llu "
                                       "bytes is larger than %u",
                                       (unsigned long long)len,
                                       VMDK_MAX_DESC_BYTES);
    }
    if ((r = read_text(img, offset, len)) < 0 ||
        (r = vmdk_desc_parse(img, s->desc_text, len, &s->desc)) < 0) {
        return r;
    }
    size_t i = 0, n = sizeof file_create_types / sizeof file_create_types[0];
    while (i < n && strcmp(s->desc.create_type, file_create_types[i])) {
        i++;
    }
    if (i == n) {
        return vimg_internal_img_error(img, ENOTSUP, "unsupported image "
                                       "type '%s'", s->desc.create_type);
    }
    s->create_type = s->desc.create_type;
    s->desc_at = offset;
    return open_extents(img);
}

/* A sparse extent opened directly: a monolithic disk whose descriptor is
 * embedded in it. */
static int open_monolithic(struct vimg_image *img)
{
    struct vmdk_state *s = vmdk_state(img);
    struct vmdk_sparse *sp;
    int r;

    if ((r = vmdk_sparse_open(img, img->file, img->writable, &sp)) < 0) {
        return r;
    }
    if (sp->cowd) {
        /* QEMU too finds no descriptor in one (it reads for a CID where
         * hosted extents keep theirs). */
        vmdk_sparse_free(sp);
        return vimg_internal_img_error(img, EINVAL, "a COWD (vmfsSparse) "
                                       "extent is opened through the "
                                       "descriptor file naming it");
    }
    if (sp->capacity == 0 && sp->desc_offset) {
        /* A header that only points at a descriptor (QEMU reads these as
         * descriptor files). */
        uint64_t off = sp->desc_offset, len = sp->desc_size;
        vmdk_sparse_free(sp);
        s->embedded = true;
        s->desc_room = len;
        return open_descriptor_file(img, off, len);
    }
    struct vmdk_extent *e = add_extent(s);
    if (!e) {
        vmdk_sparse_free(sp);
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    e->type = VMDK_EXT_SPARSE;
    e->type_name = "";
    e->sp = sp;
    e->file = img->file;
    e->length = sp->capacity * VMDK_SECTOR;
    if (!(e->path = strdup(img->filename))) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    if (!sp->desc_offset) {
        return vimg_internal_img_error(img, EINVAL, "sparse extent has no "
                                       "embedded descriptor");
    }
    s->embedded = true;
    s->desc_at = sp->desc_offset;
    s->desc_room = sp->desc_size;
    if ((r = read_text(img, sp->desc_offset, sp->desc_size)) < 0 ||
        (r = vmdk_desc_parse(img, s->desc_text, s->desc_len, &s->desc)) <
            0) {
        return r;
    }
    /* As QEMU, the header decides the type: a descriptor cannot make a
     * sparse file anything else. */
    s->create_type = sp->compressed ? "streamOptimized" : "monolithicSparse";
    img->size = e->length;
    return 0;
}

static int vmdk_open(struct vimg_image *img, const struct vimg_opts *opts)
{
    struct vmdk_state *s = vmdk_state(img);
    uint64_t size = (uint64_t)vimg_internal_get_size(img->file);
    uint8_t magic[4];
    int r;

    (void)opts;
    if (size < 4) {
        return vimg_internal_img_error(img, EINVAL, "file is too small to "
                                       "be a VMDK image");
    }
    if ((r = vimg_internal_pread(img->file, magic, 4, 0)) < 0) {
        return r;
    }
    if (load_le32(magic) == VMDK4_MAGIC || load_le32(magic) == VMDK3_MAGIC) {
        r = open_monolithic(img);
    } else {
        r = open_descriptor_file(img, 0, size);
    }
    if (r == 0) {
        r = alloc_buffers(img);
    }
    if (r == 0 && s->desc.parent_hint) {
        img->backing_name = strdup(s->desc.parent_hint);
        img->backing_format = strdup("vmdk");
        if (!img->backing_name || !img->backing_format) {
            r = vimg_internal_img_error(img, ENOMEM, "out of memory");
        }
    }
    if (r < 0) {
        free_state(s);
        return r;
    }
    /* Stream grains are compressed blocks written once, in order; other
     * sparse extents take plain writes (compress declines, see below). */
    struct vmdk_extent *first = &s->extents[0];
    img->compress_unit = first->sp ? (uint32_t)first->sp->grain_bytes
                                   : 65536;
    img->ordered_compressed = s->n_extents == 1 && first->sp &&
                              first->sp->stream;
    return 0;
}

static int vmdk_flush(struct vimg_image *img)
{
    struct vmdk_state *s = vmdk_state(img);
    int r = vmdk_sparse_flush(img);

    for (size_t i = 0; r == 0 && i < s->n_extents; i++) {
        if (s->extents[i].own_file && s->extents[i].file) {
            r = vimg_internal_flush(s->extents[i].file);
        }
    }
    return r;
}

static int vmdk_close(struct vimg_image *img)
{
    struct vmdk_state *s = vmdk_state(img);
    int r = img->writable ? vmdk_sparse_flush(img) : 0;
    int r2 = free_state(s);
    return r < 0 ? r : r2;
}

/* ---- Data path -------------------------------------------------------- */

/* The extent holding OFFSET (extents are sorted and contiguous). */
static struct vmdk_extent *find_extent(struct vmdk_state *s, uint64_t offset)
{
    size_t lo = 0, hi = s->n_extents;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (s->extents[mid].start <= offset) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    return &s->extents[lo];
}

static int not_opened(struct vimg_image *img, const struct vmdk_extent *e)
{
    return vimg_internal_img_error(img, EPERM, "extent file '%s' was not "
                                   "opened (the open policy follows no "
                                   "references)", e->name);
}

/* The CID changes with the first write after opening, so that images made
 * on top of this one notice (QEMU's vmdk_write_cid). */
static int update_cid(struct vimg_image *img)
{
    struct vmdk_state *s = vmdk_state(img);
    char value[40];
    uint32_t cid, words[3];
    int r;

    do {
        if (getrandom(&cid, sizeof cid, 0) != sizeof cid) {
            return vimg_internal_img_error(img, EIO, "no random numbers "
                                           "for a new CID");
        }
    } while (cid == 0xffffffffu || cid == 0xfffffffeu);
    snprintf(value, sizeof value, "%08x", cid);
    if ((r = vmdk_desc_set_value(&s->desc_text, &s->desc_len, "CID",
                                 value)) < 0) {
        return vimg_internal_img_error(img, -r, "cannot update the CID");
    }
    if (getrandom(words, sizeof words, 0) == sizeof words) {
        snprintf(value, sizeof value, "\"%08x%08x%08x%08x\"", words[0],
                 words[1], words[2], cid);
        r = vmdk_desc_set_value(&s->desc_text, &s->desc_len,
                                "ddb.longContentID", value);
        if (r < 0 && r != -ENOENT) {
            return vimg_internal_img_error(img, -r, "out of memory");
        }
    }
    if (s->embedded) {
        /* Rewritten in place, zero-padded to the length it had. */
        if (s->desc_len > s->desc_room) {
            return vimg_internal_img_error(img, ENOSPC, "descriptor does "
                                           "not fit its sectors");
        }
        uint8_t *buf = calloc(1, s->desc_room);
        if (!buf) {
            return vimg_internal_img_error(img, ENOMEM, "out of memory");
        }
        memcpy(buf, s->desc_text, s->desc_len);
        r = vimg_internal_pwrite(img->file, buf, s->desc_room, s->desc_at,
                                 0);
        free(buf);
    } else if ((r = vimg_internal_pwrite(img->file, s->desc_text,
                                         s->desc_len, 0, 0)) == 0) {
        r = vimg_internal_truncate(img->file, s->desc_len,
                                   VIMG_TRUNCATE_SHRINK, VIMG_PREALLOC_OFF);
    }
    if (r == 0) {
        s->desc.cid = cid;
        s->cid_updated = true;
    }
    return r;
}

static int vmdk_pread(struct vimg_image *img, void *buf, uint64_t count,
                      uint64_t offset)
{
    struct vmdk_state *s = vmdk_state(img);
    uint8_t *p = buf;
    int r = 0;

    while (count && r == 0) {
        struct vmdk_extent *e = find_extent(s, offset);
        uint64_t in = offset - e->start;
        uint64_t n = MIN(count, e->length - in);
        if (e->type == VMDK_EXT_ZERO) {
            memset(p, 0, n);
        } else if (!e->file) {
            r = not_opened(img, e);
        } else if (e->sp) {
            r = vmdk_sparse_read(img, e, p, n, in);
        } else if (e->se) {
            r = vmdk_se_read(img, e, p, n, in);
        } else {
            r = vimg_internal_pread(e->file, p, n, e->flat_offset + in);
        }
        p += n;
        offset += n;
        count -= n;
    }
    return r;
}

static int writable_extent(struct vimg_image *img, struct vmdk_extent *e)
{
    if (e->type == VMDK_EXT_ZERO || e->rdonly || e->se ||
        (e->sp && e->sp->cowd)) {
        return vimg_internal_img_error(img, EROFS, "extent %s is read-only",
                                       e->name ? e->name : "ZERO");
    }
    if (!e->file) {
        return not_opened(img, e);
    }
    int r = e->sp ? vmdk_sparse_writable(img, e) : 0;
    if (r < 0) {
        return r;
    }
    struct vmdk_state *s = vmdk_state(img);
    return s->cid_updated ? 0 : update_cid(img);
}

static int vmdk_pwrite(struct vimg_image *img, const void *buf,
                       uint64_t count, uint64_t offset, unsigned flags)
{
    struct vmdk_state *s = vmdk_state(img);
    const uint8_t *p = buf;
    int r = 0;

    while (count && r == 0) {
        struct vmdk_extent *e = find_extent(s, offset);
        uint64_t in = offset - e->start;
        uint64_t n = MIN(count, e->length - in);
        if ((r = writable_extent(img, e)) < 0) {
            break;
        }
        r = e->sp ? vmdk_sparse_write(img, e, p, n, in)
                  : vimg_internal_pwrite(e->file, p, n, e->flat_offset + in,
                                         0);
        p += n;
        offset += n;
        count -= n;
    }
    if (r == 0 && (flags & VIMG_WRITE_FUA)) {
        r = vmdk_flush(img);
    }
    return r;
}

static int vmdk_zero(struct vimg_image *img, uint64_t offset, uint64_t count,
                     unsigned flags)
{
    struct vmdk_state *s = vmdk_state(img);
    int r = 0;

    while (count && r == 0) {
        struct vmdk_extent *e = find_extent(s, offset);
        uint64_t in = offset - e->start;
        uint64_t n = MIN(count, e->length - in);
        if ((r = writable_extent(img, e)) < 0) {
            break;
        }
        r = e->sp ? vmdk_sparse_zero(img, e, in, n)
                  : vimg_internal_zero(e->file, e->flat_offset + in, n,
                                       flags | VIMG_ZERO_NO_FALLBACK);
        offset += n;
        count -= n;
    }
    return r;
}

static int vmdk_block_status(struct vimg_image *img, uint64_t offset,
                             uint64_t count, uint64_t *pnum, uint64_t *map,
                             const char **file)
{
    struct vmdk_state *s = vmdk_state(img);
    struct vmdk_extent *e = find_extent(s, offset);
    uint64_t in = offset - e->start;
    uint64_t n = MIN(count, e->length - in);

    *pnum = n;
    if (e->type == VMDK_EXT_ZERO) {
        return VIMG_BS_ZERO | VIMG_BS_ALLOCATED;
    }
    if (!e->file && (e->type == VMDK_EXT_FLAT || e->type == VMDK_EXT_VMFS) &&
        e->path) {
        /* A flat extent the policy kept closed is still placed, by the
         * path it would be opened at (as qcow2's external data file). */
        *map = e->flat_offset + in;
        *file = e->path;
        return VIMG_BS_DATA | VIMG_BS_ALLOCATED | VIMG_BS_OFFSET_VALID;
    }
    if (!e->file) {
        return not_opened(img, e);
    }
    *file = e->file->filename;
    if (e->se) {
        return vmdk_se_block_status(img, e, in, n, pnum, map);
    }
    if (!e->sp) {
        /* As QEMU (BDRV_BLOCK_RECURSE): data, and zero too where the
         * flat file has a hole. */
        struct vimg_extent fe;
        int r = vimg_internal_block_status(e->file, e->flat_offset + in, n,
                                           0, &fe);
        if (r < 0) {
            return r;
        }
        *pnum = fe.length;
        *map = e->flat_offset + in;
        return VIMG_BS_DATA | VIMG_BS_ALLOCATED | VIMG_BS_OFFSET_VALID |
               (fe.flags & VIMG_BS_ZERO);
    }
    return vmdk_sparse_block_status(img, e, in, n, pnum, map);
}

/* Compressed blocks exist only in streams; other extents decline, so the
 * core writes the block plainly (QEMU accepts -c for them the same way). */
static long vmdk_compress(struct vimg_image *img, const void *in, void *out,
                          uint64_t cap)
{
    if (!img->ordered_compressed) {
        return -ENOSPC;
    }
    /* Compressed grains are stored even when they do not shrink: ask for
     * room beyond the block when the caller has it. */
    return vimg_internal_compress(VIMG_COMPRESS_ZLIB, 0, in,
                                  img->compress_unit, out, cap);
}

static int vmdk_write_compressed(struct vimg_image *img, uint64_t offset,
                                 const void *cbuf, uint64_t len)
{
    struct vmdk_state *s = vmdk_state(img);
    struct vmdk_extent *e = find_extent(s, offset);
    int r = writable_extent(img, e);

    if (r < 0) {
        return r;
    }
    if (!e->sp || !e->sp->stream) {
        return vimg_internal_img_error(img, ENOTSUP, "only streamOptimized "
                                       "extents hold compressed grains");
    }
    return vmdk_sparse_write_compressed(img, e, offset - e->start, cbuf,
                                        len);
}

/* ---- Metadata --------------------------------------------------------- */

static int64_t vmdk_allocated_size(struct vimg_image *img)
{
    struct vmdk_state *s = vmdk_state(img);
    struct vimg_image *f = img->file;
    int64_t total = f->drv->allocated_size ? f->drv->allocated_size(f) : 0;

    for (size_t i = 0; total >= 0 && i < s->n_extents; i++) {
        f = s->extents[i].own_file ? s->extents[i].file : NULL;
        if (f && f->drv->allocated_size) {
            int64_t n = f->drv->allocated_size(f);
            total = n < 0 ? n : total + n;
        }
    }
    return total;
}

/* Bytes per grain of a sparse extent, 0 for the others. */
static uint64_t grain_bytes(const struct vmdk_extent *e)
{
    return e->sp ? e->sp->grain_bytes
           : e->se ? vmdk_se_grain_bytes(e->se) : 0;
}

static int extent_info(const struct vmdk_extent *e, struct vimg_value *list)
{
    struct vimg_value *o = vimg_internal_value_new(VIMG_VALUE_OBJECT);
    int r;

    if (!o) {
        return -ENOMEM;
    }
    if ((e->sp && e->sp->compressed &&
         (r = vimg_internal_value_set_bool(o, "compressed", true)) < 0) ||
        (r = vimg_internal_value_set_int(o, "virtual-size",
                                         (int64_t)e->length)) < 0 ||
        (r = vimg_internal_value_set_str(o, "filename",
                                         e->path ? e->path
                                                 : e->name ? e->name
                                                           : "")) < 0 ||
        (grain_bytes(e) && (r = vimg_internal_value_set_int(
                                o, "cluster-size",
                                (int64_t)grain_bytes(e))) < 0) ||
        (r = vimg_internal_value_set_str(o, "format", e->type_name)) < 0) {
        vimg_value_free(o);
        return r;
    }
    return vimg_internal_value_append(list, o);
}

static int vmdk_get_info(struct vimg_image *img, struct vimg_value *info)
{
    struct vmdk_state *s = vmdk_state(img);
    struct vimg_value *spec = vimg_internal_value_new(VIMG_VALUE_OBJECT);
    struct vimg_value *data = vimg_internal_value_new(VIMG_VALUE_OBJECT);
    struct vimg_value *list = vimg_internal_value_new(VIMG_VALUE_ARRAY);
    int r = 0;

    if (!spec || !data || !list) {
        vimg_value_free(spec);
        vimg_value_free(data);
        vimg_value_free(list);
        return -ENOMEM;
    }
    for (size_t i = 0; r == 0 && i < s->n_extents; i++) {
        r = extent_info(&s->extents[i], list);
    }
    if (r < 0 ||
        (r = vimg_internal_value_set_int(data, "cid", s->desc.cid)) < 0 ||
        (r = vimg_internal_value_set_int(data, "parent-cid",
                                         s->desc.parent_cid)) < 0 ||
        (r = vimg_internal_value_set_str(data, "create-type",
                                         s->create_type)) < 0) {
        vimg_value_free(spec);
        vimg_value_free(data);
        vimg_value_free(list);
        return r < 0 ? r : -ENOMEM;
    }
    if ((r = vimg_internal_value_add(data, "extents", list)) < 0 ||
        (r = vimg_internal_value_set_str(spec, "type", "vmdk")) < 0) {
        vimg_value_free(spec);
        vimg_value_free(data);
        return r;
    }
    if ((r = vimg_internal_value_add(spec, "data", data)) < 0) {
        vimg_value_free(spec);
        return r;
    }
    /* As QEMU: a cluster size when every extent is sparse with one grain
     * size and compression alike. */
    const struct vmdk_extent *e0 = &s->extents[0];
    uint64_t grain = grain_bytes(e0);
    bool same = grain != 0;
    for (size_t i = 1; same && i < s->n_extents; i++) {
        const struct vmdk_extent *e = &s->extents[i];
        same = grain_bytes(e) == grain &&
               (e->sp && e->sp->compressed) == (e0->sp && e0->sp->compressed);
    }
    if ((same && (r = vimg_internal_value_set_int(info, "cluster-size",
                                                  (int64_t)grain)) < 0)) {
        vimg_value_free(spec);
        return r;
    }
    return vimg_internal_value_add(info, "format-specific", spec);
}

static int vmdk_check(struct vimg_image *img, unsigned fix,
                      struct vimg_check_result *res, vimg_report_fn report,
                      void *opaque)
{
    struct vmdk_state *s = vmdk_state(img);
    int r = 0;

    if (fix) {
        return vimg_internal_img_error(img, ENOTSUP, "vmdk images cannot "
                                       "be repaired");
    }
    for (size_t i = 0; r == 0 && i < s->n_extents; i++) {
        struct vmdk_extent *e = &s->extents[i];
        if (e->sp && e->file) {
            r = vmdk_sparse_check(img, e, res, report, opaque);
        } else if (e->se && e->file) {
            r = vmdk_se_check(img, e, res, report, opaque);
        } else if (!e->file && e->type != VMDK_EXT_ZERO) {
            r = not_opened(img, e);
        }
    }
    return r;
}

const struct vimg_driver vimg_driver_vmdk = {
    .name = "vmdk",
    .kind = VIMG_DRIVER_FORMAT,
    .instance_size = sizeof(struct vmdk_state),
    .thread_safe = false,
    .has_zero_init = true,
    .create_opts = vmdk_create_opts,
    .probe = vmdk_probe,
    .open = vmdk_open,
    .close = vmdk_close,
    .create = vmdk_create,
    .pread = vmdk_pread,
    .pwrite = vmdk_pwrite,
    .zero = vmdk_zero,
    .flush = vmdk_flush,
    .block_status = vmdk_block_status,
    .compress = vmdk_compress,
    .write_compressed = vmdk_write_compressed,
    .allocated_size = vmdk_allocated_size,
    .get_info = vmdk_get_info,
    .check = vmdk_check,
};
