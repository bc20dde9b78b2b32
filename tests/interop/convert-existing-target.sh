#!/bin/sh
# convert -n into an existing, larger target writes the source's bytes and
# leaves the rest as qemu-img does; into a smaller one both tools refuse
# and the target is untouched; without -n an existing file is replaced.
. "$(dirname "$0")/functions.sh"
requires qemu-img
head -c 4194304 /dev/urandom > "$T/src.img"
dd if=/dev/zero of="$T/src.img" bs=64k seek=10 count=4 conv=notrunc 2>/dev/null
head -c 8388608 /dev/urandom > "$T/v.img"
cp "$T/v.img" "$T/q.img"
"$VIMG" convert -n -f raw -O raw "$T/src.img" "$T/v.img"
qemu-img convert -n -f raw -O raw "$T/src.img" "$T/q.img"
cmp "$T/v.img" "$T/q.img" || fail "-n into a larger target differs from qemu-img"

head -c 2097152 /dev/urandom > "$T/small.img"
before=$(sha256sum < "$T/small.img")
expect_status 1 qemu-img convert -n -f raw -O raw "$T/src.img" "$T/small.img"
expect_status 1 "$VIMG" convert -n -f raw -O raw "$T/src.img" "$T/small.img"
grep -q "^vimg: .*small.img: target (2097152 bytes) is smaller than the source" "$T/err" ||
    fail "$(cat "$T/err")"
[ "$(sha256sum < "$T/small.img")" = "$before" ] || fail "small target changed"

"$VIMG" convert -f raw -O raw "$T/src.img" "$T/small.img"
cmp "$T/src.img" "$T/small.img" || fail "replacing convert"
[ -z "$(ls -A "$T" | grep vimg-convert)" ] || fail "temporary file left"
