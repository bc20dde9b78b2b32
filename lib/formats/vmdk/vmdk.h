/* VMDK driver internals, shared by the files of lib/formats/vmdk/.
 * Prototypes are grouped by the file that defines them. */
#ifndef VIMG_VMDK_H
#define VIMG_VMDK_H

#include <stdbool.h>
#include <stdint.h>

#include "../../internal.h"
#include "vmdk-ondisk.h"

/* Caps on sizes read from disk, each with its reason:
 * - descriptors are parsed whole in memory: 1 MiB, the most QEMU reads
 *   (a twoGbMaxExtent descriptor of a 60 TiB disk needs about 1.2 MiB...
 *   of which QEMU too reads only the first MiB);
 * - every extent file stays open: 4096 extents (8 TiB of 2 GiB extents)
 *   keeps below common open-file limits;
 * - a grain is buffered whole: at most 1 MiB (VMware writes 64 KiB);
 * - grain tables are cached whole: at most 4096 entries (16 KiB; VMware
 *   writes 512, QEMU reads at most 512);
 * - the grain directory is held in memory: 16 MiB (4 Mi tables: 128 TiB
 *   at VMware's defaults, beyond the 62 TiB VMDK limit);
 * - a compressed grain is at most twice its grain plus a sector (deflate
 *   never grows data by more than a few bytes per 16 KiB block). */
#define VMDK_MAX_DESC_BYTES (1u << 20)
#define VMDK_MAX_EXTENTS 4096
#define VMDK_MAX_GRAIN_SECTORS 2048
#define VMDK_MAX_GTES 4096
#define VMDK_MAX_GD_BYTES (16u << 20)
#define VMDK_GT_CACHE_SLOTS 16
/* Disks QEMU and vimg handle are below 2^63 bytes; VMware's own limit for
 * hosted sparse extents is 2^32 sectors (grain table entries are 32-bit
 * sector numbers). */
#define VMDK_MAX_SPARSE_FILE_SECTORS (1ull << 32)

enum vmdk_ext_type {
    VMDK_EXT_SPARSE,   /* hosted sparse extent (header "KDMV") */
    VMDK_EXT_FLAT,     /* raw bytes at an offset of a file */
    VMDK_EXT_VMFS,     /* same, ESX spelling, offset 0 */
    VMDK_EXT_ZERO,     /* reads as zeros, no file */
    VMDK_EXT_SESPARSE, /* ESXi seSparse (vmdk-sesparse.c), read-only */
};

/* ---- Descriptor (vmdk-desc.c) ----------------------------------------- */

struct vmdk_desc_extent {
    bool rdonly;             /* RDONLY access (RW otherwise) */
    uint64_t sectors;
    enum vmdk_ext_type type;
    const char *type_name;   /* as QEMU reports it: "SPARSE", "FLAT", ... */
    char *name;              /* file name as written, NULL for ZERO */
    uint64_t offset;         /* FLAT: sectors into the file */
};

struct vmdk_desc {
    unsigned version;
    uint32_t cid, parent_cid;
    char *create_type;
    char *parent_hint;       /* parentFileNameHint, or NULL */
    struct vmdk_desc_extent *extents;
    size_t n_extents;
};

/* Parse LEN bytes of descriptor text (a NUL ends it early) under the
 * strict grammar of docs/vmdk.md: every line is blank, a comment, a
 * header key=value, a ddb.* entry or an extent line;
 * anything else is refused naming the line. Extent names are checked
 * against IMG's open policy (no absolute or ".." names unless references
 * are followed freely). Messages name IMG. */
int vmdk_desc_parse(struct vimg_image *img, const char *text, size_t len,
                    struct vmdk_desc *out);
void vmdk_desc_free(struct vmdk_desc *d);
/* Replace the value of the first line `KEY=...` or `KEY = ...` (CID,
 * ddb.longContentID with its quotes) in the descriptor TEXT (*LEN bytes,
 * malloc'd) by VALUE; the text may grow or shrink. -ENOENT: no such
 * line. */
int vmdk_desc_set_value(char **text, size_t *len, const char *key,
                        const char *value);

/* ---- Extents and driver state ---------------------------------------- */

/* A hosted sparse extent, validated by vmdk_sparse_open. Offsets in
 * bytes. */
struct vmdk_sparse {
    uint32_t version, flags;
    uint64_t capacity;         /* sectors */
    uint64_t grain_bytes;
    uint32_t gtes;             /* entries per grain table */
    uint64_t gt_bytes;
    uint64_t gd_offset, rgd_offset; /* rgd 0 when there is none */
    uint64_t desc_offset, desc_size;
    uint64_t overhead;
    uint32_t gd_entries;
    uint32_t *gd, *rgd;        /* host order: sector numbers */
    bool compressed, markers, zero_grain;
    bool footer;               /* the header in force came from a footer */
    uint64_t file_size;        /* bytes, kept current by our writes */
    uint64_t orig_size;        /* bytes, when opened */
    uint8_t *verified;         /* bit per grain table: entries checked */
    uint64_t next;             /* where the next grain goes */
    bool stream;               /* compressed: written by appending only */
    bool stream_dirty;         /* grains appended since the last EOS */
    bool cowd;                 /* ESX "COWD" extent: read-only, tables
                                  among the grains */
    uint64_t meta_start;       /* bytes of header: no table or grain in
                                  them */
};

struct vmdk_se;

struct vmdk_extent {
    enum vmdk_ext_type type;
    const char *type_name;     /* "" for a monolithic file, as QEMU */
    bool rdonly;
    char *name;                /* as the descriptor writes it, or NULL */
    char *path;                /* resolved for info, or NULL */
    struct vimg_image *file;   /* NULL when the policy kept it closed */
    bool own_file;             /* FILE is ours to close (not img->file) */
    uint64_t start, length;    /* guest bytes */
    uint64_t flat_offset;      /* bytes into FILE (FLAT, VMFS) */
    struct vmdk_sparse *sp;    /* SPARSE (hosted or COWD) only */
    struct vmdk_se *se;        /* SESPARSE only */
};

struct vmdk_gt_slot {
    const struct vmdk_extent *ext; /* NULL: empty */
    uint32_t index;            /* grain directory index */
    uint64_t lru;
    bool dirty;
    bool valid;                /* every entry passed the load checks */
    uint32_t *table;           /* host order, VMDK_MAX_GTES entries */
};

struct vmdk_state {
    struct vmdk_desc desc;
    char *desc_text;           /* as read, for CID updates */
    size_t desc_len;
    uint64_t desc_at;          /* bytes into img->file */
    uint64_t desc_room;        /* embedded: bytes reserved; file: 0 */
    bool embedded;             /* descriptor inside the sparse extent */
    const char *create_type;   /* desc.create_type, or derived */
    struct vmdk_extent *extents;
    size_t n_extents;
    bool cid_updated;          /* CID changed since open (first write) */
    bool parent_checked;
    /* Grain tables. */
    struct vmdk_gt_slot gt[VMDK_GT_CACHE_SLOTS];
    uint64_t tick;
    /* Buffers of the largest grain of any extent. */
    uint64_t max_grain;
    uint8_t *grain_buf;        /* one grain: copy-on-write, reads */
    uint8_t *cbuf;             /* compressed grain with its marker */
    uint64_t cbuf_size;
    /* The last grain decompressed (reads of pieces of one grain). */
    const struct vmdk_extent *cache_ext;
    uint64_t cache_grain;
    uint64_t cache_len;
    uint8_t *cache;
};

static inline struct vmdk_state *vmdk_state(struct vimg_image *img)
{
    return img->opaque;
}

/* ---- vmdk.c ----------------------------------------------------------- */
extern const struct vimg_driver vimg_driver_vmdk;

/* ---- vmdk-sparse.c ---------------------------------------------------- */
/* Validate the sparse extent header in FILE (the one place header fields
 * are checked; a footer takes over when the grain directory is at the
 * end) and load its grain directory. IMG names the image in messages;
 * WRITABLE asks for the checks writing needs. */
int vmdk_sparse_open(struct vimg_image *img, struct vimg_image *file,
                     bool writable, struct vmdk_sparse **out);
void vmdk_sparse_free(struct vmdk_sparse *sp);
/* The header checks of vmdk_sparse_open on one sector (also used for the
 * footer). */
int vmdk_sparse_check_header(struct vimg_image *img, const uint8_t *hdr,
                             uint64_t file_size, struct vmdk_sparse *sp);

/* ---- vmdk-sesparse.c -------------------------------------------------- */
/* Validate the seSparse headers in FILE and load its grain directory
 * (read-only: WRITABLE is refused). IMG names the image in messages. */
int vmdk_se_open(struct vimg_image *img, struct vimg_image *file,
                 bool writable, struct vmdk_se **out);
void vmdk_se_free(struct vmdk_se *se);
uint64_t vmdk_se_capacity(const struct vmdk_se *se); /* sectors */
uint64_t vmdk_se_grain_bytes(const struct vmdk_se *se);
int vmdk_se_read(struct vimg_image *img, struct vmdk_extent *e, uint8_t *buf,
                 uint64_t count, uint64_t offset);
int vmdk_se_block_status(struct vimg_image *img, struct vmdk_extent *e,
                         uint64_t offset, uint64_t count, uint64_t *pnum,
                         uint64_t *map);
/* QEMU's check: grain table entries that cannot be read. */
int vmdk_se_check(struct vimg_image *img, struct vmdk_extent *e,
                  struct vimg_check_result *res, vimg_report_fn report,
                  void *opaque);

/* ---- vmdk-grain.c ----------------------------------------------------- */
/* Read guest bytes of E (extent-relative OFFSET) from the backing chain,
 * after checking the parent's CID once. */
int vmdk_read_backing(struct vimg_image *img, struct vmdk_extent *e,
                      uint8_t *buf, uint64_t count, uint64_t offset);
/* Read COUNT bytes at OFFSET (relative to the extent) from a sparse
 * extent; unallocated grains come from the backing chain. */
int vmdk_sparse_read(struct vimg_image *img, struct vmdk_extent *e,
                     uint8_t *buf, uint64_t count, uint64_t offset);
/* Whether writes may go to E at all (streams with their directory at the
 * end, or without markers, cannot be appended to); checked before the
 * first change to the image. */
int vmdk_sparse_writable(struct vimg_image *img, struct vmdk_extent *e);
int vmdk_sparse_write(struct vimg_image *img, struct vmdk_extent *e,
                      const uint8_t *buf, uint64_t count, uint64_t offset);
/* Zero [OFFSET, OFFSET+COUNT): zeroed grains where the extent has them,
 * or nothing for unwritten stream grains without a backing file;
 * -ENOTSUP for the core to write zeros. */
int vmdk_sparse_zero(struct vimg_image *img, struct vmdk_extent *e,
                     uint64_t offset, uint64_t count);
/* Store LEN bytes of zlib stream as the grain at OFFSET of a stream
 * extent (not written yet). */
int vmdk_sparse_write_compressed(struct vimg_image *img,
                                 struct vmdk_extent *e, uint64_t offset,
                                 const uint8_t *zdata, uint64_t len);
int vmdk_sparse_block_status(struct vimg_image *img, struct vmdk_extent *e,
                             uint64_t offset, uint64_t count,
                             uint64_t *pnum, uint64_t *map);
/* Write back dirty grain tables of every extent, and the end-of-stream
 * marker of streams appended to. */
int vmdk_sparse_flush(struct vimg_image *img);
/* Count grains pointing past the end of their file (QEMU's check). */
int vmdk_sparse_check(struct vimg_image *img, struct vmdk_extent *e,
                      struct vimg_check_result *res, vimg_report_fn report,
                      void *opaque);

/* ---- vmdk-create.c ---------------------------------------------------- */
extern const struct vimg_opt_desc vmdk_create_opts[];
int vmdk_create(struct vimg_image *file, const struct vimg_create_ctx *c);
/* Sectors of a grain directory and of all grain tables for CAPACITY
 * sectors (shared with the stream layout of create). */
void vmdk_layout(uint64_t capacity, uint64_t grain_sectors, uint32_t gtes,
                 uint64_t *gd_sectors, uint64_t *gt_count,
                 uint64_t *gt_sectors);

#endif
