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

: > "$T/serial.log"
timeout 90 qemu-system-x86_64 -accel tcg -display none -nodefaults \
    -serial "file:$T/serial.log" -cdrom "$T/grub.iso" -m 256 -no-reboot &
qemu=$!
stop_qemu() { kill "$qemu" 2>/dev/null; wait "$qemu" 2>/dev/null; }
on_exit stop_qemu
i=0
while [ $i -lt 160 ] && ! grep -q 'vimg-grub-boot-ok' "$T/serial.log"; do
    sleep 0.5; i=$((i + 1))
done
grep -q 'vimg-grub-boot-ok' "$T/serial.log" ||
    { cat "$T/serial.log"; fail "GRUB did not run grub.cfg from the image"; }
