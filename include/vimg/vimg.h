/* vimg: virtual-machine disk images.
 *
 * The one public header. Every handle is opaque. Conventions:
 * - Functions returning int give 0 on success and -1 on error; int64_t
 *   results are negative on error; pointer results are NULL on error.
 *   After an error, vimg_get_error() and vimg_get_errno() describe it (for
 *   this thread, until the next vimg_* call).
 * - `const char *` results are borrowed from the handle they came from;
 *   `char *` results are the caller's to free().
 * - Sizes and offsets are in bytes.
 */
#ifndef VIMG_VIMG_H
#define VIMG_VIMG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct vimg_image;
struct vimg_value;

/* ---- Errors ---------------------------------------------------------- */

/* The message of the last failed call in this thread, naming the file and
 * the problem ("disk.qcow2: L1 table lies past the end of the file"), or
 * NULL when the last call succeeded. Borrowed until the next vimg_* call. */
const char *vimg_get_error(void);
/* The errno of the last failed call in this thread (EIO, ENOSPC, EINVAL,
 * ENOTSUP, ...), or 0. */
int vimg_get_errno(void);

/* ---- Opening --------------------------------------------------------- */

enum {
    VIMG_OPEN_RDWR = 1u << 0,        /* read-write; needs an explicit format
                                        when probing would guess raw */
    VIMG_OPEN_NOCACHE = 1u << 1,     /* O_DIRECT (qemu-img -t/-T none) */
    VIMG_OPEN_FORCE_SHARE = 1u << 2, /* -U: read even if another process
                                        holds the image; read-only only */
    VIMG_OPEN_NO_BACKING = 1u << 3,  /* record the backing file, do not open
                                        it (reads of unallocated areas fail) */
    VIMG_OPEN_NO_LOCK = 1u << 4,     /* take no QEMU-compatible locks */
    VIMG_OPEN_NO_FLUSH = 1u << 5,    /* cache=unsafe: flushes write format
                                        metadata but never sync the disk,
                                        so a crash may lose recent writes
                                        (qemu-img convert's target default) */
    VIMG_OPEN_CHECK = 1u << 6,       /* opened to check or repair: a
                                        corrupt or dirty image opens
                                        read-write without automatic
                                        repair (qemu-img check -r) */
    VIMG_OPEN_NO_IO = 1u << 7,       /* metadata only (info, map, check):
                                        an encrypted image opens without
                                        its key, and its data reads and
                                        writes fail with ENOKEY */
};

/* A secret the caller holds, as QEMU's `--object secret`: options name it
 * by ID (encrypt.key-secret=ID for qcow2, key-secret=ID for luks). DATA is
 * borrowed for the call that receives it: the library keeps only the keys
 * it derives, in locked memory wiped after use, and never puts secret
 * bytes in a message. */
struct vimg_secret {
    const char *id;
    const void *data;
    size_t len;
};

/* What metadata inside an image (backing file, external data file, extent
 * files) may make vimg open. Names with a protocol prefix (`json:`, `nbd:`,
 * ...) taken from metadata are refused under every policy. */
enum vimg_ref_policy {
    VIMG_REFS_FOLLOW = 0, /* plain file paths, anywhere */
    VIMG_REFS_SAME_DIR,   /* only files inside the image's own folder */
    VIMG_REFS_NEVER,      /* report references but open none of them */
};

struct vimg_open_params {
    const char *format;          /* driver name; NULL probes */
    unsigned flags;              /* VIMG_OPEN_* */
    enum vimg_ref_policy refs;   /* applies to the whole backing chain */
    const char *options;         /* runtime "key=value,..." for the format
                                    (l2-cache-size=...,
                                    encrypt.key-secret=ID), or NULL */
    const struct vimg_secret *secrets; /* what key-secret options name */
    size_t n_secrets;
    /* Read an internal snapshot instead of the current disk (qcow2;
     * read-only opens only): the image then has the snapshot's size and
     * contents. Named by SNAPSHOT_ID and SNAPSHOT_NAME as in
     * vimg_snapshot_apply; both NULL: the current disk. ENOENT when no
     * snapshot matches (qemu-img convert -l). */
    const char *snapshot_id;
    const char *snapshot_name;
    /* Asked, when not NULL, for the passphrase of an encrypted image of
     * the chain (the image itself or a backing file, FILENAME as opened)
     * whose key-secret option was not given: returns 0 with *DATA and *LEN
     * set to bytes the caller keeps valid until the open returns, or -1
     * to decline (the open then fails with ENOKEY). QEMU asks per image
     * the same way. Kept with the image: vimg_commit (reopening the base)
     * and vimg_rebase (opening the new backing file) ask it again. */
    int (*passphrase)(void *opaque, const char *filename,
                      const void **data, size_t *len);
    void *passphrase_opaque;
};

/* Open FILENAME with PARAMS (NULL: read-only, probe, follow references).
 * An encrypted image needs its key-secret option (or the passphrase
 * callback's answer) unless VIMG_OPEN_NO_IO: without it the open fails
 * with ENOKEY, with a wrong passphrase with
 * EKEYREJECTED.
 * FILENAME is a plain path, a network name (vimg_is_url) or a Ceph RBD
 * image, rbd:POOL[/NAMESPACE]/IMAGE[@SNAPSHOT][:KEY=VALUE]... as qemu-img
 * names it (a snapshot opens read-only); other protocol names are refused.
 * Backing files are opened read-only through
 * the same policy; an image opened over the network follows no
 * references at all (its metadata comes from elsewhere). Close with
 * vimg_close(). */
struct vimg_image *vimg_open(const char *filename,
                             const struct vimg_open_params *params);

/* True when NAME is a network image name that vimg_open reaches through
 * libnbd rather than as a file: nbd://HOST[:PORT]/EXPORT,
 * nbd+unix:///EXPORT?socket=PATH, and nbds://, nbds+unix:// with TLS
 * (libnbd's URI syntax). Only callers may name these; a name inside an
 * image's metadata is always a plain path. */
bool vimg_is_url(const char *name);

/* Open an image held in memory (tests, fuzzing, embedding). The buffer is
 * copied; writes change the copy only. The image may not have references. */
struct vimg_image *vimg_open_buffer(const void *data, size_t len,
                                    const char *name,
                                    const struct vimg_open_params *params);

/* Flush (when writable) and close IMG and its backing chain. Returns -1 if
 * the final flush failed; IMG is freed either way. NULL is a no-op. */
int vimg_close(struct vimg_image *img);

/* ---- Facts about an open image ---------------------------------------- */

int64_t vimg_get_size(struct vimg_image *img);          /* virtual size */
const char *vimg_get_filename(struct vimg_image *img);
const char *vimg_get_format(struct vimg_image *img);    /* "raw", "qcow2" */
bool vimg_is_writable(struct vimg_image *img);
/* The backing image (opened), or NULL when none or not opened. */
struct vimg_image *vimg_get_backing(struct vimg_image *img);
/* The backing file name as the metadata gives it, or NULL. */
const char *vimg_get_backing_name(struct vimg_image *img);
/* Bytes the image's files occupy on disk (qemu-img "disk size"). */
int64_t vimg_get_allocated_size(struct vimg_image *img);
/* True when a freshly created image of this format reads as zeros without
 * writing them (lets convert skip zero ranges). */
bool vimg_has_zero_init(struct vimg_image *img);
/* Everything `info` shows, as a tree whose keys are qemu-img's JSON field
 * names ("virtual-size", "format-specific", ...). Free with
 * vimg_value_free(). */
struct vimg_value *vimg_get_info(struct vimg_image *img);

/* ---- Data path ------------------------------------------------------- */
/* All ranges must lie inside the virtual size. */

int vimg_pread(struct vimg_image *img, void *buf, size_t count,
               uint64_t offset);
enum { VIMG_WRITE_FUA = 1u << 0 }; /* flush this write before returning */
int vimg_pwrite(struct vimg_image *img, const void *buf, size_t count,
                uint64_t offset, unsigned flags);
enum {
    VIMG_ZERO_MAY_UNMAP = 1u << 0, /* deallocate if the result reads as 0 */
    VIMG_ZERO_NO_FALLBACK = 1u << 1, /* fail with ENOTSUP rather than write
                                        zeroed buffers */
};
int vimg_zero(struct vimg_image *img, uint64_t offset, uint64_t count,
              unsigned flags);
/* Write COUNT bytes at OFFSET as compressed blocks (qcow2 clusters; a block
 * that does not shrink is stored plainly). OFFSET must be a multiple of the
 * format's block size and COUNT too, or reach the image's end; the blocks
 * must not be allocated yet, as in QEMU. ENOTSUP for formats without
 * compression. */
int vimg_write_compressed(struct vimg_image *img, const void *buf,
                          size_t count, uint64_t offset);
/* Hint that the range is no longer needed; contents become unspecified
 * (zeros for formats that can say so). May do nothing. */
int vimg_discard(struct vimg_image *img, uint64_t offset, uint64_t count);
int vimg_flush(struct vimg_image *img);

enum vimg_prealloc {
    VIMG_PREALLOC_OFF = 0,
    VIMG_PREALLOC_METADATA,
    VIMG_PREALLOC_FALLOC,
    VIMG_PREALLOC_FULL,
};
enum { VIMG_TRUNCATE_SHRINK = 1u << 0 }; /* allow making the image smaller */
int vimg_truncate(struct vimg_image *img, uint64_t size, unsigned flags,
                  enum vimg_prealloc prealloc);

/* ---- Block status ---------------------------------------------------- */

enum {
    VIMG_BS_DATA = 1u << 0,         /* reads come from stored data */
    VIMG_BS_ZERO = 1u << 1,         /* reads as zeros */
    VIMG_BS_ALLOCATED = 1u << 2,    /* decided by this layer, not a backing */
    VIMG_BS_OFFSET_VALID = 1u << 3, /* `file_offset` locates the data */
};
enum { VIMG_BS_CHAIN = 1u << 0 }; /* resolve through the backing chain */

struct vimg_extent {
    uint64_t offset, length;
    unsigned flags;        /* VIMG_BS_* */
    int depth;             /* layer that decided: 0 = IMG, 1 = its backing,
                              ...; the chain length when no layer has it */
    uint64_t file_offset;  /* with VIMG_BS_OFFSET_VALID */
    const char *file;      /* the file holding the data (borrowed), or NULL */
};

/* Describe the extent starting at OFFSET, at most COUNT bytes long (the
 * result is at least 1 byte). Without VIMG_BS_CHAIN only IMG's own layer
 * is asked, and flags without VIMG_BS_ALLOCATED mean "not in this layer"
 * (VIMG_BS_OFFSET_VALID may still locate a qcow2 cluster allocated
 * without its subclusters, as QEMU reports it). */
int vimg_block_status(struct vimg_image *img, uint64_t offset,
                      uint64_t count, unsigned flags,
                      struct vimg_extent *extent);

/* ---- Creating, measuring --------------------------------------------- */

struct vimg_create_params {
    const char *format;          /* required */
    uint64_t size;               /* virtual size */
    bool size_given;             /* false: take the backing file's size */
    const char *options;         /* -o "key=value,..." (",," escapes a
                                    comma; an empty item is refused, as
                                    by qemu-img), or NULL or "" for none */
    const char *backing_file;    /* -b, or NULL */
    const char *backing_format;  /* -F; NULL takes backing_fmt from
                                    OPTIONS. A backing file without a
                                    format is refused (EINVAL), as by
                                    qemu-img. */
    enum vimg_ref_policy refs;   /* how to open the backing file for size */
    bool no_flush;               /* cache=unsafe: do not sync the new file
                                    to disk (convert's target) */
    const struct vimg_secret *secrets; /* what key-secret options name
                                    (encrypt.format=luks) */
    size_t n_secrets;
    bool unsafe;                 /* -u: never open the backing file (its
                                    format and the size must be given) */
};

/* Create FILENAME through a target (below): vimg_target_begin,
 * vimg_target_create, vimg_target_commit. */
int vimg_create(const char *filename, const struct vimg_create_params *p);

/* What qemu-img create prints after "Formatting 'FILENAME', " for P:
 * "fmt=qcow2 cluster_size=65536 extended_l2=off ... size=N ...", the
 * format's options in qemu-img's order with its defaults, sizes and
 * numbers in bytes, commas in strings doubled. Checks P as vimg_create
 * does before it writes anything (format, options, backing file, size;
 * FILENAME resolves a relative backing file), and writes nothing. The
 * caller frees the string; NULL on error. */
char *vimg_create_describe(const char *filename,
                           const struct vimg_create_params *p);

/* ---- Targets: files a command writes --------------------------------- */
/* A target is the new contents of a file, made safely:
 * - when the file exists, its image lock is taken first and held until
 *   the target ends: an image another process holds (qemu-io, qemu-nbd, a
 *   VM) is refused with EAGAIN, as qemu-img refuses it;
 * - a symbolic link is followed (the link stays a link; a dangling link
 *   creates the file it names);
 * - the new file is built beside the old one without a name (O_TMPFILE)
 *   or, where the file system cannot do that, under a hidden temporary
 *   name (".NAME.vimg-XXXXXXXX") that vimg_target_remove_temporaries
 *   deletes; it gets the old file's owner, group and mode, and is renamed
 *   over the old file only by vimg_target_commit. So a failure or a signal
 *   leaves the old file as it was and nothing else (after SIGKILL, only
 *   the named fallback can leave its temporary);
 * - where a rename cannot be right, the old file itself is written, as
 *   qemu-img writes every target: a hard-linked file (its other names
 *   would keep the old contents), a block or character device (/dev/null
 *   included), a folder the caller may not create files in, an owner the
 *   caller cannot give. A failure then leaves the file partly written
 *   (vimg_target_in_place tells). Extended attributes and ACLs of a
 *   replaced file are not carried over.
 * An rbd: name (see vimg_open) is an image in a Ceph cluster instead: an
 * existing image is refused (EEXIST) when the image is made, which is
 * done under a hidden name beside it (".IMAGE.vimg-XXXXXXXX"), renamed by
 * vimg_target_commit and removed by vimg_target_abort (after a signal,
 * see vimg_target_images_pending). nbd:// names cannot be targets (ENOTSUP): write into the export.
 * A target is used by one thread at a time. */
struct vimg_target;

/* Start writing FILENAME. Nothing is changed yet. Returns a target that
 * the caller ends with exactly one of vimg_target_commit or
 * vimg_target_abort, or NULL: EAGAIN when another process holds the file,
 * EISDIR, EINVAL for what is neither a file nor a device (a FIFO), ELOOP,
 * or the error of opening the file or creating the new one. */
struct vimg_target *vimg_target_begin(const char *filename);

/* Lay out a new image on T as vimg_create would (P->format, size,
 * options, backing file); a file written in place is emptied first. */
int vimg_target_create(struct vimg_target *t,
                       const struct vimg_create_params *p);

/* Open the image on T's new file (read-write, whatever P says; P->flags
 * may add VIMG_OPEN_NOCACHE and VIMG_OPEN_NO_FLUSH). Messages name T's
 * file name; backing files resolve against it. The image takes no locks
 * of its own (T holds them). Close it with vimg_close before ending T. */
struct vimg_image *vimg_target_open(struct vimg_target *t,
                                    const struct vimg_open_params *p);

/* Publish the new file under T's name (replacing the old file) and free
 * T, also when it fails (the old file is then kept, unless written in
 * place). */
int vimg_target_commit(struct vimg_target *t);

/* Discard the new file and free T. The old file stays as it was, unless
 * it was being written in place. NULL is a no-op. */
void vimg_target_abort(struct vimg_target *t);

/* Whether T (not NULL) writes the old file in place rather than
 * replacing it. */
bool vimg_target_in_place(const struct vimg_target *t);

/* Delete the named temporaries of all targets not yet ended (the process
 * is being killed: call it from SIGINT/SIGTERM/SIGHUP handlers). Safe in a
 * signal handler (it only unlinks paths recorded in advance); those
 * targets can only be aborted afterwards. */
void vimg_target_remove_temporaries(void);

/* Whether a target not yet ended has made an image in a store of its own
 * (rbd), which no signal handler can remove: the handler then calls
 * vimg_cancel and lets the command fail and abort its target. Safe in a
 * signal handler. */
bool vimg_target_images_pending(void);

/* Ask a running vimg_convert to stop: it fails with ECANCELED before its
 * next unit of work (and so does any later one). Safe in a signal
 * handler; there is no way back. */
void vimg_cancel(void);

/* Names and help of a format's -o options, one "name\ttype\thelp" line
 * each; the caller frees the string. NULL for an unknown format. */
char *vimg_create_options_help(const char *format);

/* NULL-terminated list of the format names vimg knows. */
const char *const *vimg_list_formats(void);

struct vimg_measure {
    uint64_t required;        /* file size for the data in SRC (or empty) */
    uint64_t fully_allocated; /* file size when every cluster is written */
    uint64_t bitmaps;         /* persistent bitmaps (qcow2 v3 only) */
    bool has_bitmaps;         /* whether `bitmaps` is reported */
};
/* Measure an image of FORMAT with OPTIONS holding SIZE bytes (SRC NULL) or
 * the contents of SRC (SIZE ignored). */
int vimg_measure(const char *format, const char *options, uint64_t size,
                 struct vimg_image *src, struct vimg_measure *out);

/* ---- Checking -------------------------------------------------------- */

struct vimg_check_result {
    int64_t corruptions, leaks, check_errors;
    int64_t corruptions_fixed, leaks_fixed;
    int64_t image_end_offset;     /* -1 when unknown */
    int64_t total_clusters, allocated_clusters;
    int64_t fragmented_clusters, compressed_clusters;
    bool has_cluster_stats;
};
enum {
    VIMG_CHECK_FIX_LEAKS = 1u << 0,
    VIMG_CHECK_FIX_ERRORS = 1u << 1,
};
typedef void (*vimg_report_fn)(void *opaque, const char *message);
/* Check IMG (writable when repairing). REPORT receives one line per
 * problem found, as qemu-img prints them. Fails with ENOTSUP for formats
 * that have nothing to check. */
int vimg_check(struct vimg_image *img, unsigned fix,
               struct vimg_check_result *result, vimg_report_fn report,
               void *opaque);

/* ---- Operations on whole images -------------------------------------- */

typedef void (*vimg_progress_fn)(void *opaque, uint64_t done,
                                 uint64_t total);

/* ---- Persistent dirty bitmaps ----------------------------------------- */
/* A qcow2 v3 image may hold named dirty bitmaps (QEMU's persistent
 * bitmaps): each records, one bit per GRANULARITY bytes of the guest disk,
 * what was written while it was enabled. vimg sets the bits of every
 * range it writes into each enabled bitmap, and keeps a bitmap marked in
 * use on disk while the image it opened read-write has changed, so that a
 * crash leaves it marked inconsistent rather than wrong. `vimg_get_info`
 * lists them (format-specific data, "bitmaps"). */
enum vimg_bitmap_op {
    VIMG_BITMAP_ADD,      /* a new, empty bitmap */
    VIMG_BITMAP_REMOVE,   /* inconsistent bitmaps too */
    VIMG_BITMAP_CLEAR,    /* every bit to 0 */
    VIMG_BITMAP_ENABLE,   /* record writes from now on */
    VIMG_BITMAP_DISABLE,  /* stop recording writes */
    VIMG_BITMAP_MERGE,    /* set the bits SOURCE has set */
};
struct vimg_bitmap_params {
    enum vimg_bitmap_op op;
    const char *name;          /* the bitmap changed */
    uint64_t granularity;      /* ADD: bytes, a power of two from 512 to
                                  2 GiB; 0 takes the cluster size within
                                  4..64 KiB, as qemu-img does */
    bool disabled;             /* ADD: create it disabled */
    const char *source;        /* MERGE: the bitmap merged in */
    struct vimg_image *source_image; /* MERGE: the image holding SOURCE
                                  (of the same virtual size), NULL for
                                  IMG itself */
};
/* Apply P to IMG (writable), writing the change to the image before
 * returning. Failures as qemu-img's: ENOENT for a bitmap that does not
 * exist ("Dirty bitmap 'NAME' not found"), EEXIST when adding one that
 * does, EBUSY for an inconsistent bitmap (only removing it works),
 * EINVAL for bad names or granularities or bitmaps of different sizes,
 * ENOTSUP for formats (or qcow2 v2 images) that cannot hold them. With
 * MERGE, IMG is locked before SOURCE_IMAGE. */
int vimg_bitmap(struct vimg_image *img, const struct vimg_bitmap_params *p);

/* Called for each dirty run; returns 0 to go on, non-zero to stop. */
typedef int (*vimg_range_fn)(void *opaque, uint64_t offset, uint64_t len);
/* Call FN, in order, for each run of guest bytes within [OFFSET, OFFSET +
 * COUNT) that persistent bitmap NAME of IMG (its own layer, not the
 * backing chain) marks dirty. Runs are whole granules of the bitmap,
 * clipped to the range and to the disk; writes to IMG that are done
 * show at once. COUNT 0 only checks that the bitmap can be read (FN may
 * then be NULL). FN runs
 * with the image's metadata locked: it must not call into IMG. Returns 0
 * (also when FN stopped the walk) or -1: ENOENT when IMG has no bitmap
 * NAME ("Dirty bitmap 'NAME' not found"), EBUSY when it is inconsistent,
 * ENOTSUP for formats without bitmaps. */
int vimg_bitmap_dirty(struct vimg_image *img, const char *name,
                      uint64_t offset, uint64_t count, vimg_range_fn fn,
                      void *opaque);

/* ---- Changing format options ------------------------------------------ */

/* Change IMG's format options in place, as qemu-img amend -o OPTIONS does
 * ("compat=0.10,refcount_bits=8", ...; vimg_amend_options_help lists
 * them). IMG must be writable; a downgrade that turns zero clusters into
 * data needs to know whether IMG has a backing file, not to open it.
 * Every option is checked before anything changes; a change the format
 * cannot make safely is refused with a message (ENOTSUP). PROGRESS may be
 * NULL. */
int vimg_amend(struct vimg_image *img, const char *options,
               vimg_progress_fn progress, void *opaque);
/* What vimg_amend_with takes besides the options. */
struct vimg_amend_params {
    bool force;                /* qemu-img amend --force: overwrite an
                                  active LUKS key slot, erase the last
                                  one */
    const struct vimg_secret *secrets; /* what the key-slot options
                                  new-secret= and old-secret= name
                                  (encrypt.*= for qcow2) */
    size_t n_secrets;
    vimg_progress_fn progress; /* may be NULL */
    void *opaque;
};
/* vimg_amend with P (NULL: none of it). LUKS key slots (luks, and qcow2
 * with encrypt.format=luks, opened with their key) change as qemu-img
 * amend changes them: state=active,new-secret=ID[,keyslot=N]
 * [,iter-time=MS] adds a passphrase, state=inactive with old-secret=ID
 * or keyslot=N erases slots; refused with qemu-img's messages (EINVAL,
 * EEXIST for an active slot, EPERM for the last one, EKEYREJECTED when
 * the old passphrase opens no slot). */
int vimg_amend_with(struct vimg_image *img, const char *options,
                    const struct vimg_amend_params *p);
/* Names and help of a format's amend options, as
 * vimg_create_options_help gives them; NULL for a format that has none
 * (the caller frees the string). */
char *vimg_amend_options_help(const char *format);

struct vimg_convert_params {
    uint64_t min_sparse;       /* -S: zero runs this long stay unallocated;
                                  0 writes everything */
    int workers;               /* -m; 0 picks a default */
    bool out_of_order;         /* -W: writes need not follow offset order */
    bool target_is_new;        /* target was just created (zeros known) */
    bool compress;             /* -c: write data as compressed blocks
                                  (formats with vimg_write_compressed) */
    /* -B: the target's backing image; only what differs from it is
       written. NULL copies everything. */
    struct vimg_image *target_backing;
    bool bitmaps;              /* --bitmaps: copy SRC's persistent bitmaps
                                  into DST (qcow2 to qcow2), after the
                                  data */
    bool skip_broken_bitmaps;  /* leave inconsistent bitmaps out rather
                                  than fail */
    vimg_progress_fn progress; /* may be NULL */
    void *opaque;
    bool target_is_zero;       /* --target-is-zero: DST reads as zeros
                                  already, so zero runs are not written
                                  (refused when DST has a backing file) */
    /* --salvage: a read that fails is retried 512 bytes at a time; what
       still cannot be read is written as zeros and reported to
       read_error (may be NULL) with the source's index, the offset in
       that source and the errno, and the copy goes on. */
    bool salvage;
    void (*read_error)(void *opaque, size_t source, uint64_t offset,
                       int err);
    bool copy_offload;         /* -C: copy data ranges that a file holds
                                  as they are into a raw file target with
                                  copy_file_range (no zero detection);
                                  other ranges are copied as usual.
                                  Refused with compress. */
    uint64_t rate_limit;       /* -r: bytes of data per second; 0 for no
                                  limit (zero runs are not counted) */
    /* A window of the source (dd skip= and count=): copy LENGTH bytes
       from SRC_OFFSET of the (concatenated) source to offset 0 of DST.
       LENGTH 0 copies up to the source's end. */
    uint64_t src_offset;
    uint64_t length;
};
/* Copy the guest-visible contents of SRC (through its backing chain) into
 * DST, which must be writable and at least as large. */
int vimg_convert(struct vimg_image *src, struct vimg_image *dst,
                 const struct vimg_convert_params *p);
/* The same for N sources (N >= 1) copied one after the other, as one
 * disk of their sizes added (qemu-img convert with several sources).
 * bitmaps needs one source and no window (EINVAL). */
int vimg_convert_sources(struct vimg_image *const *srcs, size_t n,
                         struct vimg_image *dst,
                         const struct vimg_convert_params *p);

/* Compare guest-visible contents. Returns 0 when identical, 1 when they
 * differ (FIRST_DIFF set to the first differing 512-byte sector, or to the
 * smaller size for a size mismatch under STRICT), 2 under STRICT when the
 * block status (data, zero, allocated, extent reaching the end) differs at
 * FIRST_DIFF, as qemu-img compare -s checks; -1 on error. Without STRICT,
 * a larger image whose extra tail reads as zeros still matches. */
int vimg_compare(struct vimg_image *a, struct vimg_image *b, bool strict,
                 uint64_t *first_diff, vimg_progress_fn progress,
                 void *opaque);

/* ---- Internal snapshots ---------------------------------------------- */
/* Snapshots stored inside an image (qcow2), as qemu-img snapshot and
 * QEMU's savevm make them. Each change is written so that a crash leaves
 * the image as it was before or after it, never between. */

#define VIMG_SNAPSHOT_NO_ICOUNT UINT64_MAX

struct vimg_snapshot {
    char *id;               /* unique: "1", "2", ... */
    char *name;             /* the tag; names may repeat */
    uint64_t vm_state_size; /* bytes of VM state QEMU's savevm stored with
                               it (past the end of the disk); 0: disk only */
    uint64_t disk_size;     /* the virtual size it restores */
    uint32_t date_sec, date_nsec; /* when it was taken (seconds since
                               1970, UTC) */
    uint64_t vm_clock_nsec; /* the guest's clock then */
    uint64_t icount;        /* instructions executed, or
                               VIMG_SNAPSHOT_NO_ICOUNT when not recorded */
};

/* IMG's internal snapshots in the order the image lists them: *LIST (free
 * with vimg_snapshot_list_free) and their count *N; formats without
 * internal snapshots have none (*LIST NULL, *N 0). */
int vimg_snapshot_list(struct vimg_image *img, struct vimg_snapshot **list,
                       size_t *n);
/* Free a list from vimg_snapshot_list (NULL is a no-op). */
void vimg_snapshot_list_free(struct vimg_snapshot *list, size_t n);
/* Save IMG's current disk as a new snapshot NAME (IMG opened read-write),
 * as qemu-img snapshot -c does: the next free numeric ID, dated now, no VM
 * state, VM clock and instruction count 0. The snapshot and the current
 * disk then share every cluster until one of them is written. ENOTSUP for
 * formats without internal snapshots and for qcow2 images with an
 * external data file; ERANGE when the image's refcount width cannot count
 * one more reference (refcount_bits=1). */
int vimg_snapshot_create(struct vimg_image *img, const char *name);
/* Make IMG's current disk the snapshot named by ID and NAME again (its
 * contents and virtual size); the snapshot stays. With both, the first
 * snapshot matching both is meant; with one of them NULL, the first
 * matching the other (qemu-img snapshot -a tries the ID, then the name;
 * -d the name, then the ID: do that with vimg_snapshot_list). ENOENT when
 * none matches. IMG must be writable. */
int vimg_snapshot_apply(struct vimg_image *img, const char *id,
                        const char *name);
/* Delete that snapshot; the clusters only it held are freed (VM state
 * included), everything else stays. */
int vimg_snapshot_delete(struct vimg_image *img, const char *id,
                         const char *name);

/* ---- Committing and rebasing overlays ------------------------------- */

struct vimg_commit_params {
    /* -b: the image of TOP's backing chain to commit into, named as
     * qemu-img takes it (the name an image's header gives for it, or a
     * path that leads to the same file, relative names resolved against
     * the folder of the image naming it); NULL: TOP's backing file. */
    const char *base;
    /* -d (qemu-img commit -b implies it): leave TOP as it is. Otherwise
     * TOP is emptied afterwards, so that it reads its data from the base
     * (formats that cannot be emptied are left as they are, as qemu-img
     * leaves them). */
    bool drop;
    /* Extra open flags for the base, reopened read-write for the commit
     * (VIMG_OPEN_NOCACHE, VIMG_OPEN_NO_FLUSH: qemu-img commit -t). */
    unsigned base_flags;
    /* -r: bytes of data copied per second, counted as qemu-img convert
     * -r counts them; 0 for no limit. */
    uint64_t rate_limit;
    vimg_progress_fn progress; /* may be NULL */
    void *opaque;
    /* The secrets the base's key-secret options name (TOP's option list,
     * backing.* as QEMU nests it, is kept with TOP and given to the base
     * again), as in the vimg_open_params TOP was opened with. */
    const struct vimg_secret *secrets;
    size_t n_secrets;
};
/* Copy into the base (any writable format, raw included) everything that
 * TOP and the images between TOP and the base hold themselves, found by
 * block status: data is copied, zero ranges become zero writes that may
 * unmap, and ranges no layer above the base holds are not touched. The
 * base grows to TOP's size if it is smaller, and is flushed before TOP is
 * emptied. TOP must be opened with its backing chain, read-write unless
 * DROP; the base's handle in that chain is replaced by a read-write one
 * (closed with TOP). A base whose format was only guessed to be raw is
 * refused (EPERM). EINVAL when TOP has no backing file or BASE is not in
 * its chain, with qemu-img's message. */
int vimg_commit(struct vimg_image *top, const struct vimg_commit_params *p);

struct vimg_rebase_params {
    /* -b: the new backing file as the header will record it; a relative
     * name is opened relative to IMG's folder, as QEMU opens it. NULL or
     * "": none (IMG takes in everything it read from its old chain). */
    const char *backing_file;
    /* -F: its format; required with a backing file (EINVAL), as
     * qemu-img 7.2 requires it. */
    const char *backing_format;
    /* -u: only rewrite the backing file fields; IMG may then have been
     * opened with VIMG_OPEN_NO_BACKING, and its contents change if the
     * new backing file differs from the old. */
    bool unsafe;
    /* -U: open the new backing file even if another process has it. */
    bool force_share;
    /* Extra open flags for the new backing file (VIMG_OPEN_NOCACHE:
     * qemu-img rebase -T none). */
    unsigned backing_flags;
    vimg_progress_fn progress; /* may be NULL */
    void *opaque;
};
/* Give IMG (opened read-write) a new backing file without changing what
 * it reads: unless UNSAFE, every range where IMG has no data of its own
 * and the old and new backing chains read differently (compared only
 * where either chain has data; when the new file lies in the old chain,
 * only where the images above it hold data) is first copied from the
 * old chain into IMG (zeros as zero writes), then flushed, and only then
 * does the header change, in one write. Afterwards IMG's backing image
 * is the new one (opened read-only under IMG's open policy), or none
 * after an unsafe rebase, whose new file is not opened. The new file is
 * opened without options, as qemu-img 7.2 opens it: an encrypted one
 * only through the passphrase callback IMG was opened with, else ENOKEY
 * (the old chain keeps the keys IMG was opened with). ENOTSUP for
 * formats that cannot record a backing file (qcow2 can). */
int vimg_rebase(struct vimg_image *img, const struct vimg_rebase_params *p);

/* ---- Values (info trees) --------------------------------------------- */

enum vimg_value_type {
    VIMG_VALUE_NULL,
    VIMG_VALUE_BOOL,
    VIMG_VALUE_INT,
    VIMG_VALUE_STRING,
    VIMG_VALUE_ARRAY,
    VIMG_VALUE_OBJECT,
};
enum vimg_value_type vimg_value_type(const struct vimg_value *v);
bool vimg_value_bool(const struct vimg_value *v);
int64_t vimg_value_int(const struct vimg_value *v);
const char *vimg_value_string(const struct vimg_value *v);
/* Members of an array or object, in insertion order. */
size_t vimg_value_count(const struct vimg_value *v);
const struct vimg_value *vimg_value_at(const struct vimg_value *v, size_t i);
const char *vimg_value_key_at(const struct vimg_value *v, size_t i);
/* The member of object V named KEY, or NULL. */
const struct vimg_value *vimg_value_get(const struct vimg_value *v,
                                        const char *key);
/* JSON text in qemu-img's layout (4-space indent), caller frees. Strings
 * are escaped as vimg_json_quote() escapes them. */
char *vimg_value_to_json(const struct vimg_value *v);
/* S as a JSON string, quotes included, escaped byte for byte as qemu-img
 * escapes: \" \\ \b \f \n \r \t, any other character outside printable
 * ASCII as \uXXXX (upper-case hex; a surrogate pair beyond U+FFFF), and
 * bytes that are not UTF-8 as \uFFFD. Any bytes (a name from an image)
 * give valid JSON. Caller frees; NULL only when out of memory. */
char *vimg_json_quote(const char *s);
void vimg_value_free(struct vimg_value *v);

/* ---- ISO 9660 creation ---------------------------------------------- */

/* A file placed at the top of the image under a name of the caller's
 * choosing (the NoCloud seed names its files exactly, whatever the host
 * files are called). */
struct vimg_iso_graft {
    const char *name;       /* name in the image: one component, no '/' */
    const char *host_path;  /* a regular file on the host */
};

/* Fill with vimg_iso_create_params_init(), then change what you need. */
struct vimg_iso_create_params {
    const char *volume_id;    /* 1..32 printable ASCII chars; NULL "CDROM" */
    const char *volume_set;   /* the text fields below: up to 128 printable */
    const char *publisher;    /* ASCII chars each, NULL for blank */
    const char *preparer;
    const char *application;  /* NULL: "VIMG" */
    const char *system_id;    /* up to 32 chars; NULL: "LINUX" */
    bool rock_ridge;          /* RRIP 1.12: names, modes, owners, times,
                                 symlinks, devices; default on */
    bool joliet;              /* UCS-2 names up to 64 chars; default on */
    /* El Torito. Paths are inside the image ("isolinux/isolinux.bin"). */
    const char *bios_boot;    /* BIOS boot image, or NULL */
    const char *efi_boot;     /* UEFI boot image (platform 0xEF), or NULL */
    const char *boot_catalog; /* NULL: "boot.cat"; its folder must exist */
    bool no_emul_boot;        /* default on; off: floppy emulation, which
                                 needs a 1.2, 1.44 or 2.88 MB image */
    unsigned boot_load_size;  /* 512-byte sectors the BIOS loads; default 4 */
    bool boot_info_table;     /* patch the table isolinux and GRUB read at
                                 byte 8 of the BIOS image; default on */
    /* Seconds since 1970 for every volume date; file times later than it
     * are clamped to it (the reproducible-builds SOURCE_DATE_EPOCH rule),
     * and the modification time also stands for the access and change
     * times, which reading and copying a tree move. Negative (the
     * default): now, and every time as it is. */
    int64_t source_date_epoch;
    const struct vimg_iso_graft *grafts; /* extra files at the top level */
    size_t n_grafts;
};

void vimg_iso_create_params_init(struct vimg_iso_create_params *p);

/* Write an ISO 9660 image (level 3, with Rock Ridge and Joliet trees as P
 * asks) of the folder SOURCE_DIR (NULL: only P's grafts) to OUTPUT,
 * written as a target (see vimg_target_begin: locked, replaced only when
 * complete, in place for a device or hard link). Entries are sorted and
 * no host name or random id is recorded: the same tree and the same
 * source_date_epoch give byte-identical images. Symbolic links, devices,
 * FIFOs and sockets are recorded through Rock Ridge only (left out
 * without it). Folders deeper than 8 levels are written in place, not
 * relocated; files over 4 GiB use multiple extents. Returns 0, or -1 with
 * the error naming the file. docs/iso-create.md has the details. */
int vimg_iso_create(const char *output, const char *source_dir,
                    const struct vimg_iso_create_params *p);

/* ---- ISO 9660 reading ------------------------------------------------ */
/* An ISO 9660 file system (with Rock Ridge, Joliet and El Torito) read
 * through any open image: a raw .iso, or the same bytes inside qcow2. Names
 * are the best the image offers: Rock Ridge, else Joliet, else the ISO 9660
 * name without ";1" and a trailing ".". Paths are '/'-separated, absolute
 * or relative to the root. Everything read from the image is validated;
 * malformed metadata fails with a message naming the image and the entry. */

struct vimg_iso;

enum vimg_iso_type {
    VIMG_ISO_FILE,
    VIMG_ISO_DIRECTORY,
    VIMG_ISO_SYMLINK,
    VIMG_ISO_CHARDEV,
    VIMG_ISO_BLOCKDEV,
    VIMG_ISO_FIFO,
    VIMG_ISO_SOCKET,
};

struct vimg_iso_stat {
    const char *name;          /* best name, UTF-8 ("" for the root) */
    enum vimg_iso_type type;
    uint64_t size;             /* bytes of file data (all extents) */
    uint32_t mode;             /* st_mode with type bits; without Rock
                                  Ridge 0444 files, 0555 directories */
    uint32_t nlink, uid, gid;  /* 1, 0, 0 without Rock Ridge */
    int64_t mtime, atime;      /* seconds since the epoch (UTC); Rock
                                  Ridge TF, else the record's date */
    const char *target;        /* symlink target, or NULL */
    bool rock_ridge;           /* the entry carried Rock Ridge data */
};

/* Open the file system on IMG (borrowed: IMG must stay open until
 * vimg_iso_close). NULL with EINVAL when IMG holds no ISO 9660 volume.
 * A handle is used by one thread at a time. */
struct vimg_iso *vimg_iso_open(struct vimg_image *img);
/* Free ISO (NULL is a no-op). */
void vimg_iso_close(struct vimg_iso *iso);

/* Describe PATH. The strings in *ST are borrowed until the next call on
 * ISO. ENOENT when nothing has that name, ENOTDIR when a component is not a
 * directory. */
int vimg_iso_stat(struct vimg_iso *iso, const char *path,
                  struct vimg_iso_stat *st);

/* Called once per entry with its path from the root ("/a/b") and facts
 * (both borrowed for the call). A non-zero return stops the listing and
 * becomes vimg_iso_list's result. */
typedef int (*vimg_iso_list_fn)(void *opaque, const char *path,
                                const struct vimg_iso_stat *st);
/* List directory PATH in on-disk order (RECURSIVE: depth first, each
 * directory's entries right after the directory itself). PATH naming a
 * non-directory reports that one entry. Each directory extent is entered
 * once: directory loops and directories sharing extents, nesting beyond
 * 255 levels (the most vimg iso create writes) and more records than one
 * per 34 bytes of image (or 4 Mi) fail with EINVAL. */
int vimg_iso_list(struct vimg_iso *iso, const char *path, bool recursive,
                  vimg_iso_list_fn fn, void *opaque);

/* Read up to COUNT bytes of file PATH from OFFSET: the number read (short
 * only at the end of the file), or -1. Multi-extent files read whole. */
int64_t vimg_iso_read(struct vimg_iso *iso, const char *path, void *buf,
                      size_t count, uint64_t offset);

/* Copy PATH (a file, symlink or tree; NULL or "/" is the whole volume) into
 * the existing directory DEST: the root's entries land directly in DEST,
 * anything else as DEST/<last component of PATH>. Rock Ridge modes, mtimes
 * and atimes are applied and symlinks created (never followed); ownership
 * is not changed; device nodes and sockets are skipped, FIFOs created.
 * Nothing is ever written outside DEST: names that are empty, ".", "..",
 * or contain '/' or NUL, absolute symlink targets and targets that climb
 * out of DEST fail with EPERM naming the entry; existing files are never
 * replaced (EEXIST). Rock Ridge hard links (names sharing data, serial
 * number and attributes) become hard links. Directories are entered once
 * each, as vimg_iso_list does, and files sharing data without being links
 * are copied up to max(4 x the image size, 1 GiB) in all (EINVAL beyond).
 * On failure the entry being written is removed and the message ends with
 * what stays in DEST. Memory use does not depend on file sizes. */
int vimg_iso_extract(struct vimg_iso *iso, const char *path,
                     const char *dest);

/* Copy the regular file PATH to the new host file TARGET (its folder must
 * exist; an existing TARGET is not replaced: EEXIST), with its Rock Ridge
 * mode and times, as cp and xorriso -extract copy one file to a new
 * name. EINVAL when PATH is not a regular file. On failure nothing is
 * left at TARGET. */
int vimg_iso_extract_file(struct vimg_iso *iso, const char *path,
                          const char *target);

/* ---- Helpers shared with the CLI ------------------------------------- */

/* Parse a size as qemu-img does: a decimal or 0x-hexadecimal number (a
 * decimal may have a fraction, "1.5G") with an optional suffix
 * k K M G T P E (powers of 1024) or b/B. Rejects negatives, overflow and
 * trailing garbage. */
int vimg_parse_size(const char *text, uint64_t *out);

#ifdef __cplusplus
}
#endif
#endif
