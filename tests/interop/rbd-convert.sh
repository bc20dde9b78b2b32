# rbd: images on a one-node Ceph cluster of the test's own, against
# qemu-img (through qemu-block-extra's rbd driver) and the rbd tool:
# qcow2 into RBD and back agrees with qemu-img byte for byte, `rbd export`
# of what vimg wrote is the source, `rbd du` shows the holes stayed holes,
# an RBD image into qcow2 allocates what qemu-img's copy allocates, map
# and info answer as qemu-img does, -o cluster_size is the object size,
# qcow2 on RBD grows as it is written, write-zeroes frees whole objects,
# and block status without fast-diff gives `rbd diff`'s exact extents.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/ceph.inc"
. "$(dirname "$0")/qcow2.inc"
requires qemu-img qemu-io
requires_qemu_rbd
ceph_start

# Data inside objects, across an object boundary (4 MiB objects), a zero
# cluster over data, and the disk's last 4 KiB.
qemu-img create -q -f qcow2 "$T/src.qcow2" 200M
qemu-io -f qcow2 -c 'write -P 0x11 0 1M' -c 'write -P 0x22 5188k 4k' \
    -c 'write -P 0x33 38M 4M' -c 'write -P 0x44 100M 1M' \
    -c 'write -z 100M 64k' -c 'write -P 0x55 204796k 4k' \
    "$T/src.qcow2" > /dev/null
src_sha=$(qemu_sha "$T/src.qcow2" qcow2)

# qcow2 into RBD, by both tools.
"$VIMG" convert -O raw "$T/src.qcow2" rbd:rbd/v
qemu-img convert -O raw "$T/src.qcow2" rbd:rbd/q
[ "$(rbd_sha rbd/v)" = "$src_sha" ] || fail "rbd export of vimg's image differs from the source"
[ "$(rbd_sha rbd/q)" = "$src_sha" ] || fail "rbd export of qemu-img's image differs"
[ "$(qemu_sha rbd:rbd/v raw)" = "$src_sha" ] || fail "qemu-img reads vimg's image differently"
# Holes stayed holes: the objects holding data, no more (0-4M, 4-8M,
# 36-40M, 40-44M, 100-104M, 196-200M), as in qemu-img's copy.
[ "$(rbd_used rbd/v)" = $((6 * 4194304)) ] || fail "rbd du: $(rbd_used rbd/v) bytes used"
[ "$(rbd_used rbd/v)" = "$(rbd_used rbd/q)" ] || fail "rbd du differs from qemu-img's copy"
! rbd ls | grep -q 'vimg-' || fail "a temporary image was left: $(rbd ls)"

# map and info as qemu-img answers them (the filename aside: qemu-img
# writes json:{...} for rbd: names).
for fmt in human json; do
    "$VIMG" map --output=$fmt rbd:rbd/v > "$T/vm"
    qemu-img map --output=$fmt rbd:rbd/v | sed 's|json:{.*}|rbd:rbd/v|' > "$T/qm"
    diff "$T/qm" "$T/vm" || fail "map --output=$fmt differs from qemu-img's"
done
"$VIMG" info --output=json rbd:rbd/v > "$T/vi"
qemu-img info --output=json rbd:rbd/v > "$T/qi"
json_diff "$T/qi" "$T/vi" virtual-size cluster-size format dirty-flag actual-size ||
    fail "info differs from qemu-img's"
"$VIMG" info rbd:rbd/v | grep -q '^disk size: unavailable$' || fail "info: disk size"

# RBD into qcow2: the same bytes, and only the allocated extents copied
# (qemu-img's copy allocates the same clusters).
"$VIMG" convert -O qcow2 rbd:rbd/q "$T/v.qcow2"
qemu-img convert -O qcow2 rbd:rbd/q "$T/q.qcow2"
qemu-img compare -q "$T/v.qcow2" "$T/src.qcow2" || fail "RBD -> qcow2 bytes"
qemu-img check -q "$T/v.qcow2" || fail "RBD -> qcow2: check"
qemu-img map --output=json "$T/v.qcow2" | grep '"data": true' | sed 's/"offset": [0-9]*//' > "$T/vmap"
qemu-img map --output=json "$T/q.qcow2" | grep '"data": true' | sed 's/"offset": [0-9]*//' > "$T/qmap"
diff "$T/qmap" "$T/vmap" || fail "RBD -> qcow2 allocates differently from qemu-img"

# -o cluster_size is the object size, as for qemu-img.
"$VIMG" create -q -f raw -o cluster_size=1M rbd:rbd/c 100M
qemu-img create -q -f raw -o cluster_size=1M rbd:rbd/qc 100M
for i in c qc; do
    rbd info --format json rbd/$i | python3 -c 'import json,sys; i=json.load(sys.stdin); print(i["size"], i["object_size"])'
done > "$T/sizes"
[ "$(sort -u "$T/sizes")" = "104857600 1048576" ] || fail "create: $(cat "$T/sizes")"
expect_status 1 "$VIMG" create -f raw -o cluster_size=3M rbd:rbd/bad 1M
grep -q 'power of 2' "$T/err" || fail "cluster_size=3M: $(cat "$T/err")"

# qcow2 on RBD: the image grows as clusters are appended; qemu-img
# reads and checks it.
"$VIMG" convert -O qcow2 "$T/src.qcow2" rbd:rbd/qcow
qemu-img check -q -f qcow2 rbd:rbd/qcow || fail "qcow2 on RBD: check"
qemu-img compare -q -f qcow2 -F qcow2 rbd:rbd/qcow "$T/src.qcow2" || fail "qcow2 on RBD: bytes"

# -n into an existing image full of data: the source's zero runs become
# write-zeroes, which drop whole objects.
head -c 32M /dev/urandom > "$T/full.raw"
rbd import --no-progress "$T/full.raw" rbd/n 2>/dev/null
qemu-img create -q -f qcow2 "$T/sparse.qcow2" 32M
qemu-io -f qcow2 -c 'write -P 0x66 9M 64k' "$T/sparse.qcow2" > /dev/null
"$VIMG" convert -n -O raw "$T/sparse.qcow2" rbd:rbd/n
[ "$(rbd_sha rbd/n)" = "$(qemu_sha "$T/sparse.qcow2" qcow2)" ] || fail "-n: bytes"
[ "$(rbd_used rbd/n)" = 4194304 ] || fail "-n: zeros left $(rbd_used rbd/n) bytes used"

# Without fast-diff librbd lists each object's extents: vimg's map is
# what `rbd diff` lists, merged.
rbd create --size 64M --image-feature layering rbd/nf
qemu-img create -q -f qcow2 "$T/nf.qcow2" 64M
qemu-io -f qcow2 -c 'write -P 0x77 1M 64k' -c 'write -P 0x77 1088k 64k' \
    -c 'write -P 0x78 20M 8k' "$T/nf.qcow2" > /dev/null
"$VIMG" convert -n -O raw "$T/nf.qcow2" rbd:rbd/nf
rbd diff --format json rbd/nf | python3 -c '
import json, sys
out = []
for e in json.load(sys.stdin):
    if out and out[-1][0] + out[-1][1] == e["offset"]:
        out[-1][1] += e["length"]
    else:
        out.append([e["offset"], e["length"]])
for o, l in out:
    print("%d %d" % (o, l))' > "$T/rdiff"
"$VIMG" map --output=json rbd:rbd/nf | python3 -c '
import json, sys
for e in json.load(sys.stdin):
    if e["data"]:
        print("%d %d" % (e["start"], e["length"]))' > "$T/vdiff"
diff "$T/rdiff" "$T/vdiff" || fail "map without fast-diff differs from rbd diff"
[ "$(wc -l < "$T/vdiff")" = 2 ] || fail "map without fast-diff: $(cat "$T/vdiff")"
exit 0
