#!/bin/sh
# QED consistency: check counts what qemu-img check counts on damaged
# images (tables and clusters past the end of the file, a cluster
# referenced twice, leaks), and check -r all repairs them to the same
# bytes; the need-check flag is set while vimg has allocated without
# closing (a server's client wrote), cleared on a clean close, left set by
# a crash, and a writer that opens such an image repairs it first, as QEMU
# does; damage that cannot be repaired is refused for writing.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
. "$(dirname "$0")/nbd.inc"
requires qemu-img qemu-io

need_check() {
    "$PY" -c 'import sys; print(open(sys.argv[1], "rb").read(17)[16] & 2)' "$1"
}
# damage IN OUT KIND: OUT is IN with one kind of damage, at offsets read
# from IN's own header and first tables.
damage() {
    "$PY" - "$@" <<'PY'
import struct, sys
src, dst, kind = sys.argv[1:4]
b = bytearray(open(src, "rb").read())
cs = struct.unpack_from("<I", b, 4)[0]
l1 = struct.unpack_from("<Q", b, 40)[0]
l2 = struct.unpack_from("<Q", b, l1)[0]
if kind == "past-eof":         # a data cluster and an L2 table past EOF
    struct.pack_into("<Q", b, l2, 1 << 40)
    struct.pack_into("<Q", b, l1 + 8, 1 << 40)
elif kind == "twice":          # one data cluster referenced twice
    struct.pack_into("<Q", b, l2 + 8 * 40, struct.unpack_from("<Q", b, l2)[0])
elif kind == "on-l1":          # a data cluster on the L1 table
    struct.pack_into("<Q", b, l2 + 8 * 40, l1)
elif kind == "leak":           # three clusters nobody references
    b += bytes(3 * cs)
elif kind == "dirty":          # left by a crash: flag set, a bad entry
    b[16] |= 2
    struct.pack_into("<Q", b, l2 + 8 * 41, 1 << 40)
elif kind == "dirty-twice":    # left by a crash, damage beyond repair
    b[16] |= 2
    struct.pack_into("<Q", b, l2 + 8 * 40, struct.unpack_from("<Q", b, l2)[0])
open(dst, "wb").write(b)
PY
}

cd "$T"
qemu-img create -q -f qed p.qed 8M
qemu-io -f qed -c 'write -P 0x42 0 100k' -c 'write -z 1M 64k' \
    -c 'write -P 0x43 5M 4k' p.qed > /dev/null
for kind in past-eof twice on-l1 leak; do
    damage p.qed d.qed $kind
    for fix in "" "-r all" "-r leaks"; do
        cp d.qed q.qed
        cp d.qed v.qed
        set +e
        # shellcheck disable=SC2086
        qemu-img check $fix -f qed --output=json q.qed > q.json 2>&1
        qrc=$?
        # shellcheck disable=SC2086
        "$VIMG" check $fix -f qed --output=json v.qed > v.json 2>&1
        vrc=$?
        set -e
        [ $qrc = $vrc ] || fail "$kind $fix: exit $vrc, qemu-img $qrc"
        json_diff q.json v.json --null0 corruptions corruptions-fixed leaks \
            check-errors total-clusters allocated-clusters \
            fragmented-clusters || fail "$kind $fix: counts differ"
        cmp -s q.qed v.qed || fail "$kind $fix: repaired bytes differ"
    done
done
[ "$(json_get q.json leaks)" = 3 ] || fail "leaks not counted"
damage p.qed d.qed past-eof
expect_status 2 "$VIMG" check -f qed d.qed
grep -q '^2 errors were found on the image' out || fail "$(cat out)"

# The flag while a server has written, and after it closed cleanly.
"$VIMG" create -q -f qed n.qed 8M
vserve s.sock -t -f qed n.qed
qemu-io -f raw -c 'write -P 0x44 0 100k' "$(uri s.sock)" > /dev/null
[ "$(need_check n.qed)" = 2 ] || fail "need-check not set while dirty"
# info reports no dirty flag for QED, as qemu-img 7.2 does not.
"$VIMG" info -U --output=json n.qed > v.json
qemu-img info -U --output=json n.qed > q.json
json_diff q.json v.json dirty-flag || fail "info's dirty flag differs"
stop_servers
[ "$(need_check n.qed)" = 0 ] || fail "need-check left after close"
qemu-img check -q n.qed || fail "not clean after close"
# A crash leaves it set; readers leave it; a writer repairs first.
vserve s.sock -t -f qed n.qed
qemu-io -f raw -c 'write -P 0x45 2M 64k' "$(uri s.sock)" > /dev/null
for p in $servers; do kill -9 "$p"; wait "$p" 2>/dev/null || true; done
servers=""
[ "$(need_check n.qed)" = 2 ] || fail "need-check not left by a crash"
"$VIMG" convert -f qed -O raw n.qed n.raw
[ "$(need_check n.qed)" = 2 ] || fail "a reader cleared need-check"
damage n.qed c.qed dirty
cp c.qed cq.qed
printf 'x' > x.raw
truncate -s 512 x.raw
"$VIMG" convert -n -f raw -O qed x.raw c.qed
qemu-io -f qed -c 'write -P 0 0 512' -c 'write -P 0x78 0 1' cq.qed > /dev/null
cmp -s c.qed cq.qed || fail "repair on open differs from QEMU's"
[ "$(need_check c.qed)" = 0 ] || fail "need-check not cleared by repair"
qemu-img check -q c.qed || fail "not clean after repair on open"
# A partial write into a zero cluster over a backing file fills the rest
# of the cluster with zeros, as the spec says (QEMU 7.2 copies the backing
# file's bytes there instead).
qemu-img create -q -f raw base.raw 4M
qemu-io -f raw -c 'write -P 0x77 0 4M' base.raw > /dev/null
qemu-img create -q -f qed -b base.raw -F raw z.qed 4M
qemu-io -f qed -c 'write -z 1M 64k' z.qed > /dev/null
vserve s.sock -f qed z.qed
qemu-io -f raw -c 'write -P 0x55 1M 4k' "$(uri s.sock)" > /dev/null
wait $servers
servers=""
qemu-io -f qed -c 'read -P 0x55 1M 4k' -c 'read -P 0 1028k 60k' \
    -c 'read -P 0x77 1088k 64k' z.qed > z.out
[ "$(grep -c '^read' z.out)" = 3 ] || fail "zero cluster fill: $(cat z.out)"
qemu-img check -q z.qed || fail "not clean after a write into a zero cluster"

damage n.qed c.qed dirty-twice
cp c.qed c0.qed
expect_status 1 "$VIMG" convert -n -f raw -O qed x.raw c.qed
grep -q 'c.qed: the image was not closed cleanly and has 1 corruptions' err ||
    fail "$(cat err)"
cmp -s c.qed c0.qed || fail "an unrepairable image was written"
exit 0
