/* The rbd protocol: an image in a Ceph cluster, through librbd, for
 * rbd:POOL[/NAMESPACE]/IMAGE[@SNAPSHOT][:KEY=VALUE]... names given on the
 * command line (rbd.h). Names from image metadata never get here: the core
 * refuses every protocol prefix in references.
 *
 * librbd's image handles take calls from many threads at once, and each
 * call is cut into per-object requests that run in parallel, so the
 * synchronous calls of convert's workers and the NBD server's keep many
 * requests in flight without a pool of handles.
 *
 * Block status comes from rbd_diff_iterate2, asked once per window of
 * many objects and kept until the image changes: asking per request (what
 * QEMU does) makes a walk over a large image quadratic. With fast-diff the
 * object map answers in whole objects; without it librbd asks every object
 * in the window for its extents. Should that fail, every range is data and
 * readers fall back to detecting zeros in what they read. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <rbd/librbd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "../../common/base64.h"
#include "../../common/rounding.h"
#include "../crypto/crypto.h"
#include "rbd.h"

/* Block status is asked for at least this many objects at a time (4 GiB
 * of 4 MiB objects), and for a sixteenth of the image when that is more:
 * with fast-diff librbd reads the image's whole object map for each call,
 * so a walk over the image makes at most WINDOWS calls whatever its size.
 * Without fast-diff each object in a window is a request to an OSD, so
 * windows stay small and the first answer comes soon. */
#define WINDOW_OBJECTS 1024
#define WINDOWS 16
#define WINDOW_OBJECTS_SLOW 256
/* librbd returns byte counts as int for discard and write-zeroes. */
#define MAX_NOPAYLOAD (1u << 30)
/* Object sizes librbd accepts (RBD_MIN_ORDER, RBD_MAX_ORDER). */
#define MIN_ORDER 12
#define MAX_ORDER 25
/* The size a new encrypted image is made with before its LUKS header is
 * written: librbd wants the image larger than the header (4 MiB for LUKS1,
 * 16 MiB for LUKS2 in librbd 16, and an object at least), and a thin image
 * costs nothing. The format then sizes it for the guest. */
#define ENCRYPT_ROOM (1ull << 30)

/* librados and librbd are loaded when the first rbd: name is opened, not
 * at every start of vimg: they bring Ceph's common library and twenty-odd
 * more shared objects, which tripled vimg's start-up time and took more
 * address space than the memory-capped tests allow (QEMU keeps rbd in a
 * module for the same reason). */
#define RADOS_FUNCTIONS(X) \
    X(rados_create) \
    X(rados_conf_read_file) \
    X(rados_conf_set) \
    X(rados_connect) \
    X(rados_ioctx_create) \
    X(rados_ioctx_set_namespace) \
    X(rados_ioctx_destroy) \
    X(rados_shutdown)
#define RBD_FUNCTIONS(X) \
    X(rbd_open) \
    X(rbd_open_read_only) \
    X(rbd_close) \
    X(rbd_stat) \
    X(rbd_read2) \
    X(rbd_write2) \
    X(rbd_write_zeroes) \
    X(rbd_discard) \
    X(rbd_flush) \
    X(rbd_resize) \
    X(rbd_get_features) \
    X(rbd_get_flags) \
    X(rbd_diff_iterate2) \
    X(rbd_image_options_create) \
    X(rbd_image_options_set_uint64) \
    X(rbd_image_options_destroy) \
    X(rbd_create4) \
    X(rbd_remove) \
    X(rbd_rename) \
    X(rbd_watchers_list) \
    X(rbd_watchers_list_cleanup) \
    X(rbd_encryption_format) \
    X(rbd_encryption_load)

static struct {
#define X(fn) __typeof__(fn) *fn;
    RADOS_FUNCTIONS(X)
    RBD_FUNCTIONS(X)
#undef X
} ceph;
static pthread_once_t ceph_once = PTHREAD_ONCE_INIT;
static char ceph_missing[512]; /* why loading failed; "" when loaded */

static void ceph_load(void)
{
    void *rados = dlopen("librados.so.2", RTLD_NOW | RTLD_LOCAL);
    void *rbd = rados ? dlopen("librbd.so.1", RTLD_NOW | RTLD_LOCAL) : NULL;
    const char *missing = NULL;

    if (!rbd) {
        snprintf(ceph_missing, sizeof ceph_missing, "%s", dlerror());
        return;
    }
#define X(fn)                                                               \
    if (!(ceph.fn = (__typeof__(fn) *)dlsym(rados, #fn)) && !missing) {     \
        missing = #fn;                                                      \
    }
    RADOS_FUNCTIONS(X)
#undef X
#define X(fn)                                                               \
    if (!(ceph.fn = (__typeof__(fn) *)dlsym(rbd, #fn)) && !missing) {       \
        missing = #fn;                                                      \
    }
    RBD_FUNCTIONS(X)
#undef X
    if (missing) {
        snprintf(ceph_missing, sizeof ceph_missing, "librbd or librados "
                 "lacks %s", missing);
    }
}

/* Load the libraries once; messages name WHO. */
static int need_ceph(const char *who)
{
    pthread_once(&ceph_once, ceph_load);
    if (ceph_missing[0]) {
        return vimg_internal_error(ENOTSUP, "%s: rbd: images need librbd "
                                   "and librados (Debian: librbd1): %s",
                                   who, ceph_missing);
    }
    return 0;
}

struct extent {
    uint64_t start, end;
};

/* Allocated extents of [start, end), sorted and merged. */
struct bs_cache {
    uint64_t start, end;
    struct extent *ext;
    size_t n, cap;
};

struct rbd_state {
    rados_t cluster;
    rados_ioctx_t ioctx;
    rbd_image_t image;
    bool connected, have_ioctx;
    uint64_t object_size;
    uint64_t header;           /* bytes before the guest's (librbd's LUKS) */
    pthread_mutex_t lock;      /* size changes and the block-status cache */
    _Atomic uint64_t size;
    uint64_t generation;       /* bumped by every change (under lock) */
    struct bs_cache cache;     /* valid when cache.end > cache.start */
    _Atomic bool no_diff;      /* diff_iterate2 failed once: all is data */
};

/* QEMU's rbd blockdev keys for an image librbd encrypts ("file." ones
 * under a format: --image-opts driver=rbd,...,encrypt.format=luks). */
static const struct vimg_opt_desc rbd_runtime_opts[] = {
    { "encrypt.format", VIMG_OPT_STRING, "luks or luks2: librbd decrypts" },
    { "encrypt.key-secret", VIMG_OPT_STRING, "ID of the LUKS passphrase" },
    { "key-secret", VIMG_OPT_STRING, "ID of the cephx key (its bytes)" },
    { NULL, 0, NULL },
};

static const struct vimg_opt_desc rbd_create_opts[] = {
    { "cluster_size", VIMG_OPT_SIZE, "RBD object size" },
    /* In the order of QEMU's rbd create options. */
    { "encrypt.format", VIMG_OPT_STRING, "luks or luks2: librbd encrypts" },
    { "encrypt.cipher-alg", VIMG_OPT_STRING, "aes-128 or aes-256 (default)" },
    { "encrypt.key-secret", VIMG_OPT_STRING, "ID of the LUKS passphrase" },
    { NULL, 0, NULL },
};

/* librbd and librados return -errno. */
static int rbd_err(struct vimg_image *img, int r, const char *what)
{
    int e = r < 0 ? -r : EIO;
    return vimg_internal_img_error(img, e, "%s: %s", what, strerror(e));
}

static void disconnect(struct rbd_state *s)
{
    if (s->have_ioctx) {
        ceph.rados_ioctx_destroy(s->ioctx);
        s->have_ioctx = false;
    }
    if (s->connected) {
        ceph.rados_shutdown(s->cluster);
        s->connected = false;
    }
}

/* Reach the cluster and the pool (and namespace) that N names, as QEMU's
 * qemu_rbd_connect: the configuration file (or Ceph's default search),
 * the cache mode, then the name's options, which may override it, then
 * the cephx KEY (base64; NULL: Ceph's keyring), kept out of the name and
 * out of every message. Messages name WHO. */
static int connect_pool(struct rbd_state *s, const struct vimg_rbd_name *n,
                        const char *who, bool nocache, const char *key)
{
    int r = need_ceph(who);

    if (r < 0) {
        return r;
    }
    r = ceph.rados_create(&s->cluster, n->user);

    if (r < 0) {
        return vimg_internal_error(-r, "%s: cannot create a Ceph client: %s",
                                   who, strerror(-r));
    }
    s->connected = true;
    r = ceph.rados_conf_read_file(s->cluster, n->conf);
    if (r < 0 && n->conf) {
        return vimg_internal_error(-r, "%s: cannot read the Ceph "
                                   "configuration %s: %s", who, n->conf,
                                   strerror(-r));
    }
    /* Without conf= a missing default file is no error: the options may
     * name the monitors (mon_host=...). */
    if (nocache && (r = ceph.rados_conf_set(s->cluster, "rbd_cache",
                                       "false")) < 0) {
        return vimg_internal_error(-r, "%s: cannot turn the RBD cache off: "
                                   "%s", who, strerror(-r));
    }
    for (size_t i = 0; i < n->n_opts; i++) {
        r = ceph.rados_conf_set(s->cluster, n->keys[i], n->values[i]);
        if (r < 0) {
            return vimg_internal_error(-r, "%s: Ceph option %s=%s: %s", who,
                                       n->keys[i], n->values[i],
                                       r == -ENOENT ? "no such option"
                                                    : strerror(-r));
        }
    }
    if (key && (r = ceph.rados_conf_set(s->cluster, "key", key)) < 0) {
        return vimg_internal_error(-r, "%s: cannot use the cephx key of "
                                   "key-secret: %s", who, strerror(-r));
    }
    r = ceph.rados_connect(s->cluster);
    if (r < 0) {
        /* A refused key ends in a timeout: say which key was tried. */
        return vimg_internal_error(-r, "%s: cannot connect to the Ceph "
                                   "cluster%s: %s", who,
                                   key ? " with the cephx key of key-secret"
                                       : "",
                                   strerror(-r));
    }
    r = ceph.rados_ioctx_create(s->cluster, n->pool, &s->ioctx);
    if (r < 0) {
        return vimg_internal_error(-r, "%s: cannot open pool '%s': %s", who,
                                   n->pool, strerror(-r));
    }
    s->have_ioctx = true;
    ceph.rados_ioctx_set_namespace(s->ioctx, n->nspace);
    return 0;
}

/* The file protocol's "write" lock, for a cluster: a writer (a running
 * VM, qemu-io, rbd map) watches the image's header, and librbd's
 * exclusive lock only takes turns between writers, never refuses one.
 * Our own open is the one watcher expected; readers set up no watch. */
static int refuse_other_writers(struct vimg_image *img, struct rbd_state *s)
{
    rbd_image_watcher_t w[4];
    size_t n = sizeof w / sizeof w[0];
    int r = ceph.rbd_watchers_list(s->image, w, &n);

    if (r == -ERANGE) {
        n = SIZE_MAX;
    } else if (r < 0) {
        return rbd_err(img, r, "cannot list the image's watchers");
    } else {
        ceph.rbd_watchers_list_cleanup(w, n);
    }
    if (n > 1) {
        return vimg_internal_img_error(img, EAGAIN, "Failed to get \"write\" "
                                       "lock: another client has the image "
                                       "open for writing");
    }
    return 0;
}

/* Load the LUKS header (encrypt.format, encrypt.key-secret) as QEMU does:
 * librbd then decrypts and encrypts every request, and sizes and offsets
 * are the guest's, past the header. */
static int load_encryption(struct vimg_image *img, struct rbd_state *s,
                           const struct vimg_opts *opts)
{
    const char *format = opts ? vimg_internal_opts_get(opts, "encrypt.format",
                                                       NULL)
                              : NULL;
    const char *id = opts ? vimg_internal_opts_get(opts, "encrypt.key-secret",
                                                   NULL)
                          : NULL;
    const uint8_t *pass;
    size_t pass_len;
    int r;

    if (!format) {
        return id ? vimg_internal_img_error(img, EINVAL, "encrypt.key-secret "
                                            "needs encrypt.format")
                  : 0;
    }
    bool luks2 = strcmp(format, "luks2") == 0;
    if (!luks2 && strcmp(format, "luks") != 0) {
        return vimg_internal_img_error(img, EINVAL, "encrypt.format '%s' is "
                                       "not luks or luks2", format);
    }
    if (!id) {
        return vimg_internal_img_error(img, ENOKEY, "image is encrypted; "
                                       "its passphrase is needed "
                                       "(encrypt.key-secret=ID)");
    }
    if ((r = vimg_internal_secret_find(img->params.secrets,
                                       img->params.n_secrets, id,
                                       img->filename, &pass, &pass_len)) < 0) {
        return r;
    }
    /* The luks1 and luks2 option structures are the same. */
    rbd_encryption_luks1_format_options_t o = {
        .passphrase = (const char *)pass, .passphrase_size = pass_len,
    };
    r = ceph.rbd_encryption_load(s->image, luks2
                                               ? RBD_ENCRYPTION_FORMAT_LUKS2
                                               : RBD_ENCRYPTION_FORMAT_LUKS1,
                                 &o, sizeof o);
    if (r == -EPERM) {
        return vimg_internal_img_error(img, EPERM, "Invalid password, cannot "
                                       "unlock any keyslot");
    }
    if (r < 0) {
        return rbd_err(img, r, luks2 ? "cannot load its LUKS2 header"
                                     : "cannot load its LUKS header");
    }
    /* librbd 16's diff_iterate2 does not move its offsets past the header:
     * block status would put the guest's data in the wrong place, so an
     * encrypted image is all data (convert still finds its zeros). */
    atomic_store(&s->no_diff, true);
    /* Nor do unwritten bytes read as zeros: librbd 16 decrypts the zeros
     * of the objects' unwritten parts, so convert must write the guest's
     * zeros. */
    img->no_zero_init = true;
    return 0;
}

static int stat_image(struct vimg_image *img, struct rbd_state *s,
                      rbd_image_info_t *info)
{
    int r = ceph.rbd_stat(s->image, info, sizeof *info);
    return r < 0 ? rbd_err(img, r, "cannot read the image's size") : 0;
}

/* The cephx key that key-secret names, as QEMU's rbd driver: the secret's
 * bytes, which Ceph takes in base64 (*KEY NULL without key-secret; free
 * it with vimg_internal_secure_free). */
static int cephx_key(struct vimg_image *img, const struct vimg_opts *opts,
                     char **key)
{
    const char *id = opts ? vimg_internal_opts_get(opts, "key-secret", NULL)
                          : NULL;
    const uint8_t *data;
    size_t len;
    int r;

    *key = NULL;
    if (!id) {
        return 0;
    }
    if ((r = vimg_internal_secret_find(img->params.secrets,
                                       img->params.n_secrets, id,
                                       img->filename, &data, &len)) < 0) {
        return r;
    }
    if (!(*key = vimg_internal_secure_alloc(BASE64_LEN(len) + 1))) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    base64_encode(data, len, *key);
    return 0;
}

static int rbd_open_img(struct vimg_image *img, const struct vimg_opts *opts)
{
    struct rbd_state *s = img->opaque;
    struct vimg_rbd_name n;
    char *key;
    rbd_image_info_t info;
    int r;

    pthread_mutex_init(&s->lock, NULL);
    if ((r = vimg_internal_rbd_parse(img->filename, &n)) < 0) {
        goto fail;
    }
    if (n.snap && img->writable) {
        r = vimg_internal_img_error(img, EROFS, "snapshot '%s' is read-only",
                                    n.snap);
        goto fail;
    }
    if ((r = cephx_key(img, opts, &key)) < 0) {
        goto fail;
    }
    /* librbd's cache only copies what a reader reads once (convert's
     * source reads half again as fast without it); writers keep it unless
     * -t none, as in QEMU. */
    r = connect_pool(s, &n, img->filename,
                     !img->writable || (img->params.flags & VIMG_OPEN_NOCACHE),
                     key);
    vimg_internal_secure_free(key, key ? strlen(key) + 1 : 0);
    if (r < 0) {
        goto fail;
    }
    /* A reader takes no exclusive lock and sets up no watch for
     * changes (rbd_open_read_only). */
    r = img->writable ? ceph.rbd_open(s->ioctx, n.image, &s->image, NULL)
                      : ceph.rbd_open_read_only(s->ioctx, n.image, &s->image,
                                           n.snap);
    if (r < 0) {
        if (r == -ENOENT && n.snap) {
            r = vimg_internal_img_error(img, ENOENT, "no image '%s' with a "
                                        "snapshot '%s' in pool '%s'",
                                        n.image, n.snap, n.pool);
        } else if (r == -ENOENT) {
            r = vimg_internal_img_error(img, ENOENT, "no image '%s' in pool "
                                        "'%s'", n.image, n.pool);
        } else {
            r = rbd_err(img, r, "cannot open the image");
        }
        goto fail;
    }
    if (img->writable && !(img->params.flags & VIMG_OPEN_NO_LOCK) &&
        (r = refuse_other_writers(img, s)) < 0) {
        ceph.rbd_close(s->image);
        goto fail;
    }
    uint64_t raw = 0;
    if ((r = stat_image(img, s, &info)) < 0 ||
        (raw = info.size, (r = load_encryption(img, s, opts)) < 0) ||
        (r = stat_image(img, s, &info)) < 0) {
        ceph.rbd_close(s->image);
        goto fail;
    }
    /* With a LUKS header loaded librbd shows the guest's size, but its
     * rbd_resize (librbd 16) still takes the size of the whole image. */
    s->header = raw - info.size;
    atomic_store(&s->size, info.size);
    img->size = info.size;
    s->object_size = info.obj_size;
    vimg_internal_rbd_name_free(&n);
    return 0;

fail:
    vimg_internal_rbd_name_free(&n);
    disconnect(s);
    pthread_mutex_destroy(&s->lock);
    return r;
}

static int rbd_close_img(struct vimg_image *img)
{
    struct rbd_state *s = img->opaque;
    /* Closing writes out librbd's cache, whatever the cache mode. */
    int r = ceph.rbd_close(s->image);

    if (r < 0) {
        r = rbd_err(img, r, "close");
    }
    disconnect(s);
    free(s->cache.ext);
    pthread_mutex_destroy(&s->lock);
    return r;
}

/* The image changed: the cached block status goes. */
static void changed(struct rbd_state *s)
{
    pthread_mutex_lock(&s->lock);
    s->generation++;
    s->cache.start = s->cache.end = 0;
    pthread_mutex_unlock(&s->lock);
}

static int rbd_pread_img(struct vimg_image *img, void *buf, uint64_t count,
                         uint64_t offset)
{
    struct rbd_state *s = img->opaque;
    uint64_t size = atomic_load(&s->size);

    /* Past the end reads as zeros, as for any protocol. */
    if (offset + count > size) {
        uint64_t keep = offset < size ? size - offset : 0;
        memset((char *)buf + keep, 0, count - keep);
        count = keep;
    }
    for (uint64_t at = 0; at < count;) {
        ssize_t n = ceph.rbd_read2(s->image, offset + at,
                              MIN(count - at, MAX_NOPAYLOAD),
                              (char *)buf + at, 0);
        if (n <= 0) {
            return rbd_err(img, n == 0 ? -EIO : (int)n, "read");
        }
        at += (uint64_t)n;
    }
    return 0;
}

/* Formats append to their file: grow the image to END first, as QEMU's
 * rbd driver does, since librbd refuses writes past the end. */
static int grow(struct vimg_image *img, uint64_t end)
{
    struct rbd_state *s = img->opaque;
    int r = 0;

    if (end <= atomic_load(&s->size)) {
        return 0;
    }
    pthread_mutex_lock(&s->lock);
    if (end > atomic_load(&s->size)) {
        r = ceph.rbd_resize(s->image, end + s->header);
        if (r == 0) {
            atomic_store(&s->size, end);
            __atomic_store_n(&img->size, end, __ATOMIC_RELAXED);
            s->generation++;
            s->cache.start = s->cache.end = 0;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return r < 0 ? rbd_err(img, r, "cannot grow the image") : 0;
}

static int rbd_flush_img(struct vimg_image *img)
{
    struct rbd_state *s = img->opaque;
    int r = ceph.rbd_flush(s->image);
    return r < 0 ? rbd_err(img, r, "flush") : 0;
}

static int rbd_pwrite_img(struct vimg_image *img, const void *buf,
                          uint64_t count, uint64_t offset, unsigned flags)
{
    struct rbd_state *s = img->opaque;
    int r = grow(img, offset + count);

    for (uint64_t at = 0; r == 0 && at < count;) {
        ssize_t n = ceph.rbd_write2(s->image, offset + at,
                               MIN(count - at, MAX_NOPAYLOAD),
                               (const char *)buf + at, 0);
        if (n <= 0) {
            r = rbd_err(img, n == 0 ? -EIO : (int)n, "write");
        } else {
            at += (uint64_t)n;
        }
    }
    changed(s);
    if (r == 0 && (flags & VIMG_WRITE_FUA)) {
        r = rbd_flush_img(img);
    }
    return r;
}

static int rbd_zero_img(struct vimg_image *img, uint64_t offset,
                        uint64_t count, unsigned flags)
{
    struct rbd_state *s = img->opaque;
    /* Without MAY_UNMAP the zeros must take space (QEMU's rule). */
    int zero_flags = flags & VIMG_ZERO_MAY_UNMAP
                         ? 0
                         : RBD_WRITE_ZEROES_FLAG_THICK_PROVISION;

    if (zero_flags && (flags & VIMG_ZERO_NO_FALLBACK)) {
        return -ENOTSUP; /* writes every byte: not a fast zero */
    }
    int r = grow(img, offset + count);
    for (uint64_t at = 0; r == 0 && at < count;) {
        uint64_t len = MIN(count - at, MAX_NOPAYLOAD);
        ssize_t n = ceph.rbd_write_zeroes(s->image, offset + at, len,
                                     zero_flags, 0);
        if (n < 0) {
            r = rbd_err(img, (int)n, "write zeroes");
        }
        at += len;
    }
    changed(s);
    return r;
}

static int rbd_discard_img(struct vimg_image *img, uint64_t offset,
                           uint64_t count)
{
    struct rbd_state *s = img->opaque;
    uint64_t size = atomic_load(&s->size);
    int r = 0;

    if (offset >= size) {
        return 0;
    }
    count = MIN(count, size - offset);
    for (uint64_t at = 0; r == 0 && at < count; at += MAX_NOPAYLOAD) {
        int n = ceph.rbd_discard(s->image, offset + at,
                            MIN(count - at, MAX_NOPAYLOAD));
        if (n < 0) {
            r = rbd_err(img, n, "discard");
        }
    }
    changed(s);
    return r;
}

static int rbd_truncate_img(struct vimg_image *img, uint64_t size,
                            unsigned flags, enum vimg_prealloc prealloc)
{
    struct rbd_state *s = img->opaque;
    uint64_t old = atomic_load(&s->size);
    int r;

    (void)flags;
    if (prealloc == VIMG_PREALLOC_METADATA) {
        return vimg_internal_img_error(img, ENOTSUP, "preallocation mode "
                                       "'metadata' is not supported by rbd");
    }
    pthread_mutex_lock(&s->lock);
    r = ceph.rbd_resize(s->image, size + s->header);
    if (r == 0) {
        atomic_store(&s->size, size);
        img->size = size;
        s->generation++;
        s->cache.start = s->cache.end = 0;
    }
    pthread_mutex_unlock(&s->lock);
    if (r < 0) {
        return rbd_err(img, r, "resize");
    }
    /* RBD reserves nothing: falloc and full both write the new part out
     * (thick-provisioned zeros). */
    if (size > old && prealloc != VIMG_PREALLOC_OFF) {
        r = rbd_zero_img(img, old, size - old, 0);
    }
    return r;
}

/* ---- Block status ------------------------------------------------------ */

static int add_extent(uint64_t off, size_t len, int exists, void *opaque)
{
    struct bs_cache *c = opaque;

    if (!exists || len == 0) {
        return 0;
    }
    if (c->n && c->ext[c->n - 1].end >= off) {
        c->ext[c->n - 1].end = MAX(c->ext[c->n - 1].end, off + len);
        return 0;
    }
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        struct extent *e = realloc(c->ext, cap * sizeof *e);
        if (!e) {
            return -ENOMEM;
        }
        c->ext = e;
        c->cap = cap;
    }
    c->ext[c->n].start = off;
    c->ext[c->n].end = off + len;
    c->n++;
    return 0;
}

/* Fill C with the allocated extents of the window holding OFFSET. */
static int read_window(struct vimg_image *img, uint64_t offset, uint64_t size,
                       struct bs_cache *c)
{
    struct rbd_state *s = img->opaque;
    uint64_t features = 0, flags = 0;
    bool whole = ceph.rbd_get_features(s->image, &features) == 0 &&
                 (features & RBD_FEATURE_FAST_DIFF) &&
                 ceph.rbd_get_flags(s->image, &flags) == 0 &&
                 !(flags & RBD_FLAG_FAST_DIFF_INVALID);
    uint64_t objects = DIV_ROUND_UP(size, s->object_size);
    uint64_t span = s->object_size *
                    (whole ? MAX(WINDOW_OBJECTS,
                                 DIV_ROUND_UP(objects, WINDOWS))
                           : WINDOW_OBJECTS_SLOW);

    c->start = ROUND_DOWN(offset, s->object_size);
    c->end = MIN(size, c->start + span);
    c->n = 0;
    /* Clones: the parent's data counts as allocated (include_parent). */
    int r = ceph.rbd_diff_iterate2(s->image, NULL, c->start, c->end - c->start,
                              1, whole, add_extent, c);
    if (r == -ENOMEM) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    return r;
}

/* Answer from C, which covers OFFSET. */
static int lookup(const struct bs_cache *c, uint64_t offset, uint64_t count,
                  uint64_t *pnum)
{
    size_t lo = 0, hi = c->n;
    uint64_t end = MIN(offset + count, c->end);

    while (lo < hi) { /* the first extent ending after OFFSET */
        size_t mid = lo + (hi - lo) / 2;
        if (c->ext[mid].end <= offset) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo < c->n && c->ext[lo].start <= offset) {
        *pnum = MIN(c->ext[lo].end, end) - offset;
        return VIMG_BS_DATA;
    }
    *pnum = (lo < c->n ? MIN(c->ext[lo].start, end) : end) - offset;
    return VIMG_BS_ZERO;
}

static int rbd_block_status_img(struct vimg_image *img, uint64_t offset,
                                uint64_t count, uint64_t *pnum,
                                uint64_t *map, const char **file)
{
    struct rbd_state *s = img->opaque;
    uint64_t size = atomic_load(&s->size);
    int r;

    *map = offset;
    *file = img->filename;
    *pnum = count;
    if (offset >= size) {
        return VIMG_BS_ZERO | VIMG_BS_OFFSET_VALID;
    }
    if (atomic_load(&s->no_diff)) {
        *pnum = MIN(count, size - offset);
        return VIMG_BS_DATA | VIMG_BS_OFFSET_VALID;
    }
    pthread_mutex_lock(&s->lock);
    if (offset >= s->cache.start && offset < s->cache.end) {
        r = lookup(&s->cache, offset, count, pnum);
        pthread_mutex_unlock(&s->lock);
        return r | VIMG_BS_OFFSET_VALID;
    }
    uint64_t generation = s->generation;
    pthread_mutex_unlock(&s->lock);

    /* Asked without the lock, so writers need not wait for it; kept only
     * if nothing changed meanwhile. */
    struct bs_cache c = { 0 };
    r = read_window(img, offset, size, &c);
    if (r == -ENOMEM) {
        free(c.ext);
        return r;
    }
    if (r < 0) {
        free(c.ext);
        atomic_store(&s->no_diff, true);
        *pnum = MIN(count, size - offset);
        return VIMG_BS_DATA | VIMG_BS_OFFSET_VALID;
    }
    r = lookup(&c, offset, count, pnum);
    pthread_mutex_lock(&s->lock);
    if (s->generation == generation) {
        free(s->cache.ext);
        s->cache = c;
        c.ext = NULL;
    }
    pthread_mutex_unlock(&s->lock);
    free(c.ext);
    return r | VIMG_BS_OFFSET_VALID;
}

/* Disk usage of a cluster image is not known (qemu-img: "unavailable"). */
static int64_t rbd_allocated_size(struct vimg_image *img)
{
    (void)img;
    return -ENOTSUP;
}

/* The object size, as qemu-img shows it ("cluster-size"). */
static int rbd_get_info(struct vimg_image *img, struct vimg_value *info)
{
    struct rbd_state *s = img->opaque;
    return vimg_internal_value_set_int(info, "cluster-size",
                                       (int64_t)s->object_size);
}

/* ---- Images made by convert and create ---------------------------------- */

/* Object size from -o cluster_size, as QEMU checks it. 0: the cluster's
 * default. */
static int object_order(const char *name, const struct vimg_opts *opts,
                        uint64_t *order)
{
    uint64_t size;
    int r = vimg_internal_opts_get_size(opts, "cluster_size", 0, &size);

    *order = 0;
    if (r < 0 || size == 0) {
        return r;
    }
    if (size & (size - 1)) {
        return vimg_internal_error(EINVAL, "%s: cluster_size (the RBD "
                                   "object size) must be a power of 2",
                                   name);
    }
    *order = (uint64_t)__builtin_ctzll(size);
    if (*order < MIN_ORDER || *order > MAX_ORDER) {
        return vimg_internal_error(EINVAL, "%s: cluster_size (the RBD "
                                   "object size) must lie between 4 KiB and "
                                   "32 MiB", name);
    }
    return 0;
}

/* A hidden name beside IMAGE for the image being made. */
static char *temp_image_name(const char *image)
{
    unsigned rnd;
    char *s;

    if (getrandom(&rnd, sizeof rnd, GRND_NONBLOCK) != sizeof rnd) {
        rnd = (unsigned)getpid() * 2654435761u ^ (unsigned)time(NULL);
    }
    return asprintf(&s, ".%s.vimg-%08x", image, rnd) < 0 ? NULL : s;
}

/* What -o encrypt.* asks of a new image, as QEMU's rbd create options. */
struct new_encryption {
    bool on;
    rbd_encryption_format_t format;
    rbd_encryption_luks1_format_options_t o; /* luks2's is the same */
};

/* Check the encryption options of C before anything is made, so that a
 * mistake leaves no image behind. */
static int encryption_opts(const struct vimg_create_ctx *c,
                           struct new_encryption *e)
{
    const char *name = c->filename;
    const char *format = vimg_internal_opts_get(c->opts, "encrypt.format",
                                                NULL);
    const char *id = vimg_internal_opts_get(c->opts, "encrypt.key-secret",
                                            NULL);
    const char *alg = vimg_internal_opts_get(c->opts, "encrypt.cipher-alg",
                                             NULL);
    const uint8_t *pass;
    size_t pass_len;
    int r;

    memset(e, 0, sizeof *e);
    if (!format) {
        return id || alg ? vimg_internal_error(EINVAL, "%s: encrypt.%s "
                                               "needs encrypt.format", name,
                                               id ? "key-secret"
                                                  : "cipher-alg")
                         : 0;
    }
    if (strcmp(format, "luks") && strcmp(format, "luks2")) {
        return vimg_internal_error(EINVAL, "%s: encrypt.format '%s' is not "
                                   "luks or luks2", name, format);
    }
    e->format = strcmp(format, "luks2") ? RBD_ENCRYPTION_FORMAT_LUKS1
                                        : RBD_ENCRYPTION_FORMAT_LUKS2;
    /* QEMU's default cipher for rbd's LUKS. */
    if (!alg || !strcmp(alg, "aes-256")) {
        e->o.alg = RBD_ENCRYPTION_ALGORITHM_AES256;
    } else if (!strcmp(alg, "aes-128")) {
        e->o.alg = RBD_ENCRYPTION_ALGORITHM_AES128;
    } else {
        return vimg_internal_error(EINVAL, "%s: encrypt.cipher-alg '%s' is "
                                   "not aes-128 or aes-256 (what librbd "
                                   "encrypts with)", name, alg);
    }
    if (!id) {
        return vimg_internal_error(EINVAL, "%s: an encrypted image needs a "
                                   "passphrase (encrypt.key-secret=ID)",
                                   name);
    }
    if ((r = vimg_internal_secret_find(c->secrets, c->n_secrets, id, name,
                                       &pass, &pass_len)) < 0) {
        return r;
    }
    e->o.passphrase = (const char *)pass;
    e->o.passphrase_size = pass_len;
    e->on = true;
    return 0;
}

/* Write the LUKS header of E into the new image HIDDEN, as QEMU's
 * qemu_rbd_do_create: librbd makes the header; the format then sizes
 * the image for the guest. */
static int format_encryption(struct rbd_state *s, const char *hidden,
                             const struct new_encryption *e, const char *name)
{
    rbd_image_t image;
    int r = ceph.rbd_open(s->ioctx, hidden, &image, NULL);

    if (r < 0) {
        return vimg_internal_error(-r, "%s: cannot open the new image: %s",
                                   name, strerror(-r));
    }
    rbd_encryption_luks1_format_options_t o = e->o;
    rbd_image_info_t info;
    r = ceph.rbd_encryption_format(image, e->format, &o, sizeof o);
    /* Empty for the guest, as every new image: formats that append start
     * at its end. librbd 16 resizes the whole image, header included. */
    if (r == 0 && (r = ceph.rbd_stat(image, &info, sizeof info)) == 0) {
        r = ceph.rbd_resize(image, ENCRYPT_ROOM - info.size);
    }
    int r2 = ceph.rbd_close(image);
    if (r == 0) {
        r = r2;
    }
    if (r < 0) {
        return vimg_internal_error(-r, "%s: cannot write the LUKS header: "
                                   "%s", name, strerror(-r));
    }
    return 0;
}

static int rbd_create_image(const struct vimg_create_ctx *c, char **temp)
{
    const char *name = c->filename;
    struct rbd_state s = { 0 };
    struct vimg_rbd_name n;
    struct new_encryption enc;
    rbd_image_options_t io = NULL;
    rbd_image_t image;
    uint64_t order;
    char *hidden = NULL;
    int r;

    *temp = NULL;
    if ((r = vimg_internal_rbd_parse(name, &n)) < 0 ||
        (r = object_order(name, c->opts, &order)) < 0 ||
        (r = encryption_opts(c, &enc)) < 0) {
        goto out;
    }
    if (n.snap) {
        r = vimg_internal_error(EINVAL, "%s: cannot create a snapshot; name "
                                "an image", name);
        goto out;
    }
    if ((r = connect_pool(&s, &n, name, false, NULL)) < 0) {
        goto out;
    }
    /* As qemu-img: an image of that name is not replaced. */
    r = ceph.rbd_open_read_only(s.ioctx, n.image, &image, NULL);
    if (r == 0) {
        ceph.rbd_close(image);
        r = vimg_internal_error(EEXIST, "%s: the image exists already (-n "
                                "writes into it)", name);
        goto out;
    }
    if (r != -ENOENT) {
        r = vimg_internal_error(-r, "%s: %s", name, strerror(-r));
        goto out;
    }
    if (!(hidden = temp_image_name(n.image))) {
        r = vimg_internal_error(ENOMEM, "out of memory");
        goto out;
    }
    ceph.rbd_image_options_create(&io);
    if (order) {
        ceph.rbd_image_options_set_uint64(io, RBD_IMAGE_OPTION_ORDER, order);
    }
    /* Empty: the format sizes it (raw truncates, qcow2 appends). An
     * encrypted one first has room for librbd's header, then is emptied
     * for the guest (format_encryption). */
    r = ceph.rbd_create4(s.ioctx, hidden, enc.on ? ENCRYPT_ROOM : 0, io);
    ceph.rbd_image_options_destroy(io);
    if (r < 0) {
        r = vimg_internal_error(-r, "%s: cannot create the image: %s", name,
                                strerror(-r));
        goto out;
    }
    if (enc.on && (r = format_encryption(&s, hidden, &enc, name)) < 0) {
        ceph.rbd_remove(s.ioctx, hidden);
        goto out;
    }
    free(n.image);
    n.image = hidden;
    hidden = NULL;
    if (!(*temp = vimg_internal_rbd_format(&n))) {
        ceph.rbd_remove(s.ioctx, n.image);
        r = vimg_internal_error(ENOMEM, "out of memory");
    }

out:
    free(hidden);
    disconnect(&s);
    vimg_internal_rbd_name_free(&n);
    return r;
}

/* Rename TEMP to NAME's image, or remove TEMP when NAME is NULL. */
static int finish_image(const char *temp, const char *name)
{
    struct rbd_state s = { 0 };
    struct vimg_rbd_name t, n = { 0 };
    int r;

    if ((r = vimg_internal_rbd_parse(temp, &t)) < 0 ||
        (name && (r = vimg_internal_rbd_parse(name, &n)) < 0) ||
        (r = connect_pool(&s, &t, name ? name : temp, false, NULL)) < 0) {
        goto out;
    }
    if (!name) {
        r = ceph.rbd_remove(s.ioctx, t.image);
        if (r < 0) {
            r = vimg_internal_error(-r, "%s: cannot remove it: %s", temp,
                                    strerror(-r));
        }
    } else if ((r = ceph.rbd_rename(s.ioctx, t.image, n.image)) < 0) {
        r = vimg_internal_error(-r, "%s: cannot name the new image so%s: %s",
                                name, r == -EEXIST ? " (another client "
                                                     "created one "
                                                     "meanwhile)"
                                                   : "",
                                strerror(-r));
    }

out:
    disconnect(&s);
    vimg_internal_rbd_name_free(&t);
    vimg_internal_rbd_name_free(&n);
    return r;
}

static int rbd_publish_image(const char *temp, const char *name)
{
    return finish_image(temp, name);
}

static int rbd_remove_image(const char *temp)
{
    return finish_image(temp, NULL);
}

const struct vimg_driver vimg_driver_rbd = {
    .name = "rbd",
    .kind = VIMG_DRIVER_PROTOCOL,
    .instance_size = sizeof(struct rbd_state),
    .thread_safe = true,
    .has_zero_init = true,
    .unordered_writes = true,
    .create_opts = rbd_create_opts,
    .runtime_opts = rbd_runtime_opts,
    .open = rbd_open_img,
    .close = rbd_close_img,
    .pread = rbd_pread_img,
    .pwrite = rbd_pwrite_img,
    .zero = rbd_zero_img,
    .discard = rbd_discard_img,
    .flush = rbd_flush_img,
    .truncate = rbd_truncate_img,
    .block_status = rbd_block_status_img,
    .allocated_size = rbd_allocated_size,
    .get_info = rbd_get_info,
    .create_image = rbd_create_image,
    .publish_image = rbd_publish_image,
    .remove_image = rbd_remove_image,
};
