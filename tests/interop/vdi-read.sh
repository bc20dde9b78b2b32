#!/bin/sh
# VDIs made and written by qemu-img/qemu-io (dynamic and static, odd
# sizes) read the same in vimg: guest bytes, info fields, map (JSON and
# human) and check.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
. "$(dirname "$0")/vhd.inc"
requires qemu-img qemu-io

for o in static=off static=on; do
    for size in 9000000 3M; do
        img=$T/q.vdi
        qemu-img create -q -f vdi -o "$o" "$img" "$size"
        qemu-io -f vdi -c 'write -P 0x11 0 1k' -c 'write -P 0x22 1M 1536k' \
            -c 'write -z 1100k 4k' -c 'write -P 0x33 2M 512' "$img" >/dev/null
        same_data vdi "$img"
        same_map vdi "$img"
        same_info_fields vdi "$img" virtual-size cluster-size format \
            dirty-flag format-specific
        qemu-img map -f vdi "$img" > "$T/qm.txt"
        "$VIMG" map -f vdi "$img" > "$T/vm.txt"
        diff "$T/qm.txt" "$T/vm.txt" >&2 || fail "$o $size: human map differs"
        qemu-img check -f vdi "$img" > "$T/qc.txt"
        "$VIMG" check -f vdi "$img" > "$T/vc.txt"
        diff "$T/qc.txt" "$T/vc.txt" >&2 || fail "$o $size: check differs"
        "$VIMG" info "$img" | grep -q '^file format: vdi$' ||
            fail "$o $size: not probed as vdi"
    done
done
