#!/bin/sh
# A qemu-io process holding an image open for writing: vimg refuses to
# resize it, replace it or convert into it, and (as qemu-img) to convert
# from it without -U; info and compare still work.
# qemu-img resize and convert -n succeed here (qemu-io shares writes and
# resizes): vimg is stricter, its writers do not share an image.
. "$(dirname "$0")/functions.sh"
requires qemu-img qemu-io
img=$T/disk.img
"$VIMG" create -q -f raw "$img" 8M
dd if=/dev/urandom of="$img" bs=4k seek=9 count=7 conv=notrunc 2>/dev/null
"$VIMG" create -q -f raw "$T/other.img" 8M
qemu-io -f raw -c 'sleep 100000' "$img" > /dev/null & holder=$!
stop_holder() { kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null; }
on_exit stop_holder
# Wait (bounded) until qemu-io holds its locks, watching /proc/locks so
# as not to take any ourselves.
ino=$(stat -c %i "$img")
i=0
until grep -q ":$ino " /proc/locks; do
    i=$((i + 1)); [ $i -lt 100 ] || fail "qemu-io took no lock"; sleep 0.1
done
before=$(sha256sum < "$img")
for cmd in "resize -f raw $img 16M" "create -q -f raw $img 1M" \
           "convert -n -f raw -O raw $T/other.img $img" \
           "convert -f raw -O raw $T/other.img $img" \
           "convert -f raw -O raw $img $T/copy.img"; do
    # shellcheck disable=SC2086
    expect_status 1 "$VIMG" $cmd
    grep -q "^vimg: $img: Failed to get .*lock: is another process using the image?" "$T/err" ||
        fail "$cmd: $(cat "$T/err")"
done
[ "$(sha256sum < "$img")" = "$before" ] && [ "$(stat -c %s "$img")" = 8388608 ] ||
    fail "image changed"
expect_status 0 "$VIMG" info "$img"
expect_status 0 "$VIMG" compare -f raw -F raw "$img" "$img"
expect_status 0 "$VIMG" convert -U -f raw -O raw "$img" "$T/copy.img"
cmp -s "$img" "$T/copy.img" || fail "-U copy differs"
expect_status 0 qemu-img convert -U -f raw -O raw "$img" "$T/qcopy.img"
