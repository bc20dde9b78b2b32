#!/bin/sh
# VHDXs made and written by qemu-img/qemu-io (dynamic and fixed, block and
# log sizes, zero blocks on and off) read the same in vimg and libvhdi:
# guest bytes and info fields; vimg's map lists qemu-io's blocks (qemu-img
# 7.2 has no block status for vhdx, so its map cannot be compared).
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
. "$(dirname "$0")/vhd.inc"
requires qemu-img qemu-io

for o in subformat=dynamic subformat=fixed block_size=1M,log_size=2M \
         block_size=32M block_state_zero=off \
         subformat=fixed,block_state_zero=off; do
    img=$T/q.vhdx
    qemu-img create -q -f vhdx -o "$o" "$img" 9000000
    qemu-io -f vhdx -c 'write -P 0x11 0 1k' -c 'write -P 0x22 3M 2M' \
        -c 'write -z 3M 4k' -c 'write -P 0x33 8998912 1024' "$img" >/dev/null
    same_data vhdx "$img"
    same_info_fields vhdx "$img" virtual-size cluster-size format \
        dirty-flag format-specific
    qemu-img check -q -f vhdx "$img" || fail "-o $o: qemu-img check"
    "$VIMG" check -f vhdx "$img" > "$T/c.txt" || fail "-o $o: vimg check"
    "$VIMG" info "$img" | grep -q '^file format: vhdx$' || fail "probe"
    if has_pyvhdi; then
        [ "$(vhdi_sha "$img")" = "$(vsize qemu-img vhdx "$img") $(vimg_sha "$img" vhdx)" ] ||
            fail "-o $o: libvhdi reads other data"
    fi
    # Data extents cover exactly what qemu-io wrote, block by block.
    "$VIMG" map -f vhdx --output=json "$img" > "$T/m.json"
    "$PY" - "$T/m.json" <<'PY' || fail "-o $o: map"
import json, sys
m = json.load(open(sys.argv[1]))
data = [e for e in m if e['data']]
assert all('offset' in e for e in data)
assert all(not e['data'] or not e['zero'] for e in m)
assert sum(e["length"] for e in m) == 9000448
PY
done
