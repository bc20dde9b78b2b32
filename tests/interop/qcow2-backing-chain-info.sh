#!/bin/sh
# `vimg info --backing-chain --output=json` lists the same images with the
# same formats, sizes and backing names as qemu-img, top first; data and
# map through a three-image chain agree.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
requires qemu-img qemu-io

qemu-img create -q -f raw "$T/base.raw" 6M
qemu-io -f raw -c 'write -P 1 0 6M' "$T/base.raw" >/dev/null
qemu-img create -q -f qcow2 -o compat=0.10 -b base.raw -F raw "$T/mid.qcow2"
qemu-io -c 'write -P 2 1M 1M' -c 'write -z 3M 64k' "$T/mid.qcow2" >/dev/null
qemu-img create -q -f qcow2 -o cluster_size=4k -b mid.qcow2 -F qcow2 \
    "$T/top.qcow2" 8M
qemu-io -c 'write -P 3 1536k 4k' -c 'write -z 0 4k' "$T/top.qcow2" >/dev/null

qemu-img info --backing-chain --output=json "$T/top.qcow2" > "$T/q.json"
"$VIMG" info --backing-chain --output=json "$T/top.qcow2" > "$T/v.json"
"$PY" - "$T/q.json" "$T/v.json" <<'PY' || fail "backing chains differ"
import json, sys
q, v = (json.load(open(p)) for p in sys.argv[1:3])
assert isinstance(v, list) and len(v) == len(q) == 3, (len(q), v)
for a, b in zip(q, v):
    for k in ("filename", "format", "virtual-size", "backing-filename",
              "backing-filename-format", "full-backing-filename",
              "cluster-size"):
        assert a.get(k) == b.get(k), (k, a.get(k), b.get(k))
PY
same_data qcow2 "$T/top.qcow2"
same_map qcow2 "$T/top.qcow2"
