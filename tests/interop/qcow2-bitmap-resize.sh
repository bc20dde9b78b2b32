#!/bin/sh
# vimg resize of an image with persistent bitmaps, against qemu-img
# resize: growing and shrinking resize every bitmap (enabled or not) as
# qemu-img does, keeping the bits inside the new size, and qemu-img check
# is clean; an inconsistent bitmap makes the resize fail, as in qemu-img.
# A vimg that dies while serving a changed image leaves its enabled
# bitmaps in use (QEMU then treats them as inconsistent), the disabled
# one consistent and the image without corruption.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
. "$(dirname "$0")/bitmap.inc"
. "$(dirname "$0")/nbd.inc"
requires qemu-img qemu-io qemu-nbd nbdinfo

img="$T/b.qcow2"
qemu-img create -q -f qcow2 "$img" 5M
qemu-img bitmap --add "$img" on
qemu-img bitmap --add -g 512 "$img" fine
qemu-io -f qcow2 -c 'write 0 64k' -c 'write 3M 4k' -c 'write 5112k 8k' \
    "$img" > /dev/null
qemu-img bitmap --add --disable -g 128k "$img" off
qemu-img bitmap --merge on "$img" off
cp "$img" "$T/q.qcow2"
cp "$img" "$T/v.qcow2"
for step in "+3M" "-3145216" "-2097664" "9M"; do
    shrink=""
    case $step in -*) shrink=--shrink ;; esac
    qemu-img resize -q $shrink "$T/q.qcow2" -- $step
    "$VIMG" resize $shrink "$T/v.qcow2" -- $step > /dev/null
    qemu_clean "$T/v.qcow2"
    [ "$(bitmaps_json "$T/v.qcow2")" = "$(bitmaps_json "$T/q.qcow2")" ] ||
        fail "resize $step: $(bitmaps_json "$T/v.qcow2")"
    same_dirty "$T/v.qcow2" "$T/q.qcow2" on fine off
done
[ "$(qemu-img info --output=json "$T/v.qcow2" | grep '"virtual-size"')" = \
  '    "virtual-size": 9437184,' ] || fail "sizes"

# Killed while serving a changed image.
vserve "$T/s.sock" -t -f qcow2 "$T/v.qcow2"
qemu-io -f raw -c 'write 2M 4k' "$(uri "$T/s.sock")" > /dev/null
kill -9 $servers
wait $servers 2>/dev/null || true
servers=""
[ "$(bitmaps_json "$T/v.qcow2" | tr '\n' ' ')" = \
  "on 65536 in-use,auto fine 512 in-use,auto off 131072 - " ] ||
    fail "after a crash: $(bitmaps_json "$T/v.qcow2")"
set +e
qemu-img check -q "$T/v.qcow2" 2> /dev/null; rc=$?
set -e
[ $rc = 0 ] || [ $rc = 3 ] || fail "qemu-img check after a crash: $rc"
# Still refused by both, then removed by vimg.
expect_status 1 qemu-img resize "$T/v.qcow2" 10M
expect_status 1 "$VIMG" resize "$T/v.qcow2" 10M
grep -q "Bitmap 'on' is inconsistent" "$T/err" || fail "$(cat "$T/err")"
"$VIMG" bitmap --remove "$T/v.qcow2" on
"$VIMG" bitmap --remove "$T/v.qcow2" fine
"$VIMG" resize "$T/v.qcow2" 10M > /dev/null
qemu-img check -q -r leaks "$T/v.qcow2" > /dev/null 2>&1
qemu_clean "$T/v.qcow2"
[ "$(bitmaps_json "$T/v.qcow2")" = "off 131072 -" ] ||
    fail "at the end: $(bitmaps_json "$T/v.qcow2")"
exit 0
