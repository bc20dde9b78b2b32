/* Names in the two directory trees. ISO 9660 identifiers are level 2 style
 * d-characters (A-Z 0-9 _), at most 30 characters of name and extension
 * plus ";1" for files and 31 for folders, which every reader accepts;
 * Rock Ridge carries the real name. Joliet names are UCS-2 big-endian, at
 * most 64 characters. Clashes after mapping get a decimal suffix in the
 * order of the host names, so the result does not depend on readdir. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "iso-write.h"

#define ISO_NAME_MAX 30      /* file name + extension */
#define ISO_EXT_MAX 8        /* so that the name keeps most of the room */
#define ISO_DIR_NAME_MAX 31
#define JOLIET_EXT_MAX 16
/* Host names are at most NAME_MAX (255) bytes, so at most 255 units. */
#define JOLIET_MAX_UNITS 256

/* ---- A set of byte strings, to find clashes in one folder ------------ */

struct name_set {
    struct { const void *key; size_t len; } *slot;
    size_t cap;
};

static uint64_t hash(const void *key, size_t len)
{
    const uint8_t *p = key;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) {
        h = (h ^ p[i]) * 1099511628211ULL;
    }
    return h;
}

static int set_init(struct name_set *s, size_t n)
{
    s->cap = 16;
    while (s->cap < n * 2 + 1) {
        s->cap *= 2;
    }
    s->slot = calloc(s->cap, sizeof *s->slot);
    return s->slot ? 0 : vimg_internal_error(ENOMEM, "out of memory");
}

/* True (and nothing added) when KEY is present; KEY must outlive S. */
static bool set_add(struct name_set *s, const void *key, size_t len)
{
    size_t i = (size_t)hash(key, len) & (s->cap - 1);
    while (s->slot[i].key) {
        if (s->slot[i].len == len && !memcmp(s->slot[i].key, key, len)) {
            return true;
        }
        i = (i + 1) & (s->cap - 1);
    }
    s->slot[i].key = key;
    s->slot[i].len = len;
    return false;
}

/* ---- ISO 9660 ---------------------------------------------------------- */

static char d_char(unsigned char c)
{
    if (c >= 'a' && c <= 'z') {
        return (char)(c - 'a' + 'A');
    }
    if ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_') {
        return (char)c;
    }
    return '_';
}

/* The clash key is the identifier without ";1" and without a bare
 * trailing dot: readers that drop those would otherwise see two equal
 * names (a folder "A" and a file "A."). */
static size_t iso_key_len(const struct iso_node *n)
{
    size_t len = n->iso_id_len;
    if (!S_ISDIR(n->mode)) {
        len -= 2;
        if (n->iso_id[len - 1] == '.') {
            len--;
        }
    }
    return len;
}

/* Build the identifier from BASE and EXT with the decimal SUFFIX (0 =
 * none) replacing the end of the base. */
static void iso_compose(struct iso_node *n, const char *base, size_t blen,
                        const char *ext, size_t elen, unsigned suffix)
{
    bool dir = S_ISDIR(n->mode);
    size_t room = dir ? ISO_DIR_NAME_MAX : ISO_NAME_MAX - elen;
    char num[16] = "";
    size_t nlen = 0;
    if (suffix) {
        nlen = (size_t)snprintf(num, sizeof num, "%u", suffix);
    }
    if (blen > room - nlen) {
        blen = room - nlen;
    }
    size_t len = 0;
    memcpy(n->iso_id, base, blen);
    len += blen;
    memcpy(n->iso_id + len, num, nlen);
    len += nlen;
    if (!dir) {
        n->iso_id[len++] = '.';
        memcpy(n->iso_id + len, ext, elen);
        len += elen;
        n->iso_id[len++] = ';';
        n->iso_id[len++] = '1';
    }
    n->iso_id[len] = '\0';
    n->iso_id_len = (uint8_t)len;
}

static void iso_split(const struct iso_node *n, char *base, size_t *blen,
                      char *ext, size_t *elen)
{
    const char *name = n->name;
    const char *dot = S_ISDIR(n->mode) ? NULL : strrchr(name, '.');
    size_t nb = dot && dot != name ? (size_t)(dot - name) : strlen(name);
    *blen = 0;
    for (size_t i = 0; i < nb && *blen < ISO_DIR_NAME_MAX; i++) {
        base[(*blen)++] = d_char((unsigned char)name[i]);
    }
    if (*blen == 0) {
        base[(*blen)++] = '_';
    }
    *elen = 0;
    if (dot && dot != name) {
        for (const char *c = dot + 1; *c && *elen < ISO_EXT_MAX; c++) {
            ext[(*elen)++] = d_char((unsigned char)*c);
        }
    }
}

static int iso_name_folder(struct iso_node *dir)
{
    struct name_set set;
    int r = set_init(&set, dir->n_kids);
    if (r < 0) {
        return r;
    }
    for (size_t i = 0; i < dir->n_kids; i++) {
        struct iso_node *n = dir->kids[i];
        char base[ISO_DIR_NAME_MAX], ext[ISO_EXT_MAX];
        size_t blen, elen;
        if (!n->in_iso) {
            continue;
        }
        iso_split(n, base, &blen, ext, &elen);
        unsigned suffix = 0;
        do {
            iso_compose(n, base, blen, ext, elen, suffix++);
        } while (set_add(&set, n->iso_id, iso_key_len(n)));
    }
    free(set.slot);
    return 0;
}

/* ECMA-119 9.3: by name, then extension, each padded with spaces; since
 * every d-character sorts after a space, a prefix sorts first. Nodes
 * outside the ISO tree go last. */
static int iso_order(const void *a, const void *b)
{
    const struct iso_node *x = *(struct iso_node *const *)a;
    const struct iso_node *y = *(struct iso_node *const *)b;
    if (x->in_iso != y->in_iso) {
        return x->in_iso ? -1 : 1;
    }
    size_t xn = strcspn(x->iso_id, ".;"), yn = strcspn(y->iso_id, ".;");
    int c = memcmp(x->iso_id, y->iso_id, xn < yn ? xn : yn);
    if (c || xn != yn) {
        return c ? c : xn < yn ? -1 : 1;
    }
    const char *xe = x->iso_id + xn + (x->iso_id[xn] == '.');
    const char *ye = y->iso_id + yn + (y->iso_id[yn] == '.');
    return strcmp(xe, ye);
}

/* ---- Joliet ------------------------------------------------------------ */

/* One UCS-2 character from UTF-8 at *P. A character outside the Basic
 * Multilingual Plane becomes one '_'; a byte that is not valid UTF-8
 * becomes '_' on its own. */
static uint16_t ucs2_next(const unsigned char **p)
{
    const unsigned char *s = *p;
    uint32_t c = s[0];
    int more = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 :
               (c & 0xF0) == 0xE0 ? 2 : (c & 0xF8) == 0xF0 ? 3 : -1;
    if (more < 0) {
        (*p)++;
        return '_';
    }
    c &= more == 0 ? 0x7F : more == 1 ? 0x1F : more == 2 ? 0x0F : 0x07;
    for (int i = 1; i <= more; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            (*p)++;
            return '_';
        }
        c = c << 6 | (s[i] & 0x3F);
    }
    *p += more + 1;
    if ((more == 1 && c < 0x80) || (more == 2 && c < 0x800) || more == 3 ||
        (c >= 0xD800 && c <= 0xDFFF)) {
        return '_';
    }
    /* Joliet forbids controls and * / : ; ? \ in names. */
    if (c < 0x20 || c == '*' || c == '/' || c == ':' || c == ';' ||
        c == '?' || c == '\\') {
        return '_';
    }
    return (uint16_t)c;
}

static int joliet_name_folder(struct iso_node *dir)
{
    struct name_set set;
    int r = set_init(&set, dir->n_jkids);
    if (r < 0) {
        return r;
    }
    for (size_t i = 0; i < dir->n_jkids; i++) {
        struct iso_node *n = dir->jkids[i];
        uint16_t full[JOLIET_MAX_UNITS];
        size_t len = 0, ext = 0;
        const unsigned char *p = (const unsigned char *)n->name;
        while (*p && len < JOLIET_MAX_UNITS) {
            full[len++] = ucs2_next(&p);
        }
        /* Keep a short extension when the name must be cut. */
        for (size_t k = len; k > 1 && !S_ISDIR(n->mode); k--) {
            if (full[k - 1] == '.') {
                ext = len - (k - 1);
                break;
            }
        }
        if (ext > JOLIET_EXT_MAX) {
            ext = 0;
        }
        unsigned suffix = 0;
        do {
            char num[16] = "";
            size_t nlen = suffix ? (size_t)snprintf(num, sizeof num, "%u",
                                                    suffix) : 0;
            size_t base = len - ext;
            size_t room = ISO_JOLIET_MAX_NAME_CHARS - ext - nlen;
            if (base > room) {
                base = room;
            }
            size_t o = 0;
            for (size_t k = 0; k < base; k++) {
                n->jname[o++] = full[k];
            }
            for (size_t k = 0; k < nlen; k++) {
                n->jname[o++] = (uint16_t)num[k];
            }
            for (size_t k = len - ext; k < len; k++) {
                n->jname[o++] = full[k];
            }
            n->jname_len = (uint8_t)o;
            suffix++;
        } while (set_add(&set, n->jname, n->jname_len * sizeof(uint16_t)));
    }
    free(set.slot);
    return 0;
}

static int joliet_order(const void *a, const void *b)
{
    const struct iso_node *x = *(struct iso_node *const *)a;
    const struct iso_node *y = *(struct iso_node *const *)b;
    size_t n = x->jname_len < y->jname_len ? x->jname_len : y->jname_len;
    for (size_t i = 0; i < n; i++) {
        if (x->jname[i] != y->jname[i]) {
            return x->jname[i] < y->jname[i] ? -1 : 1;
        }
    }
    return x->jname_len < y->jname_len ? -1 : x->jname_len > y->jname_len;
}

/* ---- Both trees -------------------------------------------------------- */

static int by_host_name(const void *a, const void *b)
{
    const struct iso_node *x = *(struct iso_node *const *)a;
    const struct iso_node *y = *(struct iso_node *const *)b;
    return strcmp(x->name, y->name);
}

static int name_folder(const struct iso_writer *w, struct iso_node *dir)
{
    bool rr = w->p->rock_ridge, joliet = w->p->joliet;
    size_t nj = 0;
    dir->nlink = 2;
    for (size_t i = 0; i < dir->n_kids; i++) {
        struct iso_node *n = dir->kids[i];
        bool data = S_ISREG(n->mode) || S_ISDIR(n->mode);
        n->in_iso = data || rr;
        n->in_joliet = data && joliet;
        nj += n->in_joliet;
        if (S_ISDIR(n->mode)) {
            dir->nlink++;
        }
    }
    /* Clashes are resolved in host-name order (the boot catalog may have
     * been added at the end). */
    if (dir->n_kids > 1) {
        qsort(dir->kids, dir->n_kids, sizeof *dir->kids, by_host_name);
    }
    int r = iso_name_folder(dir);
    if (r < 0) {
        return r;
    }
    if (dir->n_kids > 1) {
        qsort(dir->kids, dir->n_kids, sizeof *dir->kids, iso_order);
    }
    if (nj) {
        dir->jkids = malloc(nj * sizeof *dir->jkids);
        if (!dir->jkids) {
            return vimg_internal_error(ENOMEM, "out of memory");
        }
        /* Joliet clashes are also resolved in host-name order. */
        for (size_t i = 0; i < dir->n_kids; i++) {
            if (dir->kids[i]->in_joliet) {
                dir->jkids[dir->n_jkids++] = dir->kids[i];
            }
        }
        if (nj > 1) {
            qsort(dir->jkids, nj, sizeof *dir->jkids, by_host_name);
        }
        r = joliet_name_folder(dir);
        if (r < 0) {
            return r;
        }
        if (nj > 1) {
            qsort(dir->jkids, nj, sizeof *dir->jkids, joliet_order);
        }
    }
    for (size_t i = 0; i < dir->n_kids; i++) {
        if (S_ISDIR(dir->kids[i]->mode)) {
            r = name_folder(w, dir->kids[i]);
            if (r < 0) {
                return r;
            }
        }
    }
    return 0;
}

int iso_names_assign(struct iso_writer *w)
{
    w->root->in_iso = true;
    w->root->in_joliet = w->p->joliet;
    return name_folder(w, w->root);
}
