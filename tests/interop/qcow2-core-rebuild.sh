#!/bin/sh
# A refcount table entry with reserved bits set makes `check -r all`
# rebuild the whole refcount structure; the result is clean for qemu-img
# and the guest data is unchanged. Without -r the error is reported with
# qemu-img's counts.
. "$(dirname "$0")/functions.sh"
requires qemu-img qemu-io

img="$T/g.qcow2"
qemu-img create -q -f qcow2 "$img" 16M
qemu-io -c 'write -P 0x11 0 1M' -c 'write -P 0x22 8M 64k' "$img" >/dev/null
good=$(qemu_sha "$img" qcow2)
python3 - "$img" <<'PY'
import struct, sys
f = open(sys.argv[1], 'r+b'); b = f.read()
rt = struct.unpack_from('>Q', b, 48)[0]
e = struct.unpack_from('>Q', b, rt)[0]
f.seek(rt); f.write(struct.pack('>Q', e | 8))
PY
qemu-img check --output=json "$img" > "$T/q.json" 2>/dev/null || true
expect_status 2 "$VIMG" check --output=json "$img"
for f in corruptions leaks; do
    [ "$(json_get "$T/q.json" $f)" = "$(json_get "$T/out" $f)" ] ||
        fail "check: $f differs from qemu-img"
done
grep -q "ERROR refcount table entry 0 has reserved bits set" "$T/err" ||
    fail "no message for the broken entry"
"$VIMG" check -q -r all "$img" || fail "repair failed"
qemu-img check -q "$img" || fail "qemu-img finds errors after the rebuild"
[ "$(qemu_sha "$img" qcow2)" = "$good" ] || fail "rebuild changed the data"
