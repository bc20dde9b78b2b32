#!/bin/sh
# vimg iso create: a sparse 4.5 GiB file is written as two extents (ISO
# 9660 level 3 multi-extent); xorriso reports its full size, and bytes
# sampled at its start, across the 4 GiB boundary and at its end are
# right. Holes stay holes, so the image is sparse and quick to write.
. "$(dirname "$0")/functions.sh"
requires xorriso
src=$T/src
mkdir "$src"
size=4831838208
truncate -s $size "$src/big" 2>/dev/null || { echo "SKIP: no sparse files"; exit 77; }
put() { printf '%s' "$2" | dd of="$src/big" bs=1 seek="$1" conv=notrunc 2>/dev/null; }
put 0 HEAD; put 4294965244 EDGE-OF-EXTENT; put $((size - 4)) TAIL
echo small > "$src/small"

"$VIMG" iso create -o "$T/t.iso" "$src"
[ "$(du -k "$T/t.iso" | cut -f1)" -lt 102400 ] || fail "image is not sparse"
xorriso -indev "$T/t.iso" -lsl /big 2>/dev/null | grep -q " $size " ||
    fail "size of /big"
xorriso -indev "$T/t.iso" -find /big -exec report_lba -- 2>/dev/null |
    grep '^File data lba:' > "$T/lba"
[ "$(wc -l < "$T/lba")" = 2 ] || { cat "$T/lba"; fail "expected two extents"; }
lba=$(awk -F, 'NR == 1 { print $2 + 0 }' "$T/lba")
at() { dd if="$T/t.iso" bs=1 skip=$((lba * 2048 + $1)) count="$2" 2>/dev/null; }
[ "$(at 0 4)" = HEAD ] || fail "start"
[ "$(at 4294965244 14)" = EDGE-OF-EXTENT ] || fail "extent boundary"
[ "$(at $((size - 4)) 4)" = TAIL ] || fail "end"
[ "$(at 1000000000 4 | od -An -tx1 | tr -d ' ')" = 00000000 ] || fail "hole"
mkdir "$T/x"
xorriso -osirrox on -indev "$T/t.iso" -extract /small "$T/x/small" >/dev/null 2>&1
cmp "$T/x/small" "$src/small" || fail "file after the big one"
