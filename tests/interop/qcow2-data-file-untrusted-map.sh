#!/bin/sh
# `vimg --untrusted map` of a qcow2 with an external data file shows the
# extents qemu-img map and `vimg --refs=follow map` show, under the data
# file's name, without opening it (the first cluster, at offset 0 of the
# data file, included; `--untrusted check` counts it too). When the policy
# refuses the name (a protocol name), the JSON map leaves the offsets out
# and the human map fails as qemu-img's does for clusters it cannot place
# in a file; compressed clusters fail it the same way.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
requires qemu-img qemu-io

# QEMU opens a relative data file name from the current folder, vimg from
# the image's: run where both agree.
cd "$T"
qemu-img create -q -f qcow2 -o data_file=data-file.raw d.qcow2 4M
qemu-io -c 'write -P 1 0 64k' -c 'write -P 2 1M 128k' -c 'write -z 2M 64k' \
    d.qcow2 >/dev/null

qemu-img map d.qcow2 > q.txt
qemu-img map --output=json d.qcow2 > q.json
for refs in --untrusted --refs=follow; do
    "$VIMG" $refs map d.qcow2 > v.txt ||
        fail "vimg $refs map failed"
    diff q.txt v.txt >&2 || fail "$refs human map differs (< qemu-img)"
    "$VIMG" $refs map --output=json d.qcow2 > v.json
    map_norm q.json > q.n
    map_norm v.json > v.n
    diff q.n v.n >&2 || fail "$refs JSON map differs (< qemu-img)"
done
grep -q '^0  *0x10000  *0  *data-file.raw$' v.txt ||
    fail "first cluster not mapped to offset 0 of data-file.raw"
# check counts that cluster too without opening the data file.
qemu-img check --output=json d.qcow2 > qc.json
"$VIMG" --untrusted check --output=json d.qcow2 > vc.json
json_diff qc.json vc.json --null0 allocated-clusters fragmented-clusters \
    corruptions leaks || fail "--untrusted check differs (qemu-img != vimg)"

# The same name as a protocol name (equal length, patched in place).
"$PY" - d.qcow2 <<'PY'
import sys
b = bytearray(open(sys.argv[1], 'rb').read())
i = b.index(b'data-file.raw', 0, 65536)
b[i:i + 13] = b'nbd:localhost'
open(sys.argv[1], 'wb').write(b)
PY
"$VIMG" --untrusted map --output=json d.qcow2 > v.json
"$PY" - q.json v.json <<'PY' || fail "JSON map without offsets differs"
import json, sys
q, v = (json.load(open(p)) for p in sys.argv[1:3])
for e in q:
    e.pop('offset', None)
sys.exit(0 if q == v else 1)
PY
expect_status 1 "$VIMG" --untrusted map d.qcow2
grep -q "external, encrypted or compressed clusters" "$T/err" ||
    { cat "$T/err" >&2; fail "no message for the unmapped data"; }

# Compressed clusters: qemu-img and vimg both refuse the human map.
qemu-img create -q -f qcow2 c.qcow2 1M
qemu-io -c 'write -c -P 3 0 64k' c.qcow2 >/dev/null
if qemu-img map c.qcow2 >/dev/null 2>&1; then
    fail "qemu-img map of compressed clusters succeeded"
fi
expect_status 1 "$VIMG" map c.qcow2
grep -q "external, encrypted or compressed clusters" "$T/err" ||
    { cat "$T/err" >&2; fail "compressed: no message"; }
