#!/bin/sh
# Debian's GRUB rescue CD (grub-rescue-pc): a real hybrid, El Torito
# bootable image. Listing, boot entries and extraction match xorriso.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/iso-fixtures.inc"
requires xorriso python3
iso=/usr/lib/grub-rescue/grub-rescue-cdrom.iso
[ -r "$iso" ] || { echo "SKIP: $iso not installed (grub-rescue-pc)"; exit 77; }

vimg_lsdl "$iso" > "$T/vimg.txt"
xorriso_lsdl "$iso" > "$T/xorriso.txt"
[ "$(wc -l < "$T/vimg.txt")" -ge 100 ] || fail "too few entries"
diff "$T/vimg.txt" "$T/xorriso.txt" || fail "listing differs from xorriso"
eltorito_cmp "$iso"
"$VIMG" info --output=json "$iso" | grep -q '"hybrid": "\(mbr\|gpt\)"' ||
    fail "hybrid MBR/GPT not seen"
mkdir "$T/v" "$T/x"
"$VIMG" iso extract "$iso" "$T/v"
xorriso -osirrox on -indev "$iso" -extract / "$T/x" 2>/dev/null
diff -r "$T/v" "$T/x" || fail "extracted trees differ"
