/* OVA archives (DMTF OVF 2.1, DSP0243, section 5.3 "Distribution as a
 * single file"): a POSIX ustar tar whose first member is the OVF
 * descriptor, followed by the manifest, certificate and disk files. The
 * archive opens, read-only, as its first disk: the member is read in place
 * through a window on the archive, as a VMDK image (what OVAs carry).
 * Nothing is extracted and nothing else is opened: the disk's own
 * references are never followed. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../../../common/checked-overflow.h"
#include "../../../common/iszero.h"
#include "../../../common/rounding.h"
#include "../../internal.h"

#define TAR_BLOCK 512

/* A ustar header, by byte offset (POSIX.1-2001 "ustar Interchange
 * Format"): numbers are octal text, or base-256 (GNU) when the first
 * byte has its top bit set. */
#define TAR_NAME       0   /* 100 bytes */
#define TAR_SIZE     124   /* 12 bytes */
#define TAR_CHKSUM   148   /* 8 bytes */
#define TAR_TYPEFLAG 156
#define TAR_MAGIC    257   /* "ustar\0" + "00", or GNU "ustar  \0" */
#define TAR_PREFIX   345   /* 155 bytes */
_Static_assert(TAR_PREFIX + 155 + 12 == TAR_BLOCK, "layout");

/* An OVF package holds a descriptor, a manifest, a certificate and its
 * disks: 256 members is far more than any carries, and bounds the list
 * held in memory (names are at most 256 bytes). */
#define OVA_MAX_MEMBERS 256
/* A ustar name: a prefix of up to 155 bytes, '/', a name of up to 100. */
#define TAR_NAME_MAX (155 + 1 + 100 + 1)

struct ova_member {
    char name[TAR_NAME_MAX];
    uint64_t offset, size;     /* bytes of data in the archive */
};

struct ova_state {
    struct ova_member *members;
    size_t n_members;
    size_t disk;               /* index of the disk opened */
    struct vimg_image *inner;  /* the disk, opened on a window */
};

/* ---- The window: a member's bytes as a protocol image ------------------ */

struct window {
    struct vimg_image *archive; /* borrowed: the OVA image's file */
    uint64_t offset;
};

static int window_pread(struct vimg_image *img, void *buf, uint64_t count,
                        uint64_t offset)
{
    struct window *w = img->opaque;
    return vimg_internal_pread(w->archive, buf, count, w->offset + offset);
}

static const struct vimg_driver window_driver = {
    .name = "ova-member",
    .kind = VIMG_DRIVER_PROTOCOL,
    .instance_size = sizeof(struct window),
    .thread_safe = false,
    .pread = window_pread,
};

static struct vimg_image *window_new(struct vimg_image *archive,
                                     const char *name, uint64_t offset,
                                     uint64_t size)
{
    struct vimg_image *img = calloc(1, sizeof *img);
    struct window *w = calloc(1, sizeof *w);

    if (!img || !w || !(img->filename = strdup(name))) {
        free(img);
        free(w);
        vimg_internal_error(ENOMEM, "out of memory");
        return NULL;
    }
    w->archive = archive;
    w->offset = offset;
    img->drv = &window_driver;
    img->opaque = w;
    img->size = size;
    img->request_alignment = 1;
    vimg_internal_mutex_init(&img->lock);
    return img;
}

/* ---- The tar parser ---------------------------------------------------- */

static bool checksum_ok(const uint8_t *h)
{
    uint64_t sum = 0, want = 0;
    size_t i = TAR_CHKSUM;

    for (size_t j = 0; j < TAR_BLOCK; j++) {
        sum += j >= TAR_CHKSUM && j < TAR_CHKSUM + 8 ? ' ' : h[j];
    }
    while (i < TAR_CHKSUM + 8 && h[i] == ' ') {
        i++;
    }
    if (i == TAR_CHKSUM + 8 || h[i] < '0' || h[i] > '7') {
        return false;
    }
    for (; i < TAR_CHKSUM + 8 && h[i] >= '0' && h[i] <= '7'; i++) {
        want = want * 8 + (uint64_t)(h[i] - '0');
    }
    return sum == want;
}

static bool is_ustar(const uint8_t *h)
{
    return !memcmp(h + TAR_MAGIC, "ustar\0" "00", 8) ||
           !memcmp(h + TAR_MAGIC, "ustar  \0", 8);
}

/* The size field: octal digits (leading blanks, ending at a blank or NUL)
 * or GNU base-256. False when it is neither or beyond INT64_MAX. */
static bool parse_size(const uint8_t *f, uint64_t *out)
{
    uint64_t v = 0;
    size_t i = 0;

    if (f[0] & 0x80) {
        if (f[0] != 0x80 || !is_zero(f + 1, 3)) {
            return false;
        }
        for (i = 4; i < 12; i++) {
            v = v << 8 | f[i];
        }
        *out = v;
        return v <= INT64_MAX;
    }
    while (i < 12 && f[i] == ' ') {
        i++;
    }
    if (i == 12 || f[i] < '0' || f[i] > '7') {
        return false;
    }
    for (; i < 12 && f[i] >= '0' && f[i] <= '7'; i++) {
        v = v * 8 + (uint64_t)(f[i] - '0');
    }
    for (; i < 12; i++) {
        if (f[i] != ' ' && f[i] != '\0') {
            return false;
        }
    }
    *out = v; /* at most 11 octal digits: below 2^33 */
    return true;
}

/* A member name as it may be shown and compared: printable, relative,
 * without "..". */
static bool name_safe(const char *n)
{
    if (!*n || n[0] == '/') {
        return false;
    }
    for (const char *p = n; *p; p++) {
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e) {
            return false;
        }
    }
    for (const char *p = n; *p;) {
        size_t len = strcspn(p, "/");
        if (len == 2 && p[0] == '.' && p[1] == '.') {
            return false;
        }
        p += len + (p[len] == '/');
    }
    return true;
}

/* Copy the member name (ustar prefix "/" name) of header H into OUT. */
static bool member_name(const uint8_t *h, char out[TAR_NAME_MAX])
{
    size_t plen = strnlen((const char *)h + TAR_PREFIX, 155);
    size_t nlen = strnlen((const char *)h + TAR_NAME, 100);
    size_t at = 0;

    if (plen) {
        memcpy(out, h + TAR_PREFIX, plen);
        out[plen] = '/';
        at = plen + 1;
    }
    memcpy(out + at, h + TAR_NAME, nlen);
    out[at + nlen] = '\0';
    return name_safe(out);
}

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

/* Read the member list: the one place archive sizes and names are
 * checked. Every member must be a regular file lying inside the archive;
 * the first must be the OVF descriptor. */
static int read_members(struct vimg_image *img, struct ova_state *s)
{
    uint64_t file_size = (uint64_t)vimg_internal_get_size(img->file);
    uint64_t at = 0;
    uint8_t h[TAR_BLOCK];
    int r;

    while (at + TAR_BLOCK <= file_size) {
        if ((r = vimg_internal_pread(img->file, h, TAR_BLOCK, at)) < 0) {
            return r;
        }
        if (is_zero(h, TAR_BLOCK)) {
            break; /* the end-of-archive blocks */
        }
        if (!is_ustar(h) || !checksum_ok(h)) {
            return vimg_internal_img_error(img, EINVAL, "tar header at "
                                           "offset %llu is damaged or not "
                                           "ustar", (unsigned long long)at);
        }
        if (s->n_members == OVA_MAX_MEMBERS) {
            return vimg_internal_img_error(img, EFBIG, "archive has more "
                                           "than %d members",
                                           OVA_MAX_MEMBERS);
        }
        struct ova_member *m = &s->members[s->n_members];
        if (!member_name(h, m->name)) {
            return vimg_internal_img_error(img, EINVAL, "tar member at "
                                           "offset %llu has an unsafe name "
                                           "(absolute, '..', or not "
                                           "printable)",
                                           (unsigned long long)at);
        }
        if (h[TAR_TYPEFLAG] != '0' && h[TAR_TYPEFLAG] != '\0') {
            /* OVF asks for plain ustar: no links, folders or pax and GNU
             * extension records (which would rename the next member). */
            return vimg_internal_img_error(img, ENOTSUP, "tar member '%s' "
                                           "is not a regular file (type "
                                           "'%c')", m->name,
                                           h[TAR_TYPEFLAG] >= 0x20 &&
                                                   h[TAR_TYPEFLAG] < 0x7f
                                               ? h[TAR_TYPEFLAG]
                                               : '?');
        }
        if (!parse_size(h + TAR_SIZE, &m->size) ||
            range_outside(at + TAR_BLOCK, m->size, file_size)) {
            return vimg_internal_img_error(img, EINVAL, "tar member '%s' "
                                           "claims more bytes than the "
                                           "archive holds", m->name);
        }
        m->offset = at + TAR_BLOCK;
        s->n_members++;
        at = m->offset + ROUND_UP(m->size, TAR_BLOCK);
    }
    if (!s->n_members || !has_suffix(s->members[0].name, ".ovf")) {
        return vimg_internal_img_error(img, EINVAL, "archive does not start "
                                       "with an OVF descriptor (.ovf)");
    }
    return 0;
}

/* ---- The driver -------------------------------------------------------- */

/* A ustar archive whose first member is an .ovf: what OVF requires. */
static int ova_probe(const uint8_t *buf, size_t len, const char *filename)
{
    char name[TAR_NAME_MAX];

    (void)filename;
    if (len < TAR_BLOCK || !is_ustar(buf) || !checksum_ok(buf) ||
        !member_name(buf, name)) {
        return 0;
    }
    return has_suffix(name, ".ovf") ? 100 : 0;
}

/* The disk: the first member that is not the descriptor, the manifest or
 * a certificate. */
static int pick_disk(struct vimg_image *img, struct ova_state *s)
{
    for (size_t i = 1; i < s->n_members; i++) {
        const char *n = s->members[i].name;
        if (has_suffix(n, ".ovf") || has_suffix(n, ".mf") ||
            has_suffix(n, ".cert")) {
            continue;
        }
        if (has_suffix(n, ".gz")) {
            return vimg_internal_img_error(img, ENOTSUP, "disk '%s' is "
                                           "gzip-compressed, which is not "
                                           "supported (extract and gunzip "
                                           "it first)", n);
        }
        s->disk = i;
        return 0;
    }
    return vimg_internal_img_error(img, EINVAL, "archive holds no disk");
}

static void free_state(struct ova_state *s)
{
    if (s->inner) {
        vimg_internal_close(s->inner);
    }
    free(s->members);
    memset(s, 0, sizeof *s);
}

static int ova_open(struct vimg_image *img, const struct vimg_opts *opts)
{
    struct ova_state *s = img->opaque;
    char *wname = NULL;
    int r;

    (void)opts;
    if (img->writable) {
        return vimg_internal_img_error(img, EROFS, "OVA archives are "
                                       "read-only (convert the disk out of "
                                       "it)");
    }
    if (!(s->members = calloc(OVA_MAX_MEMBERS, sizeof *s->members))) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    if ((r = read_members(img, s)) < 0 || (r = pick_disk(img, s)) < 0) {
        free_state(s);
        return r;
    }
    const struct ova_member *d = &s->members[s->disk];
    if (asprintf(&wname, "%s/%s", img->filename, d->name) < 0) {
        free_state(s);
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    struct vimg_image *w = window_new(img->file, wname, d->offset, d->size);
    free(wname);
    if (!w) {
        free_state(s);
        return -ENOMEM;
    }
    /* The disk is opened alone: its descriptor may name no other file,
     * and the archive's lock covers it. */
    struct vimg_open_params p = { .format = "vmdk",
                                  .flags = (img->params.flags &
                                            ~(unsigned)VIMG_OPEN_RDWR) |
                                           VIMG_OPEN_NO_LOCK |
                                           VIMG_OPEN_NO_BACKING,
                                  .refs = VIMG_REFS_NEVER };
    if (!(s->inner = vimg_internal_open_on(w, &p))) {
        r = -vimg_get_errno();
        free_state(s);
        return r;
    }
    if (s->inner->backing_name) {
        free_state(s);
        return vimg_internal_img_error(img, EINVAL, "disk '%s' names a "
                                       "parent image, which an archive "
                                       "cannot hold", d->name);
    }
    img->size = s->inner->size;
    return 0;
}

static int ova_close(struct vimg_image *img)
{
    free_state(img->opaque);
    return 0;
}

static int ova_pread(struct vimg_image *img, void *buf, uint64_t count,
                     uint64_t offset)
{
    struct ova_state *s = img->opaque;
    return vimg_internal_pread(s->inner, buf, count, offset);
}

/* The disk's allocation, without file offsets (they are the member's). */
static int ova_block_status(struct vimg_image *img, uint64_t offset,
                            uint64_t count, uint64_t *pnum, uint64_t *map,
                            const char **file)
{
    struct ova_state *s = img->opaque;
    struct vimg_extent e;
    int r = vimg_internal_block_status(s->inner, offset, count, 0, &e);

    (void)map;
    (void)file;
    if (r < 0) {
        return r;
    }
    *pnum = e.length;
    return (int)(e.flags & ~(unsigned)VIMG_BS_OFFSET_VALID);
}

static int ova_get_info(struct vimg_image *img, struct vimg_value *info)
{
    struct ova_state *s = img->opaque;
    struct vimg_value *spec = vimg_internal_value_new(VIMG_VALUE_OBJECT);
    struct vimg_value *data = vimg_internal_value_new(VIMG_VALUE_OBJECT);
    struct vimg_value *list = vimg_internal_value_new(VIMG_VALUE_ARRAY);
    struct vimg_value *disk = vimg_internal_value_new(VIMG_VALUE_OBJECT);
    int r = spec && data && list && disk ? 0 : -ENOMEM;

    for (size_t i = 0; r == 0 && i < s->n_members; i++) {
        const struct ova_member *m = &s->members[i];
        struct vimg_value *o = vimg_internal_value_new(VIMG_VALUE_OBJECT);
        if (!o ||
            (r = vimg_internal_value_set_str(o, "name", m->name)) < 0 ||
            (r = vimg_internal_value_set_int(o, "offset",
                                             (int64_t)m->offset)) < 0 ||
            (r = vimg_internal_value_set_int(o, "size",
                                             (int64_t)m->size)) < 0) {
            vimg_value_free(o);
            r = r < 0 ? r : -ENOMEM;
            break;
        }
        r = vimg_internal_value_append(list, o);
    }
    /* The disk's own facts, as info on the disk alone shows them. */
    if (r == 0 && s->inner->drv->get_info) {
        r = s->inner->drv->get_info(s->inner, disk);
    }
    if (r == 0) {
        r = vimg_internal_value_set_str(data, "disk",
                                        s->members[s->disk].name);
    }
    if (r == 0) {
        r = vimg_internal_value_set_str(data, "disk-format",
                                        s->inner->drv->name);
    }
    /* Adding gives the child away, even when it fails. */
    if (r == 0) {
        r = vimg_internal_value_add(data, "members", list);
        list = NULL;
    }
    if (r == 0) {
        r = vimg_internal_value_add(data, "disk-info", disk);
        disk = NULL;
    }
    if (r == 0) {
        r = vimg_internal_value_set_str(spec, "type", "ova");
    }
    if (r == 0) {
        r = vimg_internal_value_add(spec, "data", data);
        data = NULL;
    }
    if (r == 0) {
        r = vimg_internal_value_add(info, "format-specific", spec);
        spec = NULL;
    }
    vimg_value_free(spec);
    vimg_value_free(data);
    vimg_value_free(list);
    vimg_value_free(disk);
    return r;
}

const struct vimg_driver vimg_driver_ova = {
    .name = "ova",
    .kind = VIMG_DRIVER_FORMAT,
    .instance_size = sizeof(struct ova_state),
    .thread_safe = false,
    .probe = ova_probe,
    .open = ova_open,
    .close = ova_close,
    .pread = ova_pread,
    .block_status = ova_block_status,
    .get_info = ova_get_info,
};
