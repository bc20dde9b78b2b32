# Several nbdcopy clients at once from `vimg serve -e 4` (multi-conn, so
# each nbdcopy also opens several connections): every copy is right.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/nbd.inc"
requires qemu-img qemu-io nbdcopy
make_chain
sha=$(qemu_sha "$T/top.qcow2" qcow2)
vserve "$T/s.sock" -t -r -e 4 -f qcow2 "$T/top.qcow2"
pids=""
for i in 1 2 3 4; do
    nbdcopy --connections=1 --requests=16 "$(uri "$T/s.sock")" "$T/c$i.raw" &
    pids="$pids $!"
done
for p in $pids; do wait "$p" || fail "an nbdcopy failed"; done
for i in 1 2 3 4; do
    [ "$(sha256sum < "$T/c$i.raw" | cut -d' ' -f1)" = "$sha" ] ||
        fail "copy $i differs"
done
# Multi-conn: one nbdcopy over 4 connections.
nbdcopy --connections=4 "$(uri "$T/s.sock")" "$T/m.raw"
[ "$(sha256sum < "$T/m.raw" | cut -d' ' -f1)" = "$sha" ] ||
    fail "4-connection copy differs"
exit 0
