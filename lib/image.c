/* Opening images: protocol, probing, format, locks, and the backing chain
 * under the caller's open policy. Also create, info, measure and check,
 * which dispatch to the format after the core's own checks. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/cleanup.h"
#include "internal.h"
#include "protocols/file-lock.h"
#include "protocols/rbd.h"

#define PROBE_BYTES 4096
/* A footer probed at the end of a file (the VHD footer's size). */
#define FOOTER_PROBE_BYTES 512
/* Longest backing chain followed: far beyond real use, and it bounds the
 * recursion of opening. */
#define MAX_CHAIN_DEPTH 256

static const struct vimg_open_params default_params;

static struct vimg_image *image_new(const struct vimg_driver *drv,
                                    const char *filename,
                                    const struct vimg_open_params *p)
{
    struct vimg_image *img = calloc(1, sizeof *img);

    if (!img) {
        vimg_internal_error(ENOMEM, "out of memory");
        return NULL;
    }
    img->drv = drv;
    img->params = *p;
    img->params.format = NULL;
    img->params.options = NULL;
    img->params.secrets = NULL;
    img->params.n_secrets = 0;
    img->params.snapshot_id = NULL;
    img->params.snapshot_name = NULL;
    img->writable = p->flags & VIMG_OPEN_RDWR;
    img->request_alignment = 1;
    vimg_internal_mutex_init(&img->lock);
    img->filename = strdup(filename);
    if (!img->filename ||
        (drv->instance_size && !(img->opaque = calloc(1, drv->instance_size)))) {
        free(img->filename);
        free(img);
        vimg_internal_error(ENOMEM, "out of memory");
        return NULL;
    }
    return img;
}

static int image_free(struct vimg_image *img, bool opened)
{
    int r = 0;

    if (!img) {
        return 0;
    }
    if (img->backing) {
        /* Not vimg_close: a failing open keeps its message. */
        vimg_internal_close(img->backing);
    }
    if (opened && img->drv->close) {
        r = img->drv->close(img);
    }
    if (img->file) {
        int r2 = image_free(img->file, true);
        if (r == 0) {
            r = r2;
        }
    }
    pthread_mutex_destroy(&img->lock);
    free(img->opaque);
    free(img->filename);
    free(img->options);
    free(img->backing_name);
    free(img->backing_format);
    free(img->backing_path);
    free(img);
    return r;
}

/* "nbd:...", "json:{...}", "http://..." : a protocol prefix before any '/'. */
static bool has_protocol_prefix(const char *name)
{
    const char *colon = strchr(name, ':');
    if (!colon || colon == name) {
        return false;
    }
    for (const char *p = name; p < colon; p++) {
        if (*p == '/') {
            return false;
        }
    }
    return true;
}

/* A protocol image of DRV named NAME, opened with the protocol's own
 * options OPTS (may be NULL) and the secrets of P, which the driver's
 * open borrows. */
static struct vimg_image *open_protocol_image(const struct vimg_driver *drv,
                                              const char *name,
                                              const struct vimg_open_params *p,
                                              const struct vimg_opts *opts)
{
    struct vimg_image *img = image_new(drv, name, p);
    if (!img) {
        return NULL;
    }
    img->params.secrets = p->secrets;
    img->params.n_secrets = p->n_secrets;
    int r = drv->open(img, opts);
    img->params.secrets = NULL;
    img->params.n_secrets = 0;
    if (r < 0) {
        image_free(img, false);
        return NULL;
    }
    return img;
}

static struct vimg_image *open_protocol(const char *filename,
                                        const struct vimg_open_params *p)
{
    return open_protocol_image(&vimg_driver_file, filename, p, NULL);
}

/* The locks QEMU would take for this use: writers do not share writes or
 * resizes; readers of formats with metadata do not share writes (their
 * metadata could change under them); raw readers share everything.
 * Writers of formats with metadata need resize permission (they grow
 * their file); a raw writer asks for it only when resized (vimg_truncate),
 * so it may write beside a reader that refuses resizes, as in QEMU. */
static int take_locks(struct vimg_image *fmt, struct vimg_image *file)
{
    unsigned perm = FILE_PERM_READ, shared = FILE_PERM_ALL;

    if (fmt->params.flags & (VIMG_OPEN_NO_LOCK | VIMG_OPEN_FORCE_SHARE)) {
        return 0;
    }
    if (fmt->writable) {
        perm |= FILE_PERM_WRITE;
        if (fmt->drv != &vimg_driver_raw) {
            perm |= FILE_PERM_RESIZE;
        }
        shared &= ~(unsigned)(FILE_PERM_WRITE | FILE_PERM_RESIZE);
    } else if (fmt->drv != &vimg_driver_raw) {
        shared &= ~(unsigned)FILE_PERM_WRITE;
    }
    return vimg_internal_file_lock(file, perm, shared);
}

static int open_backing(struct vimg_image *img, int depth,
                        const char *options,
                        const struct vimg_open_params *p);

/* Split the option list TEXT into the image's own items (*OWN) and those
 * for its backing file, QEMU's "backing.KEY=VALUE" (*BACKING, as
 * "KEY=VALUE", the prefix taken off, nested ones kept for the next
 * level). Items stay as written, ",," escapes included. Both NULL when
 * empty; the caller frees them. */
static int split_backing_options(const char *text, char **own,
                                 char **backing)
{
    size_t len = text ? strlen(text) : 0;
    size_t n[2] = { 0, 0 };
    char *out[2];

    *own = *backing = NULL;
    if (!len) {
        return 0;
    }
    out[0] = malloc(len + 1);
    out[1] = malloc(len + 1);
    if (!out[0] || !out[1]) {
        free(out[0]);
        free(out[1]);
        return vimg_internal_error(ENOMEM, "out of memory");
    }
    for (const char *p = text; *p;) {
        const char *end = p;
        while (*end && !(*end == ',' && end[1] != ',')) {
            end += *end == ',' ? 2 : 1;
        }
        int to = !strncmp(p, "backing.", 8);
        const char *item = to ? p + 8 : p;
        if (n[to]) {
            out[to][n[to]++] = ',';
        }
        memcpy(out[to] + n[to], item, (size_t)(end - item));
        n[to] += (size_t)(end - item);
        p = *end ? end + 1 : end;
    }
    for (int i = 0; i < 2; i++) {
        out[i][n[i]] = 0;
        if (!n[i]) {
            free(out[i]);
            out[i] = NULL;
        }
    }
    *own = out[0];
    *backing = out[1];
    return 0;
}

/* Formats known by a footer (fixed VHD, DMG): asked when the start of
 * FILE looks raw. A guest writes the end of its disk, so such a guess is
 * only ever used to read. */
static int probe_footer(struct vimg_image *file,
                        const struct vimg_open_params *p,
                        const struct vimg_driver **drv)
{
    uint8_t tail[FOOTER_PROBE_BYTES];
    const struct vimg_driver *d;

    if (file->size < sizeof tail ||
        vimg_internal_pread(file, tail, sizeof tail,
                            file->size - sizeof tail) < 0) {
        vimg_internal_error_clear();
        return 0;
    }
    d = vimg_internal_probe_tail(tail, sizeof tail, file->size,
                                 file->filename);
    if (d && (p->flags & VIMG_OPEN_RDWR)) {
        return vimg_internal_error(EPERM, "%s: the format was guessed from "
                                   "a footer to be %s; writing needs an "
                                   "explicit format (-f %s)", file->filename,
                                   d->name, d->name);
    }
    if (d) {
        *drv = d;
    }
    return 0;
}

/* Make IMG, just opened, read the internal snapshot P names (the open
 * params of the image itself, never passed down its chain). */
static int load_snapshot(struct vimg_image *img,
                         const struct vimg_open_params *p)
{
    if (img->writable) {
        return vimg_internal_img_error(img, EINVAL, "an internal snapshot "
                                       "can only be opened read-only");
    }
    if (!img->drv->snapshot_load) {
        return vimg_internal_img_error(img, ENOTSUP, "the %s format does "
                                       "not support internal snapshots",
                                       img->drv->name);
    }
    return img->drv->snapshot_load(img, p->snapshot_id, p->snapshot_name);
}

/* Open the format on FILE. PARENT is the image whose backing file this is
 * (NULL at the top), linked before the backing chain is followed so loop
 * detection sees the whole chain. */
static struct vimg_image *open_format(struct vimg_image *file,
                                      const struct vimg_open_params *p,
                                      struct vimg_image *parent, int depth)
{
    const struct vimg_driver *drv = NULL;
    struct vimg_opts opts = { 0 };
    struct vimg_image *img = NULL;
    CLEANUP_FREE char *own = NULL, *backing = NULL;
    bool probed_raw = false;
    int r;

    if (p->format) {
        drv = vimg_internal_find_driver(p->format);
        if (!drv || drv->kind != VIMG_DRIVER_FORMAT) {
            vimg_internal_error(EINVAL, "%s: unknown file format '%s'",
                                file->filename, p->format);
            goto fail;
        }
    } else {
        uint8_t buf[PROBE_BYTES];
        uint64_t n = file->size < sizeof buf ? file->size : sizeof buf;
        if (vimg_internal_pread(file, buf, n, 0) < 0) {
            goto fail;
        }
        drv = vimg_internal_probe(buf, n, file->filename);
        if (drv == &vimg_driver_raw && (r = probe_footer(file, p, &drv)) < 0) {
            goto fail;
        }
        probed_raw = drv == &vimg_driver_raw;
        if (probed_raw && (p->flags & VIMG_OPEN_RDWR)) {
            /* A guest could write a header into sector 0 and turn a
             * guessed-raw disk into another format: writes need -f raw. */
            vimg_internal_error(EPERM, "%s: the format was guessed to be "
                                "raw; writing needs an explicit format "
                                "(-f raw)", file->filename);
            goto fail;
        }
    }
    if (!drv->pwrite && (p->flags & VIMG_OPEN_RDWR)) {
        /* Read-only formats (bochs, cloop, dmg), as QEMU has them. */
        vimg_internal_error(EROFS, "%s: Image is read-only: vimg reads %s "
                            "images but does not write them",
                            file->filename, drv->name);
        goto fail;
    }
    img = image_new(drv, file->filename, p);
    if (!img) {
        goto fail;
    }
    img->file = file;
    file = NULL;
    img->parent = parent;
    img->probed_raw = probed_raw;
    if (p->options && !(img->options = strdup(p->options))) {
        vimg_internal_error(ENOMEM, "out of memory");
        image_free(img, false);
        return NULL;
    }
    if (take_locks(img, img->file) < 0 ||
        split_backing_options(p->options, &own, &backing) < 0 ||
        vimg_internal_opts_parse(own, drv->runtime_opts, img->filename,
                                 &opts) < 0) {
        image_free(img, false);
        return NULL;
    }
    /* Secrets are borrowed for the driver's open only. */
    img->params.secrets = p->secrets;
    img->params.n_secrets = p->n_secrets;
    r = drv->open(img, &opts);
    vimg_internal_opts_free(&opts);
    img->params.secrets = NULL;
    img->params.n_secrets = 0;
    if (r < 0) {
        if (!vimg_internal_error_set()) {
            vimg_internal_img_error(img, r, "could not open as %s",
                                    drv->name);
        }
        image_free(img, false);
        return NULL;
    }
    if (!parent && (p->snapshot_id || p->snapshot_name) &&
        load_snapshot(img, p) < 0) {
        image_free(img, true);
        return NULL;
    }
    if (img->backing_name && open_backing(img, depth, backing, p) < 0) {
        image_free(img, true);
        return NULL;
    }
    if (img->backing && drv->backing_opened &&
        drv->backing_opened(img) < 0) {
        image_free(img, true);
        return NULL;
    }
    return img;

fail:
    image_free(file, true);
    return NULL;
}

int vimg_internal_resolve_reference(struct vimg_image *img, const char *name,
                                    char **path)
{
    CLEANUP_FREE char *dir_copy = strdup(img->filename);
    CLEANUP_FREE char *joined = NULL;

    *path = NULL;
    if (!dir_copy) {
        return vimg_internal_error(ENOMEM, "out of memory");
    }
    if (!*name) {
        return vimg_internal_img_error(img, EINVAL, "refers to a file with "
                                       "an empty name");
    }
    if (has_protocol_prefix(name)) {
        return vimg_internal_img_error(img, EPERM, "refers to '%s', a "
                                       "protocol or json: name; only plain "
                                       "file paths are followed", name);
    }
    const char *dir = dirname(dir_copy);
    /* As QEMU combines paths: an image named without a folder resolves
     * references against the current folder, written as given. */
    if (name[0] == '/' || !strchr(img->filename, '/')) {
        joined = strdup(name);
    } else if (asprintf(&joined, "%s/%s", dir, name) < 0) {
        joined = NULL;
    }
    if (!joined) {
        return vimg_internal_error(ENOMEM, "out of memory");
    }
    if (img->params.refs == VIMG_REFS_SAME_DIR) {
        CLEANUP_FREE char *real_dir = realpath(dir, NULL);
        CLEANUP_FREE char *real = realpath(joined, NULL);
        size_t n = real_dir ? strlen(real_dir) : 0;
        if (!real_dir || !real || strncmp(real, real_dir, n) != 0 ||
            real[n] != '/') {
            return vimg_internal_img_error(img, EPERM, "refers to '%s' "
                                           "outside the image's folder, "
                                           "which the open policy forbids",
                                           name);
        }
    }
    *path = joined;
    joined = NULL;
    return 0;
}

/* True when PATH is IMG or any image above it in the chain. */
static bool chain_contains(struct vimg_image *img, const char *path)
{
    struct stat a, b;
    if (stat(path, &a) < 0) {
        return false;
    }
    for (; img; img = img->parent) {
        if (stat(img->filename, &b) == 0 && a.st_dev == b.st_dev &&
            a.st_ino == b.st_ino) {
            return true;
        }
    }
    return false;
}

/* Open IMG's backing file with OPTIONS (the backing.* part of IMG's) and
 * the secrets of P, IMG's open parameters. */
static int open_backing(struct vimg_image *img, int depth,
                        const char *options,
                        const struct vimg_open_params *p)
{
    bool opening = !(img->params.flags & VIMG_OPEN_NO_BACKING) &&
                   img->params.refs != VIMG_REFS_NEVER;
    int r = vimg_internal_resolve_reference(img, img->backing_name,
                                            &img->backing_path);
    if (!opening) {
        /* Only reported (info): a name we would refuse is not an error. */
        vimg_internal_error_clear();
        return 0;
    }
    if (r < 0) {
        return r;
    }
    if (depth + 1 >= MAX_CHAIN_DEPTH) {
        return vimg_internal_img_error(img, ELOOP, "backing chain is longer "
                                       "than %d images", MAX_CHAIN_DEPTH);
    }
    if (chain_contains(img, img->backing_path)) {
        return vimg_internal_img_error(img, ELOOP, "backing file '%s' is "
                                       "the image itself or an image above "
                                       "it in the chain", img->backing_name);
    }
    struct vimg_open_params bp = img->params;
    bp.flags &= ~(unsigned)VIMG_OPEN_RDWR;
    bp.format = img->backing_format;
    bp.options = options;
    bp.secrets = p->secrets;
    bp.n_secrets = p->n_secrets;
    struct vimg_image *file = open_protocol(img->backing_path, &bp);
    if (!file) {
        return vimg_internal_img_error(img, ENOENT, "could not open backing "
                                       "file '%s'", img->backing_name);
    }
    struct vimg_image *b = open_format(file, &bp, img, depth + 1);
    if (!b) {
        return -vimg_get_errno();
    }
    /* Record the probed format so info can report it. */
    if (!img->backing_format && !(img->backing_format =
                                      strdup(b->drv->name))) {
        vimg_close(b);
        return vimg_internal_error(ENOMEM, "out of memory");
    }
    img->backing = b;
    return 0;
}

struct vimg_image *vimg_internal_open_on(struct vimg_image *file,
                                         const struct vimg_open_params *p)
{
    return open_format(file, p ? p : &default_params, NULL, 0);
}

const struct vimg_driver *vimg_internal_network_protocol(const char *name)
{
    struct stat st;
    const struct vimg_driver *drv =
        vimg_is_url(name) ? &vimg_driver_nbd
        : vimg_internal_rbd_is_name(name) ? &vimg_driver_rbd : NULL;

    return drv && stat(name, &st) < 0 ? drv : NULL;
}

/* An image on an NBD server or in a Ceph cluster, named by the caller.
 * Its metadata comes from the network, so none of the files it may name
 * is opened (the untrusted policy): a remote image never makes vimg open
 * a local file. */
static struct vimg_image *open_network(const struct vimg_driver *drv,
                                       const char *filename,
                                       const struct vimg_open_params *p)
{
    struct vimg_open_params np = *p;
    struct vimg_image *file = NULL, *img = NULL;
    struct vimg_opts opts;
    char *proto_options, *format_options;

    np.refs = VIMG_REFS_NEVER;
    /* "file.KEY=..." options are the protocol's own (rbd's encryption),
     * the rest the format's, as in QEMU's option tree. */
    if (vimg_internal_opts_split(p->options, "file.", &proto_options,
                                 &format_options) < 0) {
        return NULL;
    }
    np.options = format_options;
    if (vimg_internal_opts_parse(proto_options, drv->runtime_opts, filename,
                                 &opts) == 0) {
        file = open_protocol_image(drv, filename, &np, &opts);
        vimg_internal_opts_free(&opts);
    }
    if (file) {
        img = open_format(file, &np, NULL, 0);
    }
    free(proto_options);
    free(format_options);
    return img;
}

struct vimg_image *vimg_open(const char *filename,
                             const struct vimg_open_params *params)
{
    const struct vimg_open_params *p = params ? params : &default_params;
    const struct vimg_driver *net;
    struct stat st;

    vimg_internal_error_clear();
    if (!filename || !*filename) {
        vimg_internal_error(EINVAL, "no image file name given");
        return NULL;
    }
    if ((p->flags & VIMG_OPEN_FORCE_SHARE) && (p->flags & VIMG_OPEN_RDWR)) {
        vimg_internal_error(EINVAL, "%s: force-share (-U) is only for "
                            "read-only use", filename);
        return NULL;
    }
    if ((net = vimg_internal_network_protocol(filename))) {
        return open_network(net, filename, p);
    }
    if (has_protocol_prefix(filename) && stat(filename, &st) < 0) {
        vimg_internal_error(ENOTSUP, "%s: protocol names are not supported; "
                            "give a file path", filename);
        return NULL;
    }
    struct vimg_image *file = open_protocol(filename, p);
    return file ? open_format(file, p, NULL, 0) : NULL;
}

struct vimg_image *vimg_open_buffer(const void *data, size_t len,
                                    const char *name,
                                    const struct vimg_open_params *params)
{
    const struct vimg_open_params *p = params ? params : &default_params;
    struct vimg_open_params mp = *p;

    vimg_internal_error_clear();
    mp.refs = VIMG_REFS_NEVER;
    struct vimg_image *mem = vimg_internal_memory_new(name, data, len, len);
    if (!mem) {
        return NULL;
    }
    mem->writable = p->flags & VIMG_OPEN_RDWR;
    return open_format(mem, &mp, NULL, 0);
}

int vimg_internal_close(struct vimg_image *img)
{
    int r = 0;

    if (!img) {
        return 0;
    }
    if (img->writable) {
        r = vimg_internal_flush(img);
    }
    int r2 = image_free(img, true);
    return r < 0 ? r : r2;
}

int vimg_close(struct vimg_image *img)
{
    vimg_internal_error_clear();
    return vimg_internal_close(img) < 0 ? -1 : 0;
}

/* ---- Facts ------------------------------------------------------------ */

int64_t vimg_get_size(struct vimg_image *img)
{
    vimg_internal_error_clear();
    return img ? (int64_t)img->size : -1;
}

const char *vimg_get_filename(struct vimg_image *img)
{
    return img->filename;
}

const char *vimg_get_format(struct vimg_image *img)
{
    return img->drv->name;
}

bool vimg_is_writable(struct vimg_image *img)
{
    return img->writable;
}

struct vimg_image *vimg_get_backing(struct vimg_image *img)
{
    return img->backing;
}

const char *vimg_get_backing_name(struct vimg_image *img)
{
    return img->backing_name;
}

static int64_t allocated_size(struct vimg_image *img)
{
    if (img->drv->allocated_size) {
        return img->drv->allocated_size(img);
    }
    return img->file ? allocated_size(img->file) : 0;
}

int64_t vimg_get_allocated_size(struct vimg_image *img)
{
    vimg_internal_error_clear();
    int64_t r = allocated_size(img);
    return r < 0 ? -1 : r;
}

bool vimg_has_zero_init(struct vimg_image *img)
{
    struct stat st;
    int fd = vimg_internal_file_fd(img);

    if (!img->drv->has_zero_init || img->no_zero_init) {
        return false;
    }
    if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))) {
        return false; /* a block device holds old data */
    }
    return img->file ? vimg_has_zero_init(img->file) : true;
}

struct vimg_value *vimg_get_info(struct vimg_image *img)
{
    struct vimg_value *info = vimg_internal_value_new(VIMG_VALUE_OBJECT);
    int r;

    vimg_internal_error_clear();
    if (!info) {
        vimg_internal_error(ENOMEM, "out of memory");
        return NULL;
    }
    int64_t actual = allocated_size(img);
    if ((r = vimg_internal_value_set_int(info, "virtual-size",
                                         (int64_t)img->size)) < 0 ||
        (r = vimg_internal_value_set_str(info, "filename",
                                         img->filename)) < 0 ||
        (img->drv->get_info && (r = img->drv->get_info(img, info)) < 0) ||
        (r = vimg_internal_iso_describe(img, info)) < 0 ||
        (r = vimg_internal_value_set_str(info, "format",
                                         img->drv->name)) < 0 ||
        (actual >= 0 &&
         (r = vimg_internal_value_set_int(info, "actual-size", actual)) < 0)) {
        goto fail;
    }
    if (img->backing_name) {
        if ((r = vimg_internal_value_set_str(info, "backing-filename",
                                             img->backing_name)) < 0 ||
            (img->backing_path &&
             (r = vimg_internal_value_set_str(info, "full-backing-filename",
                                              img->backing_path)) < 0) ||
            (img->backing_format &&
             (r = vimg_internal_value_set_str(info, "backing-filename-format",
                                              img->backing_format)) < 0)) {
            goto fail;
        }
    }
    if (!vimg_value_get(info, "dirty-flag") &&
        (r = vimg_internal_value_set_bool(info, "dirty-flag", false)) < 0) {
        goto fail;
    }
    return info;

fail:
    vimg_value_free(info);
    if (!vimg_internal_error_set()) {
        vimg_internal_img_error(img, r, "%s", strerror(-r));
    }
    return NULL;
}

/* ---- Create ----------------------------------------------------------- */

char *vimg_create_options_help(const char *format)
{
    const struct vimg_driver *drv = vimg_internal_find_driver(format);
    char *buf = NULL;
    size_t len = 0;

    vimg_internal_error_clear();
    if (!drv || drv->kind != VIMG_DRIVER_FORMAT) {
        vimg_internal_error(EINVAL, "unknown file format '%s'", format);
        return NULL;
    }
    FILE *f = open_memstream(&buf, &len);
    if (!f) {
        vimg_internal_error(ENOMEM, "out of memory");
        return NULL;
    }
    static const char *const types[] = { "size", "bool", "str", "num" };
    for (const struct vimg_opt_desc *d = drv->create_opts; d && d->name; d++) {
        fprintf(f, "%s\t%s\t%s\n", d->name, types[d->type], d->help);
    }
    fclose(f);
    return buf;
}

/* Open the new image's backing file read-only as the image will open it
 * (through the policy, with its format, or probed when none is given) and
 * return its virtual size and the format it opened as. qemu-img create
 * opens it too, so a missing backing file is an error. */
static int open_backing_for_create(const char *filename,
                                   const struct vimg_create_ctx *ctx,
                                   enum vimg_ref_policy refs, uint64_t *size,
                                   const char **format)
{
    struct vimg_image probe_img = { .filename = (char *)filename,
                                    .params = { .refs = refs } };
    CLEANUP_FREE char *path = NULL;
    int r = vimg_internal_resolve_reference(&probe_img, ctx->backing_file,
                                            &path);
    if (r < 0) {
        return r;
    }
    /* Only its size is read: an encrypted one opens without its key, as
     * in qemu-img (BDRV_O_NO_IO). */
    struct vimg_open_params bp = { .format = ctx->backing_format,
                                   .refs = refs,
                                   .flags = VIMG_OPEN_NO_BACKING |
                                            VIMG_OPEN_FORCE_SHARE |
                                            VIMG_OPEN_NO_IO };
    struct vimg_image *file = open_protocol(path, &bp);
    struct vimg_image *b = file ? open_format(file, &bp, NULL, 0) : NULL;
    if (!b) {
        return -vimg_get_errno();
    }
    *size = b->size;
    *format = b->drv->name;
    vimg_close(b);
    return 0;
}

/* Whether DRV's images can have a backing file: its -o table says so. */
static bool has_backing_files(const struct vimg_driver *drv)
{
    for (const struct vimg_opt_desc *d = drv->create_opts; d && d->name;
         d++) {
        if (strcmp(d->name, "backing_file") == 0) {
            return true;
        }
    }
    return false;
}

/* A file protocol image on the file a target writes, named as the user
 * named the target. */
static struct vimg_image *open_target_file(struct vimg_target *t, int fd,
                                           const struct vimg_open_params *p)
{
    struct vimg_image *img = image_new(&vimg_driver_file,
                                       vimg_internal_target_name(t), p);
    if (img && vimg_internal_file_adopt(img, fd) < 0) {
        image_free(img, false);
        return NULL;
    }
    if (img) {
        img->target = t;
    }
    return img;
}

/* Everything vimg_create checks before it writes: the format, the -o
 * options (parsed into *OPTS, which the caller frees), the backing file
 * (opened for its size unless P->unsafe) and the size, all into *CTX. */
static int create_prepare(const char *filename, struct vimg_target *t,
                          const struct vimg_create_params *p,
                          const struct vimg_driver **drvp,
                          struct vimg_opts *opts, struct vimg_create_ctx *ctx)
{
    const struct vimg_driver *drv;
    int r;

    memset(opts, 0, sizeof *opts);
    memset(ctx, 0, sizeof *ctx);
    ctx->filename = filename;
    if (!p || !p->format) {
        return vimg_internal_error(EINVAL, "create needs a target and a "
                                   "format");
    }
    drv = vimg_internal_find_driver(p->format);
    if (!drv || drv->kind != VIMG_DRIVER_FORMAT) {
        return vimg_internal_error(EINVAL, "%s: unknown file format '%s'",
                                   filename, p->format);
    }
    if (!drv->create) {
        return vimg_internal_error(ENOTSUP, "%s: Format driver '%s' does "
                                   "not support image creation", filename,
                                   drv->name);
    }
    *drvp = drv;
    /* A protocol that makes its own images (rbd:) adds its -o options. */
    const struct vimg_driver *proto = vimg_internal_network_protocol(filename);
    if ((r = vimg_internal_opts_parse_with(p->options, drv->create_opts,
                                           proto ? proto->create_opts : NULL,
                                           filename, opts)) < 0) {
        return r;
    }
    ctx->opts = opts;
    ctx->target = t;
    ctx->secrets = p->secrets;
    ctx->n_secrets = p->n_secrets;
    ctx->backing_file = p->backing_file ? p->backing_file
                        : vimg_internal_opts_get(opts, "backing_file", NULL);
    ctx->backing_format = p->backing_format ? p->backing_format
                          : vimg_internal_opts_get(opts, "backing_fmt",
                                                   NULL);
    if (p->size_given) {
        ctx->size = p->size;
    } else if ((r = vimg_internal_opts_get_size(opts, "size", UINT64_MAX,
                                                &ctx->size)) < 0) {
        return r;
    }
    if (ctx->backing_file && !has_backing_files(drv)) {
        return vimg_internal_error(ENOTSUP, "%s: Backing file not supported "
                                   "for file format '%s'", filename,
                                   drv->name);
    }
    if (ctx->backing_file && !p->unsafe) {
        uint64_t backing_size = 0;
        const char *probed = NULL;
        if ((r = open_backing_for_create(filename, ctx, p->refs,
                                         &backing_size, &probed)) < 0) {
            return r;
        }
        /* The image would have its backing file probed at every open,
         * and a guest that writes a header into a raw backing file would
         * then change what the image reads (qemu-img refuses it too). */
        if (!ctx->backing_format) {
            return vimg_internal_error(EINVAL, "%s: Backing file specified "
                                       "without backing format (%s is "
                                       "detected as %s)", filename,
                                       ctx->backing_file, probed);
        }
        if (ctx->size == UINT64_MAX) {
            ctx->size = backing_size;
        }
    } else if (ctx->backing_file && !ctx->backing_format) {
        return vimg_internal_error(EINVAL, "%s: Backing file specified "
                                   "without backing format", filename);
    }
    if (ctx->size == UINT64_MAX) {
        return vimg_internal_error(EINVAL, "%s: image creation needs a size",
                                   filename);
    }
    if (ctx->size > INT64_MAX) {
        return vimg_internal_error(EINVAL, "%s: size too large", filename);
    }
    return 0;
}

char *vimg_create_describe(const char *filename,
                           const struct vimg_create_params *p)
{
    const struct vimg_driver *drv = NULL;
    struct vimg_opts opts;
    struct vimg_create_ctx ctx;
    char *line = NULL;

    vimg_internal_error_clear();
    if (create_prepare(filename ? filename : "", NULL, p, &drv, &opts,
                       &ctx) == 0) {
        line = vimg_internal_create_line(drv, &ctx);
    }
    vimg_internal_opts_free(&opts);
    return line;
}

int vimg_target_create(struct vimg_target *t,
                       const struct vimg_create_params *p)
{
    const char *filename = t ? vimg_internal_target_name(t) : NULL;
    const struct vimg_driver *drv = NULL;
    struct vimg_opts opts = { 0 };
    struct vimg_create_ctx ctx;
    int r;

    vimg_internal_error_clear();
    if (!t) {
        vimg_internal_error(EINVAL, "create needs a target and a format");
        return -1;
    }
    if ((r = create_prepare(filename, t, p, &drv, &opts, &ctx)) < 0) {
        goto out;
    }
    const struct vimg_driver *proto = vimg_internal_target_protocol(t);

    /* Only now, with everything checked, is a file written in place
     * emptied (or a protocol's image made). The close syncs the new file
     * once before the target is committed, unless the caller asked for
     * cache=unsafe (convert's target, as qemu-img). */
    struct vimg_open_params wp = { .flags = VIMG_OPEN_RDWR |
                                            VIMG_OPEN_NO_LOCK |
                                            (p->no_flush ? VIMG_OPEN_NO_FLUSH
                                                         : 0) };
    struct vimg_image *file;
    if (proto) {
        /* The protocol's own options: a key the format takes too is the
         * format's (qcow2's encrypt.format), as in QEMU's option lists. */
        struct vimg_create_ctx pc = ctx;
        struct vimg_opts popts;
        const char *image;
        if ((r = vimg_internal_opts_pick(&opts, proto->create_opts,
                                         drv->create_opts, &popts)) < 0) {
            goto out;
        }
        pc.opts = &popts;
        r = vimg_internal_target_make_image(t, &pc, &image);
        vimg_internal_opts_free(&popts);
        if (r < 0) {
            goto out;
        }
        wp.secrets = p->secrets;
        wp.n_secrets = p->n_secrets;
        file = open_protocol_image(proto, image, &wp,
                                   vimg_internal_target_image_opts(t));
    } else {
        int fd = vimg_internal_target_fd(t, true);
        if (fd < 0) {
            r = fd;
            goto out;
        }
        file = open_target_file(t, fd, &wp);
    }
    if (!file) {
        r = -vimg_get_errno();
        goto out;
    }
    r = drv->create(file, &ctx);
    int r2 = image_free(file, true);
    if (r == 0) {
        r = r2;
    }

out:
    vimg_internal_opts_free(&opts);
    if (r < 0 && !vimg_internal_error_set()) {
        vimg_internal_error(r, "%s: %s", filename, strerror(-r));
    }
    return r < 0 ? -1 : 0;
}

struct vimg_image *vimg_target_open(struct vimg_target *t,
                                    const struct vimg_open_params *params)
{
    const struct vimg_open_params *p = params ? params : &default_params;
    struct vimg_open_params wp = *p;

    vimg_internal_error_clear();
    if (!t) {
        vimg_internal_error(EINVAL, "no target given");
        return NULL;
    }
    /* The target holds the locks of the file it replaces or writes in
     * place, and its new file has no name anyone else could open. */
    wp.flags = (p->flags & ~(unsigned)VIMG_OPEN_FORCE_SHARE) |
               VIMG_OPEN_RDWR | VIMG_OPEN_NO_LOCK;
    const struct vimg_driver *proto = vimg_internal_target_protocol(t);
    struct vimg_image *file;
    if (proto && !vimg_internal_target_image(t)) {
        vimg_internal_error(EINVAL, "%s: the target has no image yet",
                            vimg_internal_target_name(t));
        return NULL;
    }
    CLEANUP_FREE char *format_options = NULL;
    if (proto) {
        /* A new image of ours: nothing in it to distrust. The options it
         * was made with are the protocol's (rbd's encrypt.key-secret
         * under raw), not the format's. */
        const struct vimg_opts *io = vimg_internal_target_image_opts(t);
        if (io->count) {
            if (!(format_options = vimg_internal_opts_drop(p->options, io))) {
                return NULL;
            }
            wp.options = format_options;
        }
        file = open_protocol_image(proto, vimg_internal_target_image(t),
                                   &wp, io);
    } else {
        file = open_target_file(t, vimg_internal_target_fd(t, false), &wp);
    }
    return file ? open_format(file, &wp, NULL, 0) : NULL;
}

int vimg_create(const char *filename, const struct vimg_create_params *p)
{
    struct vimg_target *t = vimg_target_begin(filename);

    if (!t) {
        return -1;
    }
    if (vimg_target_create(t, p) < 0) {
        vimg_target_abort(t);
        return -1;
    }
    return vimg_target_commit(t);
}

/* ---- Measure, check --------------------------------------------------- */

int vimg_measure(const char *format, const char *options, uint64_t size,
                 struct vimg_image *src, struct vimg_measure *out)
{
    const struct vimg_driver *drv;
    struct vimg_opts opts = { 0 };
    int r;

    vimg_internal_error_clear();
    memset(out, 0, sizeof *out);
    drv = format ? vimg_internal_find_driver(format) : NULL;
    if (!drv || drv->kind != VIMG_DRIVER_FORMAT) {
        vimg_internal_error(EINVAL, "unknown file format '%s'",
                            format ? format : "");
        return -1;
    }
    if (!drv->measure) {
        vimg_internal_error(ENOTSUP, "the %s format does not support "
                            "measure", drv->name);
        return -1;
    }
    if (vimg_internal_opts_parse(options, drv->create_opts, format,
                                 &opts) < 0) {
        return -1;
    }
    r = drv->measure(&opts, size, src, out);
    vimg_internal_opts_free(&opts);
    if (r < 0 && !vimg_internal_error_set()) {
        vimg_internal_error(r, "measure: %s", strerror(-r));
    }
    return r < 0 ? -1 : 0;
}

int vimg_check(struct vimg_image *img, unsigned fix,
               struct vimg_check_result *result, vimg_report_fn report,
               void *opaque)
{
    vimg_internal_error_clear();
    memset(result, 0, sizeof *result);
    result->image_end_offset = -1;
    if (!img->drv->check) {
        vimg_internal_img_error(img, ENOTSUP, "This image format does not "
                                "support checks");
        return -1;
    }
    if (fix && !img->writable) {
        vimg_internal_img_error(img, EROFS, "repair needs the image opened "
                                "read-write");
        return -1;
    }
    pthread_mutex_lock(&img->lock);
    int r = img->drv->check(img, fix, result, report, opaque);
    pthread_mutex_unlock(&img->lock);
    if (r < 0 && !vimg_internal_error_set()) {
        vimg_internal_img_error(img, r, "check failed: %s", strerror(-r));
    }
    return r < 0 ? -1 : 0;
}

int vimg_internal_open_reference(struct vimg_image *img, const char *name,
                                 bool writable, struct vimg_image **out)
{
    CLEANUP_FREE char *path = NULL;
    int r;

    *out = NULL;
    if (img->params.refs == VIMG_REFS_NEVER) {
        return vimg_internal_img_error(img, EPERM, "refers to '%s', and the "
                                       "open policy follows no references",
                                       name);
    }
    if ((r = vimg_internal_resolve_reference(img, name, &path)) < 0) {
        return r;
    }
    struct vimg_open_params p = img->params;
    p.flags = (p.flags & ~(unsigned)VIMG_OPEN_RDWR) |
              (writable ? VIMG_OPEN_RDWR : 0);
    /* An image being written through a target names files written with
     * it, which have no name yet: those are the target's. */
    struct vimg_target *t = img->file ? img->file->target : NULL;
    int fd = t ? vimg_internal_target_find_companion(t, name) : -ENOENT;
    if (fd >= 0) {
        struct vimg_image *f = image_new(&vimg_driver_file, path, &p);
        if (f && vimg_internal_file_adopt(f, fd) < 0) {
            image_free(f, false);
            f = NULL;
        }
        *out = f;
    } else {
        *out = open_protocol(path, &p);
    }
    return *out ? 0 : -vimg_get_errno();
}

/* ---- Extra files of multi-file formats -------------------------------- */

int vimg_internal_create_file(const struct vimg_create_ctx *c,
                              const char *name, bool no_flush,
                              struct vimg_image **out)
{
    *out = NULL;
    if (!c->target) {
        return vimg_internal_error(ENOTSUP, "%s: no file '%s' can be made "
                                   "beside this image", c->filename, name);
    }
    int fd = vimg_internal_target_companion(c->target, name);
    if (fd < 0) {
        return fd;
    }
    /* Locked by the target, whose lock lives as long as it does. */
    struct vimg_open_params p = { .flags = VIMG_OPEN_RDWR |
                                           VIMG_OPEN_NO_LOCK |
                                           (no_flush ? VIMG_OPEN_NO_FLUSH
                                                     : 0) };
    struct vimg_image *img = image_new(&vimg_driver_file, name, &p);
    if (img && vimg_internal_file_adopt(img, fd) < 0) {
        image_free(img, false);
        img = NULL;
    }
    *out = img;
    return img ? 0 : -vimg_get_errno();
}
