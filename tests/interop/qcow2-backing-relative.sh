#!/bin/sh
# A relative backing name is resolved against the overlay's folder, not
# the working directory: reading from elsewhere sees the backing data.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
requires qemu-img qemu-io

mkdir -p "$T/images/sub" "$T/elsewhere"
qemu-img create -q -f qcow2 "$T/images/sub/base.qcow2" 4M
qemu-io -c 'write -P 0x5a 0 4M' "$T/images/sub/base.qcow2" >/dev/null
(cd "$T/images" && "$VIMG" create -q -f qcow2 -b sub/base.qcow2 \
    -F qcow2 top.qcow2)
qemu-img info --output=json "$T/images/top.qcow2" > "$T/i.json"
[ "$(json_get "$T/i.json" backing-filename)" = sub/base.qcow2 ] ||
    fail "backing name not stored as given"
qemu-io -c 'write -P 0x11 1M 64k' "$T/images/top.qcow2" >/dev/null
cd "$T/elsewhere"
same_data qcow2 ../images/top.qcow2
same_map qcow2 ../images/top.qcow2
"$VIMG" info --output=json ../images/top.qcow2 > "$T/v.json"
qemu-img info --output=json ../images/top.qcow2 > "$T/q.json"
[ "$(json_get "$T/v.json" full-backing-filename)" = \
  "$(json_get "$T/q.json" full-backing-filename)" ] ||
    fail "full-backing-filename differs"
