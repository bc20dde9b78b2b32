#!/bin/sh
# The real boot: an image made by vimg iso create -b isolinux/isolinux.bin
# boots ISOLINUX in QEMU (TCG) from the emulated CD-ROM. isolinux.bin
# checks the boot information table, loads ldlinux.c32 through the ISO
# 9660 tree and prints its banner on the serial port.
. "$(dirname "$0")/functions.sh"
requires qemu-system-x86_64
bin=/usr/lib/ISOLINUX/isolinux.bin
c32=/usr/lib/syslinux/modules/bios/ldlinux.c32
[ -r "$bin" ] && [ -r "$c32" ] || { echo "SKIP: isolinux not installed"; exit 77; }
mkdir -p "$T/src/isolinux"
cp "$bin" "$c32" "$T/src/isolinux/"
cat > "$T/src/isolinux/isolinux.cfg" <<'CFG'
SERIAL 0 115200
PROMPT 1
TIMEOUT 50
SAY vimg boot test
CFG
"$VIMG" iso create -o "$T/boot.iso" -V VIMGBOOT -b isolinux/isolinux.bin \
    -c isolinux/boot.cat "$T/src"

boot_iso "$T/boot.iso" 'ISOLINUX [0-9]' 80
