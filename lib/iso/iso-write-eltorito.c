/* El Torito: the boot record descriptor, the boot catalog (a BIOS entry
 * and/or a UEFI section) and the boot information table that isolinux and
 * GRUB's eltorito.img read from their own first sector. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../common/rounding.h"
#include "iso-write.h"

/* The floppy images El Torito can emulate, by size. */
static int floppy_media(uint64_t size)
{
    switch (size) {
    case 1228800: return ISO_ET_MEDIA_FLOPPY_1_2M;
    case 1474560: return ISO_ET_MEDIA_FLOPPY_1_44M;
    case 2949120: return ISO_ET_MEDIA_FLOPPY_2_88M;
    default: return -1;
    }
}

static int find_image(struct iso_writer *w, const char *path,
                      const char *what, struct iso_node **out)
{
    while (*path == '/') {
        path++;
    }
    struct iso_node *n = iso_tree_lookup(w->root, path);
    if (!n || n->content != ISO_CONTENT_FILE) {
        return iso_fail(w, ENOENT, "%s boot image '%s' is not a regular "
                        "file in the image", what, path);
    }
    if (n->size == 0) {
        return iso_fail(w, EINVAL, "%s boot image '%s' is empty", what,
                        path);
    }
    *out = n;
    return 0;
}

int iso_eltorito_check(struct iso_writer *w)
{
    const struct vimg_iso_create_params *p = w->p;
    int r = 0;
    if (p->bios_boot) {
        r = find_image(w, p->bios_boot, "BIOS", &w->bios);
    }
    if (r == 0 && p->efi_boot) {
        r = find_image(w, p->efi_boot, "EFI", &w->efi);
    }
    if (r < 0 || !w->bios) {
        return r;
    }
    if (!p->no_emul_boot) {
        if (floppy_media(w->bios->size) < 0) {
            return iso_fail(w, EINVAL, "floppy emulation needs a 1.2, "
                            "1.44 or 2.88 MB boot image, not %llu bytes",
                            (unsigned long long)w->bios->size);
        }
        return 0;
    }
    if (p->boot_load_size < 1 || p->boot_load_size > UINT16_MAX) {
        return iso_fail(w, EINVAL, "boot load size %u is not 1..65535",
                        p->boot_load_size);
    }
    if (p->boot_info_table && w->bios->size < ISO_BOOT_INFO_CHECKSUM_START) {
        return iso_fail(w, EINVAL, "BIOS boot image '%s' is too small for "
                        "a boot information table", p->bios_boot);
    }
    if (w->bios->size > UINT32_MAX) {
        return iso_fail(w, EFBIG, "BIOS boot image '%s' is over 4 GiB",
                        p->bios_boot);
    }
    return 0;
}

void iso_eltorito_boot_record(const struct iso_writer *w, uint8_t *sector)
{
    memset(sector, 0, ISO_SECTOR_SIZE);
    sector[ISO_VD_TYPE_OFFSET] = ISO_VD_BOOT_RECORD;
    memcpy(sector + ISO_VD_ID_OFFSET, ISO_VD_ID, ISO_VD_ID_SIZE);
    sector[ISO_VD_VERSION_OFFSET] = ISO_VD_VERSION;
    memcpy(sector + ISO_BR_SYSTEM_ID_OFFSET, ISO_ELTORITO_SYSTEM_ID,
           sizeof ISO_ELTORITO_SYSTEM_ID - 1);
    store_le32(sector + ISO_BR_CATALOG_LBA_OFFSET,
               (uint32_t)w->catalog->data_lba);
}

/* A no-emulation UEFI image loads whole: its size in 512-byte sectors,
 * or 0 ("to the end of the image") when that does not fit 16 bits, as
 * xorriso writes for large EFI system partition images. */
static uint16_t efi_sectors(const struct iso_node *efi)
{
    uint64_t n = DIV_ROUND_UP(efi->size, ISO_ET_VIRTUAL_SECTOR_SIZE);
    return n > UINT16_MAX ? 0 : (uint16_t)n;
}

static void boot_entry(uint8_t *e, uint8_t media, uint16_t count,
                       uint32_t lba)
{
    e[ISO_ET_ENTRY_BOOT_INDICATOR_OFFSET] = ISO_ET_BOOTABLE;
    e[ISO_ET_ENTRY_MEDIA_OFFSET] = media;
    store_le16(e + ISO_ET_ENTRY_SECTOR_COUNT_OFFSET, count);
    store_le32(e + ISO_ET_ENTRY_LOAD_RBA_OFFSET, lba);
}

void iso_eltorito_catalog(const struct iso_writer *w, uint8_t *sector)
{
    const struct vimg_iso_create_params *p = w->p;
    uint8_t *val = sector, *def = sector + ISO_ELTORITO_ENTRY_SIZE;
    memset(sector, 0, ISO_SECTOR_SIZE);

    val[ISO_ET_VAL_HEADER_ID_OFFSET] = ISO_ET_VAL_HEADER_ID;
    val[ISO_ET_VAL_PLATFORM_OFFSET] = w->bios ? ISO_ET_PLATFORM_X86 :
                                      ISO_ET_PLATFORM_EFI;
    val[ISO_ET_VAL_KEY55_OFFSET] = 0x55;
    val[ISO_ET_VAL_KEYAA_OFFSET] = 0xAA;
    uint16_t sum = 0;
    for (size_t i = 0; i < ISO_ELTORITO_ENTRY_SIZE; i += 2) {
        sum = (uint16_t)(sum + load_le16(val + i));
    }
    store_le16(val + ISO_ET_VAL_CHECKSUM_OFFSET, (uint16_t)-sum);

    if (!w->bios) {
        boot_entry(def, ISO_ET_MEDIA_NO_EMULATION, efi_sectors(w->efi),
                   (uint32_t)w->efi->data_lba);
        return;
    }
    if (p->no_emul_boot) {
        boot_entry(def, ISO_ET_MEDIA_NO_EMULATION,
                   (uint16_t)p->boot_load_size,
                   (uint32_t)w->bios->data_lba);
    } else {
        /* Emulated floppies load one sector: the BIOS reads the rest
         * through the emulated drive. */
        boot_entry(def, (uint8_t)floppy_media(w->bios->size), 1,
                   (uint32_t)w->bios->data_lba);
    }
    if (w->efi) {
        uint8_t *head = def + ISO_ELTORITO_ENTRY_SIZE;
        head[ISO_ET_SEC_HEADER_ID_OFFSET] = ISO_ET_SEC_HEADER_LAST;
        head[ISO_ET_SEC_PLATFORM_OFFSET] = ISO_ET_PLATFORM_EFI;
        store_le16(head + ISO_ET_SEC_ENTRY_COUNT_OFFSET, 1);
        boot_entry(head + ISO_ELTORITO_ENTRY_SIZE, ISO_ET_MEDIA_NO_EMULATION,
                   efi_sectors(w->efi), (uint32_t)w->efi->data_lba);
    }
}

/* Read back the copied image (not the host file, which may have changed
 * since) and patch the table: PVD sector, image sector, length and the
 * sum of its 32-bit little-endian words from byte 64, the tail
 * zero-padded, as mkisofs computes it. */
int iso_eltorito_patch_info_table(struct iso_writer *w)
{
    const struct iso_node *b = w->bios;
    if (!b || !w->p->no_emul_boot || !w->p->boot_info_table) {
        return 0;
    }
    uint64_t base = b->data_lba * ISO_SECTOR_SIZE;
    uint8_t buf[16 * 1024];
    uint32_t sum = 0;
    for (uint64_t off = ISO_BOOT_INFO_CHECKSUM_START; off < b->size;) {
        size_t want = (size_t)MIN((uint64_t)sizeof buf, b->size - off);
        ssize_t got = pread(w->fd, buf, want, (off_t)(base + off));
        if (got != (ssize_t)want) {
            return iso_fail(w, got < 0 ? errno : EIO, "cannot read back "
                            "the boot image: %s",
                            got < 0 ? strerror(errno) : "short read");
        }
        size_t len = (size_t)got;
        size_t pad = ROUND_UP(len, 4);
        memset(buf + len, 0, pad - len);
        for (size_t i = 0; i < pad; i += 4) {
            sum += load_le32(buf + i);
        }
        off += len;
    }
    /* The table as the image's bytes 8..63. */
    uint8_t table[ISO_BOOT_INFO_CHECKSUM_START - ISO_BOOT_INFO_OFFSET];
    memset(table, 0, sizeof table);
    store_le32(table + ISO_BOOT_INFO_PVD_LBA_OFFSET - ISO_BOOT_INFO_OFFSET,
               ISO_VD_FIRST_LBA);
    store_le32(table + ISO_BOOT_INFO_FILE_LBA_OFFSET - ISO_BOOT_INFO_OFFSET,
               (uint32_t)b->data_lba);
    store_le32(table + ISO_BOOT_INFO_FILE_LENGTH_OFFSET -
               ISO_BOOT_INFO_OFFSET, (uint32_t)b->size);
    store_le32(table + ISO_BOOT_INFO_CHECKSUM_OFFSET - ISO_BOOT_INFO_OFFSET,
               sum);
    ssize_t put = pwrite(w->fd, table, sizeof table,
                         (off_t)(base + ISO_BOOT_INFO_OFFSET));
    if (put != (ssize_t)sizeof table) {
        return iso_fail(w, put < 0 ? errno : EIO, "cannot write the boot "
                        "information table: %s",
                        put < 0 ? strerror(errno) : "short write");
    }
    return 0;
}
