/* Where a UDIF image lists its mish blocks: the XML property list (every
 * image hdiutil makes since Mac OS X 10.2) or the resource fork (older
 * ones). Both arrive whole in memory, read by dmg.c under its size caps;
 * nothing here reads the file.
 *
 * The property list parser is deliberately small and strict: it finds the
 * "blkx" key of the resource-fork dictionary, the array that follows it,
 * and the <data> elements inside that array, and refuses anything it
 * cannot follow. QEMU instead decodes every <data> element of the whole
 * list and keeps those that look like mish blocks. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/base64.h"
#include "../../common/byteswap.h"
#include "dmg-ondisk.h"
#include "dmg.h"

#define TAG_BLKX "<key>blkx</key>"

static const char *find(const char *from, const char *end, const char *s)
{
    return memmem(from, (size_t)(end - from), s, strlen(s));
}

static const char *skip_space(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) {
        p++;
    }
    return p;
}

static bool is_mish(const uint8_t *b, size_t len)
{
    return len >= DMG_MISH_CHUNKS &&
           load_be32(b + DMG_MISH_SIGNATURE) == DMG_MISH_MAGIC;
}

int dmg_plist_blkx(struct vimg_image *img, const char *xml, size_t len,
                   dmg_mish_fn fn, void *opaque)
{
    const char *end = xml + len;
    const char *p = find(xml, end, TAG_BLKX);
    const char *array_end;
    unsigned entry = 0;

    if (!p) {
        return vimg_internal_img_error(img, EINVAL, "the property list has "
                                       "no blkx resource");
    }
    p = skip_space(p + strlen(TAG_BLKX), end);
    if ((size_t)(end - p) >= strlen("<array/>") &&
        memcmp(p, "<array/>", strlen("<array/>")) == 0) {
        return 0;
    }
    if ((size_t)(end - p) < strlen("<array>") ||
        memcmp(p, "<array>", strlen("<array>")) != 0) {
        return vimg_internal_img_error(img, EINVAL, "the property list's "
                                       "blkx key is not followed by an "
                                       "array");
    }
    p += strlen("<array>");
    /* The entries are dictionaries of strings and data: an inner array
     * would end the outer one early, so there may be none. */
    array_end = find(p, end, "</array>");
    if (!array_end || find(p, array_end, "<array")) {
        return vimg_internal_img_error(img, EINVAL, "the property list's "
                                       "blkx array is not closed, or holds "
                                       "an array");
    }
    while ((p = find(p, array_end, "<data>"))) {
        const char *text = p + strlen("<data>");
        const char *text_end = find(text, array_end, "</data>");
        if (!text_end) {
            return vimg_internal_img_error(img, EINVAL, "blkx entry %u: "
                                           "<data> is not closed", entry);
        }
        size_t n = (size_t)(text_end - text);
        uint8_t *mish = malloc(n / 4 * 3 + 3);
        if (!mish) {
            return vimg_internal_img_error(img, ENOMEM, "out of memory");
        }
        long got = base64_decode(text, n, mish);
        int r;
        if (got < 0) {
            r = vimg_internal_img_error(img, EINVAL, "blkx entry %u is not "
                                        "base64", entry);
        } else if (!is_mish(mish, (size_t)got)) {
            r = vimg_internal_img_error(img, EINVAL, "blkx entry %u is not "
                                        "a mish block", entry);
        } else {
            r = fn(img, mish, (size_t)got, opaque);
        }
        free(mish);
        if (r < 0) {
            return r;
        }
        entry++;
        p = text_end + strlen("</data>");
    }
    return 0;
}

/* A resource fork begins with the offset and length of its data (then
 * those of its map, which names the resources and is not needed). */
#define RSRC_DATA_OFFSET 0
#define RSRC_DATA_LENGTH 8
#define RSRC_HEADER_SIZE 16

int dmg_rsrc_blkx(struct vimg_image *img, const uint8_t *fork, size_t len,
                  dmg_mish_fn fn, void *opaque)
{
    if (len < RSRC_HEADER_SIZE) {
        return vimg_internal_img_error(img, EINVAL, "resource fork of %zu "
                                       "bytes is too small", len);
    }
    uint64_t at = load_be32(fork + RSRC_DATA_OFFSET);
    uint64_t data_len = load_be32(fork + RSRC_DATA_LENGTH);
    if (data_len == 0 || at > len || data_len > len - at) {
        return vimg_internal_img_error(img, EINVAL, "resource fork data "
                                       "(0x%llx bytes at 0x%llx) lies "
                                       "outside the fork",
                                       (unsigned long long)data_len,
                                       (unsigned long long)at);
    }
    uint64_t end = at + data_len;
    /* Each resource: a 32-bit length, then its bytes. */
    while (at < end) {
        uint64_t n = end - at < 4 ? 0 : load_be32(fork + at);
        if (n == 0 || n > end - at - 4) {
            return vimg_internal_img_error(img, EINVAL, "resource at 0x%llx "
                                           "of the resource fork has a bad "
                                           "length",
                                           (unsigned long long)at);
        }
        at += 4;
        if (is_mish(fork + at, n)) {
            int r = fn(img, fork + at, n, opaque);
            if (r < 0) {
                return r;
            }
        }
        at += n;
    }
    return 0;
}
