/* Guest clusters: L1/L2 lookup, reads, allocating writes with copy-on-write
 * of partial clusters, zero clusters, discard, block status and
 * preallocation. Ordering: a new cluster's refcount reaches the disk
 * before the L2 entry pointing at it (qcow2-cache.c), and an old cluster is
 * released only once the tables no longer pointing at it are on disk. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../../common/rounding.h"
#include "qcow2.h"

/* Clusters handled by one allocation (32 MiB at 64 KiB clusters). */
#define MAX_RUN 512


/* Host ranges to release once the L2 tables are on disk. */
struct free_list {
    size_t n, cap;
    struct qcow2_range *v;
};

static int free_list_add(struct vimg_image *img, struct free_list *f,
                         uint64_t offset, uint64_t len)
{
    if (f->n && f->v[f->n - 1].offset + f->v[f->n - 1].len == offset) {
        f->v[f->n - 1].len += len;
        return 0;
    }
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 16;
        void *p = realloc(f->v, cap * sizeof *f->v);
        if (!p) {
            return vimg_internal_img_error(img, ENOMEM, "out of memory");
        }
        f->v = p;
        f->cap = cap;
    }
    f->v[f->n].offset = offset;
    f->v[f->n].len = len;
    f->n++;
    return 0;
}

/* Ranges with work in flight outside the lock (lock held to change the
 * lists): host ranges under data I/O (s->active), guest ranges whose new
 * clusters are being written before their L2 entries change
 * (s->inflight). */
static void range_add(struct qcow2_active **list, struct qcow2_active *a,
                      uint64_t start, uint64_t len)
{
    a->start = start;
    a->end = start + len;
    a->next = *list;
    *list = a;
}

static void range_remove(struct qcow2_state *s, struct qcow2_active **list,
                         struct qcow2_active *a)
{
    for (struct qcow2_active **p = list; *p; p = &(*p)->next) {
        if (*p == a) {
            *p = a->next;
            break;
        }
    }
    pthread_cond_broadcast(&s->active_done);
}

static bool range_busy(struct qcow2_active *list, uint64_t start,
                       uint64_t end)
{
    for (; list; list = list->next) {
        if (list->end > start && list->start < end) {
            return true;
        }
    }
    return false;
}

/* Wait until nothing in LIST touches [START, END). The lock is dropped
 * while waiting. */
static void wait_idle(struct qcow2_state *s, struct qcow2_active **list,
                      uint64_t start, uint64_t end)
{
    while (range_busy(*list, start, end)) {
        pthread_cond_wait(&s->active_done, &s->lock);
    }
}

void qcow2_wait_inflight(struct vimg_image *img, uint64_t start,
                         uint64_t end)
{
    struct qcow2_state *s = qcow2_state(img);
    wait_idle(s, &s->inflight, start, end);
}

void qcow2_wait_all_idle(struct vimg_image *img)
{
    struct qcow2_state *s = qcow2_state(img);
    wait_idle(s, &s->inflight, 0, UINT64_MAX);
    wait_idle(s, &s->active, 0, UINT64_MAX);
}

/* Write the tables that stopped pointing at the listed clusters, then drop
 * their references, then give the space back to the file. Nothing is
 * released once the image is marked corrupt: its tables may still point
 * there. */
static int free_list_commit(struct vimg_image *img, struct free_list *f)
{
    struct qcow2_state *s = qcow2_state(img);
    int r = 0;

    if (f->n && !s->corrupt) {
        r = qcow2_flush_metadata(img);
        if (r == 0 && !s->lazy) {
            r = vimg_internal_flush(img->file);
        }
    }
    for (size_t i = 0; r == 0 && !s->corrupt && i < f->n; i++) {
        /* Callers unlinked these clusters from every table first, so no
         * new I/O can start on them. */
        wait_idle(s, &s->active, f->v[i].offset,
                  f->v[i].offset + f->v[i].len);
    }
    if (r == 0 && f->n && !s->corrupt) {
        r = qcow2_free_clusters(img, f->v, f->n);
    }
    for (size_t i = 0; r == 0 && !s->corrupt && s->data == img->file &&
                       i < f->n; i++) {
        for (uint64_t off = f->v[i].offset;
             r == 0 && off < f->v[i].offset + f->v[i].len;
             off += s->cluster_size) {
            /* Give back only clusters nothing else (a snapshot) still
             * uses. Best effort: a file that cannot punch holes keeps the
             * bytes, which is harmless. */
            uint64_t rc;
            r = qcow2_get_refcount(img, off / s->cluster_size, &rc);
            if (r == 0 && rc == 0) {
                (void)vimg_internal_discard(img->file, off, s->cluster_size);
            }
        }
    }
    free(f->v);
    memset(f, 0, sizeof *f);
    return r;
}

/* Check every range of F before a request changes anything. */
static int free_list_check(struct vimg_image *img, const struct free_list *f)
{
    return qcow2_check_release(img, 0, f->v, f->n);
}

static bool free_list_equal(const struct free_list *a,
                            const struct free_list *b)
{
    return a->n == b->n &&
           (!a->n || !memcmp(a->v, b->v, a->n * sizeof *a->v));
}

/* Move the ranges of FROM to the end of TO. */
static int free_list_move(struct vimg_image *img, struct free_list *to,
                          struct free_list *from)
{
    int r = 0;

    for (size_t i = 0; r == 0 && i < from->n; i++) {
        r = free_list_add(img, to, from->v[i].offset, from->v[i].len);
    }
    free(from->v);
    memset(from, 0, sizeof *from);
    return r;
}

static int classify(struct vimg_image *img, uint64_t e, enum qcow2_ctype *t,
                    uint64_t *host)
{
    struct qcow2_state *s = qcow2_state(img);

    *host = e & QCOW2_L2E_OFFSET_MASK;
    if (e & QCOW2_L2E_COMPRESSED) {
        *t = QCOW2_C_COMPRESSED;
        *host = 0;
        return 0;
    }
    /* In an external data file, host offset 0 is a real cluster: the
     * copied flag marks the entry as allocated. */
    bool allocated = *host ||
                     (qcow2_has_data_file(s) && (e & QCOW2_L2E_COPIED));
    /* With extended entries, bit 0 is reserved: the bitmap says which
     * subclusters read as zeros. */
    if (s->version >= 3 && !s->ext_l2 && (e & QCOW2_L2E_ZERO)) {
        *t = allocated ? QCOW2_C_ZERO_ALLOC : QCOW2_C_ZERO_PLAIN;
    } else {
        *t = allocated ? QCOW2_C_NORMAL : QCOW2_C_UNALLOC;
    }
    if (*host & (s->cluster_size - 1)) {
        return qcow2_signal_corruption(img, *host, "L2 entry 0x%llx points "
                                       "at an unaligned cluster",
                                       (unsigned long long)e);
    }
    return 0;
}

/* An L2 entry as the data path sees it: classified, with the type of one
 * of its subclusters and how many subclusters from there share it. */
struct entry {
    uint64_t e, bm, host;
    enum qcow2_ctype ct, t;
    unsigned n;
};

/* Entry I of TABLE (NULL: no table, all unallocated) from subcluster SC
 * on (lock held). */
static int lookup(struct vimg_image *img, const uint8_t *table, uint64_t i,
                  unsigned sc, struct entry *x)
{
    struct qcow2_state *s = qcow2_state(img);
    int r;

    x->e = table ? qcow2_l2e_get(s, table, i) : 0;
    x->bm = table ? qcow2_l2bm_get(s, table, i) : 0;
    if ((r = classify(img, x->e, &x->ct, &x->host)) < 0) {
        return r;
    }
    if (!qcow2_sc_range(s, x->ct, x->bm, sc, &x->t, &x->n)) {
        return qcow2_signal_corruption(img, x->host, "L2 entry 0x%llx has "
                                       "an invalid subcluster bitmap "
                                       "0x%llx",
                                       (unsigned long long)x->e,
                                       (unsigned long long)x->bm);
    }
    return 0;
}

int qcow2_get_l2(struct vimg_image *img, uint64_t offset, bool alloc,
                 uint8_t **table, uint64_t *idx)
{
    struct qcow2_state *s = qcow2_state(img);
    uint64_t l1i = offset >> (s->l2_bits + s->cluster_bits);
    uint64_t old, fresh;
    uint8_t *copy = NULL, *t;
    int r;

    *table = NULL;
    *idx = (offset >> s->cluster_bits) & (qcow2_l2_entries(s) - 1);
    if (l1i >= s->l1_size) {
        return alloc ? qcow2_signal_corruption(img, offset, "guest offset "
                                               "beyond the L1 table") : 0;
    }
    old = s->l1[l1i] & QCOW2_L1E_OFFSET_MASK;
    if (old & (s->cluster_size - 1)) {
        return qcow2_signal_corruption(img, old, "L2 table offset 0x%llx "
                                       "is not cluster aligned",
                                       (unsigned long long)old);
    }
    if (old && (!alloc || (s->l1[l1i] & QCOW2_L1E_COPIED))) {
        return qcow2_cache_get(img, &s->l2_cache, old, false, table);
    }
    if (!alloc) {
        return 0;
    }
    if (old) {
        /* The old table is released below: it must be in use, so that the
         * allocation cannot hand it out again, and be nothing else. */
        struct qcow2_range range = { old, s->cluster_size };
        if ((r = qcow2_check_release(img, QCOW2_ROLE_L2, &range, 1)) < 0 ||
            (r = qcow2_cache_get(img, &s->l2_cache, old, false, &t)) < 0) {
            return r;
        }
        if (!(copy = malloc(s->cluster_size))) {
            return vimg_internal_img_error(img, ENOMEM, "out of memory");
        }
        memcpy(copy, t, s->cluster_size);
    }
    if ((r = qcow2_alloc_clusters(img, 1, &fresh)) < 0 ||
        (r = qcow2_cache_get(img, &s->l2_cache, fresh, true, &t)) < 0) {
        free(copy);
        return r;
    }
    if (copy) {
        memcpy(t, copy, s->cluster_size);
        free(copy);
    }
    qcow2_cache_mark_dirty(&s->l2_cache, t);
    s->l1[l1i] = fresh | QCOW2_L1E_COPIED;
    s->l1_dirty = true;
    if (old) {
        /* No longer active: unless another L1 entry names it too. */
        struct free_list f = { 0 };
        if ((r = free_list_add(img, &f, old, s->cluster_size)) < 0 ||
            (r = free_list_check(img, &f)) < 0 ||
            (r = free_list_commit(img, &f)) < 0) {
            free(f.v);
            return r;
        }
    }
    return qcow2_cache_get(img, &s->l2_cache, fresh, false, table);
}

/* Guest data of the subclusters in MASK (bit 0 alone without extended
 * entries) of the cluster at guest offset GUEST whose old entry is E with
 * bitmap BM, as they read before a write replaced them, at their places
 * in the cluster-sized OUT. No lock: the entry was validated under it. */
static int old_contents(struct vimg_image *img, uint64_t e, uint64_t bm,
                        uint64_t guest, uint8_t *out, uint64_t mask)
{
    struct qcow2_state *s = qcow2_state(img);
    uint64_t scs = (uint64_t)1 << s->sc_bits, host;
    unsigned per = qcow2_sc_per_cluster(s), n;
    enum qcow2_ctype ct, t;
    int r = classify(img, e, &ct, &host);

    if (r < 0) {
        return r;
    }
    if (ct == QCOW2_C_COMPRESSED) {
        return qcow2_decompress(img, e, out);
    }
    for (unsigned sc = 0; sc < per && r == 0; sc += n) {
        if (!qcow2_sc_range(s, ct, bm, sc, &t, &n)) {
            return vimg_internal_img_error(img, EIO, "invalid subcluster "
                                           "bitmap 0x%llx",
                                           (unsigned long long)bm);
        }
        for (unsigned i = sc, j; i < sc + n && r == 0; i = j) {
            if (!((mask >> i) & 1)) {
                j = i + 1;
                continue;
            }
            for (j = i; j < sc + n && ((mask >> j) & 1); j++) {
            }
            uint64_t off = i * scs, len = (j - i) * scs;
            switch (t) {
            case QCOW2_C_UNALLOC:
            case QCOW2_C_UNALLOC_ALLOC:
                r = vimg_internal_read_backing(img, out + off, len,
                                               guest + off);
                break;
            case QCOW2_C_NORMAL:
                r = qcow2_crypto_pread(img, out + off, len, host + off,
                                       guest + off);
                break;
            default:
                memset(out + off, 0, len);
                break;
            }
        }
    }
    return r;
}

/* Release the host clusters an old entry E held. */
static int release_entry(struct vimg_image *img, struct free_list *f,
                         uint64_t e)
{
    struct qcow2_state *s = qcow2_state(img);
    enum qcow2_ctype t;
    uint64_t host, len;
    int r = classify(img, e, &t, &host);

    if (r < 0 || s->data != img->file) {
        /* Refcounts cover img->file only. */
        return r;
    }
    if (t == QCOW2_C_COMPRESSED) {
        if ((r = qcow2_compressed_span(img, e, &host, &len)) < 0) {
            return r;
        }
        uint64_t first = ROUND_DOWN(host, s->cluster_size);
        return free_list_add(img, f, first,
                             ROUND_UP(host + len, s->cluster_size) - first);
    }
    if (t == QCOW2_C_NORMAL || t == QCOW2_C_ZERO_ALLOC) {
        return free_list_add(img, f, host, s->cluster_size);
    }
    return 0;
}

/* Compressed clusters read with one pread at most: writers pack them back
 * to back, and a syscall per 64 KiB cluster costs as much as inflating
 * it. The read stays within this many bytes (one cluster's span always
 * goes). */
#define COMPRESSED_RUN_CLUSTERS 32
#define COMPRESSED_RUN_BYTES (1u << 20)

/* One run of clusters for a read, found under the lock. */
struct read_run {
    enum qcow2_ctype t;
    uint64_t n;          /* guest bytes the run covers */
    uint64_t host, len;  /* data: host offset of the first byte; compressed:
                            the host range holding every span */
    unsigned spans;      /* compressed: each cluster's span, in guest order */
    struct {
        uint64_t host, len;
    } span[COMPRESSED_RUN_CLUSTERS];
};

/* The compressed cluster at entry IDX of TABLE (E, read from COFF on) and
 * the compressed clusters after it whose spans continue the host range,
 * within AVAIL guest bytes. */
static int compressed_run(struct vimg_image *img, const uint8_t *table,
                          uint64_t idx, uint64_t e, uint64_t coff,
                          uint64_t avail, struct read_run *run)
{
    struct qcow2_state *s = qcow2_state(img);
    uint64_t cs = s->cluster_size, host, len;
    int r;

    if ((r = qcow2_compressed_span(img, e, &host, &len)) < 0) {
        return r;
    }
    run->host = host;
    run->len = len;
    run->span[0].host = host;
    run->span[0].len = len;
    run->spans = 1;
    run->n = MIN(avail, cs - coff);
    for (uint64_t i = idx + 1; run->spans < COMPRESSED_RUN_CLUSTERS &&
                               run->n < avail && i < qcow2_l2_entries(s);
         i++) {
        uint64_t end = run->host + run->len;
        uint64_t e2 = qcow2_l2e_get(s, table, i);
        /* Only well-formed entries join: the read reports the others. */
        if (!(e2 & QCOW2_L2E_COMPRESSED) || qcow2_l2bm_get(s, table, i) ||
            !qcow2_compressed_span_ok(img, e2, &host, &len)) {
            break;
        }
        /* Spans are rounded to sectors, so neighbours may overlap. */
        uint64_t new_end = MAX(end, host + len);
        if (host < run->span[run->spans - 1].host || host > end ||
            new_end - run->host > COMPRESSED_RUN_BYTES) {
            break;
        }
        run->span[run->spans].host = host;
        run->span[run->spans].len = len;
        run->spans++;
        run->len = new_end - run->host;
        run->n += MIN(cs, avail - run->n);
    }
    return 0;
}

static int find_read_run(struct vimg_image *img, uint64_t offset,
                         uint64_t count, struct read_run *run)
{
    struct qcow2_state *s = qcow2_state(img);
    uint8_t *table;
    uint64_t idx, cs = s->cluster_size, coff = offset & (cs - 1);
    uint64_t scs = (uint64_t)1 << s->sc_bits;
    unsigned per = qcow2_sc_per_cluster(s);
    struct entry x, y;
    int r;

    if ((r = qcow2_get_l2(img, offset, false, &table, &idx)) < 0) {
        return r;
    }
    uint64_t avail = MIN(count, (qcow2_l2_entries(s) - idx) * cs - coff);
    run->n = avail;
    run->t = QCOW2_C_UNALLOC;
    if (!table) {
        return 0;
    }
    if ((r = lookup(img, table, idx, (unsigned)(coff >> s->sc_bits),
                    &x)) < 0) {
        return r;
    }
    run->t = x.t;
    if (x.t == QCOW2_C_COMPRESSED) {
        return compressed_run(img, table, idx, x.e, coff, avail, run);
    }
    /* The subclusters of the same type, then whole clusters of it that
     * follow (contiguous on the host when they hold data). */
    uint64_t end_sc = (coff >> s->sc_bits) + x.n;
    uint64_t n = end_sc * scs - coff;
    for (uint64_t k = 1; n < avail && end_sc == per; k++) {
        if ((r = lookup(img, table, idx + k, 0, &y)) < 0) {
            return r;
        }
        if (y.t != x.t ||
            (x.t == QCOW2_C_NORMAL && y.host != x.host + k * cs)) {
            break;
        }
        end_sc = y.n;
        n = k * cs + y.n * scs - coff;
    }
    run->n = MIN(n, avail);
    run->host = x.host + coff;
    return 0;
}

/* Inflate the compressed cluster IN (LEN bytes read from HOST) and put
 * its bytes [SKIP, SKIP + N) at OUT: straight there when that is the whole
 * cluster, through *CBUF (a cluster, allocated on first use) otherwise. */
static int inflate_into(struct vimg_image *img, const uint8_t *in,
                        uint64_t host, uint64_t len, uint8_t *out,
                        uint64_t skip, uint64_t n, uint8_t **cbuf)
{
    struct qcow2_state *s = qcow2_state(img);
    int r;

    if (n == s->cluster_size) {
        return qcow2_inflate(img, host, in, len, out);
    }
    if (!*cbuf && !(*cbuf = malloc(s->cluster_size))) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    if ((r = qcow2_inflate(img, host, in, len, *cbuf)) == 0) {
        memcpy(out, *cbuf + skip, n);
    }
    return r;
}

/* Look-ups run under the lock; the data is read (and inflated) without
 * it, its host range listed as active so that it is not freed meanwhile. */
int qcow2_pread(struct vimg_image *img, void *buf, uint64_t count,
                uint64_t offset)
{
    struct qcow2_state *s = qcow2_state(img);
    uint8_t *out = buf, *cbuf = NULL, *in = NULL;
    uint64_t in_cap = 0;
    int r = 0;

    if ((r = qcow2_crypto_ready(img)) < 0) {
        return r;
    }
    if (!s->data) {
        return vimg_internal_img_error(img, EPERM, "external data file '%s' "
                                       "was not opened (the open policy "
                                       "follows no references)",
                                       s->data_file_name);
    }
    pthread_mutex_lock(&s->lock);
    while (count && r == 0) {
        struct read_run run;
        struct qcow2_active a;
        uint64_t coff = offset & (s->cluster_size - 1);
        if ((r = find_read_run(img, offset, count, &run)) < 0) {
            break;
        }
        switch (run.t) {
        case QCOW2_C_UNALLOC:
        case QCOW2_C_UNALLOC_ALLOC:
            pthread_mutex_unlock(&s->lock);
            r = vimg_internal_read_backing(img, out, run.n, offset);
            pthread_mutex_lock(&s->lock);
            break;
        case QCOW2_C_ZERO_PLAIN:
        case QCOW2_C_ZERO_ALLOC:
            memset(out, 0, run.n);
            break;
        case QCOW2_C_NORMAL:
            range_add(&s->active, &a, run.host, run.n);
            pthread_mutex_unlock(&s->lock);
            r = qcow2_crypto_pread(img, out, run.n, run.host, offset);
            pthread_mutex_lock(&s->lock);
            range_remove(s, &s->active, &a);
            break;
        case QCOW2_C_COMPRESSED:
            if (run.len > in_cap) {
                free(in);
                in_cap = run.len;
                if (!(in = malloc(in_cap))) {
                    in_cap = 0;
                    r = vimg_internal_img_error(img, ENOMEM,
                                                "out of memory");
                    break;
                }
            }
            range_add(&s->active, &a, run.host, run.len);
            pthread_mutex_unlock(&s->lock);
            r = vimg_internal_pread(s->data, in, run.len, run.host);
            uint64_t done = 0;
            for (unsigned k = 0; k < run.spans && r == 0; k++) {
                uint64_t skip = k ? 0 : coff;
                uint64_t n = MIN(run.n - done, s->cluster_size - skip);
                r = inflate_into(img, in + (run.span[k].host - run.host),
                                 run.span[k].host, run.span[k].len,
                                 out + done, skip, n, &cbuf);
                done += n;
            }
            pthread_mutex_lock(&s->lock);
            range_remove(s, &s->active, &a);
            break;
        }
        out += run.n;
        offset += run.n;
        count -= run.n;
    }
    pthread_mutex_unlock(&s->lock);
    free(cbuf);
    free(in);
    return r;
}

/* Write bytes [FROM, TO) of the cluster at HOST (guest cluster GUEST,
 * old entry E with bitmap BM) from SRC, and *W the subclusters written
 * (bit 0 alone without extended entries). A new cluster (KEEP false)
 * also gets the old cluster's data, so that every subcluster reads as
 * before: partly written ones and those the old cluster held data for.
 * The old cluster itself (KEEP) keeps its data where it is: only partly
 * written subclusters that held none are completed (from the backing file
 * or zeros); the others are written in place, byte-exact, as an in-place
 * write may run beside this one. Runs without the lock. */
static int fill_cluster(struct vimg_image *img, uint64_t e, uint64_t bm,
                        uint64_t guest, uint64_t host, const uint8_t *src,
                        uint64_t from, uint64_t to, bool keep, uint64_t *w)
{
    struct qcow2_state *s = qcow2_state(img);
    uint64_t cs = s->cluster_size, scs = (uint64_t)1 << s->sc_bits, h;
    unsigned a = (unsigned)(from >> s->sc_bits);
    unsigned b = (unsigned)DIV_ROUND_UP(to, scs), per, n;
    uint64_t touched = s->ext_l2 ? qcow2_sc_bits(a, b - a) : 1;
    uint64_t data = 0, partial = 0, lo = 0, hi = cs;
    enum qcow2_ctype ct, t;
    int r = classify(img, e, &ct, &h);

    per = qcow2_sc_per_cluster(s);
    for (unsigned sc = 0; r == 0 && sc < per; sc += n) {
        if (!qcow2_sc_range(s, ct, bm, sc, &t, &n)) {
            return vimg_internal_img_error(img, EIO, "invalid subcluster "
                                           "bitmap 0x%llx",
                                           (unsigned long long)bm);
        }
        if (qcow2_sc_has_data(t)) {
            data |= s->ext_l2 ? qcow2_sc_bits(sc, n) : 1;
        }
    }
    if (r < 0) {
        return r;
    }
    if (from % scs) {
        partial |= s->ext_l2 ? qcow2_sc_bits(a, 1) : 1;
    }
    if (to % scs) {
        partial |= s->ext_l2 ? qcow2_sc_bits(b - 1, 1) : 1;
    }
    *w = touched | (keep ? 0 : data);
    uint64_t need = (*w & ~touched) | partial;
    if (keep) {
        need &= ~data;
        lo = (data >> a) & 1 ? from : 0;
        hi = (data >> (b - 1)) & 1 ? to : cs;
    }
    if (!need) {
        /* Nothing to complete: the written span is SRC itself. */
        uint64_t ws = MAX(a * scs, lo), we = MIN(b * scs, hi);
        return qcow2_crypto_pwrite(img, src + (ws - from), we - ws,
                                   host + ws, guest + ws);
    }
    uint8_t *c = malloc(cs);
    if (!c) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    r = old_contents(img, e, bm, guest, c, need);
    if (r == 0) {
        memcpy(c + from, src, to - from);
    }
    for (unsigned i = 0, j; r == 0 && i < per; i = j) {
        if (!((*w >> i) & 1)) {
            j = i + 1;
            continue;
        }
        for (j = i; j < per && ((*w >> j) & 1); j++) {
        }
        uint64_t ws = MAX(i * scs, lo), we = MIN(j * scs, hi);
        r = qcow2_crypto_pwrite(img, c + ws, we - ws, host + ws,
                                guest + ws);
    }
    free(c);
    return r;
}

/* Host clusters for a new run of K at guest cluster GUEST (lock held):
 * allocated, or the guest offset itself in an external data file; checked
 * against metadata once, so that filling them needs no lock. */
static int alloc_new_run(struct vimg_image *img, uint64_t guest, uint64_t k,
                         uint64_t *host)
{
    struct qcow2_state *s = qcow2_state(img);
    int r;

    if (s->data != img->file) {
        *host = guest; /* external data files map guest = host */
        return 0;
    }
    if ((r = qcow2_alloc_clusters(img, k, host)) < 0) {
        return r;
    }
    if ((r = qcow2_overlap_check(img, QCOW2_ROLE_DATA, *host,
                                 k * s->cluster_size)) < 0) {
        struct qcow2_range run = { *host, k * s->cluster_size };
        (void)qcow2_free_clusters(img, &run, 1);
    }
    return r;
}

/* Fill the K clusters at HOST for guest cluster GUEST (old entries OLD,
 * bitmaps OLDBM), taking [COFF, COFF+LEN) of the run from BUF, as
 * fill_cluster does for the first and last; W[i] gets the subclusters
 * written in cluster i. No lock needed: the guest range is in flight, so
 * nobody else changes its entries. */
static int fill_run(struct vimg_image *img, const uint8_t *buf,
                    uint64_t guest, uint64_t coff, uint64_t len,
                    const uint64_t *old, const uint64_t *oldbm, uint64_t k,
                    uint64_t host, bool keep, uint64_t *w)
{
    struct qcow2_state *s = qcow2_state(img);
    uint64_t cs = s->cluster_size, end = coff + len, first = 0, last = k;
    int r;

    for (uint64_t i = 0; i < k; i++) {
        w[i] = s->ext_l2 ? QCOW2_EXTL2_ALL_ALLOC : 1;
    }
    if (coff || (k == 1 && end < cs)) {
        uint64_t to = k == 1 ? end : cs;
        if ((r = fill_cluster(img, old[0], oldbm[0], guest, host, buf,
                              coff, to, keep, &w[0])) < 0) {
            return r;
        }
        first = 1;
    }
    if (first < k && end % cs) {
        last = k - 1;
        if ((r = fill_cluster(img, old[last], oldbm[last],
                              guest + last * cs, host + last * cs,
                              buf + last * cs - coff, 0, end % cs, keep,
                              &w[last])) < 0) {
            return r;
        }
    }
    if (first < last) {
        return qcow2_crypto_pwrite(img, buf + first * cs - coff,
                                   (last - first) * cs, host + first * cs,
                                   guest + first * cs);
    }
    return 0;
}

/* Entries a partial write reads from without the lock must have been
 * validated under it (corruption is signalled only with the lock held). */
static int validate_old(struct vimg_image *img, uint64_t e)
{
    uint64_t host, len;
    return e & QCOW2_L2E_COMPRESSED ? qcow2_compressed_span(img, e, &host, &len)
                                    : 0;
}

/* Overwrite allocated clusters in place: checked under the lock, written
 * without it while listed as active. */
static int write_in_place(struct vimg_image *img, const void *buf,
                          uint64_t len, uint64_t host, uint64_t guest)
{
    struct qcow2_state *s = qcow2_state(img);
    struct qcow2_active a;
    int r;

    if (s->data == img->file &&
        (r = qcow2_overlap_check(img, QCOW2_ROLE_DATA, host, len)) < 0) {
        return r;
    }
    range_add(&s->active, &a, host, len);
    pthread_mutex_unlock(&s->lock);
    r = qcow2_crypto_pwrite(img, buf, len, host, guest);
    pthread_mutex_lock(&s->lock);
    range_remove(s, &s->active, &a);
    return r;
}

/* Whether the K entries at IDX of TABLE differ from OLD, OLDBM. */
static bool memcmp_entries(const struct qcow2_state *s, const uint8_t *table,
                           uint64_t idx, const uint64_t *old,
                           const uint64_t *oldbm, uint64_t k)
{
    for (uint64_t i = 0; i < k; i++) {
        if (qcow2_l2e_get(s, table, idx + i) != old[i] ||
            qcow2_l2bm_get(s, table, idx + i) != oldbm[i]) {
            return true;
        }
    }
    return false;
}

/* How a write reaches a cluster: in place (it is ours, and every
 * subcluster written holds data), into it with its bitmap changed after
 * (ours, but some subcluster written holds none), or into a new one. */
enum wmode { W_IN_PLACE, W_KEEP, W_NEW };

/* The mode for writing bytes [FROM, TO) of the cluster of entry I of
 * TABLE (NULL: none), with its entry (lock held). */
static int write_mode(struct vimg_image *img, const uint8_t *table,
                      uint64_t i, uint64_t from, uint64_t to,
                      enum wmode *m, struct entry *x)
{
    struct qcow2_state *s = qcow2_state(img);
    unsigned a = (unsigned)(from >> s->sc_bits);
    int r = lookup(img, table, i, a, x);

    if (r < 0) {
        return r;
    }
    bool ours = (x->e & QCOW2_L2E_COPIED) &&
                (s->ext_l2 ? x->ct : x->t) == QCOW2_C_NORMAL;
    if (!ours) {
        *m = W_NEW;
    } else if (x->t == QCOW2_C_NORMAL &&
               a + x->n >= DIV_ROUND_UP(to, (uint64_t)1 << s->sc_bits)) {
        *m = W_IN_PLACE;
    } else {
        *m = W_KEEP;
    }
    return 0;
}

int qcow2_pwrite(struct vimg_image *img, const void *buf, uint64_t count,
                 uint64_t offset, unsigned flags)
{
    struct qcow2_state *s = qcow2_state(img);
    pthread_mutex_lock(&s->lock);
    int r = qcow2_pwrite_locked(img, buf, count, offset, flags);
    pthread_mutex_unlock(&s->lock);
    return r;
}

int qcow2_pwrite_locked(struct vimg_image *img, const void *buf,
                        uint64_t count, uint64_t offset, unsigned flags)
{
    struct qcow2_state *s = qcow2_state(img);
    const uint8_t *in = buf;
    struct free_list f = { 0 };
    uint64_t old[MAX_RUN], oldbm[MAX_RUN], w[MAX_RUN];
    uint64_t cs = s->cluster_size, scs = (uint64_t)1 << s->sc_bits;
    int r = 0;

    /* The bitmaps record a write from its start: a bit set for a write
     * that then fails costs a copy, a bit missed would lose one. */
    if ((r = qcow2_crypto_ready(img)) < 0 ||
        (r = qcow2_begin_write(img)) < 0 ||
        (r = qcow2_bitmaps_mark(img, offset, count)) < 0) {
        return r;
    }
    while (count && r == 0) {
        uint8_t *table;
        uint64_t idx, coff = offset & (cs - 1), host, k;
        enum wmode m, m2;
        struct entry x;
        /* Look before allocating anything: what the run releases is
         * checked first. */
        if ((r = qcow2_get_l2(img, offset, false, &table, &idx)) < 0) {
            break;
        }
        uint64_t n = MIN(count, MIN(qcow2_l2_entries(s) - idx, MAX_RUN) *
                                    cs - coff);
        uint64_t wend = coff + n;
        if ((r = write_mode(img, table, idx, coff, MIN(wend, cs), &m,
                            &x)) < 0) {
            break;
        }
        host = x.host;
        old[0] = x.e;
        oldbm[0] = x.bm;
        for (k = 1; k * cs - coff < n; k++) {
            if ((r = write_mode(img, table, idx + k, 0,
                                MIN(wend - k * cs, cs), &m2, &x)) < 0) {
                break;
            }
            if (m2 != m || (m != W_NEW && x.host != host + k * cs)) {
                break;
            }
            old[k] = x.e;
            oldbm[k] = x.bm;
        }
        if (r < 0) {
            break;
        }
        n = MIN(n, k * cs - coff);
        uint64_t guest = offset - coff;
        /* A new cluster is filled whole; into our own, only the
         * subclusters written change. */
        uint64_t busy_from = m == W_KEEP ? ROUND_DOWN(offset, scs) : guest;
        uint64_t busy_to = m == W_KEEP ? ROUND_UP(offset + n, scs)
                                       : guest + k * cs;
        if (m != W_IN_PLACE && range_busy(s->inflight, busy_from, busy_to)) {
            /* Another writer is filling these clusters: once it is done,
             * look again (they may be in place by then). */
            pthread_cond_wait(&s->active_done, &s->lock);
            continue;
        }
        struct free_list rel = { 0 };
        for (uint64_t i = 0; m == W_NEW && i < k && r == 0; i++) {
            r = release_entry(img, &rel, old[i]);
        }
        /* The table before the data, as QEMU lays them out (a table
         * shared with a snapshot is copied, which may drop the lock: look
         * again if the entries changed meanwhile). */
        if (r == 0 && (r = free_list_check(img, &rel)) == 0 &&
            (r = qcow2_get_l2(img, offset, true, &table, &idx)) == 0 &&
            memcmp_entries(s, table, idx, old, oldbm, k)) {
            free(rel.v);
            continue;
        }
        if (r < 0) {
            free(rel.v);
            break;
        }
        if (m == W_IN_PLACE) {
            r = write_in_place(img, in, n, host + coff, offset);
        } else {
            struct qcow2_active fl;
            if ((r = validate_old(img, old[0])) < 0 ||
                (r = validate_old(img, old[k - 1])) < 0 ||
                (m == W_NEW &&
                 (r = alloc_new_run(img, guest, k, &host)) < 0) ||
                /* As in place: a hostile entry must not aim the write at
                 * metadata. */
                (m == W_KEEP && s->data == img->file &&
                 (r = qcow2_overlap_check(img, QCOW2_ROLE_DATA, host,
                                          k * cs)) < 0)) {
                free(rel.v);
                break;
            }
            /* Our own clusters are written as in-place writes are:
             * listed as active, so that nothing frees them meanwhile. */
            struct qcow2_active ha;
            range_add(&s->inflight, &fl, busy_from, busy_to - busy_from);
            if (m == W_KEEP) {
                range_add(&s->active, &ha, host, k * cs);
            }
            pthread_mutex_unlock(&s->lock);
            r = fill_run(img, in, guest, coff, n, old, oldbm, k, host,
                         m == W_KEEP, w);
            pthread_mutex_lock(&s->lock);
            if (m == W_KEEP) {
                range_remove(s, &s->active, &ha);
            }
            if (r == 0) {
                r = qcow2_get_l2(img, offset, true, &table, &idx);
            }
            if (r < 0) {
                range_remove(s, &s->inflight, &fl);
                if (m == W_NEW && s->data == img->file) {
                    struct qcow2_range run = { host, k * cs };
                    (void)qcow2_free_clusters(img, &run, 1);
                }
                free(rel.v);
                break;
            }
            for (uint64_t i = 0; i < k; i++) {
                /* Our own cluster's bitmap may have changed meanwhile in
                 * subclusters other writers were filling. */
                uint64_t bm = m == W_NEW ? oldbm[i]
                                         : qcow2_l2bm_get(s, table, idx + i);
                if (m == W_NEW) {
                    qcow2_l2e_set(s, table, idx + i,
                                  (host + i * cs) | QCOW2_L2E_COPIED);
                }
                qcow2_l2bm_set(s, table, idx + i,
                               (bm | w[i]) & ~(w[i] << 32));
            }
            qcow2_cache_mark_dirty(&s->l2_cache, table);
            range_remove(s, &s->inflight, &fl);
            r = free_list_move(img, &f, &rel);
        }
        free(rel.v);
        in += n;
        offset += n;
        count -= n;
    }
    int r2 = free_list_commit(img, &f);
    if (r == 0) {
        r = r2;
    }
    if (r == 0 && (flags & VIMG_WRITE_FUA)) {
        if ((r = qcow2_flush_metadata(img)) == 0) {
            r = vimg_internal_flush(img->file);
        }
    }
    return r;
}

/* The entry replacing E (of type T, bitmap BM; *NBM the new bitmap) when
 * its cluster is zeroed (ZERO) or discarded; *RELEASE when the old host
 * cluster must be freed. With extended entries, zeros are the zero half
 * of the bitmap rather than bit 0. */
static uint64_t entry_after_clear(const struct qcow2_state *s,
                                  enum qcow2_ctype t, uint64_t e,
                                  uint64_t bm, uint64_t *nbm, bool zero,
                                  bool unmap, bool backing, bool *release)
{
    uint64_t zflag = s->ext_l2 ? 0 : QCOW2_L2E_ZERO;
    uint64_t zbm = s->ext_l2 ? QCOW2_EXTL2_ALL_ZERO : 0;

    *release = false;
    *nbm = bm;
    switch (t) {
    case QCOW2_C_UNALLOC:
        /* As QEMU: on v3, a discarded range reads as zeros, not as the
         * backing file's data. */
        if ((zero || s->version >= 3) && backing) {
            *nbm = zbm;
            return e | zflag;
        }
        return e;
    case QCOW2_C_ZERO_PLAIN:
        return e;
    case QCOW2_C_NORMAL:
        if (zero && !unmap && (e & QCOW2_L2E_COPIED)) {
            *nbm = zbm;
            return e | zflag;
        }
        break;
    case QCOW2_C_ZERO_ALLOC:
        if (zero && !unmap) {
            return e;
        }
        break;
    default:
        break;
    }
    *release = true;
    /* Without the zero flag, discard on v3 with a backing file must still
     * not expose the backing data. */
    bool zeros = zero || (backing && s->version >= 3);
    *nbm = zeros ? zbm : 0;
    return zeros ? zflag : 0;
}

/* What clearing the K entries at IDX of TABLE releases, added to F. */
static int clear_releases(struct vimg_image *img, const uint8_t *table,
                          uint64_t idx, uint64_t k, bool zero, bool unmap,
                          struct free_list *f)
{
    struct qcow2_state *s = qcow2_state(img);
    bool backing = img->backing_name != NULL;
    int r = 0;

    for (uint64_t i = 0; i < k && r == 0; i++) {
        struct entry x;
        uint64_t nbm;
        bool release;
        if ((r = lookup(img, table, idx + i, 0, &x)) == 0) {
            entry_after_clear(s, x.ct, x.e, x.bm, &nbm, zero, unmap,
                              backing, &release);
            if (release) {
                r = release_entry(img, f, x.e);
            }
        }
    }
    return r;
}

/* Set the entries of whole clusters [OFFSET, OFFSET+COUNT) to read as
 * zeros (ZERO) or to be deallocated. */
static int clear_clusters(struct vimg_image *img, uint64_t offset,
                          uint64_t count, bool zero, bool unmap)
{
    struct qcow2_state *s = qcow2_state(img);
    struct free_list f = { 0 };
    bool backing = img->backing_name != NULL;
    int r = 0;

    wait_idle(s, &s->inflight, offset, offset + count);

    while (count && r == 0) {
        uint8_t *table;
        uint64_t idx;
        if ((r = qcow2_get_l2(img, offset, false, &table, &idx)) < 0) {
            break;
        }
        uint64_t k = MIN(count >> s->cluster_bits,
                         qcow2_l2_entries(s) - idx);
        if (!table && !((zero || s->version >= 3) && backing)) {
            /* Nothing allocated and nothing below: already zeros. */
            offset += k * s->cluster_size;
            count -= k * s->cluster_size;
            continue;
        }
        /* What the entries release is checked before anything changes
         * (copying a shared table allocates). */
        struct free_list rel = { 0 }, now = { 0 };
        if (table) {
            r = clear_releases(img, table, idx, k, zero, unmap, &rel);
        }
        if (r == 0) {
            r = free_list_check(img, &rel);
        }
        if (r == 0) {
            r = qcow2_get_l2(img, offset, true, &table, &idx);
        }
        /* Copying may have dropped the lock: check again what the entries
         * release now, if it changed. */
        if (r == 0) {
            r = clear_releases(img, table, idx, k, zero, unmap, &now);
        }
        if (r == 0 && !free_list_equal(&rel, &now)) {
            r = free_list_check(img, &now);
        }
        for (uint64_t i = 0; i < k && r == 0; i++) {
            struct entry x;
            uint64_t ne, nbm;
            bool release;
            if ((r = lookup(img, table, idx + i, 0, &x)) < 0) {
                break;
            }
            ne = entry_after_clear(s, x.ct, x.e, x.bm, &nbm, zero, unmap,
                                   backing, &release);
            if (ne != x.e || nbm != x.bm) {
                qcow2_l2e_set(s, table, idx + i, ne);
                qcow2_l2bm_set(s, table, idx + i, nbm);
                qcow2_cache_mark_dirty(&s->l2_cache, table);
            }
        }
        if (r == 0) {
            r = free_list_move(img, &f, &now);
        }
        free(rel.v);
        free(now.v);
        offset += k * s->cluster_size;
        count -= k * s->cluster_size;
    }
    int r2 = free_list_commit(img, &f);
    return r < 0 ? r : r2;
}

/* The whole clusters inside [OFFSET, OFFSET+COUNT): a partial last cluster
 * at the end of the image counts as whole, since nothing lies past it. */
static void whole_clusters(struct vimg_image *img, uint64_t offset,
                           uint64_t count, uint64_t *start, uint64_t *end)
{
    uint64_t cs = qcow2_state(img)->cluster_size;
    *start = ROUND_UP(offset, cs);
    *end = offset + count == img->size ? ROUND_UP(img->size, cs)
                                       : ROUND_DOWN(offset + count, cs);
}

/* Set the zero bits of the whole subclusters [OFFSET, OFFSET+COUNT) of
 * one cluster (extended entries), as QEMU does; -ENOTSUP for a compressed
 * cluster, which cannot be zeroed in part. */
static int zero_subclusters(struct vimg_image *img, uint64_t offset,
                            uint64_t count)
{
    struct qcow2_state *s = qcow2_state(img);
    uint8_t *table;
    uint64_t idx;
    struct entry x;
    int r;

    do {
        wait_idle(s, &s->inflight, offset, offset + count);
        /* Copying a shared table may drop the lock. */
        if ((r = qcow2_get_l2(img, offset, true, &table, &idx)) < 0) {
            return r;
        }
    } while (range_busy(s->inflight, offset, offset + count));
    if ((r = lookup(img, table, idx, 0, &x)) < 0) {
        return r;
    }
    if (x.ct == QCOW2_C_COMPRESSED) {
        return -ENOTSUP;
    }
    unsigned a = (unsigned)((offset & (s->cluster_size - 1)) >> s->sc_bits);
    uint64_t m = qcow2_sc_bits(a, (unsigned)(count >> s->sc_bits));
    uint64_t bm = (x.bm | (m << 32)) & ~m;
    if (bm != x.bm) {
        qcow2_l2bm_set(s, table, idx, bm);
        qcow2_cache_mark_dirty(&s->l2_cache, table);
    }
    return 0;
}

/* Make [OFFSET, OFFSET+COUNT), inside one cluster, read as zeros: whole
 * subclusters by their zero bits, the rest by writing ZEROS. */
static int zero_partial(struct vimg_image *img, uint64_t offset,
                        uint64_t count, const uint8_t *zeros)
{
    struct qcow2_state *s = qcow2_state(img);
    uint64_t scs = (uint64_t)1 << s->sc_bits, end = offset + count;
    int r;

    if (!count) {
        return 0;
    }
    if (s->ext_l2) {
        uint64_t a = ROUND_UP(offset, scs);
        /* A partial last subcluster counts as whole: nothing lies past. */
        uint64_t b = end == img->size ? ROUND_UP(end, scs)
                                      : ROUND_DOWN(end, scs);
        if (a < b) {
            r = zero_subclusters(img, a, b - a);
            if (r == 0) {
                if (a > offset &&
                    (r = qcow2_pwrite_locked(img, zeros, a - offset, offset,
                                             0)) < 0) {
                    return r;
                }
                return b < end ? qcow2_pwrite_locked(img, zeros, end - b, b,
                                                     0)
                               : 0;
            }
            if (r != -ENOTSUP) {
                return r;
            }
        }
    }
    return qcow2_pwrite_locked(img, zeros, count, offset, 0);
}

int qcow2_zero(struct vimg_image *img, uint64_t offset, uint64_t count,
               unsigned flags)
{
    struct qcow2_state *s = qcow2_state(img);
    uint64_t cs = s->cluster_size, start, end;
    int r;

    whole_clusters(img, offset, count, &start, &end);
    if (s->version < 3 ||
        (s->autoclear & QCOW2_AUTOCLEAR_DATA_FILE_RAW)) {
        /* The core writes zeroed buffers (a raw data file must read as
         * the guest disk itself). */
        return -ENOTSUP;
    }
    if ((r = qcow2_begin_write(img)) < 0 ||
        (r = qcow2_bitmaps_mark(img, offset, count)) < 0) {
        return r;
    }
    if (start >= end && !s->ext_l2) {
        return -ENOTSUP;
    }
    uint8_t *zeros = calloc(1, cs);
    if (!zeros) {
        return vimg_internal_img_error(img, ENOMEM, "out of memory");
    }
    if (start > end) {
        /* Inside one cluster. */
        r = zero_partial(img, offset, count, zeros);
    } else {
        r = zero_partial(img, offset, start - offset, zeros);
        if (r == 0) {
            r = zero_partial(img, end, offset + count - end, zeros);
        }
    }
    free(zeros);
    if (r == 0 && start < end) {
        r = clear_clusters(img, start, end - start, true,
                           flags & VIMG_ZERO_MAY_UNMAP);
    }
    return r;
}

int qcow2_discard(struct vimg_image *img, uint64_t offset, uint64_t count)
{
    struct qcow2_state *s = qcow2_state(img);
    uint64_t start, end;
    int r;

    whole_clusters(img, offset, count, &start, &end);

    if ((s->version < 3 && img->backing_name) ||
        (s->autoclear & QCOW2_AUTOCLEAR_DATA_FILE_RAW)) {
        /* Deallocating would expose the backing file (v2 has no zero
         * flag), or leave a raw data file out of step with the guest:
         * leaving the data is a valid discard. */
        return 0;
    }
    /* As QEMU's block layer: the whole range counts as written. */
    if ((r = qcow2_begin_write(img)) < 0 ||
        (r = qcow2_bitmaps_mark(img, offset, count)) < 0) {
        return r;
    }
    if (start >= end) {
        return 0;
    }
    return clear_clusters(img, start, end - start, false, true);
}

int qcow2_block_status(struct vimg_image *img, uint64_t offset,
                       uint64_t count, uint64_t *pnum, uint64_t *map,
                       const char **file)
{
    struct qcow2_state *s = qcow2_state(img);
    uint64_t cs = s->cluster_size, done = 0, want_host = 0;
    uint64_t scs = (uint64_t)1 << s->sc_bits;
    enum qcow2_ctype first = QCOW2_C_UNALLOC;
    int r;

    while (done < count) {
        uint8_t *table;
        uint64_t idx, pos = offset + done, coff = pos & (cs - 1);
        if ((r = qcow2_get_l2(img, pos, false, &table, &idx)) < 0) {
            return r;
        }
        uint64_t span = (qcow2_l2_entries(s) - idx) * cs - coff;
        if (!table) {
            if (done && first != QCOW2_C_UNALLOC) {
                break;
            }
            done += MIN(span, count - done);
            continue;
        }
        bool stop = false;
        for (uint64_t i = idx; i < qcow2_l2_entries(s) && done < count &&
                               !stop; i++) {
            /* Subcluster ranges of one type within the cluster. */
            uint64_t in = (offset + done) & (cs - 1);
            while (in < cs && done < count) {
                struct entry x;
                if ((r = lookup(img, table, i, (unsigned)(in >> s->sc_bits),
                                &x)) < 0) {
                    return r;
                }
                uint64_t len = MIN((in >> s->sc_bits) * scs + x.n * scs - in,
                                   count - done);
                uint64_t host = x.host + in;
                if (done == 0) {
                    first = x.t;
                    *map = host;
                } else if (x.t != first || x.t == QCOW2_C_COMPRESSED ||
                           ((x.t == QCOW2_C_NORMAL ||
                             x.t == QCOW2_C_ZERO_ALLOC ||
                             x.t == QCOW2_C_UNALLOC_ALLOC) &&
                            host != want_host)) {
                    stop = true;
                    break;
                }
                want_host = host + len;
                done += len;
                in += len;
            }
        }
        if (stop) {
            break;
        }
    }
    *pnum = done;
    /* Offsets are meaningful in a file that can be named: not in an
     * encrypted image, nor in a data file the open policy refused. */
    *file = s->data ? s->data->filename : s->data_file_path;
    unsigned mapped = s->crypt_method || !*file ? 0 : VIMG_BS_OFFSET_VALID;
    switch (first) {
    case QCOW2_C_UNALLOC:
        return 0;
    case QCOW2_C_UNALLOC_ALLOC:
        /* Read from the backing file, but mapped: qemu-img map shows the
         * offset where no backing file decides. */
        return (int)mapped;
    case QCOW2_C_ZERO_PLAIN:
        return VIMG_BS_ZERO | VIMG_BS_ALLOCATED;
    case QCOW2_C_ZERO_ALLOC:
        /* Still mapped to its host cluster, as qemu-img map shows. */
        return (int)(VIMG_BS_ZERO | VIMG_BS_ALLOCATED | mapped);
    case QCOW2_C_NORMAL:
        return (int)(VIMG_BS_DATA | VIMG_BS_ALLOCATED | mapped);
    default:
        return VIMG_BS_DATA | VIMG_BS_ALLOCATED;
    }
}

int qcow2_preallocate(struct vimg_image *img, uint64_t start, uint64_t end,
                      enum vimg_prealloc mode, uint64_t zeroed_from)
{
    struct qcow2_state *s = qcow2_state(img);
    uint64_t cs = s->cluster_size;
    uint64_t pos = ROUND_DOWN(start, cs);
    int r = 0;

    end = ROUND_UP(end, cs);
    while (pos < end && r == 0) {
        uint8_t *table;
        uint64_t idx, host, k;
        enum qcow2_ctype t;
        if ((r = qcow2_get_l2(img, pos, true, &table, &idx)) < 0) {
            break;
        }
        uint64_t n = MIN((end - pos) / cs,
                         MIN(qcow2_l2_entries(s) - idx, MAX_RUN));
        for (k = 0; k < n; k++) {
            if ((r = classify(img, qcow2_l2e_get(s, table, idx + k), &t,
                              &host)) < 0 ||
                (t != QCOW2_C_UNALLOC && t != QCOW2_C_ZERO_PLAIN)) {
                break;
            }
        }
        if (r < 0) {
            break;
        }
        if (k == 0) {
            pos += cs;
            continue;
        }
        if (s->data != img->file) {
            host = pos;
        } else if ((r = qcow2_alloc_clusters(img, k, &host)) < 0) {
            break;
        }
        /* Reused space may hold old bytes: make it read as zeros. */
        if (host < zeroed_from) {
            r = vimg_internal_zero(s->data, host, k * cs,
                                   mode == VIMG_PREALLOC_METADATA
                                       ? VIMG_ZERO_MAY_UNMAP : 0);
        }
        if (r < 0 && s->data == img->file) {
            /* No table names the run yet: give it back at once. */
            struct qcow2_range run = { host, k * cs };
            (void)qcow2_free_clusters(img, &run, 1);
        }
        if (r < 0 || (r = qcow2_get_l2(img, pos, true, &table, &idx)) < 0) {
            break;
        }
        for (uint64_t i = 0; i < k; i++) {
            /* The bitmap stays: with extended entries, preallocated
             * subclusters are not allocated yet, as in QEMU. */
            qcow2_l2e_set(s, table, idx + i,
                          (host + i * cs) | QCOW2_L2E_COPIED);
        }
        qcow2_cache_mark_dirty(&s->l2_cache, table);
        pos += k * cs;
    }
    return r;
}

/* What dropping the L2 tables of L1 entries FIRST_L1.. releases: the
 * clusters of their entries (added to ENTS) and the tables (to TABLES). */
static int tail_releases(struct vimg_image *img, uint64_t first_l1,
                         struct free_list *ents, struct free_list *tables)
{
    struct qcow2_state *s = qcow2_state(img);
    uint64_t cs = s->cluster_size;
    uint8_t *table;
    int r = 0;

    for (uint64_t i = first_l1; i < s->l1_size && r == 0; i++) {
        uint64_t l2 = s->l1[i] & QCOW2_L1E_OFFSET_MASK;
        if (!l2) {
            continue;
        }
        if (l2 & (cs - 1)) {
            return qcow2_signal_corruption(img, l2, "L2 table offset 0x%llx "
                                           "is not cluster aligned",
                                           (unsigned long long)l2);
        }
        if ((r = qcow2_cache_get(img, &s->l2_cache, l2, false,
                                 &table)) < 0) {
            return r;
        }
        for (uint64_t j = 0; j < qcow2_l2_entries(s) && r == 0; j++) {
            uint64_t e = qcow2_l2e_get(s, table, j);
            if (e) {
                r = release_entry(img, ents, e);
            }
        }
        if (r == 0) {
            r = free_list_add(img, tables, l2, cs);
        }
    }
    return r;
}

int qcow2_drop_tail(struct vimg_image *img, uint64_t end)
{
    struct qcow2_state *s = qcow2_state(img);
    uint64_t cs = s->cluster_size;
    uint64_t span = cs << s->l2_bits; /* guest bytes one L2 table maps */
    uint64_t start = ROUND_UP(end, cs);
    uint64_t first_l1 = DIV_ROUND_UP(start, span);
    struct free_list f = { 0 };
    uint8_t *table;
    uint64_t idx;
    int r = 0;

    /* What the tables wholly past the end release (below) is checked
     * before anything changes. */
    struct free_list ents = { 0 }, tables = { 0 };
    if ((r = tail_releases(img, first_l1, &ents, &tables)) == 0 &&
        (r = free_list_check(img, &ents)) == 0) {
        /* Still in the L1 table while checked. */
        r = qcow2_check_release(img, QCOW2_ROLE_L2, tables.v, tables.n);
    }
    free(ents.v);
    free(tables.v);
    if (r < 0) {
        return r;
    }
    /* The table holding the new end: clear its entries past it, unless
     * none is set (a table shared with a snapshot is then not copied). */
    if (first_l1 <= s->l1_size && start < first_l1 * span) {
        if ((r = qcow2_get_l2(img, start, false, &table, &idx)) < 0) {
            return r;
        }
        bool any = false;
        for (uint64_t i = idx; table && i < qcow2_l2_entries(s); i++) {
            any = any || qcow2_l2e_get(s, table, i) != 0 ||
                  qcow2_l2bm_get(s, table, i) != 0;
        }
        if (any && (r = clear_clusters(img, start, first_l1 * span - start,
                                       false, true)) < 0) {
            return r;
        }
    }
    /* Tables wholly past the end leave the L1 table. Each of their
     * entries is one reference of the active image, whether the table is
     * ours alone or shared with a snapshot (which keeps its own), so each
     * host cluster and the table itself lose one reference once the L1
     * table without them is on disk. The L1 table keeps its size. */
    for (uint64_t i = first_l1; i < s->l1_size && r == 0; i++) {
        uint64_t l2 = s->l1[i] & QCOW2_L1E_OFFSET_MASK;
        if (!l2) {
            continue;
        }
        if (l2 & (cs - 1)) {
            r = qcow2_signal_corruption(img, l2, "L2 table offset 0x%llx is "
                                        "not cluster aligned",
                                        (unsigned long long)l2);
            break;
        }
        if ((r = qcow2_cache_get(img, &s->l2_cache, l2, false,
                                 &table)) < 0) {
            break;
        }
        for (uint64_t j = 0; j < qcow2_l2_entries(s) && r == 0; j++) {
            uint64_t e = qcow2_l2e_get(s, table, j);
            if (e) {
                r = release_entry(img, &f, e);
            }
        }
        /* Nothing will read this copy again: do not write it back (a
         * table allocated by a failed preallocation may have no room). */
        qcow2_cache_discard(&s->l2_cache, l2);
        s->l1[i] = 0;
        s->l1_dirty = true;
        if (r == 0) {
            r = free_list_add(img, &f, l2, cs);
        }
    }
    int r2 = free_list_commit(img, &f);
    return r < 0 ? r : r2;
}
