#!/bin/sh
# vimg iso create -b/-c/-e: xorriso reports the BIOS (no emulation, load
# size 4 or as asked) and UEFI boot entries with their paths, and the boot
# information table in the image's copy of the BIOS image holds the PVD
# sector, the image's sector, its length and the checksum from byte 64.
. "$(dirname "$0")/functions.sh"
requires xorriso python3
src=$T/src
mkdir -p "$src/boot/grub" "$src/EFI"
head -c 5001 /dev/urandom > "$src/boot/grub/bios.img"
head -c 1000000 /dev/urandom > "$src/EFI/efiboot.img"
cp "$src/boot/grub/bios.img" "$T/bios.orig"

"$VIMG" iso create -o "$T/t.iso" -b boot/grub/bios.img -c boot/boot.cat \
    -e EFI/efiboot.img "$src"
xorriso -indev "$T/t.iso" -report_el_torito plain > "$T/r" 2>&1
grep -q '^El Torito cat path : /boot/boot.cat$' "$T/r" || { cat "$T/r"; fail "catalog path"; }
grep -Eq '^El Torito boot img : +1 +BIOS +y +none +0x0000 +0x00 +4 +[0-9]+$' "$T/r" ||
    { cat "$T/r"; fail "BIOS entry"; }
grep -Eq '^El Torito boot img : +2 +UEFI +y +none +0x0000 +0x00 +1954 +[0-9]+$' "$T/r" ||
    { cat "$T/r"; fail "UEFI entry (1000000 bytes = 1954 sectors)"; }
grep -q '^El Torito img path : *1 */boot/grub/bios.img$' "$T/r" || fail "BIOS path"
grep -q '^El Torito img path : *2 */EFI/efiboot.img$' "$T/r" || fail "UEFI path"
grep -q 'boot-info-table' "$T/r" || fail "boot info table not detected"
cmp "$src/boot/grub/bios.img" "$T/bios.orig" || fail "source boot image modified"

lba=$(sed -n 's/^El Torito boot img : *1 .* \([0-9][0-9]*\)$/\1/p' "$T/r")
python3 - "$T/t.iso" "$lba" "$T/bios.orig" <<'PY' || fail "boot information table"
import struct, sys
iso, lba, orig = sys.argv[1], int(sys.argv[2]), open(sys.argv[3], 'rb').read()
with open(iso, 'rb') as f:
    f.seek(lba * 2048)
    img = f.read(len(orig))
pad = orig[64:] + b'\0' * (-len(orig[64:]) % 4)
csum = sum(struct.unpack('<%dI' % (len(pad) // 4), pad)) & 0xffffffff
want = struct.pack('<4I', 16, lba, len(orig), csum) + b'\0' * 40
assert img[8:64] == want, (img[8:64].hex(), want.hex())
assert img[:8] == orig[:8] and img[64:] == orig[64:], "image bytes changed"
PY

# --boot-load-size and --no-boot-info-table; an EFI-only image.
"$VIMG" iso create -o "$T/t2.iso" -b boot/grub/bios.img --boot-load-size 8 \
    --no-boot-info-table "$src"
xorriso -indev "$T/t2.iso" -report_el_torito plain > "$T/r" 2>&1
grep -Eq '^El Torito boot img : +1 +BIOS +y +none +0x0000 +0x00 +8 ' "$T/r" ||
    fail "load size 8"
grep -q '^El Torito cat path : /boot.cat$' "$T/r" || fail "default catalog"
xorriso -osirrox on -indev "$T/t2.iso" -extract /boot/grub/bios.img "$T/b2" \
    >/dev/null 2>&1
cmp "$T/b2" "$T/bios.orig" || fail "image patched despite --no-boot-info-table"
"$VIMG" iso create -o "$T/t3.iso" -e EFI/efiboot.img "$src"
xorriso -indev "$T/t3.iso" -report_el_torito plain > "$T/r" 2>&1
grep -Eq '^El Torito boot img : +1 +UEFI +y +none ' "$T/r" || fail "EFI only"
# Floppy emulation: the media type follows the image size.
truncate -s 1474560 "$src/floppy.img"
"$VIMG" iso create -o "$T/t4.iso" -b floppy.img --floppy-emul "$src"
xorriso -indev "$T/t4.iso" -report_el_torito plain > "$T/r" 2>&1
grep -Eq '^El Torito boot img : +1 +BIOS +y +fd1.4 +0x0000 +0x00 +1 ' "$T/r" ||
    { cat "$T/r"; fail "1.44 MB floppy emulation"; }
