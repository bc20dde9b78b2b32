/* Rock Ridge (RRIP 1.12) entries and their placement under SUSP: what does
 * not fit a directory record's system use area goes to continuation areas
 * (CE), each inside one sector, chained when a long symlink needs more. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "iso-write.h"

#define ISO_SUSP_MAX_ENTRY 255
/* RRIP 1.12 as libisofs and the Linux kernel name it. */
static const char rr_er_id[] = ISO_RRIP_ER_ID_IEEE_1_12;
static const char rr_er_des[] =
    "THE IEEE 1282 PROTOCOL PROVIDES SUPPORT FOR POSIX FILE SYSTEM "
    "SEMANTICS.";
static const char rr_er_src[] =
    "PLEASE CONTACT THE IEEE STANDARDS DEPARTMENT, PISCATAWAY, NJ, USA FOR "
    "THE 1282 SPECIFICATION.";

static uint8_t *entry(struct iso_buf *out, const char sig[2], size_t len,
                      int *r)
{
    *r = iso_buf_zeros(out, len);
    if (*r < 0) {
        return NULL;
    }
    uint8_t *e = out->data + out->len - len;
    e[ISO_SUSP_SIG_OFFSET] = (uint8_t)sig[0];
    e[ISO_SUSP_SIG_OFFSET + 1] = (uint8_t)sig[1];
    e[ISO_SUSP_LENGTH_OFFSET] = (uint8_t)len;
    e[ISO_SUSP_VERSION_OFFSET] = 1;
    return e;
}

static int add_nm(struct iso_buf *out, const char *name)
{
    const size_t max = ISO_SUSP_MAX_ENTRY - ISO_RR_NM_NAME_OFFSET;
    size_t len = strlen(name);
    int r = 0;
    do {
        size_t part = len > max ? max : len;
        uint8_t *e = entry(out, "NM", ISO_RR_NM_NAME_OFFSET + part, &r);
        if (!e) {
            return r;
        }
        e[ISO_RR_NM_FLAGS_OFFSET] = len > part ? ISO_RR_NM_CONTINUE : 0;
        memcpy(e + ISO_RR_NM_NAME_OFFSET, name, part);
        name += part;
        len -= part;
    } while (len > 0);
    return 0;
}

/* SL: the target as components; a component too long for one entry is
 * split with the component CONTINUE flag, and entries chain with the
 * entry CONTINUE flag. */
struct sl_state {
    struct iso_buf *out;
    size_t start;         /* offset of the open SL entry, or SIZE_MAX */
};

static int sl_component(struct sl_state *s, uint8_t flags, const char *text,
                        size_t len)
{
    size_t need = ISO_RR_SL_COMP_CONTENT_OFFSET + len;
    int r;
    if (s->start != SIZE_MAX &&
        s->out->len - s->start + need > ISO_SUSP_MAX_ENTRY) {
        s->out->data[s->start + ISO_RR_SL_FLAGS_OFFSET] |= 1;
        s->start = SIZE_MAX;
    }
    if (s->start == SIZE_MAX) {
        s->start = s->out->len;
        if (!entry(s->out, "SL", ISO_RR_SL_COMPONENTS_OFFSET, &r)) {
            return r;
        }
    }
    uint8_t head[2] = { flags, (uint8_t)len };
    r = iso_buf_append(s->out, head, sizeof head);
    if (r == 0) {
        r = iso_buf_append(s->out, text, len);
    }
    if (r == 0) {
        s->out->data[s->start + ISO_SUSP_LENGTH_OFFSET] =
            (uint8_t)(s->out->len - s->start);
    }
    return r;
}

static int add_sl(struct iso_buf *out, const char *target)
{
    const size_t max = ISO_SUSP_MAX_ENTRY - ISO_RR_SL_COMPONENTS_OFFSET -
                       ISO_RR_SL_COMP_CONTENT_OFFSET;
    struct sl_state s = { out, SIZE_MAX };
    int r = 0;
    if (*target == '/') {
        r = sl_component(&s, ISO_RR_SL_ROOT, "", 0);
    }
    while (r == 0 && *target) {
        size_t len = strcspn(target, "/");
        if (len == 1 && target[0] == '.') {
            r = sl_component(&s, ISO_RR_SL_CURRENT, "", 0);
        } else if (len == 2 && target[0] == '.' && target[1] == '.') {
            r = sl_component(&s, ISO_RR_SL_PARENT, "", 0);
        } else {
            const char *c = target;
            size_t left = len;
            while (r == 0 && left > 0) {
                size_t part = left > max ? max : left;
                r = sl_component(&s, left > part ? ISO_RR_SL_CONTINUE : 0,
                                 c, part);
                c += part;
                left -= part;
            }
        }
        target += len;
        target += strspn(target, "/");
    }
    return r;
}

int iso_rr_entries(const struct iso_node *n, enum iso_rr_record kind,
                   struct iso_buf *out)
{
    int r = 0;
    uint8_t *e;
    if (kind == ISO_RR_ROOT_DOT) {
        if (!(e = entry(out, "SP", ISO_SUSP_SP_LENGTH, &r))) {
            return r;
        }
        e[ISO_SUSP_SP_CHECK_OFFSET] = ISO_SUSP_SP_CHECK0;
        e[ISO_SUSP_SP_CHECK_OFFSET + 1] = ISO_SUSP_SP_CHECK1;
    }
    if (!(e = entry(out, "PX", ISO_RR_PX_LENGTH, &r))) {
        return r;
    }
    iso_store_both32(e + ISO_RR_PX_MODE_OFFSET, n->mode);
    iso_store_both32(e + ISO_RR_PX_NLINK_OFFSET, n->nlink);
    iso_store_both32(e + ISO_RR_PX_UID_OFFSET, n->uid);
    iso_store_both32(e + ISO_RR_PX_GID_OFFSET, n->gid);
    iso_store_both32(e + ISO_RR_PX_INO_OFFSET, n->serial);

    if (!(e = entry(out, "TF", ISO_RR_TF_STAMPS_OFFSET +
                    3 * ISO_DIR_DATE_SIZE, &r))) {
        return r;
    }
    e[ISO_RR_TF_FLAGS_OFFSET] = ISO_RR_TF_MODIFY | ISO_RR_TF_ACCESS |
                                ISO_RR_TF_ATTRIBUTES;
    iso_date7(n->mtime, e + ISO_RR_TF_STAMPS_OFFSET);
    iso_date7(n->atime, e + ISO_RR_TF_STAMPS_OFFSET + ISO_DIR_DATE_SIZE);
    iso_date7(n->ctime, e + ISO_RR_TF_STAMPS_OFFSET +
              2 * ISO_DIR_DATE_SIZE);

    if (kind == ISO_RR_NAMED) {
        if (S_ISCHR(n->mode) || S_ISBLK(n->mode)) {
            /* libisofs's split of dev_t, which Linux also decodes. */
            if (!(e = entry(out, "PN", ISO_RR_PN_LENGTH, &r))) {
                return r;
            }
            iso_store_both32(e + ISO_RR_PN_DEV_HIGH_OFFSET,
                             (uint32_t)(n->rdev >> 32));
            iso_store_both32(e + ISO_RR_PN_DEV_LOW_OFFSET,
                             (uint32_t)n->rdev);
        }
        r = add_nm(out, n->name);
        if (r == 0 && S_ISLNK(n->mode)) {
            r = add_sl(out, n->link_target);
        }
    }
    if (r == 0 && kind == ISO_RR_ROOT_DOT) {
        size_t li = sizeof rr_er_id - 1, ld = sizeof rr_er_des - 1,
               ls = sizeof rr_er_src - 1;
        if (!(e = entry(out, "ER", ISO_SUSP_ER_ID_OFFSET + li + ld + ls,
                        &r))) {
            return r;
        }
        e[ISO_SUSP_ER_LEN_ID_OFFSET] = (uint8_t)li;
        e[ISO_SUSP_ER_LEN_DES_OFFSET] = (uint8_t)ld;
        e[ISO_SUSP_ER_LEN_SRC_OFFSET] = (uint8_t)ls;
        e[ISO_SUSP_ER_EXT_VER_OFFSET] = 1;
        memcpy(e + ISO_SUSP_ER_ID_OFFSET, rr_er_id, li);
        memcpy(e + ISO_SUSP_ER_ID_OFFSET + li, rr_er_des, ld);
        memcpy(e + ISO_SUSP_ER_ID_OFFSET + li + ld, rr_er_src, ls);
    }
    return r;
}

/* ---- Placement ------------------------------------------------------- */

/* A run of entries [begin, end) of the entry list placed at byte POS of
 * the continuation area, followed by a CE when another chunk follows. */
struct chunk {
    size_t begin, end;
    uint64_t pos;
};
/* Entries total at most a few KiB (a PATH_MAX symlink), so a handful of
 * sectors; this bounds the chain. */
#define ISO_RR_MAX_CHUNKS 16

static size_t fit(const struct iso_buf *e, size_t from, size_t space)
{
    size_t used = 0, i = from;
    while (i < e->len) {
        size_t len = e->data[i + ISO_SUSP_LENGTH_OFFSET];
        if (used + len + ISO_SUSP_CE_LENGTH > space) {
            break;
        }
        used += len;
        i += len;
    }
    return i;
}

/* A CE entry pointing at chunk C (C[1] is the next chunk or empty). */
static int put_ce(struct iso_buf *out, const struct iso_ce_cursor *cur,
                  const struct chunk *c)
{
    int r;
    uint8_t *e = entry(out, "CE", ISO_SUSP_CE_LENGTH, &r);
    if (!e) {
        return r;
    }
    uint32_t len = (uint32_t)(c->end - c->begin);
    if (c[1].end > c[1].begin) {
        len += ISO_SUSP_CE_LENGTH;
    }
    iso_store_both32(e + ISO_SUSP_CE_BLOCK_OFFSET,
                     cur->ce_base + (uint32_t)(c->pos / ISO_SECTOR_SIZE));
    iso_store_both32(e + ISO_SUSP_CE_OFFSET_OFFSET,
                     (uint32_t)(c->pos % ISO_SECTOR_SIZE));
    iso_store_both32(e + ISO_SUSP_CE_LENGTH_OFFSET, len);
    return 0;
}

int iso_rr_pack(const struct iso_buf *entries, size_t avail,
                struct iso_ce_cursor *cur, struct iso_buf *inline_out)
{
    if (entries->len <= avail) {
        return iso_buf_append(inline_out, entries->data, entries->len);
    }
    struct chunk ch[ISO_RR_MAX_CHUNKS + 1];
    size_t inl = fit(entries, 0, avail), n = 0, from = inl;
    uint64_t pos = cur->pos;
    while (from < entries->len) {
        size_t space = ISO_SECTOR_SIZE - pos % ISO_SECTOR_SIZE;
        size_t end = entries->len - from <= space ? entries->len :
                     fit(entries, from, space);
        if (end == from) {
            pos += space;   /* nothing fits here: start a fresh sector */
            continue;
        }
        if (n == ISO_RR_MAX_CHUNKS) {
            return vimg_internal_error(EINVAL, "Rock Ridge entries too "
                                       "long");
        }
        ch[n].begin = from;
        ch[n].end = end;
        ch[n].pos = pos;
        pos += end - from;
        if (end < entries->len) {
            pos += ISO_SUSP_CE_LENGTH;
            if (pos % ISO_SECTOR_SIZE) {
                pos += ISO_SECTOR_SIZE - pos % ISO_SECTOR_SIZE;
            }
        }
        n++;
        from = end;
    }
    ch[n].begin = ch[n].end = 0;

    int r = iso_buf_append(inline_out, entries->data, inl);
    if (r == 0) {
        r = put_ce(inline_out, cur, &ch[0]);
    }
    for (size_t k = 0; r == 0 && k < n && cur->ce; k++) {
        struct iso_buf *ce = cur->ce;
        if (ce->len < ch[k].pos) {
            r = iso_buf_zeros(ce, ch[k].pos - ce->len);
        }
        if (r == 0) {
            r = iso_buf_append(ce, entries->data + ch[k].begin,
                               ch[k].end - ch[k].begin);
        }
        if (r == 0 && k + 1 < n) {
            r = put_ce(ce, cur, &ch[k + 1]);
        }
    }
    cur->pos = pos;
    return r;
}
