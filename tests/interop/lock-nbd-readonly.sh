#!/bin/sh
# While qemu-nbd serves an image read-only (-r), vimg does what qemu-img
# does: it may read and copy the image and write into it (convert -n;
# qemu-nbd -r shares writes), but not resize it (qemu-nbd -r does not
# share resizes).
. "$(dirname "$0")/functions.sh"
requires qemu-img qemu-nbd
img=$T/disk.img sock=$T/nbd.sock
"$VIMG" create -q -f raw "$img" 16M
dd if=/dev/urandom of="$img" bs=64k seek=3 count=5 conv=notrunc 2>/dev/null
"$VIMG" create -q -f raw "$T/other.img" 16M
serve_nbd "$sock" -r -f raw "$img"
before=$(sha256sum < "$img")
expect_status 1 qemu-img resize -f raw "$img" 32M
expect_status 1 "$VIMG" resize -f raw "$img" 32M
grep -q "^vimg: $img: Failed to get \"resize\" lock" "$T/err" || fail "$(cat "$T/err")"
[ "$(sha256sum < "$img")" = "$before" ] && [ "$(stat -c %s "$img")" = 16777216 ] ||
    fail "refused resize changed the image"
expect_status 0 qemu-img convert -f raw -O raw "$img" "$T/q.img"
expect_status 0 "$VIMG" convert -f raw -O raw "$img" "$T/v.img"
cmp -s "$T/q.img" "$T/v.img" || fail "copies differ"
expect_status 0 "$VIMG" info --output=json "$img"
expect_status 0 "$VIMG" compare -f raw -F raw "$img" "$T/v.img"
# Writing into it works for both tools.
expect_status 0 qemu-img convert -n -f raw -O raw "$T/other.img" "$img"
dd if=/dev/urandom of="$T/other.img" bs=64k count=2 conv=notrunc 2>/dev/null
expect_status 0 "$VIMG" convert -n -f raw -O raw "$T/other.img" "$img"
cmp -s "$T/other.img" "$img" || fail "convert -n result"
