/* qcow2 driver internals, shared by the files of lib/formats/qcow2/.
 * Prototypes are grouped by the file that defines them. */
#ifndef VIMG_QCOW2_H
#define VIMG_QCOW2_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "../../internal.h"
#include "qcow2-ondisk.h"

/* Caps on header-driven sizes, each with its reason:
 * - the L1 table is read whole into memory: 32 MiB, QEMU's
 *   QCOW_MAX_L1_SIZE (4 Mi entries map 2 PiB at 64 KiB clusters);
 * - the refcount table likewise, capped at 8 MiB as QEMU does;
 * - the snapshot table is parsed whole: QEMU's 65536 snapshots cap;
 * - unknown header extensions are kept for rewriting cluster 0, which
 *   bounds them anyway. */
#define QCOW2_MAX_L1_BYTES (32u << 20)
#define QCOW2_MAX_RT_BYTES (8u << 20)
#define QCOW2_MAX_SNAPSHOTS 65536
#define QCOW2_MAX_SNAPSHOT_TABLE (64u << 20)
/* The L2 tables of all snapshots are collected (sorted, without
 * duplicates) for the overlap check; reading their L1 tables is capped at
 * 16 Mi entries in all (128 MiB), 4 full-size L1 tables. */
#define QCOW2_MAX_INACTIVE_L1_ENTRIES (16u << 20)
/* Default cache sizes: the L2 cache maps 8 GiB at 64 KiB clusters (1 MiB),
 * the refcount cache a quarter of that; never fewer than 2 tables. */
#define QCOW2_DEFAULT_L2_CACHE (1u << 20)
#define QCOW2_DEFAULT_RC_CACHE (256u << 10)
#define QCOW2_MIN_CACHE_TABLES 2
/* Persistent bitmaps, QEMU's limits: 65535 bitmaps, a directory of at
 * most 1 KiB per bitmap; a bitmap's data at most 512 MiB (QEMU holds it
 * whole in memory) in a table of at most 0x8000000 entries; names of at
 * most 1023 bytes; granularities 512 B..2 GiB. */
#define QCOW2_MAX_BITMAPS 65535u
#define QCOW2_MAX_BITMAP_DIR (1024u * QCOW2_MAX_BITMAPS)
#define QCOW2_MAX_BITMAP_BYTES (512u << 20)
#define QCOW2_MAX_BITMAP_TABLE 0x8000000u
#define QCOW2_MAX_BITMAP_NAME 1023u
#define QCOW2_MIN_BITMAP_GRAN_BITS 9
#define QCOW2_MAX_BITMAP_GRAN_BITS 31

/* Roles of metadata, for the overlap check before every metadata write. */
enum qcow2_role {
    QCOW2_ROLE_HEADER = 1u << 0,
    QCOW2_ROLE_L1 = 1u << 1,
    QCOW2_ROLE_L2 = 1u << 2,
    QCOW2_ROLE_RT = 1u << 3,
    QCOW2_ROLE_RB = 1u << 4,
    QCOW2_ROLE_SNAPSHOTS = 1u << 5,
    QCOW2_ROLE_SNAPSHOT_L1 = 1u << 6,
    QCOW2_ROLE_INACTIVE_L2 = 1u << 7, /* never written: snapshots are
                                         read-only here */
    QCOW2_ROLE_BITMAPS = 1u << 8,     /* bitmap directory and tables */
    QCOW2_ROLE_CRYPTO = 1u << 9,      /* the LUKS header and key slots */
    QCOW2_ROLE_DATA = 0, /* guest data: may not overlap anything */
};

/* A byte range of img->file. */
struct qcow2_range {
    uint64_t offset, len;
};

/* The refcount blocks and active L2 tables, sorted: checking many ranges
 * against them then costs a binary search each rather than a scan of both
 * tables. Valid until either table changes. */
struct qcow2_meta_index {
    uint64_t *rb, *l2;
    uint64_t nb_rb, nb_l2;
};

struct qcow2_cache_entry {
    uint64_t offset;  /* 0: slot empty */
    uint64_t lru;
    bool dirty;
};

/* A fixed-size cache of whole metadata clusters, kept in on-disk byte
 * order (read through load_be64 / the refcount accessors). */
struct qcow2_cache {
    enum qcow2_role role;
    uint64_t table_size;
    unsigned count;
    uint64_t tick;
    struct qcow2_cache_entry *entries;
    uint8_t *data; /* count * cluster_size bytes */
};

struct qcow2_snapshot {
    uint64_t l1_offset;
    uint32_t l1_size;
    uint64_t vm_state_size;
    uint32_t date_sec, date_nsec;
    uint64_t vm_clock_nsec;
    uint64_t icount;
    bool has_icount;
    uint64_t disk_size;        /* the image's size at open when the entry
                                  does not record it (v2), as in QEMU */
    bool short_extra;          /* without the 16 bytes of extra data that
                                  v3 requires (written before QEMU 1.1) */
    char *id, *name;
    /* Extra data past the fields known here, kept for rewriting the
     * table (QEMU keeps it too). */
    uint8_t *extra_unknown;
    uint32_t extra_unknown_len;
};

/* A persistent dirty bitmap. What the image holds is the directory entry
 * and table on disk, with CLEARED (the data counts as zeros) and PAGES
 * (bits set since, one cluster-sized page per data cluster) on top, until
 * qcow2_bitmaps_store writes them back. */
struct qcow2_bitmap {
    char *name;
    uint32_t flags;            /* QCOW2_BMDIR_FLAG_AUTO as it should be on
                                  disk; IN_USE is derived when writing */
    uint8_t gran_bits;
    uint64_t table_offset;     /* 0: none on disk yet */
    uint32_t table_size;       /* entries */
    uint64_t *table;           /* host order, read on first use */
    bool inconsistent;         /* in use when opened: its data is stale,
                                  kept as it is until removed */
    bool cleared;
    bool changed;              /* must be stored */
    bool resized;              /* the disk size changed since stored */
    uint8_t **pages;
    uint64_t nb_pages;
};

struct qcow2_state {
    /* Header, validated once by qcow2_validate_header. */
    uint32_t version;
    uint32_t cluster_bits;
    uint64_t cluster_size;
    uint32_t l2_bits;          /* entries per L2 table = 1 << l2_bits */
    bool ext_l2;               /* extended L2 entries (subclusters) */
    uint32_t sc_bits;          /* subcluster size: the cluster size
                                  without extended L2 entries */
    uint32_t crypt_method;
    uint64_t l1_offset;
    uint32_t l1_size;
    uint64_t rt_offset;
    uint32_t rt_clusters;
    uint32_t nb_snapshots;
    uint64_t snapshots_offset;
    uint64_t incompat, compat, autoclear;
    uint32_t refcount_order;
    uint32_t header_length;
    uint8_t compression_type;
    uint64_t snapshots_size;   /* bytes of the snapshot table */
    uint64_t crypto_offset, crypto_length;
    uint32_t nb_bitmaps;
    uint64_t bitmap_dir_offset, bitmap_dir_size;
    char *data_file_name;
    char *backing_name, *backing_format;
    bool has_bitmaps_ext;
    const uint8_t *feature_table; /* inside cluster0, or NULL */
    uint64_t feature_table_len;
    uint8_t *cluster0;         /* the header cluster as read at open */
    uint8_t hdr[QCOW2_HDR_V3_LENGTH]; /* header fields, rewritten in place */

    /* Derived. */
    uint32_t rb_bits;          /* refcounts per block = 1 << rb_bits */
    uint64_t rt_entries;
    uint64_t *l1;              /* host byte order, l1_size entries */
    uint64_t *rt;              /* host byte order, rt_entries entries */
    struct qcow2_snapshot *snapshots;
    /* L2 tables the snapshots name, sorted, unique; loaded on first use
     * by the overlap check (snapshots do not change while open). */
    uint64_t *inactive_l2;
    uint64_t nb_inactive_l2;
    bool inactive_l2_loaded;
    struct qcow2_cache l2_cache, rb_cache;
    struct vimg_image *data;   /* where guest data lives: img->file or the
                                  external data file */
    struct vimg_image *data_file; /* owned external data file, or NULL */
    struct qcow2_crypto *crypto; /* encryption state (qcow2-crypto.c), or
                                  NULL when not encrypted */
    char *data_file_path;      /* where data_file_name resolves, when the
                                  open policy reports references without
                                  opening them; NULL if it refuses it */

    /* Runtime state. */
    uint64_t free_hint;        /* no free cluster below this index */
    uint64_t free_byte_offset; /* where the next compressed piece may go
                                  (0: start a fresh cluster) */
    bool compressed_written;   /* since the last flush (see
                                  qcow2_pad_to_sector) */
    bool l1_dirty;
    bool corrupt;              /* refuse every further write */
    bool dirty_set;            /* the header's dirty bit is set by us */
    bool lazy;                 /* lazy refcounts in effect */
    struct qcow2_bitmap *bm;   /* the persistent bitmaps, directory order */
    uint32_t bm_count;
    bool bm_loaded;            /* the bitmaps extension is maintained */
    bool bm_in_use;            /* the enabled bitmaps are marked in use on
                                  disk (the guest disk has changed) */
    bool bm_resizing;          /* every consistent bitmap is marked in use
                                  while its size changes */

    /* Concurrency (the driver is thread-safe): LOCK guards everything
     * above and the caches. Guest-data I/O and decompression run without
     * it, their host range listed in ACTIVE meanwhile, so that no cluster
     * is freed (and reused by another write) under a read or write in
     * flight. */
    pthread_mutex_t lock;
    pthread_cond_t active_done; /* a range left ACTIVE or INFLIGHT */
    struct qcow2_active *active;
    /* Guest ranges whose new clusters are being written without the lock,
     * before their L2 entries point at them: other writers, zeroes and
     * discards of the range wait for them. */
    struct qcow2_active *inflight;
};

/* A host range with guest-data I/O in flight outside the lock. */
struct qcow2_active {
    uint64_t start, end;
    struct qcow2_active *next;
};

/* What a guest cluster or subcluster reads as, by its L2 entry (and
 * subcluster bitmap). Without extended L2 entries a cluster is one
 * subcluster. UNALLOC_ALLOC: a host cluster is set but the subcluster is
 * not allocated in it, so it reads from the backing file. */
enum qcow2_ctype {
    QCOW2_C_UNALLOC,
    QCOW2_C_ZERO_PLAIN,
    QCOW2_C_ZERO_ALLOC,
    QCOW2_C_NORMAL,
    QCOW2_C_COMPRESSED,
    QCOW2_C_UNALLOC_ALLOC,
};

/* ---- qcow2.c ---------------------------------------------------------- */
extern const struct vimg_driver vimg_driver_qcow2;
/* Validate a header (cluster 0, LEN bytes of it, FILE_SIZE the file's
 * length) into S; the one place header fields are checked. */
int qcow2_validate_header(struct vimg_image *img, struct qcow2_state *s,
                          const uint8_t *buf, size_t len, uint64_t file_size);
/* Mark the image corrupt (header bit when possible), refuse further
 * writes, and return -EIO with a message naming OFFSET. */
int qcow2_signal_corruption(struct vimg_image *img, uint64_t offset,
                            const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The metadata structure, other than those of the roles in IGNORE, that
 * [OFFSET, OFFSET+LEN) of img->file overlaps: *WHAT names it, or is NULL.
 * IX (or NULL: scan the tables) speeds up many calls. Fails only when the
 * snapshots' L1 tables cannot be read. */
int qcow2_metadata_at(struct vimg_image *img, unsigned ignore,
                      const struct qcow2_meta_index *ix, uint64_t offset,
                      uint64_t len, const char **what);
/* Whether byte OFFSET lies in an L2 table of a snapshot. Such a table may
 * be shared (with the active L1 or other snapshots), so dropping one of
 * its references is fine; dropping its last one is not. */
int qcow2_inactive_l2_at(struct vimg_image *img, uint64_t offset, bool *yes);
int qcow2_meta_index_build(struct vimg_image *img,
                           struct qcow2_meta_index *ix);
void qcow2_meta_index_free(struct qcow2_meta_index *ix);
/* Refuse a metadata write of ROLE at [OFFSET, OFFSET+LEN) that would land
 * on other metadata. */
int qcow2_overlap_check(struct vimg_image *img, enum qcow2_role role,
                        uint64_t offset, uint64_t len);
/* Checked write of metadata of ROLE through img->file (marked
 * VIMG_INTERNAL_WRITE_METADATA). */
int qcow2_write_meta(struct vimg_image *img, enum qcow2_role role,
                     const void *buf, uint64_t len, uint64_t offset);
/* Write the in-memory header fields at byte POS (LEN bytes of them). */
int qcow2_update_header_fields(struct vimg_image *img, unsigned pos,
                               unsigned len);
/* Before any change to the image: refuse when corrupt, clear the
 * autoclear bits of features not maintained here. */
int qcow2_begin_write(struct vimg_image *img);
/* Set the dirty bit before the first deferred refcount write (lazy
 * refcounts). */
int qcow2_mark_dirty(struct vimg_image *img);
/* Write back everything in crash-safe order: refcount blocks, L2 tables,
 * L1. */
int qcow2_flush_metadata(struct vimg_image *img);
/* Change the virtual size with the persistent bitmaps (lock held, nothing
 * in flight). */
int qcow2_resize(struct vimg_image *img, uint64_t size, unsigned flags,
                 enum vimg_prealloc prealloc);

/* ---- qcow2-create.c --------------------------------------------------- */
extern const struct vimg_opt_desc qcow2_create_opts[];
/* The feature name table QEMU writes (8 names), as one header extension
 * at H; returns its length. Only into clusters where
 * qcow2_has_feature_table says qemu-img puts one. */
#define QCOW2_FEATURE_TABLE_SIZE (8 * QCOW2_FEAT_ENTRY_SIZE)
bool qcow2_has_feature_table(uint64_t cluster_size);
uint64_t qcow2_put_feature_table(uint8_t *h);
int qcow2_create(struct vimg_image *file, const struct vimg_create_ctx *c);
int qcow2_truncate(struct vimg_image *img, uint64_t size, unsigned flags,
                   enum vimg_prealloc prealloc);
/* Grow the L1 table to at least MIN_SIZE entries. */
int qcow2_grow_l1(struct vimg_image *img, uint64_t min_size);

/* ---- qcow2-cache.c ---------------------------------------------------- */
int qcow2_cache_init(struct qcow2_cache *c, enum qcow2_role role,
                     uint64_t bytes, uint64_t cluster_size);
void qcow2_cache_free(struct qcow2_cache *c);
/* The cached table at OFFSET; NEW_TABLE gives a zeroed table without
 * reading. The pointer is valid until the next cache call. */
int qcow2_cache_get(struct vimg_image *img, struct qcow2_cache *c,
                    uint64_t offset, bool new_table, uint8_t **table);
void qcow2_cache_mark_dirty(struct qcow2_cache *c, const uint8_t *table);
/* Write back dirty tables (L2 first makes refcount blocks durable). */
int qcow2_cache_flush(struct vimg_image *img, struct qcow2_cache *c);
/* Forget the table at OFFSET (it was freed) without writing it. */
void qcow2_cache_discard(struct qcow2_cache *c, uint64_t offset);
bool qcow2_cache_has_dirty(const struct qcow2_cache *c);
/* Forget every table, dirty or not (the structure was replaced). */
void qcow2_cache_reset(struct qcow2_cache *c);

/* ---- qcow2-refcount.c ------------------------------------------------- */
/* Refcount I/O within one block, for every width 1..64 bits. */
uint64_t qcow2_refcount_load(const uint8_t *block, uint32_t order,
                             uint64_t index);
void qcow2_refcount_store(uint8_t *block, uint32_t order, uint64_t index,
                          uint64_t value);
int qcow2_get_refcount(struct vimg_image *img, uint64_t cluster,
                       uint64_t *refcount);
/* Add DELTA to the refcount of each cluster in [OFFSET, OFFSET+LEN).
 * Frees lower the search hint. */
int qcow2_update_refcount(struct vimg_image *img, uint64_t offset,
                          uint64_t len, int64_t delta);
/* Allocate N contiguous clusters with refcount 1; *OFFSET is the first. */
int qcow2_alloc_clusters(struct vimg_image *img, uint64_t n,
                         uint64_t *offset);
/* Take out of the refcount table the blocks that count no cluster but
 * possibly themselves (after a shrink), as qemu-img does. */
int qcow2_drop_unused_refblocks(struct vimg_image *img);
/* The highest cluster below cluster BELOW with a non-zero refcount (0
 * when none is). */
int qcow2_last_used_cluster(struct vimg_image *img, uint64_t below,
                            uint64_t *last);
/* Drop one reference from each cluster of the N ranges V, once the L2/L1
 * tables that no longer point at them are on disk. A range that holds
 * metadata marks the image corrupt instead (a hostile entry must not give
 * the image's own structures back), and nothing changes. */
int qcow2_free_clusters(struct vimg_image *img, const struct qcow2_range *v,
                        size_t n);
/* Before a request changes anything, for the N ranges V of clusters it
 * will release: they must hold no metadata (but of the roles in IGNORE,
 * which the request replaces) and be in use (refcount >= 1), so that no
 * allocation of the same request can be handed one of them. Marks the
 * image corrupt otherwise. */
int qcow2_check_release(struct vimg_image *img, unsigned ignore,
                        const struct qcow2_range *v, size_t n);
/* SIZE bytes (less than a cluster) for compressed data, packed after the
 * previous piece; each cluster the range touches gains a reference. */
int qcow2_alloc_bytes(struct vimg_image *img, uint64_t size,
                      uint64_t *offset);

/* ---- qcow2-cluster.c -------------------------------------------------- */
/* Driver entry points that take the lock themselves. */
int qcow2_pread(struct vimg_image *img, void *buf, uint64_t count,
                uint64_t offset);
int qcow2_pwrite(struct vimg_image *img, const void *buf, uint64_t count,
                 uint64_t offset, unsigned flags);
/* The rest run with the lock held (qcow2.c wraps them for the driver
 * table); they may drop it while waiting for I/O in flight. */
int qcow2_pwrite_locked(struct vimg_image *img, const void *buf,
                        uint64_t count, uint64_t offset, unsigned flags);
/* Wait until no write or I/O runs outside the lock (before operations
 * that walk or rebuild all metadata: resize, check). */
void qcow2_wait_all_idle(struct vimg_image *img);
/* Wait until no allocating write fills guest range [START, END). */
void qcow2_wait_inflight(struct vimg_image *img, uint64_t start,
                         uint64_t end);
/* The L2 table for guest OFFSET (*TABLE NULL when it has none and ALLOC
 * is false) and the index of OFFSET's entry. ALLOC makes the table exist
 * and be exclusively ours (copy-on-write of a table shared with a
 * snapshot), which may drop the lock. */
int qcow2_get_l2(struct vimg_image *img, uint64_t offset, bool alloc,
                 uint8_t **table, uint64_t *idx);
int qcow2_zero(struct vimg_image *img, uint64_t offset, uint64_t count,
               unsigned flags);
int qcow2_discard(struct vimg_image *img, uint64_t offset, uint64_t count);
int qcow2_block_status(struct vimg_image *img, uint64_t offset,
                       uint64_t count, uint64_t *pnum, uint64_t *map,
                       const char **file);
/* Allocate every cluster of [START, END) as zero-filled data (preallocation
 * modes other than off). Host space at or past ZEROED_FROM is known to
 * read as zeros and to be allocated already (UINT64_MAX: none is). */
int qcow2_preallocate(struct vimg_image *img, uint64_t start, uint64_t end,
                      enum vimg_prealloc mode, uint64_t zeroed_from);
/* Deallocate every guest cluster wholly at or past END (shrinking, or
 * undoing a failed preallocation): host clusters lose the active image's
 * reference (a snapshot keeps its own) once the tables are on disk, and
 * L2 tables past END leave the L1 table, whose size stays. */
int qcow2_drop_tail(struct vimg_image *img, uint64_t end);

/* ---- qcow2-compress.c ------------------------------------------------- */
/* The host bytes of compressed entry E, validated (lock held). */
int qcow2_compressed_span(struct vimg_image *img, uint64_t e,
                          uint64_t *host, uint64_t *len);
/* The same check, with no message and nothing marked corrupt. */
bool qcow2_compressed_span_ok(struct vimg_image *img, uint64_t e,
                              uint64_t *host, uint64_t *len);
/* Read and inflate LEN compressed bytes at HOST into a whole cluster; no
 * lock needed once the span is validated and protected. */
int qcow2_decompress_span(struct vimg_image *img, uint64_t host,
                          uint64_t len, uint8_t *out);
/* Inflate LEN compressed bytes IN, read from HOST, into a whole cluster. */
int qcow2_inflate(struct vimg_image *img, uint64_t host, const uint8_t *in,
                  uint64_t len, uint8_t *out);
int qcow2_decompress(struct vimg_image *img, uint64_t e, uint8_t *out);
long qcow2_compress(struct vimg_image *img, const void *in, void *out,
                    uint64_t cap);
int qcow2_write_compressed(struct vimg_image *img, uint64_t offset,
                           const void *cbuf, uint64_t len);
/* Extend the file to a whole number of sectors (after compressed writes). */
int qcow2_pad_to_sector(struct vimg_image *img);

/* ---- qcow2-crypto.c -------------------------------------------------- */
struct vimg_luks_create;
struct vimg_luks_amend;
/* Set up decryption at open (the key from encrypt.key-secret; none with
 * VIMG_OPEN_NO_IO); refuses legacy AES for writing. */
int qcow2_crypto_open(struct vimg_image *img, const struct vimg_opts *opts);
void qcow2_crypto_close(struct qcow2_state *s);
/* 0, or -ENOKEY when the image is encrypted but was opened without key. */
int qcow2_crypto_ready(struct vimg_image *img);
/* Guest data at HOST in the data file (guest offset GUEST), decrypted or
 * encrypted on the way when the image is encrypted; any thread, no lock
 * needed (the caller protects the range). */
int qcow2_crypto_pread(struct vimg_image *img, void *buf, uint64_t len,
                       uint64_t host, uint64_t guest);
int qcow2_crypto_pwrite(struct vimg_image *img, const void *buf,
                        uint64_t len, uint64_t host, uint64_t guest);
/* The "encrypt" member of info's format-specific data. */
int qcow2_crypto_info(struct vimg_image *img, struct vimg_value *data);
/* Check what qcow2_crypto_amend checks without changing anything. */
int qcow2_crypto_amend_check(struct vimg_image *img,
                             const struct vimg_luks_amend *a,
                             const struct vimg_amend_params *p);
/* Change LUKS key slots as qemu-img amend's encrypt.* options say (A),
 * after checking that the header's clusters overlap no other metadata. */
int qcow2_crypto_amend(struct vimg_image *img,
                       const struct vimg_luks_amend *a,
                       const struct vimg_amend_params *p);
/* The encrypt.* create options: *LUKS when encrypt.format=luks, with the
 * passphrase (borrowed); legacy AES is refused. */
int qcow2_crypto_create_params(const struct vimg_create_ctx *c,
                               struct vimg_luks_create *o, bool *luks,
                               const uint8_t **pass, size_t *pass_len);
/* Put a new LUKS header into the image being created. */
int qcow2_crypto_create(struct vimg_image *img,
                        const struct vimg_luks_create *o,
                        const uint8_t *pass, size_t pass_len);

/* ---- qcow2-check.c ---------------------------------------------------- */
int qcow2_check(struct vimg_image *img, unsigned fix,
                struct vimg_check_result *res, vimg_report_fn report,
                void *opaque);
/* Rebuild refcounts after an unclean shutdown with lazy refcounts. */
int qcow2_repair_dirty(struct vimg_image *img);
/* Rebuild the refcount structure at 2^ORDER bits from the references
 * (amend -o refcount_bits): refused when the image has errors or a
 * refcount does not fit the new width; leaks are dropped. */
int qcow2_change_refcount_order(struct vimg_image *img, uint32_t order);

/* ---- qcow2-bitmap.c --------------------------------------------------- */
/* Read and validate the bitmap directory (the one place it is checked)
 * when the bitmaps extension is valid; the tables are read on first
 * use. */
int qcow2_bitmaps_open(struct vimg_image *img);
void qcow2_bitmaps_free(struct qcow2_state *s);
/* A bitmap table entry is well formed (check counts the others). */
bool qcow2_bitmap_entry_valid(const struct qcow2_state *s, uint64_t e);
/* "bitmap directory" or "bitmap table" when [OFFSET, OFFSET+LEN) of the
 * file overlaps one, else NULL. */
const char *qcow2_bitmaps_metadata_at(const struct qcow2_state *s,
                                      uint64_t offset, uint64_t len);
/* Before the first change of the guest disk: mark the enabled bitmaps in
 * use on disk. */
int qcow2_bitmaps_begin_write(struct vimg_image *img);
/* Record a write (or zero write, discard) of guest bytes [OFFSET,
 * OFFSET+LEN) in every enabled bitmap, in memory. */
int qcow2_bitmaps_mark(struct vimg_image *img, uint64_t offset,
                       uint64_t len);
/* Write changed bitmaps back (crash-safely); CLOSING also clears their
 * in-use flags. */
int qcow2_bitmaps_store(struct vimg_image *img, bool closing);
/* Around a change of the virtual size to SIZE: refuse inconsistent
 * bitmaps and mark all in use before, resize and write them after
 * (RESIZED: the size did change). */
int qcow2_bitmaps_resize_begin(struct vimg_image *img, uint64_t size);
int qcow2_bitmaps_resize_end(struct vimg_image *img, bool resized);
/* The "bitmaps" member of info's format-specific data, as qemu-img's. */
int qcow2_bitmaps_info(struct vimg_image *img, struct vimg_value *data);
/* Driver members (lock held). */
int qcow2_bitmap_list(struct vimg_image *img, struct vimg_internal_bitmap **v,
                      size_t *n);
int qcow2_bitmap_dirty(struct vimg_image *img, const char *name,
                       uint64_t offset, uint64_t len,
                       vimg_internal_range_fn fn, void *opaque);
int qcow2_bitmap(struct vimg_image *img, const struct vimg_bitmap_params *p);

/* ---- qcow2-amend.c ---------------------------------------------------- */
/* The offset in the header cluster of the first extension of TYPE, or 0
 * when there is none. */
uint64_t qcow2_header_ext_offset(const struct qcow2_state *s, uint32_t type);
/* Write the whole header cluster from the in-memory state, as QEMU lays it
 * out: fields, extensions (backing format, data file, encryption header,
 * feature names, bitmaps, then unknown ones as they were), end marker,
 * backing file name. */
int qcow2_rewrite_header(struct vimg_image *img);
/* The change_backing driver member (lock held): the backing fields of
 * the state, img's and the header, after flushing everything else. */
int qcow2_change_backing(struct vimg_image *img, const char *name,
                         const char *format);
extern const struct vimg_opt_desc qcow2_amend_opts[];
int qcow2_amend(struct vimg_image *img, const struct vimg_opts *opts,
                const struct vimg_amend_params *params);

/* ---- qcow2-snapshot.c ------------------------------------------------- */
/* Driver members (lock held, no I/O in flight: see qcow2.c). */
int qcow2_snapshot_list(struct vimg_image *img, struct vimg_snapshot **list,
                        size_t *n);
int qcow2_snapshot_create(struct vimg_image *img,
                          const struct vimg_snapshot *sn);
int qcow2_snapshot_apply(struct vimg_image *img, const char *id,
                         const char *name);
int qcow2_snapshot_delete(struct vimg_image *img, const char *id,
                          const char *name);
int qcow2_snapshot_load(struct vimg_image *img, const char *id,
                        const char *name);
int qcow2_make_empty(struct vimg_image *img);
/* Write the snapshot table anew, every entry with the extra data of
 * version 3 (VM state size, disk size, icount), in one transaction: the
 * image is the old one or the new one after a crash (amend's upgrade of
 * a table written before the extra data existed). */
int qcow2_snapshot_rewrite_table(struct vimg_image *img);
/* Free what struct qcow2_snapshot entries own. */
void qcow2_snapshots_free(struct qcow2_snapshot *v, uint32_t n);

/* ---- qcow2-measure.c -------------------------------------------------- */
int qcow2_measure(const struct vimg_opts *opts, uint64_t size,
                  struct vimg_image *src, struct vimg_measure *out);

/* ---- qcow2-subcluster.c ---------------------------------------------- */
/* Subclusters [FIRST, FIRST+N) as bits of the allocation half of a
 * bitmap (shift left by 32 for the zero half). */
uint64_t qcow2_sc_bits(unsigned first, unsigned n);
/* The type of subcluster SC of an entry whose standard part classifies as
 * CT (QCOW2_C_UNALLOC, _NORMAL or _COMPRESSED with extended entries) and
 * whose bitmap is BM, and how many subclusters from SC on share it (*N).
 * false when the bitmap is invalid for CT: an allocated and a zero bit
 * both set, allocation bits in an unallocated cluster, or any bit in a
 * compressed one. Without extended entries *T is CT and *N 1. */
bool qcow2_sc_range(const struct qcow2_state *s, enum qcow2_ctype ct,
                    uint64_t bm, unsigned sc, enum qcow2_ctype *t,
                    unsigned *n);
/* Whether reads of a subcluster of type T come from this layer's host
 * cluster (what partial writes must copy). */
bool qcow2_sc_has_data(enum qcow2_ctype t);

/* ---- Helpers ---------------------------------------------------------- */
static inline struct qcow2_state *qcow2_state(struct vimg_image *img)
{
    return img->opaque;
}
/* Guest data lives in an external data file (whether opened or not). */
static inline bool qcow2_has_data_file(const struct qcow2_state *s)
{
    return (s->incompat & QCOW2_INCOMPAT_DATA_FILE) != 0;
}
static inline uint64_t qcow2_l2_entries(const struct qcow2_state *s)
{
    return (uint64_t)1 << s->l2_bits;
}
/* Bytes per L2 entry: 16 with extended entries. */
static inline uint64_t qcow2_l2e_size(const struct qcow2_state *s)
{
    return s->ext_l2 ? QCOW2_EXTL2_ENTRY_SIZE : QCOW2_ENTRY_SIZE;
}
/* The standard part of entry I of an L2 table (on-disk order). */
static inline uint64_t qcow2_l2e_get(const struct qcow2_state *s,
                                     const uint8_t *table, uint64_t i)
{
    return load_be64(table + i * qcow2_l2e_size(s));
}
static inline void qcow2_l2e_set(const struct qcow2_state *s,
                                 uint8_t *table, uint64_t i, uint64_t e)
{
    store_be64(table + i * qcow2_l2e_size(s), e);
}
/* The subcluster bitmap of entry I (0 without extended entries). */
static inline uint64_t qcow2_l2bm_get(const struct qcow2_state *s,
                                      const uint8_t *table, uint64_t i)
{
    return s->ext_l2 ? load_be64(table + i * QCOW2_EXTL2_ENTRY_SIZE + 8)
                     : 0;
}
static inline void qcow2_l2bm_set(const struct qcow2_state *s,
                                  uint8_t *table, uint64_t i, uint64_t bm)
{
    if (s->ext_l2) {
        store_be64(table + i * QCOW2_EXTL2_ENTRY_SIZE + 8, bm);
    }
}
static inline unsigned qcow2_sc_per_cluster(const struct qcow2_state *s)
{
    return s->ext_l2 ? QCOW2_EXTL2_SUBCLUSTERS : 1;
}

#endif
