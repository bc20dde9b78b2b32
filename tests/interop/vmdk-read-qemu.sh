#!/bin/sh
# Images qemu-img makes and qemu-io writes, in every VMDK subformat qemu-img
# creates (and with zeroed grains), read by vimg: the same guest bytes, the
# same map, and info identical to qemu-img's, human and JSON.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
. "$(dirname "$0")/vmdk.inc"
requires qemu-img qemu-io

same_info() {
    qemu-img info -U "$1" > "$T/q.txt"
    "$VIMG" info -U "$1" > "$T/v.txt"
    diff "$T/q.txt" "$T/v.txt" >&2 || fail "human info of $1 differs"
    qemu-img info -U --output=json "$1" > "$T/q.json"
    "$VIMG" info -U --output=json "$1" > "$T/v.json"
    "$PY" - "$T/q.json" "$T/v.json" <<'PY' || fail "JSON info of $1 differs"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
if a != b:
    print(json.dumps(a, sort_keys=True), json.dumps(b, sort_keys=True),
          sep="\n", file=sys.stderr)
    sys.exit(1)
PY
}

cd "$T"
for sub in monolithicSparse monolithicFlat twoGbMaxExtentSparse \
           twoGbMaxExtentFlat streamOptimized zeroed; do
    o="subformat=$sub"
    [ $sub = zeroed ] && o="zeroed_grain=on"
    rm -f d*.vmdk
    # 2 GiB + 3 MiB: the split formats get two extents.
    qemu-img create -q -f vmdk -o "$o" d.vmdk 2051M
    if [ $sub = streamOptimized ]; then
        # Streams take whole grains, once, appended in order.
        qemu-io -f vmdk -c 'write -P 0x5a 0 128k' -c 'write -P 0x11 1M 64k' \
            -c 'write -P 0x22 2047M 2M' d.vmdk > /dev/null
    else
        qemu-io -f vmdk -c 'write -P 0x5a 1000k 300k' \
            -c 'write -P 0x11 2047M 2M' -c 'write -P 0x22 2050M 512' \
            d.vmdk > /dev/null
    fi
    [ $sub = zeroed ] && qemu-io -f vmdk -c 'write -z 1024k 128k' d.vmdk \
        > /dev/null
    same_guest vmdk d.vmdk
    same_map vmdk d.vmdk
    same_info d.vmdk
done
# ESX's vmfs descriptor (qemu-img reads it but cannot make one), with a
# RDONLY flat extent at an offset and a ZERO extent beside it.
head -c 1M /dev/urandom > v-flat.img
cat > v.vmdk <<'DESC'
# Disk DescriptorFile
version=1
encoding="UTF-8"
CID=fffffffe
parentCID=ffffffff
isNativeSnapshot="no"
createType="vmfs"

# Extent description
RW 2048 VMFS "v-flat.img"

# The Disk Data Base
#DDB

ddb.adapterType = "lsilogic"
ddb.virtualHWVersion = "13"
DESC
same_guest vmdk v.vmdk
same_map vmdk v.vmdk
same_info v.vmdk

# RDONLY and ZERO extents (qemu-img skips such lines, so vimg alone):
# the flat part reads from its offset, the zero part as zeros, and writes
# to either are refused.
cat > rz.vmdk <<'DESC'
# Disk DescriptorFile
version=1
CID=12345678
parentCID=ffffffff
createType="monolithicFlat"
RDONLY 1024 FLAT "v-flat.img" 1024
RW 512 ZERO
DESC
"$VIMG" convert -O raw rz.vmdk rz.raw
{ tail -c 512k v-flat.img; head -c 256k /dev/zero; } | cmp -s - rz.raw ||
    fail "RDONLY/ZERO extents read wrong"
printf 'x' > x.raw
expect_status 1 "$VIMG" convert -n -f raw -O vmdk x.raw rz.vmdk
grep -q 'read-only' err || fail "write to RDONLY: $(cat err)"

# A name with a folder: extent paths resolve against it, as qemu-img shows.
mkdir sub
qemu-img create -q -f vmdk -o subformat=twoGbMaxExtentFlat sub/f.vmdk 3M
same_info "$T/sub/f.vmdk"
same_info sub/f.vmdk
exit 0
