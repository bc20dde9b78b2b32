#!/bin/sh
# The real boot with GRUB: the /boot tree of Debian's GRUB rescue CD,
# rebuilt by vimg iso create -b boot/grub/i386-pc/eltorito.img, boots in
# QEMU (TCG). GRUB's El Torito stage finds its core image only through the
# boot information table vimg patches in, then reads grub.cfg through its
# own ISO 9660 driver; the config prints a marker on the serial port.
. "$(dirname "$0")/functions.sh"
requires qemu-system-x86_64 xorriso
rescue=/usr/lib/grub-rescue/grub-rescue-cdrom.iso
[ -r "$rescue" ] || { echo "SKIP: grub-rescue-pc not installed"; exit 77; }
xorriso -osirrox on -indev "$rescue" -extract /boot "$T/src/boot" \
    > "$T/xo" 2>&1 || { cat "$T/xo"; fail "cannot extract the rescue CD"; }
chmod -R u+w "$T/src"
cat > "$T/src/boot/grub/grub.cfg" <<'CFG'
insmod serial
serial --unit=0 --speed=115200
terminal_output serial
echo vimg-grub-boot-ok
sleep 30
CFG
"$VIMG" iso create -o "$T/grub.iso" -b boot/grub/i386-pc/eltorito.img \
    -c boot.catalog "$T/src"

boot_iso "$T/grub.iso" vimg-grub-boot-ok 80
