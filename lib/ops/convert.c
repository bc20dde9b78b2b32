/* The copy engine, shaped like nbdcopy and qemu-img convert: one dispatcher
 * (under the job lock) walks the source's block status, merging each zero
 * run into one request and cutting data runs into buffer-sized units;
 * workers read and zero-test units in parallel and write them, in offset
 * order unless out_of_order allows otherwise. Memory is workers x buffer,
 * whatever the image size.
 *
 * The source is one disk made of one or more images laid end to end
 * (qemu-img convert with several sources), of which a window is copied
 * (dd's skip= and count=). Positions below are in the target unless they
 * say otherwise; a block status extent never crosses from one source
 * image into the next, a unit of data may (compressed blocks). */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../common/iszero.h"
#include "../../common/ratelimit.h"
#include "../../common/rounding.h"
#include "../internal.h"
#include "../protocols/file-lock.h"

#define BUFFER_SIZE (2u << 20)
/* Short data extents (compressed clusters) are merged into units of up to
 * this size. Not a whole buffer: measured, reading zstd qcow2 with 2 MiB
 * units took twice as long as with 256 KiB ones, the page-cache copy of
 * the larger writes costing much more on the test machine. */
#define MERGED_UNIT (256u << 10)

#define DEFAULT_WORKERS 8
#define MAX_WORKERS 64
#define SECTOR 512

struct unit {
    uint64_t offset, length;
    bool zero;        /* the source reads as zeros here */
    uint64_t ticket;  /* write order */
    /* -C: the file protocol image holding this unit's data as it is,
     * and where, or NULL. */
    struct vimg_image *from;
    uint64_t from_offset;
};

/* The block status of the source at the dispatcher's cursor. */
struct extent {
    uint64_t start, end;      /* in the target */
    unsigned flags;           /* VIMG_BS_* */
    struct vimg_image *from;  /* as unit.from, for the extent's start */
    uint64_t from_offset;
};

struct job {
    struct vimg_image *const *srcs;
    size_t n_srcs;
    uint64_t *starts;         /* source i begins at starts[i] of the
                                 concatenation; starts[n_srcs] ends it */
    uint64_t window;          /* the concatenation's offset copied to 0 */
    struct vimg_image *dst;
    const struct vimg_convert_params *p;
    uint64_t size;            /* bytes to copy */
    bool skip_zero;           /* target reads zeros where we write nothing */
    uint64_t unit;            /* -c: the target's compressed block size */
    bool offload;             /* -C and the target is a raw file */
    _Atomic bool offload_failed; /* the kernel refused once: stop asking */
    struct ratelimit rate;    /* -r */
    pthread_mutex_t lock;
    /* In-order writes: the worker holding ticket T waits on turn[T % n].
     * At most n tickets are outstanding (one per worker) and they are
     * consecutive from next_write, so each slot has at most one waiter and
     * a finished write wakes exactly the next writer, not every worker. */
    pthread_cond_t turn[MAX_WORKERS];
    int n;
    uint64_t pos;             /* dispatcher cursor */
    struct extent ext;        /* cached block status at pos */
    bool ext_valid;
    uint64_t next_ticket, next_write;
    uint64_t done;
    int error;                /* first -errno */
    char message[1024];
};

/* Wake every waiting writer (the job failed or a worker left). Called
 * with the lock held. */
static void wake_all(struct job *j)
{
    for (int i = 0; i < j->n; i++) {
        pthread_cond_broadcast(&j->turn[i]);
    }
}

static void fail(struct job *j, int r)
{
    pthread_mutex_lock(&j->lock);
    if (!j->error) {
        j->error = r < 0 ? r : -EIO;
        const char *m = vimg_get_error();
        snprintf(j->message, sizeof j->message, "%s",
                 m ? m : strerror(-j->error));
    }
    wake_all(j);
    pthread_mutex_unlock(&j->lock);
}

static void progress_locked(struct job *j, uint64_t n)
{
    j->done += n;
    if (j->p->progress) {
        j->p->progress(j->p->opaque, j->done, j->size);
    }
}

/* The source image holding byte V of the concatenation: the last one
 * starting at or before V (empty sources are passed over). */
static size_t source_at(const struct job *j, uint64_t v)
{
    size_t lo = 0, hi = j->n_srcs - 1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo + 1) / 2;
        if (j->starts[mid] <= v) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    return lo;
}

/* -C: the file protocol image that holds the data of extent E of SRC as
 * it is (its layer's own file), or NULL. */
static struct vimg_image *offload_source(struct vimg_image *src,
                                         const struct vimg_extent *e)
{
    struct vimg_image *layer = src;
    if ((e->flags & (VIMG_BS_DATA | VIMG_BS_ZERO | VIMG_BS_OFFSET_VALID)) !=
            (VIMG_BS_DATA | VIMG_BS_OFFSET_VALID) || !e->file) {
        return NULL;
    }
    for (int d = 0; d < e->depth && layer; d++) {
        layer = layer->backing;
    }
    if (!layer || !layer->file || layer->file->drv != &vimg_driver_file ||
        strcmp(layer->file->filename, e->file) != 0) {
        return NULL;
    }
    return layer->file;
}

/* Refresh the cached extent at j->pos. Called with the lock held. */
static int query_extent(struct job *j)
{
    uint64_t v = j->pos + j->window;
    size_t i = source_at(j, v);
    uint64_t count = MIN(j->size - j->pos, j->starts[i + 1] - v);
    struct vimg_extent e;
    int r = vimg_internal_block_status(j->srcs[i], v - j->starts[i], count,
                                       VIMG_BS_CHAIN, &e);
    if (r < 0) {
        if (!j->p->salvage) {
            return r;
        }
        /* --salvage: read it as data; the reads will say what is lost. */
        vimg_internal_error_clear();
        memset(&e, 0, sizeof e);
        e.flags = VIMG_BS_DATA;
        e.length = MIN(count, BUFFER_SIZE);
    }
    j->ext.start = j->pos;
    j->ext.end = j->pos + e.length;
    j->ext.flags = e.flags;
    j->ext.from = j->offload ? offload_source(j->srcs[i], &e) : NULL;
    j->ext.from_offset = e.file_offset;
    j->ext_valid = true;
    return 0;
}

/* Grow data unit U (ending at j->pos) over the data extents that follow,
 * up to MERGED_UNIT: formats report compressed clusters one extent each, and
 * a unit per 64 KiB cluster would cost a write, a turn and a wake-up per
 * cluster. An extent that is copied by the kernel (-C) or may be skipped
 * as zeros ends the unit. A failed query ends it too: the next dispatch
 * asks again and reports the error. Called with the lock held. */
static void extend_data_unit(struct job *j, struct unit *u)
{
    while (u->length < MERGED_UNIT && j->pos < j->size) {
        if (j->ext.end <= j->pos && query_extent(j) < 0) {
            vimg_internal_error_clear();
            j->ext_valid = false;
            return;
        }
        if (((j->ext.flags & VIMG_BS_ZERO) && j->p->min_sparse) ||
            j->ext.from) {
            return;
        }
        uint64_t n = MIN(j->ext.end - j->pos, MERGED_UNIT - u->length);
        u->length += n;
        j->pos += n;
    }
}

/* Next unit to act on, or false at the end. Zero runs that need no write
 * are consumed here without waking a worker. Called with the lock held. */
static bool dispatch(struct job *j, struct unit *u)
{
    while (j->pos < j->size && !j->error) {
        if (!j->ext_valid || j->ext.end <= j->pos) {
            int r = query_extent(j);
            if (r < 0) {
                const char *m = vimg_get_error();
                j->error = r;
                snprintf(j->message, sizeof j->message, "%s",
                         m ? m : strerror(-r));
                return false;
            }
        }
        uint64_t left = j->ext.end - j->pos;
        bool zero = (j->ext.flags & VIMG_BS_ZERO) && j->p->min_sparse;
        if (j->unit) {
            /* Compressed blocks: units start on a block and hold whole
             * blocks; a zero run shorter than a block is read as data. */
            uint64_t end = j->pos + left == j->size
                               ? j->size
                               : ROUND_DOWN(j->pos + left, j->unit);
            zero = zero && end > j->pos;
            left = zero ? end - j->pos : j->size - j->pos;
        }
        u->offset = j->pos;
        u->zero = zero;
        u->length = zero ? left : MIN(left, BUFFER_SIZE);
        u->from = zero ? NULL : j->ext.from;
        u->from_offset = j->ext.from_offset + (j->pos - j->ext.start);
        j->pos += u->length;
        if (!zero && !u->from && !j->unit) {
            extend_data_unit(j, u);
        }
        if (zero && j->skip_zero) {
            progress_locked(j, u->length);
            continue;
        }
        u->ticket = j->next_ticket++;
        return true;
    }
    return false;
}

/* --salvage: read source I at LOCAL (N bytes) a sector at a time, zeros
 * where a sector cannot be read, each one reported. */
static void salvage_read(struct job *j, size_t i, char *buf, uint64_t n,
                         uint64_t local)
{
    for (uint64_t off = 0; off < n; off += SECTOR) {
        uint64_t m = MIN(SECTOR, n - off);
        int r = vimg_internal_pread(j->srcs[i], buf + off, m, local + off);
        if (r < 0) {
            memset(buf + off, 0, m);
            if (j->p->read_error) {
                pthread_mutex_lock(&j->lock);
                j->p->read_error(j->p->opaque, i, local + off, -r);
                pthread_mutex_unlock(&j->lock);
            }
        }
        vimg_internal_error_clear();
    }
}

/* Read LEN bytes of the source at POS (in the target), across source
 * images where the range spans them. */
static int read_source(struct job *j, char *buf, uint64_t len, uint64_t pos)
{
    while (len > 0) {
        uint64_t v = pos + j->window;
        size_t i = source_at(j, v);
        uint64_t n = MIN(len, j->starts[i + 1] - v);
        uint64_t local = v - j->starts[i];
        int r = vimg_internal_pread(j->srcs[i], buf, n, local);
        if (r < 0) {
            if (!j->p->salvage) {
                return r;
            }
            vimg_internal_error_clear();
            salvage_read(j, i, buf, n, local);
        }
        buf += n;
        pos += n;
        len -= n;
    }
    return 0;
}

/* Write BUF (the source's bytes of U) honouring -S: a zero run of at
 * least min_sparse bytes, made of min_sparse-aligned blocks, is zeroed or
 * skipped; shorter zero runs are written with the data around them, so
 * they neither fragment the writes nor punch small holes. */
static int write_data(struct job *j, const struct unit *u, const char *buf)
{
    uint64_t s = j->p->min_sparse;
    uint64_t off = u->offset, end = u->offset + u->length;
    uint64_t pending = off; /* start of the data not yet written */
    int r;

    if (!s) {
        return vimg_internal_pwrite(j->dst, buf, u->length, off, 0);
    }
    while (off < end) {
        /* A run of s-aligned blocks that are all zero or all data. */
        uint64_t run_end = MIN(ROUND_DOWN(off, s) + s, end);
        bool zero = is_zero(buf + (off - u->offset), run_end - off);
        while (run_end < end) {
            uint64_t next = MIN(run_end + s, end);
            if (is_zero(buf + (run_end - u->offset), next - run_end) != zero) {
                break;
            }
            run_end = next;
        }
        if (zero && run_end - off >= s) {
            if (pending < off &&
                (r = vimg_internal_pwrite(j->dst, buf + (pending - u->offset),
                                          off - pending, pending, 0)) < 0) {
                return r;
            }
            if (!j->skip_zero &&
                (r = vimg_internal_zero(j->dst, off, run_end - off,
                                        VIMG_ZERO_MAY_UNMAP)) < 0) {
                return r;
            }
            pending = run_end;
        }
        off = run_end;
    }
    if (pending < end) {
        return vimg_internal_pwrite(j->dst, buf + (pending - u->offset),
                                    end - pending, pending, 0);
    }
    return 0;
}

/* -B: write only what differs from the target's backing image, in
 * min_sparse (or 64 KiB) pieces. */
static int write_differences(struct job *j, const struct unit *u,
                             const char *buf, char *base)
{
    uint64_t piece = j->p->min_sparse ? j->p->min_sparse : 65536;
    int r = vimg_internal_read_backing(j->dst, base, u->length, u->offset);
    if (r < 0) {
        return r;
    }
    for (uint64_t at = 0; at < u->length; at += piece) {
        uint64_t n = MIN(piece, u->length - at);
        if (memcmp(buf + at, base + at, n) == 0) {
            continue;
        }
        r = is_zero(buf + at, n)
                ? vimg_internal_zero(j->dst, u->offset + at, n, 0)
                : vimg_internal_pwrite(j->dst, buf + at, n, u->offset + at,
                                       0);
        if (r < 0) {
            return r;
        }
    }
    return 0;
}

/* A unit's blocks after compression: each block's length in OUT (at
 * block-sized slots), 0 for a block of zeros, -1 for one stored plainly. */
struct compressed {
    char *out;
    long len[BUFFER_SIZE / 512];
};

static int compress_unit(struct job *j, const struct unit *u, char *buf,
                         struct compressed *c)
{
    uint64_t unit = j->unit;
    for (uint64_t at = 0, i = 0; at < u->length; at += unit, i++) {
        uint64_t n = MIN(unit, u->length - at);
        if (n < unit) {
            memset(buf + at + n, 0, unit - n); /* the image's tail */
        }
        if (is_zero(buf + at, n)) {
            c->len[i] = 0;
            continue;
        }
        /* One byte less than a block, as QEMU: equal size is no gain. */
        long r = vimg_internal_compress_block(j->dst, buf + at,
                                              c->out + at, unit - 1);
        if (r < 0 && r != -ENOSPC) {
            if (!vimg_internal_error_set()) {
                vimg_internal_img_error(j->dst, (int)-r, "cannot compress "
                                        "the block at offset %llu",
                                        (unsigned long long)(u->offset +
                                                             at));
            }
            return (int)r;
        }
        c->len[i] = r < 0 ? -1 : r;
    }
    return 0;
}

static int write_compressed(struct job *j, const struct unit *u,
                            const char *buf, const struct compressed *c)
{
    uint64_t unit = j->unit;
    int r = 0;
    for (uint64_t at = 0, i = 0; r == 0 && at < u->length; at += unit, i++) {
        uint64_t n = MIN(unit, u->length - at);
        uint64_t end = u->offset + at + n;
        if (c->len[i] == 0) {
            r = j->skip_zero ? 0
                             : vimg_internal_zero(j->dst, u->offset + at, n,
                                                  VIMG_ZERO_MAY_UNMAP);
        } else if (n < unit && end < j->dst->size &&
                   j->p->target_is_new) {
            /* The source ends inside a block of a larger new target: the
             * block is stored whole, zero-padded (its compressed form was
             * made so), as the target reads zeros there anyway. */
            n = MIN(unit, j->dst->size - (u->offset + at));
            r = vimg_internal_write_block(j->dst, u->offset + at, buf + at,
                                          n, c->len[i] < 0 ? NULL
                                                           : c->out + at,
                                          c->len[i] < 0 ? 0
                                                        : (uint64_t)
                                                              c->len[i]);
        } else if (n < unit && end < j->dst->size) {
            /* ... of an existing target: only the source's bytes, plainly
             * (a stream format completes the block from what it holds). */
            r = vimg_internal_pwrite(j->dst, buf + at, n, u->offset + at, 0);
        } else {
            r = vimg_internal_write_block(j->dst, u->offset + at, buf + at,
                                          n, c->len[i] < 0 ? NULL
                                                           : c->out + at,
                                          c->len[i] < 0 ? 0
                                                        : (uint64_t)
                                                              c->len[i]);
        }
    }
    return r;
}

/* A raw image's layout is the guest's, so write order changes nothing on
 * disk where writes cost the same in any order (RBD objects) or where each
 * one waits for the device (O_DIRECT, -t none): there several writes in
 * flight are the whole speed-up, as with qemu-img -W. */
static bool raw_any_order(const struct vimg_image *dst)
{
    return dst->drv == &vimg_driver_raw && dst->file &&
           (dst->file->drv->unordered_writes ||
            (dst->file->params.flags & VIMG_OPEN_NOCACHE));
}

static int process(struct job *j, const struct unit *u, char *buf,
                   char *base, struct compressed *cbuf)
{
    bool any_order = j->p->out_of_order || raw_any_order(j->dst);
    bool in_order = !any_order || j->dst->ordered_compressed;
    int r = 0;

    bool offload = u->from && !atomic_load(&j->offload_failed);
    /* Zero units may be far longer than the buffer: they are never read
     * into it whole (the -B path below fills it piece by piece). A unit
     * the kernel copies is not read here at all. */
    if (!u->zero && !offload &&
        (r = read_source(j, buf, u->length, u->offset)) < 0) {
        return r;
    }
    /* Compression is the costly part: done here, on every worker, before
     * waiting for the turn to write. */
    if (j->unit && !u->zero && (r = compress_unit(j, u, buf, cbuf)) < 0) {
        return r;
    }
    if (in_order) {
        pthread_mutex_lock(&j->lock);
        while (j->next_write != u->ticket && !j->error) {
            pthread_cond_wait(&j->turn[u->ticket % (uint64_t)j->n],
                              &j->lock);
        }
        bool stop = j->error != 0;
        pthread_mutex_unlock(&j->lock);
        if (stop) {
            return 0; /* another worker failed: the job is over */
        }
    }
    if (base) {
        /* Zero units of any length go piecewise through the buffer. */
        for (uint64_t at = 0; at < u->length && r == 0; at += BUFFER_SIZE) {
            struct unit part = { u->offset + at,
                                 MIN(BUFFER_SIZE, u->length - at), u->zero,
                                 u->ticket };
            if (u->zero) {
                memset(buf, 0, part.length);
            } else if (at) {
                break; /* data units are at most one buffer */
            }
            r = write_differences(j, &part, buf, base);
        }
    } else if (u->zero) {
        r = vimg_internal_zero(j->dst, u->offset, u->length,
                               VIMG_ZERO_MAY_UNMAP);
    } else if (offload) {
        /* A raw target on a file: its offsets are the guest's. */
        r = vimg_internal_file_copy_range(u->from, u->from_offset,
                                          j->dst->file, u->offset,
                                          u->length);
        if (r == -ENOTSUP || r == -ENODATA) {
            /* qemu-img too falls back to reading and writing. */
            atomic_store(&j->offload_failed, r == -ENOTSUP);
            r = read_source(j, buf, u->length, u->offset);
            if (r == 0) {
                r = write_data(j, u, buf);
            }
        }
    } else if (j->unit) {
        r = write_compressed(j, u, buf, cbuf);
    } else {
        r = write_data(j, u, buf);
    }
    pthread_mutex_lock(&j->lock);
    if (in_order) {
        j->next_write++;
        pthread_cond_signal(&j->turn[j->next_write % (uint64_t)j->n]);
    }
    if (r == 0) {
        progress_locked(j, u->length);
    }
    pthread_mutex_unlock(&j->lock);
    return r;
}

static void *worker(void *arg)
{
    struct job *j = arg;
    char *buf = NULL, *base = NULL;
    struct compressed *cbuf = NULL;
    struct unit u;

    if (posix_memalign((void **)&buf, 4096, BUFFER_SIZE) != 0 ||
        (j->p->target_backing &&
         posix_memalign((void **)&base, 4096, BUFFER_SIZE) != 0) ||
        (j->unit && (!(cbuf = calloc(1, sizeof *cbuf)) ||
                     !(cbuf->out = malloc(BUFFER_SIZE))))) {
        vimg_internal_error(ENOMEM, "out of memory");
        fail(j, -ENOMEM);
        free(buf);
        free(base);
        if (cbuf) {
            free(cbuf->out);
            free(cbuf);
        }
        return NULL;
    }
    for (;;) {
        pthread_mutex_lock(&j->lock);
        bool more = dispatch(j, &u);
        /* -r: counted under the lock, slept outside it. */
        uint64_t delay = more && !u.zero
                             ? ratelimit_delay(&j->rate, u.length,
                                               ratelimit_now())
                             : 0;
        pthread_mutex_unlock(&j->lock);
        if (!more) {
            break;
        }
        if (delay) {
            ratelimit_sleep(delay);
        }
        vimg_internal_error_clear();
        int r = vimg_internal_check_cancelled(j->dst->filename);
        if (r == 0) {
            r = process(j, &u, buf, base, cbuf);
        }
        if (r < 0) {
            fail(j, r);
            break;
        }
    }
    pthread_mutex_lock(&j->lock);
    wake_all(j);
    pthread_mutex_unlock(&j->lock);
    free(buf);
    free(base);
    if (cbuf) {
        free(cbuf->out);
        free(cbuf);
    }
    return NULL;
}

/* Like qemu-img, refuse to copy a source that another process may be
 * writing (the copy would mix old and new data), unless it was opened with
 * -U. Readers of raw images otherwise share writes, so this lock is taken
 * only for the copy. */
static int lock_source(struct vimg_image *src)
{
    for (struct vimg_image *l = src; l; l = l->backing) {
        if (l->params.flags & (VIMG_OPEN_NO_LOCK | VIMG_OPEN_FORCE_SHARE)) {
            continue;
        }
        int r = vimg_internal_file_lock(l->file ? l->file : l,
                                        FILE_PERM_READ,
                                        FILE_PERM_ALL & ~(unsigned)
                                                            FILE_PERM_WRITE);
        if (r < 0) {
            return r;
        }
    }
    return 0;
}

/* Check P against the images and fill in J's plan; 0 or -1 with the
 * error recorded. */
static int plan(struct job *j, struct vimg_image *const *srcs, size_t n,
                struct vimg_image *dst)
{
    const struct vimg_convert_params *p = j->p;
    uint64_t total = 0;

    if (n == 0) {
        return vimg_internal_error(EINVAL, "convert needs a source");
    }
    if (!dst->writable) {
        return vimg_internal_img_error(dst, EROFS, "target is opened "
                                       "read-only");
    }
    j->starts = malloc((n + 1) * sizeof *j->starts);
    if (!j->starts) {
        return vimg_internal_error(ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        j->starts[i] = total;
        if (__builtin_add_overflow(total, srcs[i]->size, &total) ||
            total > INT64_MAX) {
            return vimg_internal_error(EINVAL, "the sources add up to more "
                                       "than %lld bytes",
                                       (long long)INT64_MAX);
        }
    }
    j->starts[n] = total;
    if (p->src_offset > total ||
        (p->length && p->length > total - p->src_offset)) {
        return vimg_internal_error(EINVAL, "the range to copy (%llu bytes "
                                   "from offset %llu) ends past the "
                                   "source's %llu bytes",
                                   (unsigned long long)p->length,
                                   (unsigned long long)p->src_offset,
                                   (unsigned long long)total);
    }
    j->window = p->src_offset;
    j->size = p->length ? p->length : total - p->src_offset;
    if (dst->size < j->size) {
        /* A raw image's size is its file's rounded up to a sector: name
         * the file's own size, which is what the user can see. */
        uint64_t shown = dst->size;
        if (dst->drv == &vimg_driver_raw && dst->file &&
            dst->file->size < shown) {
            shown = dst->file->size;
        }
        return vimg_internal_img_error(dst, EINVAL, "target (%llu bytes) "
                                       "is smaller than the source (%llu "
                                       "bytes)", (unsigned long long)shown,
                                       (unsigned long long)j->size);
    }
    if (p->target_is_zero && dst->backing_name) {
        return vimg_internal_img_error(dst, EINVAL, "the target has a "
                                       "backing file, so it does not read "
                                       "as zeros (--target-is-zero)");
    }
    /* What the bitmap copy would refuse is refused before any data. A
     * bitmap describes one image's disk: as qemu-img, one source only. */
    if (p->bitmaps && (n > 1 || p->src_offset || p->length)) {
        return vimg_internal_error(EINVAL, "copying bitmaps is only "
                                   "possible with a single source");
    }
    if (p->bitmaps &&
        vimg_internal_bitmaps_copy(srcs[0], dst, p->skip_broken_bitmaps,
                                   true) < 0) {
        return -1;
    }
    /* A stream format stores every block compressed: the workers compress
     * in parallel whether or not -c was given. */
    if (p->compress || dst->ordered_compressed) {
        if (!dst->drv->compress || !dst->compress_unit ||
            dst->compress_unit > BUFFER_SIZE) {
            return vimg_internal_img_error(dst, ENOTSUP, "compression not "
                                           "supported for this file "
                                           "format");
        }
        if (p->target_backing) {
            return vimg_internal_img_error(dst, ENOTSUP, "compression "
                                           "cannot be combined with a "
                                           "target backing file (-B)");
        }
        if (p->copy_offload && p->compress) {
            return vimg_internal_img_error(dst, EINVAL, "copy offloading "
                                           "cannot be combined with "
                                           "compression");
        }
        j->unit = dst->compress_unit;
    }
    j->offload = p->copy_offload && !p->target_backing &&
                 dst->drv == &vimg_driver_raw && dst->file &&
                 dst->file->drv == &vimg_driver_file;
    j->skip_zero = ((p->target_is_new && vimg_has_zero_init(dst)) ||
                    p->target_is_zero) && !dst->backing_name;
    for (size_t i = 0; i < n; i++) {
        if (lock_source(srcs[i]) < 0) {
            return -1;
        }
    }
    j->srcs = srcs;
    j->n_srcs = n;
    j->dst = dst;
    return 0;
}

int vimg_convert_sources(struct vimg_image *const *srcs, size_t n,
                         struct vimg_image *dst,
                         const struct vimg_convert_params *p)
{
    static const struct vimg_convert_params defaults = { .min_sparse = 4096 };
    struct job j = { .p = p ? p : &defaults };
    pthread_t threads[MAX_WORKERS];
    j.rate.rate = j.p->rate_limit;
    int workers, started = 0;

    vimg_internal_error_clear();
    if (!dst || (n && !srcs)) {
        vimg_internal_error(EINVAL, "convert needs a source and a target");
        return -1;
    }
    if (plan(&j, srcs, n, dst) < 0) {
        free(j.starts);
        return -1;
    }
    workers = j.p->workers > 0 ? j.p->workers : DEFAULT_WORKERS;
    workers = workers > MAX_WORKERS ? MAX_WORKERS : workers;
    j.n = workers;
    pthread_mutex_init(&j.lock, NULL);
    for (int i = 0; i < workers; i++) {
        pthread_cond_init(&j.turn[i], NULL);
    }
    for (int i = 0; i < workers; i++) {
        if (pthread_create(&threads[i], NULL, worker, &j) != 0) {
            if (started == 0) {
                worker(&j); /* no threads to be had: do it here */
            }
            break;
        }
        started++;
    }
    for (int i = 0; i < started; i++) {
        pthread_join(threads[i], NULL);
    }
    for (int i = 0; i < workers; i++) {
        pthread_cond_destroy(&j.turn[i]);
    }
    pthread_mutex_destroy(&j.lock);
    free(j.starts);
    vimg_internal_error_clear();
    if (j.error) {
        vimg_internal_error(j.error, "%s", j.message);
        return -1;
    }
    if (vimg_internal_flush(dst) < 0) {
        return -1;
    }
    if (j.p->bitmaps &&
        (vimg_internal_bitmaps_copy(srcs[0], dst, j.p->skip_broken_bitmaps,
                                    false) < 0 ||
         vimg_internal_flush(dst) < 0)) {
        return -1;
    }
    if (j.size == 0 && j.p->progress) {
        j.p->progress(j.p->opaque, 0, 0); /* an empty copy is complete */
    }
    return 0;
}

int vimg_convert(struct vimg_image *src, struct vimg_image *dst,
                 const struct vimg_convert_params *p)
{
    if (!src) {
        vimg_internal_error_clear();
        vimg_internal_error(EINVAL, "convert needs a source and a target");
        return -1;
    }
    return vimg_convert_sources(&src, 1, dst, p);
}
