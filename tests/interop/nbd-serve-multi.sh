# Several nbdcopy clients at once from `vimg serve -e 4` (multi-conn, so
# each nbdcopy also opens several connections): every copy is right; and
# nbdcopy writing over four connections into a served qcow2.
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
# Parallel writers: nbdcopy over 4 connections (16 requests each) into a
# served qcow2; the image is clean and holds the bytes.
qemu-img create -q -f qcow2 "$T/w.qcow2" 64M
vserve "$T/w.sock" -e 4 -f qcow2 "$T/w.qcow2"
nbdcopy --connections=4 --requests=16 --request-size=65536 "$T/m.raw" \
    "$(uri "$T/w.sock")"
stop_servers
qemu-img check -q "$T/w.qcow2" || fail "written image not clean"
qemu-img compare -q -f raw -F qcow2 "$T/m.raw" "$T/w.qcow2" ||
    fail "parallel writes differ"
exit 0
