/* The VMDK descriptor: a small text file (or the text embedded in a sparse
 * extent) naming the disk's extents, its content IDs and its parent.
 *
 * The grammar is strict, in the spirit of the checks OpenStack's image
 * format inspector added after CVE-2022-47951 (a descriptor naming
 * /etc/passwd as an extent): every line must be blank, a comment, a
 * `key=value` header line, a `ddb.key = "value"` line or an extent line of
 * a known access mode and type, or the descriptor is refused. QEMU instead
 * skips lines it does not understand, so a typo silently drops an extent
 * and shrinks the disk. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../../common/rounding.h"
#include "vmdk.h"

struct extent_type {
    const char *name;
    enum vmdk_ext_type type;
    bool supported;
};

/* Every extent type of the VMDK 5.0 technical note; the unsupported ones
 * are recognised to be refused by name. */
static const struct extent_type extent_types[] = {
    { "SPARSE", VMDK_EXT_SPARSE, true },
    { "FLAT", VMDK_EXT_FLAT, true },
    { "VMFS", VMDK_EXT_VMFS, true },
    { "ZERO", VMDK_EXT_ZERO, true },
    { "VMFSSPARSE", VMDK_EXT_SPARSE, true },
    { "SESPARSE", VMDK_EXT_SESPARSE, true },
    { "VMFSRDM", VMDK_EXT_FLAT, false },
    { "VMFSRAW", VMDK_EXT_FLAT, false },
};

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

/* A decimal number of at most MAX. */
static bool parse_u64(const char *s, size_t n, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0 || n > 20) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9' ||
            __builtin_mul_overflow(v, 10, &v) ||
            __builtin_add_overflow(v, (uint64_t)(s[i] - '0'), &v)) {
            return false;
        }
    }
    if (v > max) {
        return false;
    }
    *out = v;
    return true;
}

/* A content ID: 1 to 8 hexadecimal digits. */
static bool parse_cid(const char *s, size_t n, uint32_t *out)
{
    uint32_t v = 0;
    if (n == 0 || n > 8) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        unsigned d;
        if (c >= '0' && c <= '9') {
            d = (unsigned)(c - '0');
        } else if (c >= 'a' && c <= 'f') {
            d = (unsigned)(c - 'a' + 10);
        } else if (c >= 'A' && c <= 'F') {
            d = (unsigned)(c - 'A' + 10);
        } else {
            return false;
        }
        v = v << 4 | d;
    }
    *out = v;
    return true;
}

/* The value of a header line: "quoted" (quotes removed) or a bare token. */
static bool header_value(const char *v, size_t n, const char **out,
                         size_t *out_len)
{
    if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
        if (memchr(v + 1, '"', n - 2)) {
            return false;
        }
        *out = v + 1;
        *out_len = n - 2;
        return true;
    }
    for (size_t i = 0; i < n; i++) {
        if (is_blank(v[i]) || v[i] == '"') {
            return false;
        }
    }
    *out = v;
    *out_len = n;
    return true;
}

/* An extent file name must stay where the policy allows it: under any
 * policy but "follow", no absolute name and no ".." component. */
static bool name_allowed(const struct vimg_image *img, const char *name)
{
    if (img->params.refs == VIMG_REFS_FOLLOW) {
        return true;
    }
    if (name[0] == '/') {
        return false;
    }
    for (const char *p = name; *p;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 2 && p[0] == '.' && p[1] == '.') {
            return false;
        }
        p += n + (slash ? 1 : 0);
    }
    return true;
}

static int bad_line(struct vimg_image *img, unsigned line, const char *why)
{
    return vimg_internal_img_error(img, EINVAL, "descriptor line %u: %s",
                                   line, why);
}

/* ACCESS SECTORS TYPE ["NAME" [OFFSET]] */
static int parse_extent(struct vimg_image *img, unsigned line, const char *p,
                        const char *end, struct vmdk_desc *d)
{
    struct vmdk_desc_extent e = { 0 };
    const char *w[3];
    size_t wn[3];

    for (int i = 0; i < 3; i++) {
        while (p < end && is_blank(*p)) {
            p++;
        }
        w[i] = p;
        while (p < end && !is_blank(*p) && *p != '"') {
            p++;
        }
        wn[i] = (size_t)(p - w[i]);
        if (wn[i] == 0) {
            return bad_line(img, line, "extent line is incomplete");
        }
    }
    if (wn[0] == 8 && !memcmp(w[0], "NOACCESS", 8)) {
        return vimg_internal_img_error(img, ENOTSUP, "descriptor line %u: "
                                       "NOACCESS extents are not supported",
                                       line);
    }
    e.rdonly = wn[0] == 6 && !memcmp(w[0], "RDONLY", 6);
    if (!e.rdonly && !(wn[0] == 2 && !memcmp(w[0], "RW", 2))) {
        return bad_line(img, line, "unknown access mode");
    }
    if (!parse_u64(w[1], wn[1], (uint64_t)INT64_MAX / VMDK_SECTOR,
                   &e.sectors) || e.sectors == 0) {
        return bad_line(img, line, "invalid extent size");
    }
    const struct extent_type *t = NULL;
    for (size_t i = 0; i < sizeof extent_types / sizeof extent_types[0];
         i++) {
        if (strlen(extent_types[i].name) == wn[2] &&
            !memcmp(extent_types[i].name, w[2], wn[2])) {
            t = &extent_types[i];
        }
    }
    if (!t) {
        return vimg_internal_img_error(img, EINVAL, "descriptor line %u: "
                                       "unknown extent type '%.*s'", line,
                                       (int)MIN(wn[2], (size_t)32), w[2]);
    }
    if (!t->supported) {
        return vimg_internal_img_error(img, ENOTSUP, "descriptor line %u: "
                                       "%s extents are not supported", line,
                                       t->name);
    }
    e.type = t->type;
    e.type_name = t->name;
    while (p < end && is_blank(*p)) {
        p++;
    }
    if (e.type == VMDK_EXT_ZERO) {
        if (p != end) {
            return bad_line(img, line, "a ZERO extent has no file");
        }
    } else {
        const char *q = p < end && *p == '"' ? memchr(p + 1, '"',
                                                      (size_t)(end - p - 1))
                                             : NULL;
        if (!q || q == p + 1) {
            return bad_line(img, line, "extent file name missing");
        }
        if (!(e.name = strndup(p + 1, (size_t)(q - p - 1)))) {
            return vimg_internal_error(ENOMEM, "out of memory");
        }
        if (!name_allowed(img, e.name)) {
            int r = vimg_internal_img_error(img, EPERM, "descriptor line "
                                            "%u: extent file '%s' is "
                                            "absolute or leaves the image's "
                                            "folder, which the open policy "
                                            "forbids", line, e.name);
            free(e.name);
            return r;
        }
        for (p = q + 1; p < end && is_blank(*p); p++) {
        }
        const char *num = p;
        while (p < end && !is_blank(*p)) {
            p++;
        }
        bool has_offset = p > num;
        while (p < end && is_blank(*p)) {
            p++;
        }
        bool ok = p == end;
        if (e.type == VMDK_EXT_FLAT) {
            ok = ok && has_offset &&
                 parse_u64(num, (size_t)(p - num),
                           (uint64_t)INT64_MAX / VMDK_SECTOR, &e.offset);
        } else {
            ok = ok && !has_offset;
        }
        if (!ok) {
            free(e.name);
            return bad_line(img, line, e.type == VMDK_EXT_FLAT
                                           ? "a FLAT extent needs one offset"
                                           : "unexpected text after the "
                                             "extent file name");
        }
    }
    if (d->n_extents == VMDK_MAX_EXTENTS) {
        free(e.name);
        return vimg_internal_img_error(img, EFBIG, "descriptor has more "
                                       "than %d extents", VMDK_MAX_EXTENTS);
    }
    struct vmdk_desc_extent *x = realloc(d->extents, (d->n_extents + 1) *
                                                         sizeof *x);
    if (!x) {
        free(e.name);
        return vimg_internal_error(ENOMEM, "out of memory");
    }
    d->extents = x;
    d->extents[d->n_extents++] = e;
    return 0;
}

/* key=value (no blank before '='), or ddb.key = "value". */
static int parse_header(struct vimg_image *img, unsigned line, const char *p,
                        const char *end, struct vmdk_desc *d,
                        unsigned *seen)
{
    const char *key = p;
    while (p < end && is_key_char(*p)) {
        p++;
    }
    size_t kn = (size_t)(p - key);
    bool ddb = kn > 4 && !memcmp(key, "ddb.", 4);
    if (ddb) {
        while (p < end && is_blank(*p)) {
            p++;
        }
    }
    if (kn == 0 || p == end || *p != '=') {
        return bad_line(img, line, "not a header, ddb, extent or comment "
                                   "line");
    }
    p++;
    if (ddb) {
        while (p < end && is_blank(*p)) {
            p++;
        }
    }
    const char *v;
    size_t vn;
    if (!header_value(p, (size_t)(end - p), &v, &vn) ||
        (ddb && (p == end || *p != '"'))) {
        return bad_line(img, line, "malformed value");
    }
    if (ddb) {
        return 0; /* the disk database holds nothing vimg needs */
    }
    static const char *const known[] = { "version", "CID", "parentCID",
                                         "createType",
                                         "parentFileNameHint" };
    unsigned k = 0;
    while (k < 5 && !(strlen(known[k]) == kn && !memcmp(known[k], key, kn))) {
        k++;
    }
    if (k == 5) {
        return 0; /* encoding, isNativeSnapshot, ...: not needed */
    }
    if (*seen & (1u << k)) {
        return bad_line(img, line, "header key given twice");
    }
    *seen |= 1u << k;
    uint64_t n;
    switch (k) {
    case 0:
        if (!parse_u64(v, vn, 3, &n) || n == 0) {
            return bad_line(img, line, "unsupported descriptor version");
        }
        d->version = (unsigned)n;
        return 0;
    case 1:
    case 2:
        if (!parse_cid(v, vn, k == 1 ? &d->cid : &d->parent_cid)) {
            return bad_line(img, line, "invalid content ID");
        }
        return 0;
    case 3:
        if (vn == 0 || vn > 64) {
            return bad_line(img, line, "invalid createType");
        }
        d->create_type = strndup(v, vn);
        break;
    default:
        if (vn == 0) {
            return bad_line(img, line, "empty parentFileNameHint");
        }
        d->parent_hint = strndup(v, vn);
        break;
    }
    if ((k == 3 && !d->create_type) || (k == 4 && !d->parent_hint)) {
        return vimg_internal_error(ENOMEM, "out of memory");
    }
    return 0;
}

void vmdk_desc_free(struct vmdk_desc *d)
{
    for (size_t i = 0; i < d->n_extents; i++) {
        free(d->extents[i].name);
    }
    free(d->extents);
    free(d->create_type);
    free(d->parent_hint);
    memset(d, 0, sizeof *d);
}

int vmdk_desc_parse(struct vimg_image *img, const char *text, size_t len,
                    struct vmdk_desc *out)
{
    struct vmdk_desc d = { 0 };
    unsigned seen = 0, line = 0;
    int r = 0;

    memset(out, 0, sizeof *out);
    if (len > VMDK_MAX_DESC_BYTES) {
        return vimg_internal_img_error(img, EFBIG, "descriptor of %zu bytes "
                                       "is larger than %u", len,
                                       VMDK_MAX_DESC_BYTES);
    }
    /* The text ends at the first NUL. What follows is not looked at:
     * QEMU leaves the tail of the old text there when a CID update
     * shortens it. */
    const char *nul = memchr(text, '\0', len);
    if (nul) {
        len = (size_t)(nul - text);
    }
    for (const char *p = text; r == 0 && p < text + len;) {
        const char *eol = memchr(p, '\n', (size_t)(text + len - p));
        const char *next = eol ? eol + 1 : text + len;
        const char *end = eol ? eol : text + len;
        line++;
        if (end > p && end[-1] == '\r') {
            end--;
        }
        for (const char *c = p; c < end; c++) {
            if ((unsigned char)*c < 0x20 && *c != '\t') {
                r = bad_line(img, line, "control character");
                break;
            }
        }
        while (p < end && is_blank(*p)) {
            p++;
        }
        while (end > p && is_blank(end[-1])) {
            end--;
        }
        if (r < 0 || p == end || *p == '#') {
            p = next;
            continue;
        }
        if ((end - p > 3 && !memcmp(p, "RW ", 3)) ||
            (end - p > 7 && !memcmp(p, "RDONLY ", 7)) ||
            (end - p > 9 && !memcmp(p, "NOACCESS ", 9))) {
            r = parse_extent(img, line, p, end, &d);
        } else {
            r = parse_header(img, line, p, end, &d, &seen);
        }
        p = next;
    }
    if (r == 0 && (seen & 0xf) != 0xf) {
        r = vimg_internal_img_error(img, EINVAL, "descriptor lacks %s",
                                    !(seen & 1) ? "a version"
                                    : !(seen & 2) ? "a CID"
                                    : !(seen & 4) ? "a parentCID"
                                                  : "a createType");
    }
    if (r == 0 && d.n_extents == 0) {
        r = vimg_internal_img_error(img, EINVAL, "descriptor names no "
                                    "extents");
    }
    if (r < 0) {
        vmdk_desc_free(&d);
        return r;
    }
    *out = d;
    return 0;
}

int vmdk_desc_set_value(char **text, size_t *len, const char *key,
                        const char *value)
{
    size_t kn = strlen(key), vn = strlen(value);
    char *t = *text;

    for (size_t i = 0; i < *len;) {
        char *eol = memchr(t + i, '\n', *len - i);
        size_t line_end = eol ? (size_t)(eol - t) : *len;
        size_t v0 = i + kn;
        if (line_end - i > kn && !memcmp(t + i, key, kn) &&
            !is_key_char(t[v0])) {
            while (v0 < line_end && is_blank(t[v0])) {
                v0++;
            }
            if (v0 < line_end && t[v0] == '=') {
                for (v0++; v0 < line_end && is_blank(t[v0]); v0++) {
                }
                size_t v1 = line_end;
                if (v1 > v0 && t[v1 - 1] == '\r') {
                    v1--;
                }
                size_t n = *len - (v1 - v0) + vn;
                char *nt = malloc(n + 1);
                if (!nt) {
                    return -ENOMEM;
                }
                memcpy(nt, t, v0);
                memcpy(nt + v0, value, vn);
                memcpy(nt + v0 + vn, t + v1, *len - v1);
                nt[n] = '\0';
                free(t);
                *text = nt;
                *len = n;
                return 0;
            }
        }
        i = line_end + 1;
    }
    return -ENOENT;
}
