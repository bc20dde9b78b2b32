/* The VHDX driver's private interface, grouped by file. */
#ifndef VIMG_VHDX_H
#define VIMG_VHDX_H

#include <stdbool.h>
#include <stdint.h>

#include "../../internal.h"
#include "vhdx-ondisk.h"

/* Named caps on what a file may make us allocate or scan, each with its
 * reason. */
/* BAT held in memory: 64 MiB (8 Mi entries) maps 8 TiB with the smallest
 * blocks and the 64 TiB maximum with 8 MiB blocks. */
#define VHDX_MAX_BAT_BYTES (64ull << 20)
/* A log replayed in memory is read whole: 64 MiB is 64 times the size
 * Hyper-V and qemu-img create. */
#define VHDX_MAX_LOG_REPLAY (64u << 20)
/* Parent locator read into memory: [MS-VHDX] keeps every metadata item
 * under 1 MiB; a locator of a few paths is well under 1 KiB, and 64 KiB
 * bounds what a hostile one makes us allocate and convert. */
#define VHDX_MAX_PARENT_LOCATOR (64u * 1024)
/* Bytes checksummed while searching a log: four passes over it. Forged
 * entry headers at every sector would otherwise cost a checksum of up to
 * the whole log each. */
#define VHDX_LOG_SEARCH_PASSES 4

/* One write the log replays, applied to every read of the file while the
 * image is open (read-only opens never write the log out). */
struct vhdx_overlay {
    uint64_t offset, length;
    uint8_t *data;            /* LENGTH bytes, or NULL for zeros */
};

struct vhdx_state {
    uint8_t header[VHDX_HEADER_SIZE]; /* the current header, as on disk */
    int cur_header;                   /* 0 or 1 */
    uint64_t file_size;               /* the file, or more if the log says
                                         it must be longer */
    uint64_t log_offset;
    uint32_t log_length;
    uint64_t bat_offset, bat_length;  /* BAT region */
    uint64_t md_offset, md_length;    /* metadata region */
    uint32_t block_size;
    uint32_t logical_sector, physical_sector;
    bool fixed;                       /* "leave blocks allocated" */
    uint64_t chunk_ratio;             /* payload entries per bitmap entry */
    uint64_t bat_entries;
    uint64_t *bat;                    /* host order */
    struct vhdx_overlay *overlay;     /* replayed log, in log order */
    size_t n_overlay;
    uint64_t log_entries;             /* entries replayed in memory */
    uint64_t data_end;                /* where the next block may go */
    /* Differencing disks (vhdx-parent.c): */
    bool has_parent;
    uint8_t linkage[2][16];           /* parent_linkage, parent_linkage2 */
    int n_linkage;
    uint64_t bitmap_bytes;            /* sector bitmap bytes per block */
    /* Writing (vhdx-write.c): */
    bool data_written;                /* data write GUID already renewed */
    bool session_started;             /* session_guid is set */
    uint8_t session_guid[16];         /* this session's file write GUID */
    uint8_t *dirty;                   /* one bit per 4 KiB BAT sector whose
                                         in-memory entries are not on disk */
    uint64_t bat_sectors, n_dirty;
    uint64_t log_seq;                 /* sequence number of the next entry */
};

static inline struct vhdx_state *vhdx_state(struct vimg_image *img)
{
    return img->opaque;
}

/* vhdx.c */
/* Read the file as the replayed log leaves it. */
int vhdx_file_read(struct vimg_image *img, void *buf, uint64_t len,
                   uint64_t offset);
/* The BAT index of payload block BLOCK. */
static inline uint64_t vhdx_bat_index(const struct vhdx_state *s,
                                      uint64_t block)
{
    return block + block / s->chunk_ratio;
}

/* The BAT index of the sector bitmap entry of payload block BLOCK's
 * chunk. */
static inline uint64_t vhdx_sb_index(const struct vhdx_state *s,
                                     uint64_t block)
{
    return (block / s->chunk_ratio + 1) * (s->chunk_ratio + 1) - 1;
}

/* vhdx-parent.c */
/* Read the parent locator whose metadata table entry is ENTRY: the
 * parent's identity, and IMG's backing name and format. */
int vhdx_parent_load(struct vimg_image *img, const uint8_t *entry);
/* The driver's backing_opened: the parent's data write GUID must be the
 * one the locator names. */
int vhdx_backing_opened(struct vimg_image *img);
/* From sector FIRST of partially present payload block BLOCK, how many
 * sectors (1..MAX, *RUN) have the same bitmap bit, and whether that bit
 * says the data is in this file (*PRESENT) or the parent's. */
int vhdx_bitmap_run(struct vimg_image *img, uint64_t block, uint64_t first,
                    uint64_t max, bool *present, uint64_t *run);

/* vhdx-log.c */
/* Find the active log sequence (if the header names a log) and turn it
 * into the overlay; s->file_size grows to what the log says. Nothing is
 * written. */
int vhdx_log_load(struct vimg_image *img);
void vhdx_log_free(struct vhdx_state *s);
/* Write the loaded overlay into the file, then mark the log empty in both
 * headers (a read-write open of an image that was not closed cleanly). */
int vhdx_log_replay_to_disk(struct vimg_image *img);

/* vhdx-write.c */
extern const struct vimg_opt_desc vhdx_create_opts[];
int vhdx_create(struct vimg_image *file, const struct vimg_create_ctx *c);
int vhdx_pwrite(struct vimg_image *img, const void *buf, uint64_t count,
                uint64_t offset, unsigned flags);
int vhdx_zero(struct vimg_image *img, uint64_t offset, uint64_t count,
              unsigned flags);
/* Commit the BAT entries changed since the last flush, through the log. */
int vhdx_flush(struct vimg_image *img);
/* Write the non-current header as the current one with the next sequence
 * number, this session's file write GUID, LOG_GUID (NULL: keep) and a new
 * data write GUID when NEW_DATA_GUID; it becomes current. */
int vhdx_update_header(struct vimg_image *img, const uint8_t *log_guid,
                       bool new_data_guid);

#endif
