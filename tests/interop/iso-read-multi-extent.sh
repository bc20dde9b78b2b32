#!/bin/sh
# A file over 4 GiB is stored as several extents (multi-extent records);
# vimg lists its full size as xorriso does and iso extract reads
# it whole, byte for byte (holes stay holes). The image (from vimg iso create, checked by
# xorriso) and the file are sparse, so this stays quick.
. "$(dirname "$0")/functions.sh"
requires xorriso
mkdir "$T/src"
size=4831838208
truncate -s $size "$T/src/big" 2>/dev/null || { echo "SKIP: no sparse files"; exit 77; }
put() { printf '%s' "$2" | dd of="$T/src/big" bs=1 seek="$1" conv=notrunc 2>/dev/null; }
put 0 HEAD; put 4294965244 EDGE-OF-EXTENT; put $((size - 4)) TAIL
echo after > "$T/src/small"
"$VIMG" iso create -o "$T/t.iso" "$T/src"
xorriso -indev "$T/t.iso" -find /big -exec report_lba -- 2>/dev/null |
    grep -c '^File data lba:' > "$T/n"
[ "$(cat "$T/n")" -ge 2 ] || fail "the image does not use multi-extent records"
xorriso -indev "$T/t.iso" -lsl /big 2>/dev/null | grep -q " $size " ||
    fail "xorriso's size of /big"

"$VIMG" iso ls -l "$T/t.iso" | grep -q " $size .* big$" || fail "vimg's size of /big"
mkdir "$T/x"
"$VIMG" iso extract "$T/t.iso" /big /small "$T/x"
[ "$(du -k "$T/x/big" | cut -f1)" -lt 102400 ] || fail "extracted /big is not sparse"
# cmp would read 9 GiB: compare the size and the bytes that were written.
[ "$(stat -c %s "$T/x/big")" = $size ] || fail "size of the extracted /big"
at() { dd if="$T/x/big" bs=1 skip="$1" count="$2" 2>/dev/null; }
[ "$(at 0 4)" = HEAD ] && [ "$(at 4294965244 14)" = EDGE-OF-EXTENT ] &&
    [ "$(at $((size - 4)) 4)" = TAIL ] || fail "contents of the extracted /big"
[ "$(at 1000000000 4 | od -An -tx1 | tr -d ' ')" = 00000000 ] || fail "hole"
"$VIMG" iso cat "$T/t.iso" /small | cmp - "$T/src/small" || fail "iso cat /small"
cmp "$T/x/small" "$T/src/small" || fail "the file after /big"
