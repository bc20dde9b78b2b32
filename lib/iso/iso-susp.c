/* System Use Sharing Protocol (IEEE P1281) areas and the Rock Ridge
 * (IEEE P1282) entries in them: names (NM), POSIX attributes (PX), times
 * (TF), symlinks (SL), relocated directories (CL, RE), continuation areas
 * (CE). Also Joliet's UCS-2 names. Every entry length is checked against
 * its area before a field is read; continuation chains are capped. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/checked-overflow.h"
#include "iso-read.h"

typedef int (*entry_fn)(void *ctx, const uint8_t *e, size_t len);

/* Call FN for every entry of the area SU (LEN bytes) and the continuation
 * areas it chains to. WHAT names the record for messages. */
static int susp_foreach(struct vimg_iso *iso, const uint8_t *su, size_t len,
                        const char *what, entry_fn fn, void *ctx)
{
    uint8_t *buf = NULL;
    size_t total = 0;
    int areas = 0, r = 0;

    for (;;) {
        uint64_t ce_lba = 0, ce_off = 0, ce_len = 0;
        bool ce = false;
        size_t pos = 0;
        while (pos + ISO_SUSP_HEADER_SIZE <= len) {
            const uint8_t *e = su + pos;
            size_t elen = e[ISO_SUSP_LENGTH_OFFSET];
            if (e[0] == 0 && e[1] == 0) {
                break; /* zero padding at the end of the area */
            }
            if (elen < ISO_SUSP_HEADER_SIZE || elen > len - pos) {
                r = iso_error(iso, EINVAL, "%s: System Use entry \"%c%c\" "
                              "of %zu bytes overruns its area", what,
                              e[0] >= 32 && e[0] < 127 ? e[0] : '?',
                              e[1] >= 32 && e[1] < 127 ? e[1] : '?', elen);
                goto out;
            }
            if (!memcmp(e, "ST", 2)) {
                break;
            }
            if (!memcmp(e, "CE", 2)) {
                if (elen < ISO_SUSP_CE_LENGTH) {
                    r = iso_error(iso, EINVAL, "%s: CE entry too short",
                                  what);
                    goto out;
                }
                ce = true;
                ce_lba = iso_load_both32(e + ISO_SUSP_CE_BLOCK_OFFSET);
                ce_off = iso_load_both32(e + ISO_SUSP_CE_OFFSET_OFFSET);
                ce_len = iso_load_both32(e + ISO_SUSP_CE_LENGTH_OFFSET);
            } else if ((r = fn(ctx, e, elen)) < 0) {
                goto out;
            }
            pos += elen;
        }
        if (!ce) {
            break;
        }
        /* A continuation area lies inside one sector (as Linux requires);
         * counting areas and bytes stops chains that loop. */
        struct iso_extent x;
        if (++areas > ISO_MAX_CE_AREAS ||
            (total += ce_len) > ISO_MAX_SUSP_BYTES) {
            r = iso_error(iso, EINVAL, "%s: System Use continuation chain "
                          "longer than %d areas or %u bytes (loop?)", what,
                          ISO_MAX_CE_AREAS, ISO_MAX_SUSP_BYTES);
            goto out;
        }
        if (ce_off + ce_len > ISO_SECTOR_SIZE) {
            r = iso_error(iso, EINVAL, "%s: CE area (offset %" PRIu64
                          ", %" PRIu64 " bytes) crosses its sector", what,
                          ce_off, ce_len);
            goto out;
        }
        if ((r = iso_check_extent(iso, ce_lba, ISO_SECTOR_SIZE, what,
                                  &x)) < 0) {
            goto out;
        }
        if (!buf && !(buf = malloc(ISO_SECTOR_SIZE))) {
            r = iso_error(iso, ENOMEM, "out of memory");
            goto out;
        }
        if (ce_len && (r = iso_read_at(iso, buf, ce_len,
                                       x.offset + ce_off)) < 0) {
            goto out;
        }
        su = buf;
        len = ce_len;
    }
out:
    free(buf);
    return r;
}

/* ---- Rock Ridge ------------------------------------------------------- */

struct apply_ctx {
    struct vimg_iso *iso;
    const char *what;
    struct iso_node *n;
    bool *relocated;
    uint64_t *child_lba;
    bool nm_seen, nm_done;   /* the first NM replaces the ISO name */
    size_t nm_len;
    bool sl_done, sl_sep;    /* symlink complete / '/' before the next */
    size_t sl_len;
};

static int append(struct apply_ctx *c, char *buf, size_t *len, size_t cap,
                  const void *data, size_t n, const char *kind)
{
    if (memchr(data, '\0', n)) {
        return iso_error(c->iso, EINVAL, "%s: Rock Ridge %s contains a "
                         "NUL byte", c->what, kind);
    }
    if (*len + n > cap) {
        return iso_error(c->iso, EINVAL, "%s: Rock Ridge %s longer than "
                         "%zu bytes", c->what, kind, cap);
    }
    memcpy(buf + *len, data, n);
    *len += n;
    buf[*len] = '\0';
    return 0;
}

static int apply_sl(struct apply_ctx *c, const uint8_t *e, size_t len)
{
    struct iso_node *n = c->n;
    size_t pos = ISO_RR_SL_COMPONENTS_OFFSET;
    int r;

    if (c->sl_done) {
        return 0;
    }
    if (len < ISO_RR_SL_COMPONENTS_OFFSET) {
        return iso_error(c->iso, EINVAL, "%s: SL entry too short", c->what);
    }
    n->has_target = true;
    while (pos + ISO_RR_SL_COMP_CONTENT_OFFSET <= len) {
        unsigned flags = e[pos + ISO_RR_SL_COMP_FLAGS_OFFSET];
        size_t clen = e[pos + ISO_RR_SL_COMP_LENGTH_OFFSET];
        const uint8_t *content = e + pos + ISO_RR_SL_COMP_CONTENT_OFFSET;
        const char *text = NULL;
        if (clen > len - pos - ISO_RR_SL_COMP_CONTENT_OFFSET) {
            return iso_error(c->iso, EINVAL, "%s: SL component overruns "
                             "its entry", c->what);
        }
        if (c->sl_sep && (r = append(c, n->target, &c->sl_len,
                                     ISO_MAX_TARGET, "/", 1,
                                     "symlink target")) < 0) {
            return r;
        }
        c->sl_sep = !(flags & ISO_RR_SL_CONTINUE);
        if (flags & ISO_RR_SL_CURRENT) {
            text = ".";
        } else if (flags & ISO_RR_SL_PARENT) {
            text = "..";
        } else if (flags & ISO_RR_SL_ROOT) {
            text = "/";
            c->sl_sep = false;
        }
        if ((r = append(c, n->target, &c->sl_len, ISO_MAX_TARGET,
                        text ? (const void *)text : content,
                        text ? strlen(text) : clen,
                        "symlink target")) < 0) {
            return r;
        }
        pos += ISO_RR_SL_COMP_CONTENT_OFFSET + clen;
    }
    if (!(e[ISO_RR_SL_FLAGS_OFFSET] & ISO_RR_SL_CONTINUE)) {
        c->sl_done = true;
    }
    return 0;
}

static void apply_tf(struct apply_ctx *c, const uint8_t *e, size_t len)
{
    unsigned flags = e[ISO_RR_TF_FLAGS_OFFSET];
    size_t step = flags & ISO_RR_TF_LONG_FORM ? ISO_VOL_DATE_SIZE
                                              : ISO_DIR_DATE_SIZE;
    size_t pos = ISO_RR_TF_STAMPS_OFFSET;

    for (unsigned bit = ISO_RR_TF_CREATION; bit <= ISO_RR_TF_EFFECTIVE;
         bit <<= 1) {
        if (!(flags & bit)) {
            continue;
        }
        if (pos + step > len) {
            return; /* a short TF only loses the stamps it lacks */
        }
        int64_t t;
        int off;
        bool ok = step == ISO_VOL_DATE_SIZE ? iso_vol_date(e + pos, &t, &off)
                                            : iso_dir_date(e + pos, &t);
        if (ok && bit == ISO_RR_TF_MODIFY) {
            c->n->st.mtime = t;
        } else if (ok && bit == ISO_RR_TF_ACCESS) {
            c->n->st.atime = t;
        }
        pos += step;
    }
}

static int apply_entry(void *ctx, const uint8_t *e, size_t len)
{
    struct apply_ctx *c = ctx;
    struct iso_node *n = c->n;
    int r;

    if (!memcmp(e, "PX", 2)) {
        if (len < ISO_RR_PX_LENGTH_OLD) {
            return iso_error(c->iso, EINVAL, "%s: PX entry too short",
                             c->what);
        }
        n->st.mode = iso_load_both32(e + ISO_RR_PX_MODE_OFFSET);
        n->st.nlink = iso_load_both32(e + ISO_RR_PX_NLINK_OFFSET);
        n->st.uid = iso_load_both32(e + ISO_RR_PX_UID_OFFSET);
        n->st.gid = iso_load_both32(e + ISO_RR_PX_GID_OFFSET);
        n->st.rock_ridge = true;
        if (len >= ISO_RR_PX_LENGTH) {
            n->serial = iso_load_both32(e + ISO_RR_PX_INO_OFFSET);
            n->has_serial = true;
        }
    } else if (!memcmp(e, "NM", 2)) {
        if (len < ISO_RR_NM_NAME_OFFSET) {
            return iso_error(c->iso, EINVAL, "%s: NM entry too short",
                             c->what);
        }
        unsigned flags = e[ISO_RR_NM_FLAGS_OFFSET];
        if (c->nm_done ||
            (flags & (ISO_RR_NM_CURRENT | ISO_RR_NM_PARENT))) {
            return 0;
        }
        if (!c->nm_seen) {
            c->nm_seen = true;
            c->nm_len = 0;
            n->name[0] = '\0';
        }
        if ((r = append(c, n->name, &c->nm_len, ISO_MAX_NAME,
                        e + ISO_RR_NM_NAME_OFFSET,
                        len - ISO_RR_NM_NAME_OFFSET, "name")) < 0) {
            return r;
        }
        c->nm_done = !(flags & ISO_RR_NM_CONTINUE);
        n->st.rock_ridge = true;
    } else if (!memcmp(e, "SL", 2)) {
        n->st.rock_ridge = true;
        return apply_sl(c, e, len);
    } else if (!memcmp(e, "TF", 2)) {
        if (len > ISO_RR_TF_FLAGS_OFFSET) {
            apply_tf(c, e, len);
        }
        n->st.rock_ridge = true;
    } else if (!memcmp(e, "CL", 2)) {
        if (len < ISO_RR_CL_LENGTH) {
            return iso_error(c->iso, EINVAL, "%s: CL entry too short",
                             c->what);
        }
        *c->child_lba = iso_load_both32(e + ISO_RR_CL_LOCATION_OFFSET);
        if (*c->child_lba == 0) {
            return iso_error(c->iso, EINVAL, "%s: CL entry points at LBA 0",
                             c->what);
        }
    } else if (!memcmp(e, "RE", 2)) {
        *c->relocated = true;
    }
    return 0;
}

int iso_susp_apply(struct vimg_iso *iso, const uint8_t *su, size_t len,
                   const char *what, struct iso_node *n, bool *relocated,
                   uint64_t *child_lba)
{
    struct apply_ctx c = {
        .iso = iso, .what = what, .n = n, .relocated = relocated,
        .child_lba = child_lba,
    };
    int r = susp_foreach(iso, su, len, what, apply_entry, &c);
    if (r == 0 && n->has_target && !c.sl_len) {
        return iso_error(iso, EINVAL, "%s: empty symlink target", what);
    }
    return r;
}

static int detect_entry(void *ctx, const uint8_t *e, size_t len)
{
    bool *rr = ctx;
    static const char *const ids[] = { ISO_RRIP_ER_ID_1991A,
                                       ISO_RRIP_ER_ID_IEEE_1_09,
                                       ISO_RRIP_ER_ID_IEEE_1_12 };

    if (!memcmp(e, "RR", 2) || !memcmp(e, "PX", 2) || !memcmp(e, "NM", 2)) {
        *rr = true;
    } else if (!memcmp(e, "ER", 2) && len > ISO_SUSP_ER_ID_OFFSET) {
        size_t id_len = e[ISO_SUSP_ER_LEN_ID_OFFSET];
        if (id_len > len - ISO_SUSP_ER_ID_OFFSET) {
            return 0;
        }
        for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
            if (id_len == strlen(ids[i]) &&
                !memcmp(e + ISO_SUSP_ER_ID_OFFSET, ids[i], id_len)) {
                *rr = true;
            }
        }
    }
    return 0;
}

int iso_susp_detect(struct vimg_iso *iso, const uint8_t *su, size_t len)
{
    bool rr = false;
    int r;

    if (len < ISO_SUSP_SP_LENGTH || memcmp(su, "SP", 2) ||
        su[ISO_SUSP_LENGTH_OFFSET] < ISO_SUSP_SP_LENGTH ||
        su[ISO_SUSP_SP_CHECK_OFFSET] != ISO_SUSP_SP_CHECK0 ||
        su[ISO_SUSP_SP_CHECK_OFFSET + 1] != ISO_SUSP_SP_CHECK1) {
        return 0; /* no SUSP: plain ISO 9660 */
    }
    iso->susp_skip = su[ISO_SUSP_SP_LEN_SKP_OFFSET];
    if ((r = susp_foreach(iso, su, len, "root directory", detect_entry,
                          &rr)) < 0) {
        return r;
    }
    iso->rock_ridge = rr;
    return 0;
}

/* ---- Joliet ----------------------------------------------------------- */

int iso_joliet_name(const uint8_t *in, size_t len, char *out, size_t outlen)
{
    size_t o = 0;

    if (len % 2) {
        return -EINVAL;
    }
    for (size_t i = 0; i < len; i += 2) {
        uint32_t cp = load_be16(in + i);
        if (cp >= 0xD800 && cp < 0xDC00 && i + 3 < len &&
            load_be16(in + i + 2) >= 0xDC00 &&
            load_be16(in + i + 2) < 0xE000) {
            cp = 0x10000 + ((cp - 0xD800) << 10) +
                 (load_be16(in + i + 2) - 0xDC00);
            i += 2;
        } else if (cp >= 0xD800 && cp < 0xE000) {
            cp = 0xFFFD; /* an unpaired surrogate */
        }
        if (cp == 0 || o + 5 > outlen) {
            return -EINVAL;
        }
        if (cp < 0x80) {
            out[o++] = (char)cp;
        } else if (cp < 0x800) {
            out[o++] = (char)(0xC0 | cp >> 6);
            out[o++] = (char)(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            out[o++] = (char)(0xE0 | cp >> 12);
            out[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
            out[o++] = (char)(0x80 | (cp & 0x3F));
        } else {
            out[o++] = (char)(0xF0 | cp >> 18);
            out[o++] = (char)(0x80 | ((cp >> 12) & 0x3F));
            out[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
            out[o++] = (char)(0x80 | (cp & 0x3F));
        }
    }
    out[o] = '\0';
    /* Joliet file names carry the ISO 9660 ";1" version too. */
    char *semi = strrchr(out, ';');
    if (semi && semi[1] && strspn(semi + 1, "0123456789") ==
        strlen(semi + 1)) {
        *semi = '\0';
    }
    return 0;
}
