/* Layout: folders numbered breadth-first (the path table order), then the
 * image in sectors: descriptors, path tables, ISO 9660 folders each
 * followed by its Rock Ridge continuation area, Joliet folders, and the
 * file data in tree order. Folder extents are built by one function used
 * twice: first to size them, then, with every sector known, to write. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../../common/rounding.h"
#include "iso-write.h"

#define SECTORS(bytes) DIV_ROUND_UP((uint64_t)(bytes), ISO_SECTOR_SIZE)

/* The number of extents (records) that N's data needs. */
static uint32_t sections(const struct iso_node *n)
{
    if (n->content == ISO_CONTENT_NONE || n->size == 0) {
        return 1;
    }
    return (uint32_t)((n->size + ISO_MAX_EXTENT_BYTES - 1) /
                      ISO_MAX_EXTENT_BYTES);
}

/* One directory record; records never cross a sector boundary. */
static int record(struct iso_buf *out, const uint8_t *name, size_t name_len,
                  uint32_t lba, uint32_t size, int64_t t, uint8_t flags,
                  const struct iso_buf *su)
{
    size_t su_off = iso_dr_system_use_offset((unsigned)name_len);
    size_t len = su_off + su->len;
    len += len % 2;
    if (len > ISO_DR_MAX_LENGTH) {
        return vimg_internal_error(EINVAL, "directory record too long");
    }
    if (out->len % ISO_SECTOR_SIZE + len > ISO_SECTOR_SIZE) {
        int r = iso_buf_zeros(out, ISO_SECTOR_SIZE -
                              out->len % ISO_SECTOR_SIZE);
        if (r < 0) {
            return r;
        }
    }
    int r = iso_buf_zeros(out, len);
    if (r < 0) {
        return r;
    }
    uint8_t *d = out->data + out->len - len;
    d[ISO_DR_LENGTH_OFFSET] = (uint8_t)len;
    iso_store_both32(d + ISO_DR_EXTENT_OFFSET, lba);
    iso_store_both32(d + ISO_DR_DATA_LENGTH_OFFSET, size);
    iso_date7(t, d + ISO_DR_DATE_OFFSET);
    d[ISO_DR_FLAGS_OFFSET] = flags;
    iso_store_both16(d + ISO_DR_VOLUME_SEQ_OFFSET, 1);
    d[ISO_DR_NAME_LENGTH_OFFSET] = (uint8_t)name_len;
    memcpy(d + ISO_DR_NAME_OFFSET, name, name_len);
    if (su->len) {
        memcpy(d + su_off, su->data, su->len);
    }
    return 0;
}

/* Rock Ridge entries of one record, packed for a name of NAME_LEN. */
static int rr_for(const struct iso_node *n, enum iso_rr_record kind,
                  size_t name_len, struct iso_ce_cursor *cur,
                  struct iso_buf *su)
{
    struct iso_buf e = { 0 };
    int r = iso_rr_entries(n, kind, &e);
    if (r == 0) {
        /* 254: the record length must stay even. */
        size_t avail = 254 - iso_dr_system_use_offset((unsigned)name_len);
        r = iso_rr_pack(&e, avail, cur, su);
    }
    iso_buf_free(&e);
    return r;
}

static void joliet_name_bytes(const struct iso_node *n, uint8_t *out)
{
    for (size_t i = 0; i < n->jname_len; i++) {
        store_be16(out + 2 * i, n->jname[i]);
    }
}

static int kid_records(const struct iso_node *k, bool joliet, bool rr,
                       struct iso_ce_cursor *cur, struct iso_buf *out)
{
    uint8_t name[2 * ISO_JOLIET_MAX_NAME_CHARS];
    size_t name_len;
    struct iso_buf su = { 0 };
    int r = 0;
    if (joliet) {
        joliet_name_bytes(k, name);
        name_len = 2u * k->jname_len;
    } else {
        memcpy(name, k->iso_id, k->iso_id_len);
        name_len = k->iso_id_len;
    }
    if (rr) {
        r = rr_for(k, ISO_RR_NAMED, name_len, cur, &su);
    }
    if (r == 0 && S_ISDIR(k->mode)) {
        r = record(out, name, name_len, joliet ? k->jdir_lba : k->dir_lba,
                   joliet ? k->jdir_bytes : k->dir_bytes, k->mtime,
                   ISO_DR_FLAG_DIRECTORY, &su);
    } else if (r == 0) {
        /* Multi-extent (ISO 9660 level 3): every record repeats the Rock
         * Ridge entries, as readers match the parts by name. */
        uint32_t ns = sections(k);
        uint64_t left = k->content == ISO_CONTENT_NONE ? 0 : k->size;
        uint32_t lba = (uint32_t)k->data_owner->data_lba;
        for (uint32_t s = 0; r == 0 && s < ns; s++) {
            uint32_t part = left > ISO_MAX_EXTENT_BYTES ?
                            ISO_MAX_EXTENT_BYTES : (uint32_t)left;
            r = record(out, name, name_len, lba, part, k->mtime,
                       s + 1 < ns ? ISO_DR_FLAG_MULTI_EXTENT : 0, &su);
            left -= part;
            lba += ISO_MAX_EXTENT_BYTES / ISO_SECTOR_SIZE;
        }
    }
    iso_buf_free(&su);
    return r;
}

int iso_layout_dir(const struct iso_writer *w, const struct iso_node *n,
                   bool joliet, struct iso_buf *out, struct iso_buf *ce,
                   uint64_t *ce_bytes)
{
    bool rr = w->p->rock_ridge && !joliet;
    const struct iso_node *up = n->parent ? n->parent : n;
    struct iso_ce_cursor cur = { n->ce_lba, 0, ce };
    struct iso_buf su = { 0 };
    static const uint8_t self = ISO_DR_NAME_SELF, parent = ISO_DR_NAME_PARENT;
    int r = 0;

    if (rr) {
        r = rr_for(n, n->parent ? ISO_RR_DOT : ISO_RR_ROOT_DOT, 1, &cur,
                   &su);
    }
    if (r == 0) {
        r = record(out, &self, 1, joliet ? n->jdir_lba : n->dir_lba,
                   joliet ? n->jdir_bytes : n->dir_bytes, n->mtime,
                   ISO_DR_FLAG_DIRECTORY, &su);
    }
    su.len = 0;
    if (r == 0 && rr) {
        r = rr_for(up, ISO_RR_DOT, 1, &cur, &su);
    }
    if (r == 0) {
        r = record(out, &parent, 1, joliet ? up->jdir_lba : up->dir_lba,
                   joliet ? up->jdir_bytes : up->dir_bytes, up->mtime,
                   ISO_DR_FLAG_DIRECTORY, &su);
    }
    iso_buf_free(&su);
    size_t nk = joliet ? n->n_jkids : n->n_kids;
    for (size_t i = 0; r == 0 && i < nk; i++) {
        const struct iso_node *k = joliet ? n->jkids[i] : n->kids[i];
        if (k->in_iso || joliet) {
            r = kid_records(k, joliet, rr, &cur, out);
        }
    }
    if (r == 0 && out->len % ISO_SECTOR_SIZE) {
        r = iso_buf_zeros(out, ISO_SECTOR_SIZE - out->len % ISO_SECTOR_SIZE);
    }
    if (r == 0 && ce && ce->len % ISO_SECTOR_SIZE) {
        r = iso_buf_zeros(ce, ISO_SECTOR_SIZE - ce->len % ISO_SECTOR_SIZE);
    }
    *ce_bytes = cur.pos;
    return r;
}

int iso_layout_path_table(const struct iso_writer *w, bool joliet,
                          bool little, struct iso_buf *out)
{
    struct iso_node *const *dirs = joliet ? w->jdirs : w->dirs;
    size_t n = joliet ? w->n_jdirs : w->n_dirs;
    for (size_t i = 0; i < n; i++) {
        const struct iso_node *d = dirs[i];
        uint8_t name[2 * ISO_JOLIET_MAX_NAME_CHARS];
        size_t len;
        if (!d->parent) {
            name[0] = 0;
            len = 1;
        } else if (joliet) {
            joliet_name_bytes(d, name);
            len = 2u * d->jname_len;
        } else {
            memcpy(name, d->iso_id, d->iso_id_len);
            len = d->iso_id_len;
        }
        size_t rec = ISO_PT_NAME_OFFSET + len + len % 2;
        int r = iso_buf_zeros(out, rec);
        if (r < 0) {
            return r;
        }
        uint8_t *p = out->data + out->len - rec;
        uint32_t lba = joliet ? d->jdir_lba : d->dir_lba;
        const struct iso_node *up = d->parent ? d->parent : d;
        uint16_t parent = (uint16_t)(joliet ? up->jdir_number :
                                     up->dir_number);
        p[ISO_PT_NAME_LENGTH_OFFSET] = (uint8_t)len;
        if (little) {
            store_le32(p + ISO_PT_EXTENT_OFFSET, lba);
            store_le16(p + ISO_PT_PARENT_OFFSET, parent);
        } else {
            store_be32(p + ISO_PT_EXTENT_OFFSET, lba);
            store_be16(p + ISO_PT_PARENT_OFFSET, parent);
        }
        memcpy(p + ISO_PT_NAME_OFFSET, name, len);
    }
    return 0;
}

/* Breadth-first numbering; kids are already in each tree's order, so the
 * path table comes out sorted by level, parent and name. */
static int number_dirs(struct iso_writer *w, bool joliet)
{
    struct iso_node **v = malloc(sizeof *v);
    size_t n = 0, cap = 1;
    if (!v) {
        return vimg_internal_error(ENOMEM, "out of memory");
    }
    v[n++] = w->root;
    for (size_t i = 0; i < n; i++) {
        struct iso_node *d = v[i];
        size_t nk = joliet ? d->n_jkids : d->n_kids;
        if (joliet) {
            d->jdir_number = (uint32_t)(i + 1);
        } else {
            d->dir_number = (uint32_t)(i + 1);
        }
        for (size_t k = 0; k < nk; k++) {
            struct iso_node *c = joliet ? d->jkids[k] : d->kids[k];
            if (!S_ISDIR(c->mode)) {
                continue;
            }
            if (n == ISO_WRITE_MAX_DIRS) {
                free(v);
                return iso_fail(w, EFBIG, "more than %u folders",
                                ISO_WRITE_MAX_DIRS);
            }
            if (n == cap) {
                cap *= 2;
                struct iso_node **nv = realloc(v, cap * sizeof *nv);
                if (!nv) {
                    free(v);
                    return vimg_internal_error(ENOMEM, "out of memory");
                }
                v = nv;
            }
            v[n++] = c;
        }
    }
    if (joliet) {
        w->jdirs = v;
        w->n_jdirs = n;
    } else {
        w->dirs = v;
        w->n_dirs = n;
    }
    return 0;
}

static int size_dirs(struct iso_writer *w, bool joliet)
{
    struct iso_node **dirs = joliet ? w->jdirs : w->dirs;
    size_t n = joliet ? w->n_jdirs : w->n_dirs;
    struct iso_buf b = { 0 };
    for (size_t i = 0; i < n; i++) {
        uint64_t ce_bytes;
        b.len = 0;
        int r = iso_layout_dir(w, dirs[i], joliet, &b, NULL, &ce_bytes);
        if (r < 0) {
            iso_buf_free(&b);
            return r;
        }
        if (b.len > UINT32_MAX) {
            iso_buf_free(&b);
            return iso_fail(w, EFBIG, "a folder has too many entries");
        }
        if (joliet) {
            dirs[i]->jdir_bytes = (uint32_t)b.len;
        } else {
            dirs[i]->dir_bytes = (uint32_t)b.len;
            dirs[i]->ce_blocks = (uint32_t)SECTORS(ce_bytes);
        }
    }
    iso_buf_free(&b);
    return 0;
}

static int collect_data(struct iso_writer *w, struct iso_node *d,
                        size_t *cap)
{
    for (size_t i = 0; i < d->n_kids; i++) {
        struct iso_node *k = d->kids[i];
        if (k->content != ISO_CONTENT_NONE && k->data_owner == k &&
            k->size > 0) {
            if (w->n_files == *cap) {
                *cap = *cap ? *cap * 2 : 64;
                struct iso_node **nv = realloc(w->files,
                                               *cap * sizeof *nv);
                if (!nv) {
                    return vimg_internal_error(ENOMEM, "out of memory");
                }
                w->files = nv;
            }
            w->files[w->n_files++] = k;
        }
        if (S_ISDIR(k->mode)) {
            int r = collect_data(w, k, cap);
            if (r < 0) {
                return r;
            }
        }
    }
    return 0;
}

int iso_layout(struct iso_writer *w)
{
    bool joliet = w->p->joliet;
    size_t cap = 0;
    int r = number_dirs(w, false);
    if (r == 0 && joliet) {
        r = number_dirs(w, true);
    }
    if (r == 0) {
        r = size_dirs(w, false);
    }
    if (r == 0 && joliet) {
        r = size_dirs(w, true);
    }
    if (r == 0) {
        r = collect_data(w, w->root, &cap);
    }
    if (r < 0) {
        return r;
    }

    uint64_t lba = ISO_VD_FIRST_LBA + 1;
    if (w->catalog) {
        w->br_lba = (uint32_t)lba++;
    }
    if (joliet) {
        w->svd_lba = (uint32_t)lba++;
    }
    w->term_lba = (uint32_t)lba++;

    struct iso_buf pt = { 0 };
    r = iso_layout_path_table(w, false, true, &pt);
    w->pt_bytes = (uint32_t)pt.len;
    pt.len = 0;
    if (r == 0 && joliet) {
        r = iso_layout_path_table(w, true, true, &pt);
        w->jpt_bytes = (uint32_t)pt.len;
    }
    iso_buf_free(&pt);
    if (r < 0) {
        return r;
    }
    w->pt_l_lba = (uint32_t)lba;
    lba += SECTORS(w->pt_bytes);
    w->pt_m_lba = (uint32_t)lba;
    lba += SECTORS(w->pt_bytes);
    if (joliet) {
        w->jpt_l_lba = (uint32_t)lba;
        lba += SECTORS(w->jpt_bytes);
        w->jpt_m_lba = (uint32_t)lba;
        lba += SECTORS(w->jpt_bytes);
    }
    for (size_t i = 0; i < w->n_dirs; i++) {
        struct iso_node *d = w->dirs[i];
        d->dir_lba = (uint32_t)lba;
        lba += SECTORS(d->dir_bytes);
        d->ce_lba = (uint32_t)lba;
        lba += d->ce_blocks;
    }
    for (size_t i = 0; i < w->n_jdirs; i++) {
        w->jdirs[i]->jdir_lba = (uint32_t)lba;
        lba += SECTORS(w->jdirs[i]->jdir_bytes);
    }
    for (size_t i = 0; i < w->n_files; i++) {
        w->files[i]->data_lba = lba;
        lba += SECTORS(w->files[i]->size);
        /* Every extent start must fit 32 bits. */
        if (lba > UINT32_MAX) {
            return iso_fail(w, EFBIG, "the image would exceed 8 TiB");
        }
    }
    w->total_blocks = lba;
    return 0;
}
