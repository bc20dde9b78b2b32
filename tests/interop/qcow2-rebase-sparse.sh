#!/bin/sh
# A safe rebase compares only where the old or the new chain has data
# (block status), so moving a 1 TiB overlay from one sparse raw file to
# another takes a moment (reading both chains whole would take hours
# here), and copies exactly what differs: the overlay reads the same, and
# holds only the ranges where the two backing files differ.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
requires qemu-img qemu-io

qemu-img create -q -f raw "$T/old.raw" 1T
qemu-io -f raw -c 'write -P 0x11 0 1M' -c 'write -P 0x12 500G 2M' \
    "$T/old.raw" >/dev/null
qemu-img create -q -f raw "$T/new.raw" 1T
qemu-io -f raw -c 'write -P 0x11 0 1M' -c 'write -P 0x22 900G 1M' \
    "$T/new.raw" >/dev/null
qemu-img create -q -f qcow2 -b old.raw -F raw "$T/top.qcow2"
qemu-io -c 'write -P 0x33 100G 64k' "$T/top.qcow2" >/dev/null
cp "$T/top.qcow2" "$T/before.qcow2"
"$VIMG" rebase -b new.raw -F raw "$T/top.qcow2"
qemu-img compare -q "$T/before.qcow2" "$T/top.qcow2" ||
    fail "the overlay reads differently"
qemu_clean "$T/top.qcow2"
# Own data: the 64k written, 500G (old data), 900G (zeros over new data).
qemu-img map --output=json "$T/top.qcow2" | "$PY" -c '
import json, sys
own = [(e["start"], e["length"], e["data"]) for e in json.load(sys.stdin)
       if e["depth"] == 0]
want = [(100 << 30, 65536, True), (500 << 30, 2 << 20, True),
        (900 << 30, 1 << 20, False)]
sys.exit(0 if own == want else "own extents: %r" % own)'
echo "PASS"
