/* The LUKS1 header as the LUKS On-Disk Format Specification 1.2.x lays it
 * out ("The phdr" and "Key slot" tables): big-endian fields at fixed byte
 * offsets, 592 bytes in all, key material in 512-byte sectors after it. */
#ifndef VIMG_LUKS_ONDISK_H
#define VIMG_LUKS_ONDISK_H

#include "../../common/byteswap.h"

#define LUKS_MAGIC "LUKS\xba\xbe"
#define LUKS_MAGIC_LEN 6
#define LUKS_VERSION 1

#define LUKS_HDR_MAGIC           0   /* 6 bytes */
#define LUKS_HDR_VERSION         6   /* u16 */
#define LUKS_HDR_CIPHER_NAME     8   /* char[32] */
#define LUKS_HDR_CIPHER_MODE     40  /* char[32] */
#define LUKS_HDR_HASH_SPEC       72  /* char[32] */
#define LUKS_HDR_PAYLOAD_OFFSET  104 /* u32, sectors */
#define LUKS_HDR_KEY_BYTES       108 /* u32 */
#define LUKS_HDR_MK_DIGEST       112 /* 20 bytes */
#define LUKS_HDR_MK_DIGEST_SALT  132 /* 32 bytes */
#define LUKS_HDR_MK_DIGEST_ITER  164 /* u32 */
#define LUKS_HDR_UUID            168 /* char[40] */
#define LUKS_HDR_KEYSLOTS        208 /* 8 x 48 bytes */
#define LUKS_HDR_SIZE            592

#define LUKS_NAME_LEN   32
#define LUKS_DIGEST_LEN 20
#define LUKS_SALT_LEN   32
#define LUKS_UUID_LEN   40
#define LUKS_NUM_SLOTS  8

/* One key slot, at LUKS_HDR_KEYSLOTS + i * LUKS_SLOT_SIZE. */
#define LUKS_SLOT_ACTIVE      0  /* u32 */
#define LUKS_SLOT_ITERATIONS  4  /* u32 */
#define LUKS_SLOT_SALT        8  /* 32 bytes */
#define LUKS_SLOT_KEY_OFFSET  40 /* u32, sectors */
#define LUKS_SLOT_STRIPES     44 /* u32 */
#define LUKS_SLOT_SIZE        48

#define LUKS_SLOT_ENABLED  0x00AC71F3u
#define LUKS_SLOT_DISABLED 0x0000DEADu

/* LUKS1 counts key material and payload in 512-byte sectors, and its
 * sector ciphers work on 512-byte units. */
#define LUKS_SECTOR_SIZE 512
/* Every LUKS1 writer (cryptsetup, QEMU) uses 4000 anti-forensic stripes;
 * QEMU refuses other counts, which also bounds a slot's key material. */
#define LUKS_STRIPES 4000
/* The first key material starts here; slots are 4 KiB aligned (QEMU and
 * cryptsetup). */
#define LUKS_KEY_SLOT_OFFSET 4096

_Static_assert(LUKS_HDR_CIPHER_NAME == LUKS_HDR_VERSION + 2, "layout");
_Static_assert(LUKS_HDR_CIPHER_MODE == LUKS_HDR_CIPHER_NAME + 32, "layout");
_Static_assert(LUKS_HDR_HASH_SPEC == LUKS_HDR_CIPHER_MODE + 32, "layout");
_Static_assert(LUKS_HDR_PAYLOAD_OFFSET == LUKS_HDR_HASH_SPEC + 32, "layout");
_Static_assert(LUKS_HDR_MK_DIGEST == LUKS_HDR_KEY_BYTES + 4, "layout");
_Static_assert(LUKS_HDR_MK_DIGEST_SALT == LUKS_HDR_MK_DIGEST +
               LUKS_DIGEST_LEN, "layout");
_Static_assert(LUKS_HDR_MK_DIGEST_ITER == LUKS_HDR_MK_DIGEST_SALT +
               LUKS_SALT_LEN, "layout");
_Static_assert(LUKS_HDR_UUID == LUKS_HDR_MK_DIGEST_ITER + 4, "layout");
_Static_assert(LUKS_HDR_KEYSLOTS == LUKS_HDR_UUID + LUKS_UUID_LEN, "layout");
_Static_assert(LUKS_SLOT_KEY_OFFSET == LUKS_SLOT_SALT + LUKS_SALT_LEN,
               "layout");
_Static_assert(LUKS_HDR_SIZE == LUKS_HDR_KEYSLOTS +
               LUKS_NUM_SLOTS * LUKS_SLOT_SIZE, "layout");

#endif
