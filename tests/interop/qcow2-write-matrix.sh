#!/bin/sh
# Images written by vimg over the whole option grid (create, convert from
# raw, convert onto a backing file with -B) pass `qemu-img check` without
# errors or leaks, compare identical with qemu-img, and qemu-io reads the
# patterns; with -B only what differs from the backing file is written.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
requires qemu-img qemu-io

# Source: patterns, a run of zeros written as data, and holes.
qemu-img create -q -f raw "$T/src.raw" 8M
qemu-io -f raw -c 'write -P 0x11 0 100k' -c 'write -P 0x55 1M 1M' \
    -c 'write -P 0x22 2095104 6k' -c 'write -P 0 3M 64k' \
    -c 'write -P 0x33 5M 1000k' "$T/src.raw" >/dev/null
# Backing for -B: shares the 0x55 MiB with the source.
qemu-img create -q -f raw "$T/base.raw" 8M
qemu-io -f raw -c 'write -P 0x55 1M 1M' -c 'write -P 0x66 6M 2M' \
    "$T/base.raw" >/dev/null

reads() {
    qemu-io -r -f qcow2 -c 'read -P 0x11 0 100k' -c 'read -P 0x55 1M 1046528' \
        -c 'read -P 0x22 2095104 6k' -c 'read -P 0 3M 64k' \
        -c 'read -P 0x33 5M 1000k' -c 'read -P 0 6266880 2121728' \
        "$1" > "$T/io.out" || fail "qemu-io failed on $1"
    ! grep -q 'Pattern verification failed' "$T/io.out" ||
        fail "qemu-io sees wrong data in $1"
}

qcow2_grid | while read -r compat cs rb; do
    o="compat=$compat,cluster_size=$cs,refcount_bits=$rb"
    rm -f "$T"/*.qcow2

    "$VIMG" create -q -f qcow2 -o "$o" "$T/empty.qcow2" 8M
    qemu_clean "$T/empty.qcow2"
    qemu-img compare -q -f raw -F qcow2 "$T/base.raw" "$T/empty.qcow2" &&
        fail "empty image compares equal to data"
    qemu-img create -q -f raw "$T/zero.raw" 8M
    qemu-img compare -q -f raw -F qcow2 "$T/zero.raw" "$T/empty.qcow2" ||
        fail "new image does not read as zeros ($o)"

    "$VIMG" convert -f raw -O qcow2 -o "$o" "$T/src.raw" "$T/conv.qcow2"
    qemu_clean "$T/conv.qcow2"
    qemu-img compare -q -f raw -F qcow2 "$T/src.raw" "$T/conv.qcow2" ||
        fail "convert differs ($o)"
    reads "$T/conv.qcow2"

    "$VIMG" convert -W -m 2 -f raw -O qcow2 -o "$o" "$T/src.raw" \
        "$T/convw.qcow2"
    qemu_clean "$T/convw.qcow2"
    qemu-img compare -q -f raw -F qcow2 "$T/src.raw" "$T/convw.qcow2" ||
        fail "convert -W differs ($o)"

    "$VIMG" convert -f raw -O qcow2 -o "$o" -B "$T/base.raw" -F raw \
        "$T/src.raw" "$T/ovl.qcow2"
    qemu_clean "$T/ovl.qcow2"
    qemu-img compare -q -f raw -F qcow2 "$T/src.raw" "$T/ovl.qcow2" ||
        fail "convert -B differs ($o)"
    reads "$T/ovl.qcow2"
    qemu-img info --output=json "$T/ovl.qcow2" > "$T/info.json"
    [ "$(json_path "$T/info.json" backing-filename)" = "$T/base.raw" ] ||
        fail "convert -B did not record the backing file"
    # Clusters equal to the backing file are left to it (with 2M clusters
    # the first one also holds data that differs).
    if [ "$cs" != 2M ]; then
        qemu-img map --output=json "$T/ovl.qcow2" | "$PY" -c '
import json, sys
for e in json.load(sys.stdin):
    if e["start"] < (3 << 19) and e["start"] + e["length"] > (1 << 20) \
            and e["depth"] == 0:
        sys.exit("overlay allocates data equal to the backing file")
' || fail "convert -B copied unchanged data ($o)"
    fi
    echo "ok: $o"
done
