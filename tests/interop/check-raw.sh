#!/bin/sh
# check on a raw image exits 63 ("does not support checks"), like qemu-img.
. "$(dirname "$0")/functions.sh"
requires qemu-img
img=$T/disk.img
"$VIMG" create -q -f raw "$img" 1M
expect_status 63 qemu-img check -f raw "$img"
grep -q 'This image format does not support checks' "$T/err" || fail "qemu-img message changed"
expect_status 63 "$VIMG" check -f raw "$img"
[ "$(wc -l < "$T/err")" = 1 ] || fail "not one line"
grep -q "^vimg: .*disk.img: This image format does not support checks$" "$T/err" ||
    fail "message: $(cat "$T/err")"
expect_status 63 "$VIMG" check --output=json -f raw "$img"
