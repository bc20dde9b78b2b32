#!/bin/sh
# vimg keeps persistent bitmaps made by qemu-img: writes, zero writes and
# discards through vimg serve set exactly the bits qemu-io's own writes
# set (enabled bitmaps of 64 KiB and 512-byte granularity; a disabled one
# stays as it was), the bitmaps are in use while vimg serve holds the
# changed image and consistent after it closes, and qemu-img check is
# clean. A disk without bitmaps keeps none.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
. "$(dirname "$0")/bitmap.inc"
. "$(dirname "$0")/nbd.inc"
requires qemu-img qemu-io qemu-nbd nbdinfo

img="$T/v.qcow2"
qemu-img create -q -f qcow2 "$img" 8M
qemu-io -f qcow2 -c 'write -P 0x11 0 8M' "$img" > /dev/null
qemu-img bitmap --add "$img" b64k
qemu-img bitmap --add -g 512 "$img" b512
qemu-img bitmap --add "$img" off
qemu-img bitmap --merge b64k "$img" off
qemu-io -f qcow2 -c 'write -P 0x22 5M 70k' "$img" > /dev/null
qemu-img bitmap --disable "$img" off
cp "$img" "$T/q.qcow2"

cmds="-c 'write -P 0x33 65536 4096' -c 'write -P 0x44 1000 3000' \
 -c 'write -P 0x55 1M 200k' -c 'write -z 2M 8k' -c 'write -z -u 3M 64k' \
 -c 'discard 4M 64k' -c 'flush' -c 'write -P 0x66 8387584 1024'"
vserve "$T/s.sock" -t --discard=unmap -f qcow2 "$img"
eval qemu-io -f raw $cmds "'$(uri "$T/s.sock")'" > /dev/null
[ "$(bitmaps_json "$img" | tr '\n' ' ')" = \
  "b64k 65536 in-use,auto b512 512 in-use,auto off 65536 - " ] ||
    fail "not in use while served: $(bitmaps_json "$img")"
stop_servers
eval qemu-io -f qcow2 $cmds "$T/q.qcow2" > /dev/null

qemu_clean "$img"
[ "$(bitmaps_json "$img")" = "$(bitmaps_json "$T/q.qcow2")" ] ||
    fail "bitmaps differ: $(bitmaps_json "$img")"
same_dirty "$img" "$T/q.qcow2" b64k b512 off
[ "$(qemu_sha "$img" qcow2)" = "$(qemu_sha "$T/q.qcow2" qcow2)" ] ||
    fail "guest data differs"
# vimg info lists them as qemu-img does.
qemu-img info "$img" | grep -v '^disk size' > "$T/q.txt"
"$VIMG" info "$img" | grep -v '^disk size' > "$T/v.txt"
diff "$T/q.txt" "$T/v.txt" >&2 || fail "info differs (< qemu-img, > vimg)"

# Writes by vimg convert -n go into the bitmap too (all of it here).
qemu-img create -q -f raw "$T/w.raw" 8M
"$VIMG" convert -n -f raw -O qcow2 "$T/w.raw" "$img"
qemu_clean "$img"
[ "$(dirty_map "$img" b512)" = "0 8388608 dirty" ] ||
    fail "convert -n: $(dirty_map "$img" b512)"
[ "$(bitmaps_json "$img" | sed -n 1p)" = "b64k 65536 auto" ] ||
    fail "after convert -n: $(bitmaps_json "$img")"

# A stale extension (its autoclear bit cleared by a program that does not
# maintain bitmaps) is dropped on the first write, as QEMU drops it: no
# more warnings, only the old bitmap's clusters leaked.
cp "$T/q.qcow2" "$T/stale.qcow2"
"$PY" - "$T/stale.qcow2" <<'PY'
import struct, sys
f = open(sys.argv[1], 'r+b')
f.seek(88); f.write(struct.pack('>Q', 0))
PY
"$VIMG" convert -n -f raw -O qcow2 "$T/w.raw" "$T/stale.qcow2"
qemu-img info "$T/stale.qcow2" > /dev/null 2> "$T/warn"
[ ! -s "$T/warn" ] || fail "stale extension kept: $(cat "$T/warn")"
set +e
qemu-img check -q "$T/stale.qcow2" 2> /dev/null; rc=$?
set -e
[ $rc = 3 ] || fail "stale extension: qemu-img check exits $rc, not 3 (leaks)"
exit 0
