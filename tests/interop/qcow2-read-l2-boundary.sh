#!/bin/sh
# 64k clusters: a write across the 512 MiB boundary between two L2 tables
# and one at the very end of a large sparse image read back identically.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
requires qemu-img qemu-io

for compat in 0.10 1.1; do
    img="$T/big-$compat.qcow2"
    qemu-img create -q -f qcow2 -o compat=$compat "$img" 1G
    qemu-io -c 'write -P 0x61 536805376 128k' -c 'write -P 0x62 1073741312 512' \
        -c 'write -z 536870912 64k' "$img" >/dev/null
    same_map qcow2 "$img"
    "$VIMG" convert -f qcow2 -O raw "$img" "$T/v.raw"
    qemu-img compare -q -f raw -F qcow2 "$T/v.raw" "$img" ||
        fail "vimg's raw copy of $img differs"
    # The sparse raw copy kept its holes.
    [ "$(du_k "$T/v.raw")" -lt 2048 ] || fail "raw copy is not sparse"
    rm -f "$T/v.raw"
done
