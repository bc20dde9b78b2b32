#!/bin/sh
# A snapshot keeps its disk size (v3 records it): applying it after a
# resize gives the size back, for vimg and qemu-img alike.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
. "$(dirname "$0")/qcow2-snapshot.inc"
requires qemu-img qemu-io

img=$T/resize.qcow2
qemu-img create -q -f qcow2 "$img" 4M
qemu-io -c 'write -P 0x91 3M 1M' "$img" >/dev/null
h=$(qemu_sha "$img" qcow2)
"$VIMG" snapshot -c small "$img"
"$VIMG" resize "$img" 12M >/dev/null
qemu-io -c 'write -P 0x92 10M 1M' "$img" >/dev/null
"$VIMG" snapshot -c big "$img"
hb=$(qemu_sha "$img" qcow2)
"$VIMG" snapshot -a small "$img"
step "$img" "$h"
[ "$(qemu-img info --output=json "$img" | json_get /dev/stdin virtual-size)" \
    = 4194304 ] || fail "apply did not restore the size"
qemu-img snapshot -a big "$img"
step "$img" "$hb"
"$VIMG" snapshot -a small "$img"
"$VIMG" snapshot -d big "$img"
step "$img" "$h"
echo "PASS"
