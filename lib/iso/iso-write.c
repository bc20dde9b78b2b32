/* vimg_iso_create(): validate the parameters, build and lay out the tree,
 * then write the image as a target (lib/target.c: locked, built without a
 * name, published when complete). File data is streamed (copy_file_range
 * where the kernel can, else a bounded buffer) and holes in the sources
 * stay holes. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../../common/rounding.h"
#include "iso-write.h"

#define COPY_BUFFER (1024 * 1024)
/* copy_file_range in pieces, so a huge file cannot tie up the call. */
#define COPY_CHUNK (64ull * 1024 * 1024)

void vimg_iso_create_params_init(struct vimg_iso_create_params *p)
{
    memset(p, 0, sizeof *p);
    p->rock_ridge = true;
    p->joliet = true;
    p->no_emul_boot = true;
    p->boot_load_size = 4;
    p->boot_info_table = true;
    p->source_date_epoch = -1;
}

static int check_text(const char *what, const char *s, size_t max,
                      bool empty_ok)
{
    if (!s) {
        return 0;
    }
    size_t len = strlen(s);
    if ((!empty_ok && len == 0) || len > max) {
        return vimg_internal_error(EINVAL, "%s '%s' must be %s%zu "
                                   "characters", what, s,
                                   empty_ok ? "at most " : "1 to ", max);
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] < 0x20 || s[i] > 0x7E) {
            return vimg_internal_error(EINVAL, "%s '%s' must be printable "
                                       "ASCII", what, s);
        }
    }
    return 0;
}

static int check_params(const struct vimg_iso_create_params *p)
{
    int r = check_text("volume id", p->volume_id, ISO_PVD_VOLUME_ID_SIZE,
                       false);
    if (r == 0) {
        r = check_text("system id", p->system_id, ISO_PVD_SYSTEM_ID_SIZE,
                       true);
    }
    const char *const *t[] = { &p->volume_set, &p->publisher, &p->preparer,
                               &p->application };
    static const char *const names[] = { "volume set id", "publisher",
                                         "preparer", "application id" };
    for (size_t i = 0; r == 0 && i < 4; i++) {
        r = check_text(names[i], *t[i], ISO_PVD_LONG_ID_SIZE, true);
    }
    if (r == 0 && p->n_grafts && !p->grafts) {
        r = vimg_internal_error(EINVAL, "grafts missing");
    }
    return r;
}

/* ---- Descriptors ------------------------------------------------------ */

/* Text fields: ASCII padded with spaces, or for Joliet UCS-2BE padded
 * with UCS-2 spaces (a trailing odd byte stays zero). */
static void text(uint8_t *d, size_t size, const char *s, bool ucs2)
{
    size_t len = s ? strlen(s) : 0;
    if (!ucs2) {
        memset(d, ' ', size);
        if (len) {
            memcpy(d, s, MIN(len, size));
        }
        return;
    }
    memset(d, 0, size);
    for (size_t i = 0; i + 1 < size; i += 2) {
        store_be16(d + i, i / 2 < len ? (uint8_t)s[i / 2] : ' ');
    }
}

static void descriptor(const struct iso_writer *w, bool joliet, uint8_t *d)
{
    const struct vimg_iso_create_params *p = w->p;
    const struct iso_node *root = w->root;
    memset(d, 0, ISO_SECTOR_SIZE);
    d[ISO_VD_TYPE_OFFSET] = joliet ? ISO_VD_SUPPLEMENTARY : ISO_VD_PRIMARY;
    memcpy(d + ISO_VD_ID_OFFSET, ISO_VD_ID, ISO_VD_ID_SIZE);
    d[ISO_VD_VERSION_OFFSET] = ISO_VD_VERSION;
    text(d + ISO_PVD_SYSTEM_ID_OFFSET, ISO_PVD_SYSTEM_ID_SIZE,
         p->system_id ? p->system_id : "LINUX", joliet);
    text(d + ISO_PVD_VOLUME_ID_OFFSET, ISO_PVD_VOLUME_ID_SIZE,
         p->volume_id ? p->volume_id : "CDROM", joliet);
    iso_store_both32(d + ISO_PVD_VOLUME_SPACE_SIZE_OFFSET,
                     (uint32_t)w->total_blocks);
    if (joliet) {
        memcpy(d + ISO_SVD_ESCAPE_SEQUENCES_OFFSET, ISO_JOLIET_ESCAPE_LEVEL3,
               ISO_JOLIET_ESCAPE_SIZE);
    }
    iso_store_both16(d + ISO_PVD_VOLUME_SET_SIZE_OFFSET, 1);
    iso_store_both16(d + ISO_PVD_VOLUME_SEQ_OFFSET, 1);
    iso_store_both16(d + ISO_PVD_BLOCK_SIZE_OFFSET, ISO_SECTOR_SIZE);
    iso_store_both32(d + ISO_PVD_PATH_TABLE_SIZE_OFFSET,
                     joliet ? w->jpt_bytes : w->pt_bytes);
    store_le32(d + ISO_PVD_L_PATH_TABLE_OFFSET,
               joliet ? w->jpt_l_lba : w->pt_l_lba);
    store_be32(d + ISO_PVD_M_PATH_TABLE_OFFSET,
               joliet ? w->jpt_m_lba : w->pt_m_lba);

    uint8_t *rec = d + ISO_PVD_ROOT_DIR_RECORD_OFFSET;
    rec[ISO_DR_LENGTH_OFFSET] = ISO_DR_MIN_LENGTH;
    iso_store_both32(rec + ISO_DR_EXTENT_OFFSET,
                     joliet ? root->jdir_lba : root->dir_lba);
    iso_store_both32(rec + ISO_DR_DATA_LENGTH_OFFSET,
                     joliet ? root->jdir_bytes : root->dir_bytes);
    iso_date7(root->mtime, rec + ISO_DR_DATE_OFFSET);
    rec[ISO_DR_FLAGS_OFFSET] = ISO_DR_FLAG_DIRECTORY;
    iso_store_both16(rec + ISO_DR_VOLUME_SEQ_OFFSET, 1);
    rec[ISO_DR_NAME_LENGTH_OFFSET] = 1;
    rec[ISO_DR_NAME_OFFSET] = ISO_DR_NAME_SELF;

    text(d + ISO_PVD_VOLUME_SET_ID_OFFSET, ISO_PVD_LONG_ID_SIZE,
         p->volume_set, joliet);
    text(d + ISO_PVD_PUBLISHER_ID_OFFSET, ISO_PVD_LONG_ID_SIZE,
         p->publisher, joliet);
    text(d + ISO_PVD_PREPARER_ID_OFFSET, ISO_PVD_LONG_ID_SIZE,
         p->preparer, joliet);
    text(d + ISO_PVD_APPLICATION_ID_OFFSET, ISO_PVD_LONG_ID_SIZE,
         p->application ? p->application : "VIMG", joliet);
    text(d + ISO_PVD_COPYRIGHT_FILE_ID_OFFSET, ISO_PVD_FILE_ID_SIZE, NULL,
         joliet);
    text(d + ISO_PVD_ABSTRACT_FILE_ID_OFFSET, ISO_PVD_FILE_ID_SIZE, NULL,
         joliet);
    text(d + ISO_PVD_BIBLIO_FILE_ID_OFFSET, ISO_PVD_FILE_ID_SIZE, NULL,
         joliet);
    iso_date17(w->now, d + ISO_PVD_CREATION_DATE_OFFSET);
    iso_date17(w->now, d + ISO_PVD_MODIFICATION_DATE_OFFSET);
    /* Expiration and effective dates "not specified": digits all zero. */
    memset(d + ISO_PVD_EXPIRATION_DATE_OFFSET, '0', ISO_VOL_DATE_GMTOFF);
    memset(d + ISO_PVD_EFFECTIVE_DATE_OFFSET, '0', ISO_VOL_DATE_GMTOFF);
    d[ISO_PVD_FILE_STRUCTURE_VERSION_OFFSET] = 1;
}

/* ---- Output ----------------------------------------------------------- */

static int put(struct iso_writer *w, const void *buf, size_t len,
               uint64_t lba)
{
    const uint8_t *p = buf;
    off_t off = (off_t)(lba * ISO_SECTOR_SIZE);
    while (len > 0) {
        ssize_t n = pwrite(w->fd, p, len, off);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return iso_fail(w, n < 0 ? errno : EIO, "write failed: %s",
                            n < 0 ? strerror(errno) : "no progress");
        }
        p += n;
        len -= (size_t)n;
        off += n;
    }
    return 0;
}

static int write_descriptors(struct iso_writer *w)
{
    uint8_t d[ISO_SECTOR_SIZE];
    descriptor(w, false, d);
    int r = put(w, d, sizeof d, ISO_VD_FIRST_LBA);
    if (r == 0 && w->catalog) {
        iso_eltorito_boot_record(w, d);
        r = put(w, d, sizeof d, w->br_lba);
    }
    if (r == 0 && w->p->joliet) {
        descriptor(w, true, d);
        r = put(w, d, sizeof d, w->svd_lba);
    }
    if (r == 0) {
        memset(d, 0, sizeof d);
        d[ISO_VD_TYPE_OFFSET] = ISO_VD_TERMINATOR;
        memcpy(d + ISO_VD_ID_OFFSET, ISO_VD_ID, ISO_VD_ID_SIZE);
        d[ISO_VD_VERSION_OFFSET] = ISO_VD_VERSION;
        r = put(w, d, sizeof d, w->term_lba);
    }
    if (r == 0 && w->catalog) {
        iso_eltorito_catalog(w, d);
        r = put(w, d, sizeof d, w->catalog->data_lba);
    }
    return r;
}

static int write_tables(struct iso_writer *w, bool joliet)
{
    struct iso_buf b = { 0 };
    int r = iso_layout_path_table(w, joliet, true, &b);
    if (r == 0) {
        r = put(w, b.data, b.len, joliet ? w->jpt_l_lba : w->pt_l_lba);
    }
    b.len = 0;
    if (r == 0) {
        r = iso_layout_path_table(w, joliet, false, &b);
    }
    if (r == 0) {
        r = put(w, b.data, b.len, joliet ? w->jpt_m_lba : w->pt_m_lba);
    }
    struct iso_node **dirs = joliet ? w->jdirs : w->dirs;
    size_t n = joliet ? w->n_jdirs : w->n_dirs;
    struct iso_buf ce = { 0 };
    for (size_t i = 0; r == 0 && i < n; i++) {
        const struct iso_node *d = dirs[i];
        uint64_t ce_bytes;
        b.len = ce.len = 0;
        r = iso_layout_dir(w, d, joliet, &b, &ce, &ce_bytes);
        /* The sizing pass and this one must agree byte for byte. */
        if (r == 0 && (b.len != (joliet ? d->jdir_bytes : d->dir_bytes) ||
                       (!joliet && ce.len != (uint64_t)d->ce_blocks *
                        ISO_SECTOR_SIZE))) {
            r = iso_fail(w, EIO, "internal error: folder layout changed");
        }
        if (r == 0) {
            r = put(w, b.data, b.len, joliet ? d->jdir_lba : d->dir_lba);
        }
        if (r == 0 && ce.len) {
            r = put(w, ce.data, ce.len, d->ce_lba);
        }
    }
    iso_buf_free(&b);
    iso_buf_free(&ce);
    return r;
}

struct copier {
    uint8_t *buf;          /* COPY_BUFFER bytes once copy_file_range fails */
    bool no_cfr;
};

static int copy_range(struct iso_writer *w, struct copier *c,
                      const struct iso_node *n, int in, uint64_t off,
                      uint64_t len, uint64_t out)
{
    while (len > 0 && !c->no_cfr) {
        loff_t ioff = (loff_t)off, ooff = (loff_t)out;
        ssize_t got = copy_file_range(in, &ioff, w->fd, &ooff,
                                      (size_t)MIN(len, COPY_CHUNK), 0);
        if (got < 0 && (errno == ENOSYS || errno == EXDEV ||
                        errno == EINVAL || errno == EOPNOTSUPP)) {
            c->no_cfr = true;
            break;
        }
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got < 0) {
            return iso_fail(w, errno, "copying %s: %s", n->host_path,
                            strerror(errno));
        }
        if (got == 0) {
            return iso_fail(w, EIO, "%s shrank while being copied",
                            n->host_path);
        }
        off += (uint64_t)got;
        out += (uint64_t)got;
        len -= (uint64_t)got;
    }
    if (len > 0 && !c->buf && !(c->buf = malloc(COPY_BUFFER))) {
        return vimg_internal_error(ENOMEM, "out of memory");
    }
    while (len > 0) {
        ssize_t got = pread(in, c->buf, (size_t)MIN(len, COPY_BUFFER),
                            (off_t)off);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got <= 0) {
            return iso_fail(w, got < 0 ? errno : EIO, "reading %s: %s",
                            n->host_path, got < 0 ? strerror(errno) :
                            "file shrank while being copied");
        }
        uint64_t o = out;
        const uint8_t *p = c->buf;
        size_t left = (size_t)got;
        while (left > 0) {
            ssize_t put_n = pwrite(w->fd, p, left, (off_t)o);
            if (put_n < 0 && errno == EINTR) {
                continue;
            }
            if (put_n <= 0) {
                return iso_fail(w, put_n < 0 ? errno : EIO,
                                "write failed: %s", put_n < 0 ?
                                strerror(errno) : "no progress");
            }
            p += put_n;
            o += (uint64_t)put_n;
            left -= (size_t)put_n;
        }
        off += (uint64_t)got;
        out += (uint64_t)got;
        len -= (uint64_t)got;
    }
    return 0;
}

/* Copy the data runs of N; holes are left unwritten, so they read as
 * zeros in the (new, sparse) output. */
static int copy_file(struct iso_writer *w, struct copier *c,
                     const struct iso_node *n)
{
    int in = open(n->host_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (in < 0) {
        return vimg_internal_error(errno, "%s: %s", n->host_path,
                                   strerror(errno));
    }
    if (fstat(in, &st) < 0 || !S_ISREG(st.st_mode) ||
        (uint64_t)st.st_size != n->size) {
        close(in);
        return vimg_internal_error(EIO, "%s changed while the image was "
                                   "being written", n->host_path);
    }
    uint64_t base = n->data_lba * ISO_SECTOR_SIZE, off = 0;
    int r = 0;
    while (r == 0 && off < n->size) {
        off_t data = lseek(in, (off_t)off, SEEK_DATA);
        if (data < 0 && errno == ENXIO) {
            break;      /* a hole to the end */
        }
        off_t hole = data < 0 ? -1 : lseek(in, data, SEEK_HOLE);
        if (data < 0 || hole < 0) {
            /* No SEEK_DATA here: everything is data. */
            data = (off_t)off;
            hole = (off_t)n->size;
        }
        uint64_t end = MIN((uint64_t)hole, n->size);
        if ((uint64_t)data >= end) {
            break;
        }
        r = copy_range(w, c, n, in, (uint64_t)data, end - (uint64_t)data,
                       base + (uint64_t)data);
        off = end;
    }
    close(in);
    return r;
}

static int write_data(struct iso_writer *w)
{
    struct copier c = { NULL, false };
    int r = 0;
    for (size_t i = 0; r == 0 && i < w->n_files; i++) {
        if (w->files[i]->content == ISO_CONTENT_FILE) {
            r = copy_file(w, &c, w->files[i]);
        }
    }
    free(c.buf);
    return r;
}

static int write_image(struct iso_writer *w)
{
    int r = write_descriptors(w);
    if (r == 0) {
        r = write_tables(w, false);
    }
    if (r == 0 && w->p->joliet) {
        r = write_tables(w, true);
    }
    if (r == 0) {
        r = write_data(w);
    }
    if (r == 0) {
        r = iso_eltorito_patch_info_table(w);
    }
    /* Trailing holes of the last file: the size comes last (a device
     * written in place keeps its own). */
    struct stat st;
    if (r == 0 && fstat(w->fd, &st) < 0) {
        r = iso_fail(w, errno, "%s", strerror(errno));
    }
    if (r == 0 && S_ISREG(st.st_mode) &&
        ftruncate(w->fd, (off_t)(w->total_blocks * ISO_SECTOR_SIZE)) < 0) {
        r = iso_fail(w, errno, "%s", strerror(errno));
    }
    return r;
}

int vimg_iso_create(const char *output, const char *source_dir,
                    const struct vimg_iso_create_params *p)
{
    struct vimg_iso_create_params dflt;
    struct iso_writer w = { .fd = -1 };
    struct vimg_target *t = NULL;
    int r;

    vimg_internal_error_clear();
    if (!p) {
        vimg_iso_create_params_init(&dflt);
        p = &dflt;
    }
    if (!output) {
        vimg_internal_error(EINVAL, "no output file given");
        return -1;
    }
    w.p = p;
    w.output = output;
    w.clamp = p->source_date_epoch >= 0;
    w.now = w.clamp ? p->source_date_epoch : (int64_t)time(NULL);

    r = check_params(p);
    if (r == 0) {
        r = iso_tree_build(&w, source_dir);
    }
    if (r == 0) {
        r = iso_eltorito_check(&w);
    }
    if (r == 0) {
        r = iso_names_assign(&w);
    }
    if (r == 0) {
        r = iso_layout(&w);
    }
    /* Only a complete layout touches the output. */
    if (r == 0 && !(t = vimg_target_begin(output))) {
        r = -vimg_get_errno();
    }
    if (r == 0 && (w.fd = vimg_internal_target_fd(t, true)) < 0) {
        r = w.fd;
    }
    if (r == 0) {
        r = write_image(&w);
    }
    if (r == 0) {
        r = vimg_target_commit(t) < 0 ? -vimg_get_errno() : 0;
    } else {
        vimg_target_abort(t);
    }
    iso_tree_free(w.root);
    free(w.dirs);
    free(w.jdirs);
    free(w.files);
    return r < 0 ? -1 : 0;
}
