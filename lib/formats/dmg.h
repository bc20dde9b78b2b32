/* The DMG driver's private interface: the parsers of the two places a
 * UDIF image lists its mish (blkx) blocks (dmg-plist.c) and what they
 * hand to the driver (dmg.c). */
#ifndef VIMG_DMG_H
#define VIMG_DMG_H

#include <stddef.h>
#include <stdint.h>

#include "../internal.h"

/* Called with each mish block found, LEN bytes at MISH (borrowed). */
typedef int (*dmg_mish_fn)(struct vimg_image *img, const uint8_t *mish,
                           size_t len, void *opaque);

/* The property list's "blkx" array, XML of LEN bytes: FN for the decoded
 * Data of each of its entries, in order. Anything else in the list is not
 * read. -EINVAL, with a message naming IMG, when there is no blkx array,
 * an entry is not base64 or not a mish block, or the XML around them is
 * cut short. */
int dmg_plist_blkx(struct vimg_image *img, const char *xml, size_t len,
                   dmg_mish_fn fn, void *opaque);

/* The resources in a resource fork of LEN bytes (older images): FN for
 * each resource that is a mish block; other resources are skipped, as
 * QEMU skips them. -EINVAL, with a message, when the fork's header or a
 * resource's length lies outside the fork. */
int dmg_rsrc_blkx(struct vimg_image *img, const uint8_t *fork, size_t len,
                  dmg_mish_fn fn, void *opaque);

#endif
