#!/bin/sh
# While qemu-nbd serves an image read-write, vimg writers (resize, create
# over it, convert -n into it) are refused with a message naming the lock
# and the file, and leave it untouched; readers (info, map, compare) work;
# convert from it is refused like qemu-img's unless -U is given.
# qemu-img itself allows convert -n into it (qemu-nbd shares writes): vimg
# is stricter on purpose, a writer never shares an image with another one.
. "$(dirname "$0")/functions.sh"
requires qemu-img qemu-nbd
img=$T/disk.img sock=$T/nbd.sock
"$VIMG" create -q -f raw "$img" 64M
dd if=/dev/urandom of="$img" bs=1M seek=1 count=2 conv=notrunc 2>/dev/null
"$VIMG" create -q -f raw "$T/other.img" 64M
serve_nbd "$sock" -f raw "$img"
before=$(sha256sum < "$img")

refused() { # refused CMD...: exit 1, one line naming the file and a lock
    expect_status 1 "$@"
    [ "$(wc -l < "$T/err")" = 1 ] || fail "'$*': not one line: $(cat "$T/err")"
    grep -q "^vimg: $img: Failed to get .*lock" "$T/err" || fail "'$*': $(cat "$T/err")"
}
refused "$VIMG" resize -f raw "$img" 128M
expect_status 1 qemu-img resize -f raw "$img" 128M
refused "$VIMG" create -q -f raw "$img" 1M
expect_status 1 qemu-img create -q -f raw "$img" 1M
refused "$VIMG" convert -n -f raw -O raw "$T/other.img" "$img"
refused "$VIMG" convert -f raw -O raw "$img" "$T/copy.img"
expect_status 1 qemu-img convert -f raw -O raw "$img" "$T/qcopy.img"
[ ! -e "$T/copy.img" ] || fail "refused convert left its target"
[ "$(sha256sum < "$img")" = "$before" ] || fail "image changed"
[ "$(stat -c %s "$img")" = 67108864 ] || fail "image resized"

expect_status 0 "$VIMG" info "$img"
expect_status 0 "$VIMG" map -f raw "$img"
expect_status 0 "$VIMG" compare -f raw -F raw "$img" "$img"
expect_status 0 qemu-img compare -f raw -F raw "$img" "$img"
expect_status 0 "$VIMG" convert -U -f raw -O raw "$img" "$T/copy.img"
cmp -s "$img" "$T/copy.img" || fail "-U copy differs"

stop_nbd
expect_status 0 "$VIMG" resize -f raw "$img" 128M
