/* Differencing VHDX ([MS-VHDX] 2.6.2.6 parent locator, 2.5.1 sector
 * bitmap blocks): the parent locator names the parent, which the core
 * opens as the backing image under the caller's open policy; the sector
 * bitmap tells, sector by sector, which data of a partially present block
 * is in this file and which is the parent's. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../../common/checked-overflow.h"
#include "../../../common/rounding.h"
#include "../../../common/utf16.h"
#include "../parent-path.h"
#include "vhdx.h"

static const uint8_t guid_vhdx_locator[16] = VHDX_GUID_VHDX_LOCATOR_TYPE;

/* A GUID as the specification writes it, from its stored bytes. */
static void guid_text(const uint8_t *g, char out[39])
{
    snprintf(out, 39, "{%08x-%04x-%04x-%02x%02x-%02x%02x%02x%02x%02x%02x}",
             load_le32(g), load_le16(g + 4), load_le16(g + 6), g[8], g[9],
             g[10], g[11], g[12], g[13], g[14], g[15]);
}

static int hex_digit(char c)
{
    return c >= '0' && c <= '9' ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* "{83ed0ec3-24c8-49a6-a959-5e4bf1288bfb}" (either case) into the 16
 * bytes a header stores (the first three fields little-endian). */
static bool guid_parse(const char *s, uint8_t *g)
{
    static const char shape[] = "{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}";
    uint8_t b[16];
    size_t k = 0;

    if (strlen(s) != sizeof shape - 1) {
        return false;
    }
    for (size_t i = 0; shape[i]; i++) {
        if (shape[i] != 'x') {
            if (s[i] != shape[i]) {
                return false;
            }
            continue;
        }
        int hi = hex_digit(s[i]), lo = hex_digit(s[i + 1]);
        if (hi < 0 || lo < 0) {
            return false;
        }
        b[k++] = (uint8_t)(hi << 4 | lo);
        i++;
    }
    /* B holds the text's digits in order, big-endian fields. */
    store_le32(g, load_be32(b));
    store_le16(g + 4, load_be16(b + 4));
    store_le16(g + 6, load_be16(b + 6));
    memcpy(g + 8, b + 8, 8);
    return true;
}

enum { KEY_LINKAGE, KEY_LINKAGE2, KEY_RELATIVE, KEY_VOLUME, KEY_ABSOLUTE,
       KEY_COUNT };
static const char *const keys[KEY_COUNT] = {
    "parent_linkage", "parent_linkage2", "relative_path", "volume_path",
    "absolute_win32_path",
};

/* Parse the locator item L (LEN bytes, validated to lie in the metadata
 * region) into the linkage GUIDs and IMG's backing name. */
static int parse_locator(struct vimg_image *img, const uint8_t *l,
                         uint32_t len)
{
    struct vhdx_state *s = vhdx_state(img);
    char *values[KEY_COUNT] = { NULL };
    char *paths[3] = { NULL };
    int r = 0;

    if (len < VHDX_PL_HEADER_SIZE) {
        return vimg_internal_img_error(img, EINVAL, "parent locator is %u "
                                       "bytes, shorter than its header",
                                       len);
    }
    if (memcmp(l + VHDX_PL_TYPE, guid_vhdx_locator, 16) != 0) {
        char t[39];
        guid_text(l + VHDX_PL_TYPE, t);
        return vimg_internal_img_error(img, ENOTSUP, "parent locator type "
                                       "%s is not a VHDX parent", t);
    }
    uint32_t n = load_le16(l + VHDX_PL_KEY_VALUE_COUNT);
    if (VHDX_PL_HEADER_SIZE + (uint64_t)n * VHDX_PLE_SIZE > len) {
        return vimg_internal_img_error(img, EINVAL, "parent locator has %u "
                                       "entries, more than its %u bytes "
                                       "hold", n, len);
    }
    for (uint32_t i = 0; i < n && r == 0; i++) {
        const uint8_t *e = l + VHDX_PL_HEADER_SIZE + i * VHDX_PLE_SIZE;
        uint32_t koff = load_le32(e + VHDX_PLE_KEY_OFFSET);
        uint32_t voff = load_le32(e + VHDX_PLE_VALUE_OFFSET);
        uint32_t klen = load_le16(e + VHDX_PLE_KEY_LENGTH);
        uint32_t vlen = load_le16(e + VHDX_PLE_VALUE_LENGTH);
        char key[32];
        int k = 0;

        if (!koff || !voff || !klen || !vlen || klen % 2 || vlen % 2 ||
            range_outside(koff, klen, len) || range_outside(voff, vlen, len)) {
            r = vimg_internal_img_error(img, EINVAL, "parent locator entry "
                                        "%u lies outside the locator or is "
                                        "empty", i);
            break;
        }
        if (utf16_to_utf8(l + koff, klen, false, key, sizeof key) < 0) {
            continue; /* longer than any key we know */
        }
        while (k < KEY_COUNT && strcmp(key, keys[k]) != 0) {
            k++;
        }
        if (k == KEY_COUNT) {
            continue;
        }
        if (values[k]) {
            r = vimg_internal_img_error(img, EINVAL, "parent locator names "
                                        "'%s' twice", key);
            break;
        }
        size_t cap = (size_t)vlen * 2 + 1;
        if (!(values[k] = malloc(cap))) {
            r = vimg_internal_error(ENOMEM, "out of memory");
            break;
        }
        if (utf16_to_utf8(l + voff, vlen, false, values[k], cap) < 0) {
            r = vimg_internal_img_error(img, EINVAL, "parent locator value "
                                        "of '%s' is not UTF-16", key);
        }
    }
    for (int k = KEY_LINKAGE; r == 0 && k <= KEY_LINKAGE2; k++) {
        if (values[k] && !guid_parse(values[k], s->linkage[s->n_linkage++])) {
            r = vimg_internal_img_error(img, EINVAL, "parent locator's %s "
                                        "'%s' is not a GUID", keys[k],
                                        values[k]);
        }
    }
    if (r == 0 && !values[KEY_LINKAGE]) {
        r = vimg_internal_img_error(img, EINVAL, "parent locator has no "
                                    "parent_linkage (the parent's identity)");
    }
    /* The order [MS-VHDX] 2.6.2.6.3 says to try them in. */
    for (int k = KEY_RELATIVE; r == 0 && k <= KEY_ABSOLUTE; k++) {
        if (values[k]) {
            paths[k - KEY_RELATIVE] = parent_path_convert(values[k], &r);
        }
    }
    if (r == 0) {
        r = parent_path_choose(img, paths, 3, "parent locator");
    }
    if (r == 0 && !(img->backing_format = strdup("vhdx"))) {
        r = vimg_internal_error(ENOMEM, "out of memory");
    }
    for (int k = 0; k < KEY_COUNT; k++) {
        free(values[k]);
    }
    for (int k = 0; k < 3; k++) {
        free(paths[k]);
    }
    return r;
}

int vhdx_parent_load(struct vimg_image *img, const uint8_t *entry)
{
    struct vhdx_state *s = vhdx_state(img);
    uint32_t off = load_le32(entry + VHDX_MDE_OFFSET);
    uint32_t len = load_le32(entry + VHDX_MDE_LENGTH);
    uint8_t *l;
    int r;

    if (off < VHDX_METADATA_TABLE_SIZE || range_outside(off, len,
                                                        s->md_length)) {
        return vimg_internal_img_error(img, EINVAL, "parent locator at "
                                       "offset %u (%u bytes) lies outside "
                                       "the metadata region", off, len);
    }
    if (len > VHDX_MAX_PARENT_LOCATOR) {
        return vimg_internal_img_error(img, EFBIG, "parent locator is %u "
                                       "bytes (at most %u read)", len,
                                       VHDX_MAX_PARENT_LOCATOR);
    }
    if (!(l = malloc(len ? len : 1))) {
        return vimg_internal_error(ENOMEM, "out of memory");
    }
    r = vhdx_file_read(img, l, len, s->md_offset + off);
    if (r == 0) {
        r = parse_locator(img, l, len);
    }
    free(l);
    return r;
}

int vhdx_backing_opened(struct vimg_image *img)
{
    struct vhdx_state *s = vhdx_state(img);
    struct vimg_image *b = img->backing;
    char want[39], have[39];

    /* The backing format is always vhdx: it comes from this driver. */
    if (b->drv != &vimg_driver_vhdx) {
        return 0;
    }
    const uint8_t *g = vhdx_state(b)->header + VHDX_HDR_DATA_WRITE_GUID;
    for (int i = 0; i < s->n_linkage; i++) {
        if (memcmp(g, s->linkage[i], 16) == 0) {
            return 0;
        }
    }
    guid_text(g, have);
    guid_text(s->linkage[0], want);
    return vimg_internal_img_error(img, EINVAL, "parent '%s' has data write "
                                   "GUID %s, not %s (parent_linkage): it "
                                   "changed after this image was made from "
                                   "it", img->backing_name, have, want);
}

int vhdx_bitmap_run(struct vimg_image *img, uint64_t block, uint64_t first,
                    uint64_t max, bool *present, uint64_t *run)
{
    struct vhdx_state *s = vhdx_state(img);
    uint64_t sb = s->bat[vhdx_sb_index(s, block)] & VHDX_BAT_OFFSET_MASK;
    uint64_t at = sb + (block % s->chunk_ratio) * s->bitmap_bytes +
                  first / 8;
    uint8_t bits[512];
    uint64_t want = MIN((first % 8 + max + 7) / 8, sizeof bits);
    uint64_t have = MIN(max, want * 8 - first % 8);
    int r;

    if ((r = vhdx_file_read(img, bits, want, at)) < 0) {
        return r;
    }
    /* Bit 0 of byte 0 is the block's first sector; a set bit means the
     * sector is in this file. */
    uint64_t base = first - first % 8, i = first;
    *present = bits[0] >> (first % 8) & 1;
    while (i < first + have &&
           (bool)(bits[(i - base) / 8] >> ((i - base) % 8) & 1) == *present) {
        i++;
    }
    *run = i - first;
    return 0;
}
