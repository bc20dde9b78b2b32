/* libvimg internals: the driver interface and the image handle.
 * Nothing here is part of the public API. */
#ifndef VIMG_INTERNAL_H
#define VIMG_INTERNAL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vimg/vimg.h"

enum vimg_driver_kind { VIMG_DRIVER_PROTOCOL, VIMG_DRIVER_FORMAT };

/* ---- Creation options ------------------------------------------------ */

enum vimg_opt_type { VIMG_OPT_SIZE, VIMG_OPT_BOOL, VIMG_OPT_STRING,
                     VIMG_OPT_NUMBER };

/* One entry of a driver's -o table; the table ends with name == NULL. */
struct vimg_opt_desc {
    const char *name;
    enum vimg_opt_type type;
    const char *help;
};

/* Parsed "key=value,..." text, validated against a descriptor table: keys
 * are known, sizes/bools/numbers parse. Values stay strings until asked. */
struct vimg_opts {
    size_t count;
    struct vimg_opt_pair { char *key, *value; } *pairs;
};

/* Parse TEXT against DESC (NULL DESC accepts nothing). WHAT names the
 * file or format in error messages. "k=v,,x" escapes a comma as ",,".
 * NULL and "" are no options; an empty item (a leading or unescaped
 * trailing comma) is refused. */
int vimg_internal_opts_parse(const char *text,
                             const struct vimg_opt_desc *desc,
                             const char *what, struct vimg_opts *out);
/* Split the option list TEXT (may be NULL) into the items whose key
 * starts with PREFIX, without it (QEMU's "file." for the protocol under a
 * format), and the others; both are new strings the caller frees. */
int vimg_internal_opts_split(const char *text, const char *prefix,
                             char **with, char **without);

/* The same with the keys of EXTRA accepted too (a protocol's creation
 * options beside the format's; DESC describes a key both have). */
int vimg_internal_opts_parse_with(const char *text,
                                  const struct vimg_opt_desc *desc,
                                  const struct vimg_opt_desc *extra,
                                  const char *what, struct vimg_opts *out);
void vimg_internal_opts_free(struct vimg_opts *opts);
/* The items of IN whose key KEEP lists and DROP does not (NULL: none),
 * copied into OUT (the caller frees it). */
int vimg_internal_opts_pick(const struct vimg_opts *in,
                            const struct vimg_opt_desc *keep,
                            const struct vimg_opt_desc *drop,
                            struct vimg_opts *out);
/* A copy of the option list TEXT (may be NULL) without the items whose
 * key KEYS holds; NULL with ENOMEM. */
char *vimg_internal_opts_drop(const char *text, const struct vimg_opts *keys);
/* Add or replace KEY (used for -b/-F and the size). */
int vimg_internal_opts_set(struct vimg_opts *opts, const char *key,
                           const char *value);
/* Getters return the default when KEY is absent; -EINVAL (with a message)
 * when present but malformed. */
const char *vimg_internal_opts_get(const struct vimg_opts *opts,
                                   const char *key, const char *dflt);
int vimg_internal_opts_get_size(const struct vimg_opts *opts,
                                const char *key, uint64_t dflt,
                                uint64_t *out);
int vimg_internal_opts_get_bool(const struct vimg_opts *opts,
                                const char *key, bool dflt, bool *out);
/* preallocation=off|metadata|falloc|full, or -EINVAL. */
int vimg_internal_opts_get_prealloc(const struct vimg_opts *opts,
                                    enum vimg_prealloc *out);

/* What a format's create() receives. */
struct vimg_create_ctx {
    const char *filename;        /* the name the user gave (for messages
                                    and resolving backing paths) */
    uint64_t size;
    const struct vimg_opts *opts;
    const char *backing_file;    /* NULL when none */
    const char *backing_format;  /* NULL when unknown */
    const struct vimg_secret *secrets; /* borrowed for the call */
    size_t n_secrets;
    struct vimg_target *target;  /* what is being written (companion files
                                    go through it) */
};

/* ---- Persistent bitmaps ---------------------------------------------- */

/* One bitmap as a driver lists it. */
struct vimg_internal_bitmap {
    char *name;
    uint64_t granularity;      /* bytes per bit */
    bool enabled;              /* records writes */
    bool inconsistent;         /* left in use: its contents are unknown */
};
void vimg_internal_bitmaps_free(struct vimg_internal_bitmap *v, size_t n);
/* Called for each run of dirty guest bytes, in order; non-zero stops. */
typedef int (*vimg_internal_range_fn)(void *opaque, uint64_t offset,
                                      uint64_t len);
/* Copy SRC's persistent bitmaps into DST after a convert (qemu-img
 * convert --bitmaps): CHECK_ONLY refuses, before anything is copied,
 * what the copy would refuse. */
int vimg_internal_bitmaps_copy(struct vimg_image *src, struct vimg_image *dst,
                               bool skip_broken, bool check_only);

struct vimg_driver;
/* The options of a new image as qemu-img create's "Formatting" line lists
 * them ("fmt=... size=..."; lib/create-line.c). Caller frees; NULL with
 * ENOMEM. */
char *vimg_internal_create_line(const struct vimg_driver *drv,
                                const struct vimg_create_ctx *ctx);

/* ---- The driver ------------------------------------------------------ */

struct vimg_driver {
    const char *name;
    enum vimg_driver_kind kind;
    /* Bytes of per-image state the core allocates (zeroed) as img->opaque;
     * a driver never allocates its own handle. */
    size_t instance_size;
    /* The data-path members may run concurrently on one image. When false
     * the core serialises every call on the image's lock. */
    bool thread_safe;
    /* A new image reads as zeros (convert skips zero ranges into it). */
    bool has_zero_init;
    /* Protocols: writes cost the same in any order (RBD's objects, unlike
     * a file that fragments), so convert writes a raw image on it in any
     * order, as with -W. */
    bool unordered_writes;
    const struct vimg_opt_desc *create_opts; /* NULL: no -o options */
    const struct vimg_opt_desc *runtime_opts; /* NULL: none */
    const struct vimg_opt_desc *amend_opts; /* NULL: no amend */

    /* Score 0..100 for the first LEN bytes (LEN may be short). Formats only;
     * NULL never matches. */
    int (*probe)(const uint8_t *buf, size_t len, const char *filename);
    /* Score 0..100 for the last LEN bytes of a file of FILE_SIZE bytes,
     * for formats found by a footer (fixed VHD, DMG). Asked only when no
     * probe matched the start better than raw; a format found this way is
     * never opened for writing without an explicit format. NULL: none. */
    int (*probe_tail)(const uint8_t *tail, size_t len, uint64_t file_size,
                      const char *filename);

    /* Protocols: open img->filename. Formats: read metadata through
     * img->file (already open) and set img->size; record references in
     * img->backing_name/backing_format, which the core then opens under
     * the policy. OPTS holds validated runtime options. */
    int (*open)(struct vimg_image *img, const struct vimg_opts *opts);
    /* Called once the core has opened IMG's backing image (img->backing),
     * before the open returns: a format that records its parent's
     * identity (VHD, VHDX) checks it here and fails the open when the
     * parent is not the image it was made from. NULL: nothing to check. */
    int (*backing_opened)(struct vimg_image *img);
    /* Release everything; img->file is closed by the core afterwards.
     * Return the first error of a final flush (the handle goes anyway).
     * Called only after a successful open: a failing open releases what
     * it allocated itself before returning. */
    int (*close)(struct vimg_image *img);
    /* Formats: lay out a new image on FILE (an empty, writable protocol
     * image). Protocols do not implement it (the core creates files). */
    int (*create)(struct vimg_image *file, const struct vimg_create_ctx *c);
    /* Protocols whose images live in a store of their own, not in files
     * (rbd); NULL for the others, whose files the core makes. The
     * protocol's create_opts join the format's -o table.
     * create_image: refuse C->filename when it exists (-EEXIST), then
     * make an empty image under a hidden name beside it, returned in
     * *TEMP (the caller frees it; this protocol opens it, with the
     * creation options that are also open options). C->opts holds only
     * the protocol's options, the ones the format does not take itself;
     * C->secrets is the caller's.
     * publish_image: give TEMP the name NAME (-EEXIST when another client
     * took it meanwhile). remove_image: delete TEMP. */
    int (*create_image)(const struct vimg_create_ctx *c, char **temp);
    int (*publish_image)(const char *temp, const char *name);
    int (*remove_image)(const char *temp);

    /* Data path: ranges are inside the virtual size and aligned to
     * img->request_alignment; COUNT > 0. A format without pwrite is
     * read-only: the core refuses to open it for writing. */
    int (*pread)(struct vimg_image *img, void *buf, uint64_t count,
                 uint64_t offset);
    int (*pwrite)(struct vimg_image *img, const void *buf, uint64_t count,
                  uint64_t offset, unsigned flags);
    /* NULL: the core writes zeroed buffers unless VIMG_ZERO_NO_FALLBACK.
     * May return -ENOTSUP for the core to fall back. */
    int (*zero)(struct vimg_image *img, uint64_t offset, uint64_t count,
                unsigned flags);
    /* NULL: discard does nothing. */
    int (*discard)(struct vimg_image *img, uint64_t offset, uint64_t count);
    /* NULL: nothing to flush beyond img->file, which the core flushes
     * after this returns. */
    int (*flush)(struct vimg_image *img);
    /* NULL: resize unsupported (ENOTSUP). The core has checked SHRINK. */
    int (*truncate)(struct vimg_image *img, uint64_t size, unsigned flags,
                    enum vimg_prealloc prealloc);
    /* Compressed writes, both NULL when the format has none. COMPRESS
     * turns one block of img->compress_unit bytes (zero-padded past the
     * image's end) into at most CAP bytes of OUT. It reads only settings
     * fixed at open, so the core calls it from many threads at once without
     * the image's lock (the CPU half, for convert's workers). Returns the
     * length, or -ENOSPC when the block does not shrink (the core writes it
     * plainly). */
    long (*compress)(struct vimg_image *img, const void *in, void *out,
                     uint64_t cap);
    /* Store LEN bytes made by COMPRESS as the block at OFFSET (a multiple of
     * compress_unit). The block must not be allocated in this layer. */
    int (*write_compressed)(struct vimg_image *img, uint64_t offset,
                            const void *cbuf, uint64_t len);
    /* Return VIMG_BS_* flags for [OFFSET, OFFSET+*PNUM), setting *PNUM
     * (1..COUNT), and with VIMG_BS_OFFSET_VALID *MAP and *FILE: the name
     * of the file holding the data, borrowed for IMG's lifetime (a file
     * the open policy let IMG name but not open counts too). Without
     * VIMG_BS_ALLOCATED the range is "not in this layer" (0, or
     * VIMG_BS_OFFSET_VALID alone for a host cluster whose qcow2
     * subclusters are not allocated). NULL: everything is allocated
     * data. */
    int (*block_status)(struct vimg_image *img, uint64_t offset,
                        uint64_t count, uint64_t *pnum, uint64_t *map,
                        const char **file);

    /* Metadata. NULL members mean unsupported unless stated. */
    /* Bytes on disk; NULL: the core asks img->file. */
    int64_t (*allocated_size)(struct vimg_image *img);
    /* Add format-specific members ("cluster-size", "format-specific",
     * "dirty-flag", ...) to the info object INFO. NULL: none. */
    int (*get_info)(struct vimg_image *img, struct vimg_value *info);
    int (*measure)(const struct vimg_opts *opts, uint64_t size,
                   struct vimg_image *src, struct vimg_measure *out);
    int (*check)(struct vimg_image *img, unsigned fix,
                 struct vimg_check_result *res, vimg_report_fn report,
                 void *opaque);

    /* Internal snapshots; all NULL for formats without them (the list is
     * then empty, the rest ENOTSUP). SNAPSHOT_LIST fills *LIST (*N
     * entries, freed by the core with vimg_snapshot_list_free). The
     * others name a snapshot by ID and NAME: both given, the first
     * matching both; one NULL, the first matching the other; -ENOENT
     * when none does. CREATE, APPLY and DELETE run on a writable image
     * with no other call in flight on it (the core holds img->lock; a
     * thread-safe driver waits for its own I/O). SNAPSHOT_LOAD makes a
     * read-only image, just opened, read the snapshot instead of the
     * current disk (its size too), for good. */
    int (*snapshot_list)(struct vimg_image *img, struct vimg_snapshot **list,
                         size_t *n);
    int (*snapshot_create)(struct vimg_image *img,
                           const struct vimg_snapshot *sn);
    int (*snapshot_apply)(struct vimg_image *img, const char *id,
                          const char *name);
    int (*snapshot_delete)(struct vimg_image *img, const char *id,
                           const char *name);
    int (*snapshot_load)(struct vimg_image *img, const char *id,
                         const char *name);
    /* Deallocate every cluster of the image's own layer, so that it reads
     * as its backing file (qemu-img commit's last step). NULL: -ENOTSUP,
     * which commit ignores as qemu-img does. */
    int (*make_empty)(struct vimg_image *img);
    /* Record NAME (NULL: none) as the backing file and FORMAT (NULL:
     * none) as its format in the image's metadata and in
     * img->backing_name/backing_format, after making everything else
     * durable, in one write. NULL: -ENOTSUP. */
    int (*change_backing)(struct vimg_image *img, const char *name,
                          const char *format);

    /* Change format options in place (OPTS validated against amend_opts;
     * IMG writable). Checks every option before changing anything. */
    int (*amend)(struct vimg_image *img, const struct vimg_opts *opts,
                 const struct vimg_amend_params *p);

    /* Persistent bitmaps; all three NULL for formats without them. */
    /* The bitmaps in the image's order (free with
     * vimg_internal_bitmaps_free). */
    int (*bitmap_list)(struct vimg_image *img,
                       struct vimg_internal_bitmap **v, size_t *n);
    /* FN for each run of guest bytes bitmap NAME marks dirty within
     * [OFFSET, OFFSET + LEN), in order and clipped to that range and to
     * the disk (-ENOENT when there is none, -EBUSY when it is
     * inconsistent); a non-zero return of FN stops the walk and is
     * returned. */
    int (*bitmap_dirty)(struct vimg_image *img, const char *name,
                        uint64_t offset, uint64_t len,
                        vimg_internal_range_fn fn, void *opaque);
    /* Apply P (IMG writable) and write the result before returning. A
     * MERGE from another image reads it through its bitmap_dirty. */
    int (*bitmap)(struct vimg_image *img,
                  const struct vimg_bitmap_params *p);
};

/* ---- The image handle ------------------------------------------------ */

struct vimg_image {
    const struct vimg_driver *drv;
    void *opaque;                 /* drv->instance_size bytes, zeroed */
    struct vimg_image *file;      /* the protocol below a format */
    struct vimg_image *backing;   /* opened backing image, or NULL */
    struct vimg_image *parent;    /* the image whose backing this is */
    char *filename;
    char *backing_name;           /* as the metadata says it, or NULL */
    char *backing_format;         /* from metadata or the caller, or NULL */
    char *backing_path;           /* backing_name resolved, or NULL */
    struct vimg_open_params params; /* flags and policy (format, options
                                       and secrets are kept only while
                                       the driver's open runs) */
    char *options;                /* the option list it was opened with
                                     (backing.* items included; secret ids,
                                     never key bytes), or NULL: commit
                                     reopens the image with it */
    uint64_t size;                /* virtual size */
    uint32_t request_alignment;   /* 1, or the O_DIRECT block size */
    uint32_t compress_unit;       /* bytes per compressed block (drivers
                                     with compress set it at open) */
    bool ordered_compressed;      /* every block is stored compressed,
                                     once, in offset order (streamOptimized
                                     VMDK): convert compresses without -c
                                     and writes in order even with -W */
    bool writable;
    bool probed_raw;              /* format was guessed to be raw */
    bool no_zero_init;            /* set by the driver's open: unlike the
                                     driver's other images, this one does
                                     not read as zeros where unwritten
                                     (librbd's LUKS decrypts zeros) */
    _Atomic int sparse_file;      /* block status: 0 not known yet, 1 the
                                     file holds its clusters, 2 they are
                                     mostly holes (metadata preallocation;
                                     lib/io.c) */
    pthread_mutex_t lock;         /* serialises non-thread-safe drivers */
    struct vimg_target *target;   /* a protocol image on a target's new
                                     file: the target, whose companions
                                     references open; else NULL */
};

/* ---- Core services for drivers -------------------------------------- */

/* Image locks are recursive: a driver's check or repair may call the
 * data path on its own image. */
static inline void vimg_internal_mutex_init(pthread_mutex_t *m)
{
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(m, &a);
    pthread_mutexattr_destroy(&a);
}

/* 0, or, once vimg_cancel was called, -ECANCELED with "NAME: interrupted"
 * recorded: long operations ask before each piece of work. */
int vimg_internal_check_cancelled(const char *name);

/* Record an error for this thread; the first one within a public call
 * wins. Returns -ERRNUM so drivers can `return vimg_internal_error(...)`.
 * The message should start with the file name. */
int vimg_internal_error(int errnum, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Same, prefixed with "FILENAME: " from IMG. */
int vimg_internal_img_error(const struct vimg_image *img, int errnum,
                            const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void vimg_internal_error_clear(void);
bool vimg_internal_error_set(void);
/* Add to the message already recorded (what a failed operation left
 * behind, say); nothing when no error is recorded. */
void vimg_internal_error_append(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* A pwrite flag a format passes for its own metadata (headers, tables),
 * never for guest data. Protocols ignore it; the memory protocol's
 * observer reports it, so a fuzzer can tell a metadata update from data
 * landing on metadata. Not accepted from public callers. */
#define VIMG_INTERNAL_WRITE_METADATA (1u << 31)

/* Child I/O for drivers: bounds-checked like the public calls but without
 * clearing the error slot. */
int vimg_internal_pread(struct vimg_image *img, void *buf, uint64_t count,
                        uint64_t offset);
int vimg_internal_pwrite(struct vimg_image *img, const void *buf,
                         uint64_t count, uint64_t offset, unsigned flags);
int vimg_internal_zero(struct vimg_image *img, uint64_t offset,
                       uint64_t count, unsigned flags);
int vimg_internal_discard(struct vimg_image *img, uint64_t offset,
                          uint64_t count);
int vimg_internal_flush(struct vimg_image *img);
/* Compress one block of img->compress_unit bytes (see the driver's
 * compress): no lock, any thread. -ENOTSUP when the format has no
 * compressed blocks, -ENOSPC when the block does not shrink. */
long vimg_internal_compress_block(struct vimg_image *img, const void *in,
                                  void *out, uint64_t cap);
/* Write one block: compressed (CBUF, CLEN from vimg_internal_compress_block)
 * or, when CBUF is NULL, the plain bytes of PLAIN (LEN of them, the rest of
 * a tail block being past the image's end). OFFSET is block aligned. */
int vimg_internal_write_block(struct vimg_image *img, uint64_t offset,
                              const void *plain, uint64_t len,
                              const void *cbuf, uint64_t clen);
int vimg_internal_truncate(struct vimg_image *img, uint64_t size,
                           unsigned flags, enum vimg_prealloc prealloc);
/* The first byte at or after FROM that IMG (through its backing chain)
 * reads from stored data rather than known zeros; IMG's size when there is
 * none; <0 on error. */
int64_t vimg_internal_first_data(struct vimg_image *img, uint64_t from);
/* Refuse to shrink IMG to SIZE without the user's consent (HOW names how
 * to give it): -ERR, the message naming the first byte of data that
 * would be lost, or saying that none would (or neither, when that cannot
 * be found out: a backing file not opened). Both ask block status, so
 * not under a driver's metadata lock. */
int vimg_internal_shrink_refused(struct vimg_image *img, uint64_t size,
                                 int err, const char *how);
int vimg_internal_block_status(struct vimg_image *img, uint64_t offset,
                               uint64_t count, unsigned flags,
                               struct vimg_extent *ext);
/* Read from IMG's backing chain, zeros where there is no backing image or
 * it is shorter. Fails with EIO if a backing file exists but was not
 * opened (VIMG_OPEN_NO_BACKING). */
int vimg_internal_read_backing(struct vimg_image *img, void *buf,
                               uint64_t count, uint64_t offset);
int64_t vimg_internal_get_size(struct vimg_image *img);
/* The first LEN bytes of IMG's file into BUF, and the file's size into
 * FILE_SIZE (for the header's checks): a file shorter than LEN is "file is
 * too small for WHAT" ("a QED header"). */
int vimg_internal_read_header(struct vimg_image *img, void *buf, size_t len,
                              const char *what, uint64_t *file_size);

/* Open a file that IMG's metadata names (external data file, extent) under
 * IMG's policy: relative names resolve against IMG's folder; protocol
 * names are refused. Opens the file protocol only, read-write iff WRITABLE.
 * -EPERM when the policy forbids it. */
int vimg_internal_open_reference(struct vimg_image *img, const char *name,
                                 bool writable, struct vimg_image **out);
/* vimg_close without clearing the error slot: for images a driver opened
 * itself (extent files), closed on a failing path whose message must
 * stay. Returns 0 or -errno. */
int vimg_internal_close(struct vimg_image *img);
/* Validate NAME against IMG's policy and resolve it (caller frees *PATH). */
int vimg_internal_resolve_reference(struct vimg_image *img, const char *name,
                                    char **path);

/* Extra files of multi-file formats (VMDK extents), named NAME in the
 * folder of the image C creates: made through C's target as a companion
 * (vimg_internal_target_companion: built unseen, committed with the
 * image, gone if it is not) and opened read-write as a protocol image
 * (NO_FLUSH: cache=unsafe). */
int vimg_internal_create_file(const struct vimg_create_ctx *c,
                              const char *name, bool no_flush,
                              struct vimg_image **out);

/* A writable memory image for tests and fuzzing: DATA (LEN bytes) copied,
 * growing up to MAX_LEN. */
struct vimg_image *vimg_internal_memory_new(const char *name,
                                            const void *data, size_t len,
                                            size_t max_len);
/* Make the Nth write-like call (pwrite, zero, discard, truncate, flush)
 * from now fail with EIO, and every one after it (a simulated crash).
 * 0 disarms. MEM must come from vimg_internal_memory_new. */
void vimg_internal_memory_fail_after(struct vimg_image *mem, uint64_t n);
/* The same, counting the write-like calls in *COUNTER, which other memory
 * images may share (the caller zeroes it): a crash across several files,
 * at the Nth write to any of them. */
void vimg_internal_memory_fail_after_shared(struct vimg_image *mem,
                                            uint64_t n, uint64_t *counter);
/* The current contents of a memory image (borrowed). */
const void *vimg_internal_memory_data(struct vimg_image *mem, size_t *len);
/* What changed a memory image: the observer is called before each change
 * lands (the old bytes are still there) with its range, and the pwrite
 * flags for writes (VIMG_INTERNAL_WRITE_METADATA), 0 for the others. A
 * truncate passes the new length as OFFSET and the old one as LEN. */
enum vimg_memory_op { VIMG_MEMORY_WRITE, VIMG_MEMORY_ZERO,
                      VIMG_MEMORY_DISCARD, VIMG_MEMORY_TRUNCATE };
typedef void (*vimg_memory_observer)(void *opaque, enum vimg_memory_op op,
                                     uint64_t offset, uint64_t len,
                                     unsigned flags);
/* Set (or clear, with NULL) MEM's observer. */
void vimg_internal_memory_observe(struct vimg_image *mem,
                                  vimg_memory_observer fn, void *opaque);

/* Open a format on an already-open protocol image (takes ownership of FILE
 * on success and on failure). */
struct vimg_image *vimg_internal_open_on(struct vimg_image *file,
                                         const struct vimg_open_params *p);

/* Open a file protocol image on a duplicate of FD, named NAME in
 * messages (lib/protocols/file.c; IMG comes from the core, empty). */
int vimg_internal_file_adopt(struct vimg_image *img, int fd);

/* Copy COUNT bytes between two file protocol images in the kernel
 * (copy_file_range), from SRC at SRC_OFFSET to DST at DST_OFFSET.
 * -ENOTSUP without a message when the kernel or file system cannot (or an
 * image is not a file), -ENODATA when SRC ends first: the caller then
 * copies through memory. */
int vimg_internal_file_copy_range(struct vimg_image *src, uint64_t src_offset,
                                  struct vimg_image *dst, uint64_t dst_offset,
                                  uint64_t count);

/* Targets (lib/target.c). The name the caller gave, for messages. */
const char *vimg_internal_target_name(const struct vimg_target *t);
/* The descriptor of the file being written (borrowed); with EMPTY, a
 * regular file written in place is truncated to 0 bytes first. */
int vimg_internal_target_fd(struct vimg_target *t, bool empty);
/* A file NAME beside the target (in the folder of the name it was given,
 * as references resolve) that is written with it, under the target's
 * rules: an existing file's locks checked and held, its owner and mode
 * kept, the new one built unseen; committed before the target, dropped
 * when the target is aborted. Returns its empty file's descriptor
 * (borrowed; the same file when NAME is asked for again) or -errno. */
int vimg_internal_target_companion(struct vimg_target *t, const char *name);
/* The descriptor of T's companion NAME (borrowed), or -ENOENT. */
int vimg_internal_target_find_companion(struct vimg_target *t,
                                        const char *name);
/* The protocol that makes the target's image (rbd), or NULL for a file. */
const struct vimg_driver *vimg_internal_target_protocol(
    const struct vimg_target *t);
/* Make the protocol's new, empty image (once) as C says: C->opts are the
 * protocol's own creation options, C->secrets the caller's. *IMAGE is its
 * hidden name (borrowed), which commit publishes and abort removes. */
int vimg_internal_target_make_image(struct vimg_target *t,
                                    const struct vimg_create_ctx *c,
                                    const char **image);
/* That name, or NULL before it is made. */
const char *vimg_internal_target_image(const struct vimg_target *t);
/* The creation options that are also the protocol's open options (rbd's
 * encrypt.format and encrypt.key-secret): every open of the new image
 * takes them, so that it reads as the guest's disk. */
const struct vimg_opts *vimg_internal_target_image_opts(
    const struct vimg_target *t);
/* The protocol that reaches NAME over a network (nbd://..., rbd:...) when
 * no local file has that name, or NULL (lib/image.c). */
const struct vimg_driver *vimg_internal_network_protocol(const char *name);

/* Add the facts of an ISO 9660 volume in IMG's guest-visible contents to
 * INFO (lib/iso/iso-describe.c); 0 and nothing added when there is
 * none or it is unreadable, <0 only for out-of-memory. */
int vimg_internal_iso_describe(struct vimg_image *img,
                               struct vimg_value *info);

/* Registry. */
const struct vimg_driver *vimg_internal_find_driver(const char *name);
const struct vimg_driver *vimg_internal_probe(const uint8_t *buf, size_t len,
                                              const char *filename);
/* The best probe_tail match for the last LEN bytes of a FILE_SIZE-byte
 * file, or NULL. */
const struct vimg_driver *vimg_internal_probe_tail(const uint8_t *tail,
                                                   size_t len,
                                                   uint64_t file_size,
                                                   const char *filename);
extern const struct vimg_driver vimg_driver_file;
extern const struct vimg_driver vimg_driver_memory;
extern const struct vimg_driver vimg_driver_raw;
extern const struct vimg_driver vimg_driver_qcow2;
extern const struct vimg_driver vimg_driver_nbd;
extern const struct vimg_driver vimg_driver_rbd;
extern const struct vimg_driver vimg_driver_vpc;
extern const struct vimg_driver vimg_driver_vdi;
extern const struct vimg_driver vimg_driver_vhdx;
extern const struct vimg_driver vimg_driver_luks;
extern const struct vimg_driver vimg_driver_vmdk;
extern const struct vimg_driver vimg_driver_ova;
extern const struct vimg_driver vimg_driver_qcow1;
extern const struct vimg_driver vimg_driver_bochs;
extern const struct vimg_driver vimg_driver_cloop;
extern const struct vimg_driver vimg_driver_dmg;
extern const struct vimg_driver vimg_driver_parallels;
extern const struct vimg_driver vimg_driver_qed;

/* Values: builders for get_info. All return NULL/-ENOMEM on allocation
 * failure; the object takes ownership of CHILD even on failure. */
struct vimg_value *vimg_internal_value_new(enum vimg_value_type t);
struct vimg_value *vimg_internal_value_str(const char *s);
struct vimg_value *vimg_internal_value_int(int64_t i);
struct vimg_value *vimg_internal_value_bool(bool b);
int vimg_internal_value_add(struct vimg_value *obj, const char *key,
                            struct vimg_value *child);
int vimg_internal_value_append(struct vimg_value *arr,
                               struct vimg_value *child);
int vimg_internal_value_set_str(struct vimg_value *obj, const char *key,
                                const char *s);
int vimg_internal_value_set_int(struct vimg_value *obj, const char *key,
                                int64_t i);
int vimg_internal_value_set_bool(struct vimg_value *obj, const char *key,
                                 bool b);

#endif
