#!/bin/sh
# VHDs made and written by qemu-img/qemu-io (dynamic and fixed, CHS and
# force_size sizes) read the same in vimg: guest bytes, info fields, and
# map (JSON and human) extent by extent.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
. "$(dirname "$0")/vhd.inc"
requires qemu-img qemu-io

fields="virtual-size cluster-size format dirty-flag format-specific"
for o in subformat=dynamic subformat=dynamic,force_size \
         subformat=fixed subformat=fixed,force_size; do
    img=$T/q.vhd
    qemu-img create -q -f vpc -o "$o" "$img" 9000000
    qemu-io -f vpc -c 'write -P 0x11 0 1k' -c 'write -P 0x22 3M 2M' \
        -c 'write -P 0x33 8M 4k' -c 'write -z 3M 4k' "$img" >/dev/null
    last=$(( $(vsize qemu-img vpc "$img") - 512 ))
    qemu-io -f vpc -c "write -P 0x44 $last 512" "$img" >/dev/null
    same_data vpc "$img"
    same_map vpc "$img"
    same_info_fields vpc "$img" $fields
    qemu-img map -f vpc "$img" > "$T/qm.txt"
    "$VIMG" map -f vpc "$img" > "$T/vm.txt"
    diff "$T/qm.txt" "$T/vm.txt" >&2 || fail "-o $o: human map differs"
    # Without -f: dynamic disks by their header, fixed ones by the footer.
    "$VIMG" info "$img" | grep -q '^file format: vpc$' ||
        fail "-o $o: not probed as vpc"
done

