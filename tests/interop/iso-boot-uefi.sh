#!/bin/sh
# The real UEFI boot: one image from vimg iso create with both a BIOS
# entry (ISOLINUX) and a UEFI section (a FAT image holding a standalone
# GRUB as EFI/BOOT/BOOTX64.EFI) boots both ways in QEMU (TCG): SeaBIOS
# prints the ISOLINUX banner, OVMF finds the 0xEF catalog entry and GRUB
# prints a marker on the serial port.
. "$(dirname "$0")/functions.sh"
requires qemu-system-x86_64 grub-mkstandalone mformat mmd mcopy
code=/usr/share/OVMF/OVMF_CODE_4M.fd
vars=/usr/share/OVMF/OVMF_VARS_4M.fd
bin=/usr/lib/ISOLINUX/isolinux.bin
c32=/usr/lib/syslinux/modules/bios/ldlinux.c32
for f in $code $vars $bin $c32 /usr/lib/grub/x86_64-efi/normal.mod; do
    [ -r "$f" ] || { echo "SKIP: $f missing"; exit 77; }
done
mkdir -p "$T/src/isolinux" "$T/src/EFI"
cp "$bin" "$c32" "$T/src/isolinux/"
printf 'SERIAL 0 115200\nPROMPT 1\nTIMEOUT 50\n' > "$T/src/isolinux/isolinux.cfg"
cat > "$T/grub.cfg" <<'CFG'
insmod serial
serial --unit=0 --speed=115200
terminal_output serial console
echo vimg-uefi-boot-ok
sleep 30
CFG
grub-mkstandalone -O x86_64-efi -o "$T/bootx64.efi" --locales= --fonts= \
    --themes= --install-modules="normal serial echo sleep terminal" \
    --modules=serial "boot/grub/grub.cfg=$T/grub.cfg"
img=$T/src/EFI/efiboot.img
mformat -i "$img" -C -T 4096 -h 2 -s 32 ::
mmd -i "$img" ::/EFI ::/EFI/BOOT
mcopy -i "$img" "$T/bootx64.efi" ::/EFI/BOOT/BOOTX64.EFI
"$VIMG" iso create -o "$T/dual.iso" -b isolinux/isolinux.bin \
    -c isolinux/boot.cat -e EFI/efiboot.img "$T/src"
cp "$vars" "$T/vars.fd"

boot_iso "$T/dual.iso" 'ISOLINUX [0-9]' 60
boot_iso "$T/dual.iso" vimg-uefi-boot-ok 150 \
    -drive if=pflash,format=raw,readonly=on,file=$code \
    -drive if=pflash,format=raw,file="$T/vars.fd"
