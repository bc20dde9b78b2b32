#!/bin/sh
# Writing through vimg into an image with internal snapshots copies shared
# clusters and L2 tables on write: the image stays clean for qemu-img, the
# active layer holds the new data, and every snapshot still reads as it did.
. "$(dirname "$0")/functions.sh"
requires qemu-img qemu-io

qemu-img create -q -f qcow2 "$T/a.qcow2" 8M
qemu-io -c 'write -P 0x11 0 1M' -c 'write -P 0x12 3M 64k' "$T/a.qcow2" >/dev/null
qemu-img snapshot -c one "$T/a.qcow2"
qemu-io -c 'write -P 0x21 512k 1M' "$T/a.qcow2" >/dev/null
qemu-img snapshot -c two "$T/a.qcow2"
cp "$T/a.qcow2" "$T/q.qcow2"
# New contents: data over shared clusters, zeros over others, holes.
qemu-img create -q -f raw "$T/new.raw" 8M
qemu-io -f raw -c 'write -P 0x77 100000 300000' -c 'write -P 0x78 3M 32k' \
    "$T/new.raw" >/dev/null
"$VIMG" convert -n -f raw -O qcow2 "$T/new.raw" "$T/a.qcow2"
qemu-img convert -n -f raw -O qcow2 "$T/new.raw" "$T/q.qcow2"
qemu-img check -q "$T/a.qcow2" || fail "qemu-img check finds errors"
qemu-img compare -q -f raw -F qcow2 "$T/new.raw" "$T/a.qcow2" ||
    fail "active layer differs from what was written"
for sn in one two; do
    cp "$T/a.qcow2" "$T/va.qcow2"
    cp "$T/q.qcow2" "$T/qa.qcow2"
    qemu-img snapshot -a "$sn" "$T/va.qcow2"
    qemu-img snapshot -a "$sn" "$T/qa.qcow2"
    qemu-img compare -q "$T/va.qcow2" "$T/qa.qcow2" ||
        fail "snapshot $sn changed"
done
# vimg reports the snapshots as qemu-img does.
qemu-img info --output=json "$T/a.qcow2" > "$T/q.json"
"$VIMG" info --output=json "$T/a.qcow2" > "$T/v.json"
python3 - "$T/q.json" "$T/v.json" <<'PY' || fail "snapshot lists differ"
import json, sys
q, v = (json.load(open(p)).get("snapshots") for p in sys.argv[1:])
sys.exit(0 if q == v and len(q) == 2 else 1)
PY
