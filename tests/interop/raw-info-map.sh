#!/bin/sh
# info and map of a sparse raw image agree with qemu-img field by field.
. "$(dirname "$0")/functions.sh"
requires qemu-img python3
img=$T/disk.img
"$VIMG" create -q -f raw "$img" 64M
printf 'hello' | dd of="$img" bs=1 seek=1048576 conv=notrunc 2>/dev/null
dd if=/dev/urandom of="$img" bs=64k seek=100 count=3 conv=notrunc 2>/dev/null

"$VIMG" info --output=json "$img" > "$T/v.json"
qemu-img info --output=json "$img" > "$T/q.json"
for k in virtual-size format actual-size dirty-flag filename; do
    [ "$(json_get "$T/v.json" $k)" = "$(json_get "$T/q.json" $k)" ] ||
        fail "info field $k: vimg $(json_get "$T/v.json" $k), qemu-img $(json_get "$T/q.json" $k)"
done
"$VIMG" info "$img" | grep -q '^virtual size: 64 MiB (67108864 bytes)$' || fail "human info"

"$VIMG" map --output=json -f raw "$img" > "$T/vm.json"
qemu-img map --output=json -f raw "$img" > "$T/qm.json"
cmp "$T/vm.json" "$T/qm.json" || { diff "$T/vm.json" "$T/qm.json"; fail "map json differs"; }
"$VIMG" map -f raw "$img" > "$T/vm.txt"
qemu-img map -f raw "$img" > "$T/qm.txt"
cmp "$T/vm.txt" "$T/qm.txt" || fail "human map differs"
