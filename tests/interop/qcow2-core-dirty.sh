#!/bin/sh
# A lazy-refcounts image left dirty with stale refcounts (as after a crash)
# opens read-only as it is (dirty-flag true, data readable) and is repaired
# when opened read-write: qemu-img then finds it clean and not dirty.
. "$(dirname "$0")/functions.sh"
requires qemu-img qemu-io

img="$T/l.qcow2"
qemu-img create -q -f qcow2 -o lazy_refcounts=on "$img" 16M
qemu-io -c 'write -P 0x11 0 1M' "$img" >/dev/null
python3 - "$img" <<'PY'
import struct, sys
f = open(sys.argv[1], 'r+b'); b = f.read()
inc = struct.unpack_from('>Q', b, 72)[0]
f.seek(72); f.write(struct.pack('>Q', inc | 1))          # dirty bit
rt = struct.unpack_from('>Q', b, 48)[0]
rb = struct.unpack_from('>Q', b, rt)[0]
f.seek(rb + 2 * 6); f.write(bytes(6))                     # refcounts lost
PY
good=$(qemu_sha "$img" qcow2)
"$VIMG" info --output=json "$img" > "$T/v.json"
[ "$(json_get "$T/v.json" dirty-flag)" = true ] || fail "dirty flag not shown"
[ "$(vimg_sha "$img" qcow2)" = "$good" ] || fail "read-only read differs"
qemu-img create -q -f raw "$T/w.raw" 16M
qemu-io -f raw -c 'write -P 0x22 4M 64k' "$T/w.raw" >/dev/null
"$VIMG" convert -n -f raw -O qcow2 "$T/w.raw" "$img"
qemu-img check -q "$img" || fail "not repaired"
qemu-img info --output=json "$img" > "$T/q.json"
[ "$(json_get "$T/q.json" dirty-flag)" = false ] || fail "still dirty"
qemu-img compare -q -f raw -F qcow2 "$T/w.raw" "$img" || fail "data differs"
