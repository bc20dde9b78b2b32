#!/bin/sh
# A fixed VHD has no header, only a footer in its last sector. vimg names it
# vpc (qemu-img says raw) only when the footer is whole, says fixed, sizes
# the file exactly and the file is named *.vhd or *.vpc; a guess made from
# a footer is never used to write; anything else stays raw.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
. "$(dirname "$0")/vhd.inc"
requires qemu-img

fmt() { "$VIMG" info "$1" | sed -n 's/^file format: //p'; }

qemu-img create -q -f vpc -o subformat=fixed "$T/disk.vhd" 4M
[ "$(fmt "$T/disk.vhd")" = vpc ] || fail "fixed .vhd not probed as vpc"
cp "$T/disk.vhd" "$T/DISK.VPC"
[ "$(fmt "$T/DISK.VPC")" = vpc ] || fail "fixed .VPC not probed as vpc"
cp "$T/disk.vhd" "$T/disk.img"
[ "$(fmt "$T/disk.img")" = raw ] || fail "fixed VHD named .img not raw"
"$VIMG" info -f vpc "$T/disk.img" | grep -q '^file format: vpc$' ||
    fail "-f vpc does not open a fixed VHD named .img"

# One more byte after the footer, or a footer whose checksum is wrong:
# the size or the footer does not hold, so the file is raw.
cp "$T/disk.vhd" "$T/longer.vhd"
printf x >> "$T/longer.vhd"
[ "$(fmt "$T/longer.vhd")" = raw ] || fail "mis-sized footer probed as vpc"
cp "$T/disk.vhd" "$T/bad.vhd"
end=$(( $(stat -c %s "$T/bad.vhd") - 512 ))
printf 'X' | dd of="$T/bad.vhd" bs=1 seek=$((end + 100)) conv=notrunc 2>/dev/null
[ "$(fmt "$T/bad.vhd")" = raw ] || fail "footer with a bad checksum probed"
expect_status 1 "$VIMG" info -f vpc "$T/bad.vhd"
grep -q 'checksum' "$T/err" || fail "no checksum message: $(cat "$T/err")"
[ "$(wc -l < "$T/err")" = 1 ] || fail "more than one line: $(cat "$T/err")"

# A raw disk whose guest wrote a fixed-VHD footer for another size.
"$VIMG" create -q -f raw "$T/guest.vhd" 8M
dd if="$T/disk.vhd" of="$T/guest.vhd" bs=512 skip=$((end / 512)) \
    seek=$((8 * 2048 - 1)) conv=notrunc 2>/dev/null
[ "$(fmt "$T/guest.vhd")" = raw ] || fail "guest-written footer probed as vpc"

# Writes need -f vpc when the footer was all there was to go on.
sum=$(sha256sum < "$T/disk.vhd")
expect_status 1 "$VIMG" resize "$T/disk.vhd" 8M
grep -q 'guessed from a footer.*-f vpc' "$T/err" ||
    fail "write open of a probed fixed VHD: $(cat "$T/err")"
[ "$(sha256sum < "$T/disk.vhd")" = "$sum" ] || fail "the refused open wrote"
"$VIMG" create -q -f raw "$T/src.raw" "$(vsize "$VIMG" vpc "$T/disk.vhd")"
"$VIMG" convert -n -f raw -O vpc "$T/src.raw" "$T/disk.vhd"

# A dynamic VHD starts with its footer copy: probed by the start, any name.
qemu-img create -q -f vpc "$T/dyn.img" 4M
[ "$(fmt "$T/dyn.img")" = vpc ] || fail "dynamic VHD not probed"
