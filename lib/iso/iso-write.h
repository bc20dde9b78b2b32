/* The ISO 9660 writer's private interface. One struct iso_node per file in
 * the image; a struct iso_writer carries one vimg_iso_create() call from the
 * directory walk through naming, Rock Ridge, layout and output. Prototypes
 * are grouped by the file that defines them. */
#ifndef VIMG_ISO_WRITE_H
#define VIMG_ISO_WRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../internal.h"
#include "iso-ondisk.h"

/* Caps that keep a hostile or runaway source tree from exhausting memory
 * or overflowing on-disk fields: path tables number directories with 16
 * bits; ten million entries is far beyond any real image. */
#define ISO_WRITE_MAX_DIRS 65535u
#define ISO_WRITE_MAX_NODES 10000000u
/* ISO identifiers: level 2 allows 30 chars of name plus extension, and
 * 31 for folders; ";1" follows file names. */
#define ISO_WRITE_ID_MAX 34
/* The boot catalog is one sector. */
#define ISO_WRITE_CATALOG_BYTES ISO_SECTOR_SIZE

enum iso_content {
    ISO_CONTENT_NONE,     /* folders, symlinks, devices: no data */
    ISO_CONTENT_FILE,     /* a regular host file, copied */
    ISO_CONTENT_CATALOG,  /* the El Torito boot catalog, generated */
};

struct iso_node {
    char *name;           /* the host name (Rock Ridge NM); "" for root */
    char *host_path;      /* where content and link targets come from */
    struct iso_node *parent;
    struct iso_node **kids;   /* ISO 9660 order once named */
    size_t n_kids, kids_cap;
    struct iso_node **jkids;  /* the Joliet subset, in Joliet order */
    size_t n_jkids;

    /* Attributes, from lstat (clamped times) or generated. */
    uint32_t mode, uid, gid;
    uint64_t size, rdev, host_dev, host_ino, host_nlink;
    int64_t mtime, atime, ctime;
    char *link_target;    /* symlinks only */
    enum iso_content content;
    bool in_iso;          /* recorded in the ISO 9660 (+Rock Ridge) tree */
    bool in_joliet;

    /* Names. */
    char iso_id[ISO_WRITE_ID_MAX + 1];
    uint8_t iso_id_len;
    uint16_t jname[ISO_JOLIET_MAX_NAME_CHARS];
    uint8_t jname_len;

    /* Rock Ridge: the first link of a hard-linked group owns the data;
     * the others point at it and share its serial number. */
    struct iso_node *data_owner;
    uint32_t nlink, serial;
    uint64_t data_lba;    /* of the owner; 0 for empty files */

    /* Folders. */
    uint32_t depth;       /* root is 1 */
    uint32_t dir_number, jdir_number;  /* 1-based path table numbers */
    uint32_t dir_lba, dir_bytes;       /* ISO 9660 extent */
    uint32_t ce_lba, ce_blocks;        /* Rock Ridge continuation area */
    uint32_t jdir_lba, jdir_bytes;     /* Joliet extent */
};

/* A growable byte buffer. */
struct iso_buf {
    uint8_t *data;
    size_t len, cap;
};

struct iso_writer {
    const struct vimg_iso_create_params *p;
    const char *output;   /* for messages */
    int fd;               /* the temporary output */
    int64_t now;          /* volume dates */
    bool clamp;           /* file times > now are clamped */

    struct iso_node *root;
    size_t n_nodes;
    struct iso_node **dirs;    /* ISO path table order */
    size_t n_dirs;
    struct iso_node **jdirs;   /* Joliet path table order */
    size_t n_jdirs;
    struct iso_node **files;   /* data owners in data order */
    size_t n_files;

    struct iso_node *catalog, *bios, *efi;

    /* Layout, in sectors. */
    uint32_t br_lba, svd_lba, term_lba;
    uint32_t pt_bytes, pt_l_lba, pt_m_lba;
    uint32_t jpt_bytes, jpt_l_lba, jpt_m_lba;
    uint64_t total_blocks;
};

/* iso-write-tree.c */
/* Walk SOURCE (may be NULL), add the grafts and the boot catalog, find the
 * boot images and link hard-link groups. */
int iso_tree_build(struct iso_writer *w, const char *source);
void iso_tree_free(struct iso_node *n);
/* The node at PATH ("a/b/c", relative to the root), or NULL. */
struct iso_node *iso_tree_lookup(struct iso_node *root, const char *path);

/* iso-write-names.c */
/* Give every node its ISO 9660 and Joliet names, unique in its folder,
 * and sort the folders' kids in each tree's order. */
int iso_names_assign(struct iso_writer *w);

/* iso-write-rr.c */
enum iso_rr_record {
    ISO_RR_NAMED,      /* N's own record in its folder: with NM, SL, PN */
    ISO_RR_DOT,        /* a "." or ".." record describing folder N */
    ISO_RR_ROOT_DOT,   /* the root's "." record: adds SP and ER */
};
/* Append the Rock Ridge entries of a record describing N to OUT. */
int iso_rr_entries(const struct iso_node *n, enum iso_rr_record kind,
                   struct iso_buf *out);
/* Where a record's continuation bytes go: CE_BASE is the first sector of
 * the folder's continuation area (0 while sizing), POS the next free byte
 * in it; CE (may be NULL while sizing) receives the bytes. */
struct iso_ce_cursor {
    uint32_t ce_base;
    uint64_t pos;
    struct iso_buf *ce;
};
/* Split ENTRIES into the bytes that fit in a record's system use area of
 * AVAIL bytes (appended to INLINE_OUT) and continuation areas. */
int iso_rr_pack(const struct iso_buf *entries, size_t avail,
                struct iso_ce_cursor *cur, struct iso_buf *inline_out);

/* iso-write-layout.c */
/* Number the folders, size every folder and path table and give every
 * extent its sector. */
int iso_layout(struct iso_writer *w);
/* The bytes of N's ISO 9660 (JOLIET false) or Joliet folder extent, and
 * for ISO 9660 its Rock Ridge continuation area (CE, may be NULL while
 * sizing; *CE_BYTES its length). Used both to size (sectors still 0) and,
 * with the same result, to write. */
int iso_layout_dir(const struct iso_writer *w, const struct iso_node *n,
                   bool joliet, struct iso_buf *out, struct iso_buf *ce,
                   uint64_t *ce_bytes);
/* A path table (L: little-endian, else M) of the ISO or Joliet tree. */
int iso_layout_path_table(const struct iso_writer *w, bool joliet,
                          bool little, struct iso_buf *out);

/* iso-write-eltorito.c */
/* Check the boot parameters against the tree (called after the walk). */
int iso_eltorito_check(struct iso_writer *w);
void iso_eltorito_boot_record(const struct iso_writer *w, uint8_t *sector);
void iso_eltorito_catalog(const struct iso_writer *w, uint8_t *sector);
/* Patch the boot information table into the copied BIOS image. */
int iso_eltorito_patch_info_table(struct iso_writer *w);

/* iso-write-util.c */
int iso_buf_append(struct iso_buf *b, const void *data, size_t len);
int iso_buf_zeros(struct iso_buf *b, size_t len);
void iso_buf_free(struct iso_buf *b);
/* Dates at time T (UTC, offset 0). */
void iso_date7(int64_t t, uint8_t out[ISO_DIR_DATE_SIZE]);
void iso_date17(int64_t t, uint8_t out[ISO_VOL_DATE_SIZE]);
/* "path: message" with errno, the first error of the call. */
int iso_fail(const struct iso_writer *w, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
