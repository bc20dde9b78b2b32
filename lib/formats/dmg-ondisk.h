/* Apple UDIF disk images (.dmg), as libyal's libmodi documents them
 * ("Universal Disk Image Format") and QEMU's block/dmg.c reads them: the
 * data fork (the chunks), a property list or resource fork describing
 * them in "mish" (blkx) blocks, and the 512-byte "koly" trailer in the
 * last sector. Every field is big-endian; read them with
 * common/byteswap.h. No packed structs. */
#ifndef VIMG_DMG_ONDISK_H
#define VIMG_DMG_ONDISK_H

#include "../../common/byteswap.h"

/* The koly trailer. */
#define DMG_KOLY_SIZE            512u
#define DMG_KOLY_SIGNATURE         0  /* "koly" */
#define DMG_KOLY_VERSION           4  /* u32: 4 */
#define DMG_KOLY_HEADER_SIZE       8  /* u32: 512 */
#define DMG_KOLY_FLAGS            12  /* u32 */
#define DMG_KOLY_RUNNING_OFFSET   16  /* u64 */
#define DMG_KOLY_DATA_OFFSET      24  /* u64: the data fork */
#define DMG_KOLY_DATA_LENGTH      32  /* u64 */
#define DMG_KOLY_RSRC_OFFSET      40  /* u64: the resource fork */
#define DMG_KOLY_RSRC_LENGTH      48  /* u64 */
#define DMG_KOLY_SEGMENT_NUMBER   56  /* u32 */
#define DMG_KOLY_SEGMENT_COUNT    60  /* u32 */
#define DMG_KOLY_SEGMENT_ID       64  /* 16 bytes */
#define DMG_KOLY_DATA_CHECKSUM    80  /* type u32, bits u32, 128 bytes */
#define DMG_KOLY_XML_OFFSET      216  /* u64: the property list */
#define DMG_KOLY_XML_LENGTH      224  /* u64 */
#define DMG_KOLY_RESERVED1       232  /* 120 bytes */
#define DMG_KOLY_MASTER_CHECKSUM 352  /* type u32, bits u32, 128 bytes */
#define DMG_KOLY_IMAGE_VARIANT   488  /* u32 */
#define DMG_KOLY_SECTOR_COUNT    492  /* u64: the disk's 512-byte sectors */

_Static_assert(DMG_KOLY_XML_OFFSET == DMG_KOLY_DATA_CHECKSUM + 8 + 128,
               "layout");
_Static_assert(DMG_KOLY_MASTER_CHECKSUM == DMG_KOLY_RESERVED1 + 120,
               "layout");
_Static_assert(DMG_KOLY_IMAGE_VARIANT == DMG_KOLY_MASTER_CHECKSUM + 8 + 128,
               "layout");
_Static_assert(DMG_KOLY_SECTOR_COUNT == DMG_KOLY_IMAGE_VARIANT + 4,
               "layout");
_Static_assert(DMG_KOLY_SECTOR_COUNT + 8 <= DMG_KOLY_SIZE, "layout");

#define DMG_KOLY_MAGIC "koly"
#define DMG_KOLY_VERSION_4 4u

/* A mish (blkx) block: a header, then 40-byte chunk entries. */
#define DMG_MISH_SIGNATURE         0  /* "mish" */
#define DMG_MISH_VERSION           4  /* u32 */
#define DMG_MISH_FIRST_SECTOR      8  /* u64: chunk sectors count from it */
#define DMG_MISH_SECTOR_COUNT     16  /* u64 */
#define DMG_MISH_DATA_OFFSET      24  /* u64: chunk offsets count from the
                                         data fork plus this */
#define DMG_MISH_BUFFERS          32  /* u32 */
#define DMG_MISH_DESCRIPTOR       36  /* u32 */
#define DMG_MISH_RESERVED         40  /* 24 bytes */
#define DMG_MISH_CHECKSUM         64  /* type u32, bits u32, 128 bytes */
#define DMG_MISH_CHUNK_COUNT     200  /* u32 */
#define DMG_MISH_CHUNKS          204  /* the chunk entries */
_Static_assert(DMG_MISH_CHECKSUM == DMG_MISH_RESERVED + 24, "layout");
_Static_assert(DMG_MISH_CHUNK_COUNT == DMG_MISH_CHECKSUM + 8 + 128,
               "layout");
_Static_assert(DMG_MISH_CHUNKS == DMG_MISH_CHUNK_COUNT + 4, "layout");

#define DMG_MISH_MAGIC 0x6d697368u /* "mish" */

/* One chunk entry. */
#define DMG_CHUNK_SIZE            40u
#define DMG_CHUNK_TYPE             0  /* u32: DMG_TYPE_* */
#define DMG_CHUNK_COMMENT          4  /* u32 */
#define DMG_CHUNK_SECTOR           8  /* u64: first sector (of the mish) */
#define DMG_CHUNK_SECTOR_COUNT    16  /* u64 */
#define DMG_CHUNK_OFFSET          24  /* u64: where its bytes are */
#define DMG_CHUNK_LENGTH          32  /* u64: how many */
_Static_assert(DMG_CHUNK_LENGTH + 8 == DMG_CHUNK_SIZE, "layout");

enum {
    DMG_TYPE_ZERO = 0x00000000,    /* UDZE: zeros */
    DMG_TYPE_RAW = 0x00000001,     /* UDRW: stored as is */
    DMG_TYPE_IGNORE = 0x00000002,  /* UDIG: free space, reads as zeros */
    DMG_TYPE_ADC = 0x80000004,     /* UDCO: Apple Data Compression */
    DMG_TYPE_ZLIB = 0x80000005,    /* UDZO */
    DMG_TYPE_BZIP2 = 0x80000006,   /* UDBZ */
    DMG_TYPE_LZFSE = 0x80000007,   /* ULFO */
    DMG_TYPE_LZMA = 0x80000008,    /* ULMO */
    DMG_TYPE_COMMENT = 0x7ffffffe, /* no data */
    DMG_TYPE_LAST = 0xffffffff,    /* ends the list */
};

#endif
