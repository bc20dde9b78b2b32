#!/bin/sh
# qcow (version 1) both ways against qemu-img: vimg's create, convert and
# convert -c output is byte-identical to qemu-img's (with and without a
# backing file, odd sizes); qemu-img's images (qemu-io writes, compressed
# clusters, backing files) read the same in vimg, with the same map and
# info; clusters vimg rewrites over compressed ones and over a backing file
# read back in qemu-img; check and measure answer as qemu-img does.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
. "$(dirname "$0")/vmdk.inc"
requires qemu-img qemu-io

cd "$T"
"$PY" - src.raw <<'PY'
import random, sys
r = random.Random(3)
text = b"".join(r.choice([b"qcow ", b"cluster ", b"\n", b"v1 "])
                for _ in range(400000))[:1 << 20]
# Text, zeros, random bytes (clusters that do not shrink), a partial last
# cluster.
data = text + bytes(1 << 20) + r.randbytes(300 << 10) + text[:777 << 10]
open(sys.argv[1], "wb").write(data + b"tail" * 128)
PY
qemu-img create -q -f raw base.raw 3M
qemu-io -f raw -c 'write -P 0x77 0 3M' base.raw > /dev/null
for size in 1000 64k 3M 10G; do
    qemu-img create -q -f qcow q.qcow $size
    "$VIMG" create -q -f qcow v.qcow $size
    cmp -s q.qcow v.qcow || fail "create $size differs from qemu-img's"
    qemu-img create -q -f qcow -b base.raw -F raw q.qcow $size
    "$VIMG" create -q -f qcow -b base.raw -F raw v.qcow $size
    cmp -s q.qcow v.qcow || fail "create -b, $size, differs"
done
for c in "" -c; do
    # qemu-img 7.2 exits 1 after convert -c -O qcow has written the whole
    # image: the final "end of file" write it makes is one qcow refuses.
    # shellcheck disable=SC2086
    qemu-img convert $c -f raw -O qcow src.raw q.qcow || [ "$c" = -c ]
    # shellcheck disable=SC2086
    "$VIMG" convert $c -f raw -O qcow src.raw v.qcow
    cmp -s q.qcow v.qcow || fail "convert $c differs from qemu-img's"
    same_guest qcow q.qcow
    same_map qcow q.qcow
done
# Compressed clusters rewritten in part and whole, by vimg: qemu-img reads
# what was written, and the rest of the cluster kept its data.
cp q.qcow w.qcow
printf 'partial!' > p.raw
truncate -s 5120 p.raw  # one cluster and a quarter
expect_status 0 "$VIMG" convert -n -f raw -O qcow p.raw w.qcow
cp src.raw src2.raw
dd if=p.raw of=src2.raw conv=notrunc status=none
qemu-img compare -q -f raw -F qcow src2.raw w.qcow ||
    fail "rewritten compressed clusters read wrong"
qemu-io -f qcow -c 'write -P 0x33 13000 3000' w.qcow > /dev/null
same_guest qcow w.qcow

# A backing chain made by qemu-img and written by both tools.
qemu-img create -q -f qcow -b base.raw -F raw ov.qcow 3M
qemu-io -f qcow -c 'write -P 0x12 1M 7k' ov.qcow > /dev/null
printf 'over' > o.raw
truncate -s 1024 o.raw
expect_status 0 "$VIMG" convert -n -f raw -O qcow -S 0 o.raw ov.qcow
same_guest qcow ov.qcow
same_map qcow ov.qcow
qemu-io -f qcow -c 'read -P 0x77 1024 1000k' ov.qcow | grep -q '^read' ||
    fail "the backing file shows through"
qemu-img info --output=json ov.qcow > q.json
"$VIMG" info --output=json ov.qcow > v.json
json_diff q.json v.json virtual-size cluster-size format backing-filename \
    full-backing-filename dirty-flag || fail "info differs"
qemu-img info ov.qcow > q.txt
"$VIMG" info ov.qcow > v.txt
diff q.txt v.txt >&2 || fail "human info differs"

# check and measure: qemu-img has neither for qcow.
expect_status 63 "$VIMG" check ov.qcow
grep -q 'does not support checks' err || fail "check: $(cat err)"
expect_status 1 "$VIMG" measure -O qcow --size 1G
# Refused options, and -b without -F as qemu-img 7.2 refuses it.
expect_status 1 "$VIMG" create -q -f qcow -o encryption=on x.qcow 1M
expect_status 1 "$VIMG" create -q -f qcow x.qcow 0
expect_status 1 "$VIMG" create -q -f qcow -b base.raw x.qcow 1M
grep -q 'without backing format' err || fail "$(cat err)"
[ ! -e x.qcow ] || fail "a refused create left a file"
exit 0
