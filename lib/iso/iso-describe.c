/* `info` facts of an ISO 9660 volume seen in an image's guest-visible
 * contents: identifiers, dates, size, extensions, El Torito boot entries and
 * a hybrid MBR/GPT. The ISO is not a format of its own (QEMU attaches it as
 * raw), so these facts sit beside whatever the format driver reports. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/rounding.h"
#include "iso-read.h"

/* A space-padded identifier without its padding; unprintable bytes as
 * '?'. */
static void id_string(const uint8_t *p, size_t len, char *out)
{
    while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\0')) {
        len--;
    }
    for (size_t i = 0; i < len; i++) {
        out[i] = p[i] >= 32 && p[i] < 127 ? (char)p[i] : '?';
    }
    out[len] = '\0';
}

static int add_id(struct vimg_value *o, const char *key, const uint8_t *p,
                  size_t len, bool always)
{
    char buf[ISO_PVD_LONG_ID_SIZE + 1];
    id_string(p, len, buf);
    if (!always && !buf[0]) {
        return 0;
    }
    return vimg_internal_value_set_str(o, key, buf);
}

static int add_date(struct vimg_value *o, const char *key, const uint8_t *p)
{
    char buf[40];
    int64_t t;
    int off;

    if (!iso_vol_date(p, &t, &off)) {
        return 0;
    }
    snprintf(buf, sizeof buf, "%.4s-%.2s-%.2sT%.2s:%.2s:%.2s%c%02d:%02d",
             (const char *)p, (const char *)p + 4, (const char *)p + 6,
             (const char *)p + 8, (const char *)p + 10, (const char *)p + 12,
             off < 0 ? '-' : '+', abs(off) / 60, abs(off) % 60);
    return vimg_internal_value_set_str(o, key, buf);
}

static const char *platform_name(unsigned id)
{
    switch (id) {
    case ISO_ET_PLATFORM_X86: return "bios";
    case ISO_ET_PLATFORM_EFI: return "uefi";
    case ISO_ET_PLATFORM_PPC: return "powerpc";
    case ISO_ET_PLATFORM_MAC: return "mac";
    default: return "other";
    }
}

static const char *media_name(unsigned media)
{
    switch (media & ISO_ET_MEDIA_TYPE_MASK) {
    case ISO_ET_MEDIA_NO_EMULATION: return "no-emulation";
    case ISO_ET_MEDIA_FLOPPY_1_2M: return "1.2M";
    case ISO_ET_MEDIA_FLOPPY_1_44M: return "1.44M";
    case ISO_ET_MEDIA_FLOPPY_2_88M: return "2.88M";
    case ISO_ET_MEDIA_HARD_DISK: return "hard-disk";
    default: return "unknown";
    }
}

#define MAX_BOOT_ENTRIES (ISO_MAX_CATALOG_SECTORS * ISO_SECTOR_SIZE / \
                          ISO_ELTORITO_ENTRY_SIZE)

struct boot_entry {
    unsigned platform;
    const uint8_t *e;
    char *path;
};

struct find_ctx {
    struct boot_entry *entries;
    size_t n;
};

static int find_image(void *opaque, const char *path, struct iso_node *node)
{
    struct find_ctx *c = opaque;
    for (size_t i = 0; i < c->n; i++) {
        if (!c->entries[i].path && node->st.type == VIMG_ISO_FILE &&
            node->st.size &&
            node->lba == load_le32(c->entries[i].e +
                                   ISO_ET_ENTRY_LOAD_RBA_OFFSET) &&
            !(c->entries[i].path = strdup(path))) {
            return -ENOMEM;
        }
    }
    return 0;
}

static int boot_entry_value(const struct boot_entry *b,
                            struct vimg_value **out)
{
    const uint8_t *e = b->e;
    struct vimg_value *o = vimg_internal_value_new(VIMG_VALUE_OBJECT);
    int r;

    *out = o;
    if (!o) {
        return -ENOMEM;
    }
    if ((r = vimg_internal_value_set_str(o, "platform",
                                         platform_name(b->platform))) < 0 ||
        (r = vimg_internal_value_set_str(o, "emulation", media_name(
            e[ISO_ET_ENTRY_MEDIA_OFFSET]))) < 0 ||
        (r = vimg_internal_value_set_bool(o, "bootable",
            e[ISO_ET_ENTRY_BOOT_INDICATOR_OFFSET] == ISO_ET_BOOTABLE)) < 0 ||
        (r = vimg_internal_value_set_int(o, "load-segment", load_le16(
            e + ISO_ET_ENTRY_LOAD_SEGMENT_OFFSET))) < 0 ||
        (r = vimg_internal_value_set_int(o, "load-size", load_le16(
            e + ISO_ET_ENTRY_SECTOR_COUNT_OFFSET))) < 0 ||
        (r = vimg_internal_value_set_int(o, "image-lba", load_le32(
            e + ISO_ET_ENTRY_LOAD_RBA_OFFSET))) < 0 ||
        (b->path &&
         (r = vimg_internal_value_set_str(o, "image-path", b->path)) < 0)) {
        return r;
    }
    return 0;
}

/* Collect the boot entries of catalog CAT (LEN bytes); false when the
 * validation entry is bad. */
static bool parse_catalog(const uint8_t *cat, size_t len,
                          struct boot_entry *out, size_t *n)
{
    uint16_t sum = 0;

    *n = 0;
    if (len < 2 * ISO_ELTORITO_ENTRY_SIZE ||
        cat[ISO_ET_VAL_HEADER_ID_OFFSET] != ISO_ET_VAL_HEADER_ID ||
        cat[ISO_ET_VAL_KEY55_OFFSET] != 0x55 ||
        cat[ISO_ET_VAL_KEYAA_OFFSET] != 0xAA) {
        return false;
    }
    for (size_t i = 0; i < ISO_ELTORITO_ENTRY_SIZE; i += 2) {
        sum = (uint16_t)(sum + load_le16(cat + i));
    }
    if (sum != 0) {
        return false;
    }
    out[(*n)++] = (struct boot_entry){
        cat[ISO_ET_VAL_PLATFORM_OFFSET], cat + ISO_ELTORITO_ENTRY_SIZE, NULL
    };
    size_t pos = 2 * ISO_ELTORITO_ENTRY_SIZE;
    while (pos + ISO_ELTORITO_ENTRY_SIZE <= len) {
        unsigned hdr = cat[pos];
        if (hdr != ISO_ET_SEC_HEADER_MORE && hdr != ISO_ET_SEC_HEADER_LAST) {
            break;
        }
        unsigned platform = cat[pos + ISO_ET_SEC_PLATFORM_OFFSET];
        unsigned count = load_le16(cat + pos + ISO_ET_SEC_ENTRY_COUNT_OFFSET);
        pos += ISO_ELTORITO_ENTRY_SIZE;
        for (unsigned i = 0; i < count &&
             pos + ISO_ELTORITO_ENTRY_SIZE <= len; i++) {
            const uint8_t *e = cat + pos;
            pos += ISO_ELTORITO_ENTRY_SIZE;
            while (pos + ISO_ELTORITO_ENTRY_SIZE <= len &&
                   cat[pos] == ISO_ET_EXTENSION_ID) {
                pos += ISO_ELTORITO_ENTRY_SIZE; /* selection criteria */
            }
            if (*n < MAX_BOOT_ENTRIES) {
                out[(*n)++] = (struct boot_entry){ platform, e, NULL };
            }
        }
        if (hdr == ISO_ET_SEC_HEADER_LAST) {
            break;
        }
    }
    return true;
}

static int add_boot(struct vimg_iso *iso, struct vimg_value *data)
{
    size_t len = ISO_MAX_CATALOG_SECTORS * ISO_SECTOR_SIZE, n = 0;
    struct boot_entry *entries = NULL;
    struct vimg_value *arr = NULL;
    struct iso_extent x;
    uint8_t *cat = NULL;
    int r = 0;

    if (iso->catalog_lba * ISO_SECTOR_SIZE >= iso->image_size) {
        return 0; /* the catalog lies outside the image: no entries */
    }
    len = MIN(len, iso->image_size - iso->catalog_lba * ISO_SECTOR_SIZE);
    if (!(cat = malloc(len)) ||
        !(entries = calloc(MAX_BOOT_ENTRIES, sizeof *entries))) {
        r = -ENOMEM;
        goto out;
    }
    if (iso_check_extent(iso, iso->catalog_lba, len, "boot catalog",
                         &x) < 0 ||
        iso_read_at(iso, cat, len, x.offset) < 0 ||
        !parse_catalog(cat, len, entries, &n)) {
        goto out; /* an unreadable catalog just has no entries */
    }
    struct find_ctx fc = { entries, n };
    if (iso_walk(iso, &iso->root, "", true, find_image, &fc) == -ENOMEM) {
        r = -ENOMEM;
        goto out;
    }
    vimg_internal_error_clear(); /* a damaged tree only costs the paths */
    if (!(arr = vimg_internal_value_new(VIMG_VALUE_ARRAY))) {
        r = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        struct vimg_value *o;
        if ((r = boot_entry_value(&entries[i], &o)) < 0) {
            vimg_value_free(o);
            goto out;
        }
        if ((r = vimg_internal_value_append(arr, o)) < 0) {
            goto out;
        }
    }
    r = vimg_internal_value_add(data, "boot-entries", arr);
    arr = NULL;
out:
    vimg_value_free(arr);
    for (size_t i = 0; entries && i < n; i++) {
        free(entries[i].path);
    }
    free(entries);
    free(cat);
    return r;
}

static const char *hybrid_kind(struct vimg_iso *iso)
{
    uint8_t mbr[ISO_GPT_HEADER_OFFSET + ISO_GPT_SIGNATURE_SIZE];
    bool parts = false;

    if (iso_read_at(iso, mbr, sizeof mbr, 0) < 0) {
        return "none";
    }
    if (!memcmp(mbr + ISO_GPT_HEADER_OFFSET, ISO_GPT_SIGNATURE,
                ISO_GPT_SIGNATURE_SIZE)) {
        return "gpt";
    }
    for (int i = 0; i < 4; i++) {
        parts |= mbr[ISO_MBR_PARTITION_TABLE_OFFSET +
                     i * ISO_MBR_PARTITION_ENTRY_SIZE +
                     ISO_MBR_PART_TYPE_OFFSET] != 0;
    }
    return mbr[ISO_MBR_SIGNATURE_OFFSET] == 0x55 &&
           mbr[ISO_MBR_SIGNATURE_OFFSET + 1] == 0xAA && parts ? "mbr"
                                                              : "none";
}

static int describe(struct vimg_iso *iso, struct vimg_value *data)
{
    const uint8_t *p = iso->pvd;
    int r;

    if ((r = add_id(data, "volume-id", p + ISO_PVD_VOLUME_ID_OFFSET,
                    ISO_PVD_VOLUME_ID_SIZE, true)) < 0 ||
        (r = add_id(data, "system-id", p + ISO_PVD_SYSTEM_ID_OFFSET,
                    ISO_PVD_SYSTEM_ID_SIZE, false)) < 0 ||
        (r = add_id(data, "publisher-id", p + ISO_PVD_PUBLISHER_ID_OFFSET,
                    ISO_PVD_LONG_ID_SIZE, false)) < 0 ||
        (r = add_id(data, "preparer-id", p + ISO_PVD_PREPARER_ID_OFFSET,
                    ISO_PVD_LONG_ID_SIZE, false)) < 0 ||
        (r = add_id(data, "application-id", p + ISO_PVD_APPLICATION_ID_OFFSET,
                    ISO_PVD_LONG_ID_SIZE, false)) < 0 ||
        (r = add_date(data, "creation-date",
                      p + ISO_PVD_CREATION_DATE_OFFSET)) < 0 ||
        (r = add_date(data, "modification-date",
                      p + ISO_PVD_MODIFICATION_DATE_OFFSET)) < 0 ||
        (r = vimg_internal_value_set_int(data, "block-size",
                                         ISO_SECTOR_SIZE)) < 0 ||
        (r = vimg_internal_value_set_int(data, "volume-blocks",
                                         (int64_t)iso->volume_blocks)) < 0 ||
        (r = vimg_internal_value_set_int(data, "volume-size",
            (int64_t)iso->volume_blocks * ISO_SECTOR_SIZE)) < 0 ||
        (r = vimg_internal_value_set_bool(data, "rock-ridge",
                                          iso->rock_ridge)) < 0 ||
        (iso->joliet_level &&
         (r = vimg_internal_value_set_int(data, "joliet",
                                          iso->joliet_level)) < 0) ||
        (r = vimg_internal_value_set_bool(data, "el-torito",
                                          iso->el_torito)) < 0 ||
        (iso->el_torito && (r = add_boot(iso, data)) < 0) ||
        (r = vimg_internal_value_set_str(data, "hybrid",
                                         hybrid_kind(iso))) < 0) {
        return r;
    }
    return 0;
}

int vimg_internal_iso_describe(struct vimg_image *img,
                               struct vimg_value *info)
{
    uint8_t id[ISO_VD_ID_SIZE];
    int r;

    if (img->size < ISO_VD_FIRST_OFFSET + ISO_SECTOR_SIZE ||
        vimg_internal_pread(img, id, sizeof id,
                            ISO_VD_FIRST_OFFSET + ISO_VD_ID_OFFSET) < 0 ||
        memcmp(id, ISO_VD_ID, ISO_VD_ID_SIZE)) {
        vimg_internal_error_clear(); /* unreadable: nothing to describe */
        return 0;
    }
    struct vimg_iso *iso = iso_volume_open(img);
    if (!iso) {
        r = vimg_get_errno() == ENOMEM ? -ENOMEM : 0;
        vimg_internal_error_clear(); /* a broken volume adds no facts */
        return r;
    }
    struct vimg_value *data = vimg_internal_value_new(VIMG_VALUE_OBJECT);
    if (!data || (r = describe(iso, data)) < 0) {
        vimg_value_free(data);
        vimg_iso_close(iso);
        return -ENOMEM;
    }
    vimg_iso_close(iso);
    if (vimg_value_get(info, "format-specific")) {
        return vimg_internal_value_add(info, "iso9660", data);
    }
    struct vimg_value *fs = vimg_internal_value_new(VIMG_VALUE_OBJECT);
    if (!fs || (r = vimg_internal_value_set_str(fs, "type", "iso9660")) < 0) {
        vimg_value_free(fs);
        vimg_value_free(data);
        return -ENOMEM;
    }
    if ((r = vimg_internal_value_add(fs, "data", data)) < 0) {
        vimg_value_free(fs);
        return r;
    }
    return vimg_internal_value_add(info, "format-specific", fs);
}
