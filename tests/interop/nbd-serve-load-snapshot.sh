#!/bin/sh
# vimg serve -l exports an internal snapshot read-only, as qemu-nbd -l
# does: the same bytes and map for each way of naming it, writes refused,
# the image unchanged; a snapshot that does not exist is refused.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/nbd.inc"
requires qemu-img qemu-io qemu-nbd
make_chain
qemu-img snapshot -c one "$T/top.qcow2"
qemu-io -c 'write -P 0x44 0 2M' "$T/top.qcow2" >/dev/null
"$VIMG" snapshot -c two "$T/top.qcow2"
qemu-io -c 'write -P 0x55 3M 1M' "$T/top.qcow2" >/dev/null
before=$(qemu_sha "$T/top.qcow2" qcow2)
for spec in one 1 snapshot.name=two snapshot.id=2,snapshot.name=two; do
    qserve "$T/q.sock" -r -l "$spec" -f qcow2 "$T/top.qcow2"
    vserve "$T/v.sock" -l "$spec" -f qcow2 "$T/top.qcow2"
    qemu-img convert -f raw -O raw "$(uri "$T/q.sock")" "$T/q.raw"
    qemu-img convert -f raw -O raw "$(uri "$T/v.sock")" "$T/v.raw"
    cmp "$T/q.raw" "$T/v.raw" || fail "-l $spec: contents differ"
    stop_servers || true
    vserve "$T/v.sock" -l "$spec" -f qcow2 "$T/top.qcow2"
    expect_status 1 qemu-io -f raw -c 'write 0 4k' "$(uri "$T/v.sock")"
    grep -qi "read-only\|permission\|not permitted" "$T/out" "$T/err" ||
        fail "-l $spec: the write was not refused"
    stop_servers || true
done
qemu-img convert -l one -O raw "$T/top.qcow2" "$T/one.raw"
vserve "$T/v.sock" -l one -f qcow2 "$T/top.qcow2"
qemu-img convert -f raw -O raw "$(uri "$T/v.sock")" "$T/v.raw"
cmp "$T/one.raw" "$T/v.raw" || fail "-l one is not snapshot one"
stop_servers || true
expect_status 1 "$VIMG" serve -k "$T/x.sock" -l nope "$T/top.qcow2"
grep -q "Can't find snapshot" "$T/err" || fail "no message for a missing one"
expect_status 1 "$VIMG" serve -k "$T/x.sock" -s -l one "$T/top.qcow2"
[ "$(qemu_sha "$T/top.qcow2" qcow2)" = "$before" ] || fail "image changed"
qemu-img check -q "$T/top.qcow2" || fail "image not clean"
echo "PASS"
