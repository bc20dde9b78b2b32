# vimg's nbd:// images against vimg serve and qemu-nbd: info, map and
# check answer as qemu-img does on the same URI, convert and compare
# work in both directions, writes go through with -f raw, and a read-only
# export refuses a writer.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/nbd.inc"
requires qemu-img qemu-io qemu-nbd
make_chain
vserve "$T/v.sock" -t -r -f qcow2 "$T/top.qcow2"
v=$(uri "$T/v.sock")
for fmt in human json; do
    "$VIMG" map --output=$fmt "$v" | sed "s|$T/v.sock|SOCK|" > "$T/vm"
    qemu-img map --output=$fmt -f raw "$v" | sed "s|nbd+unix://?socket=$T/v.sock|nbd+unix:///?socket=SOCK|" > "$T/qm"
    diff "$T/qm" "$T/vm" || fail "map --output=$fmt differs from qemu-img's"
done
expect_status 63 "$VIMG" check "$v"
"$VIMG" compare "$v" "$T/top.qcow2" || fail "compare"
"$VIMG" convert -O qcow2 "$v" "$T/copy.qcow2"
qemu-img compare "$T/copy.qcow2" "$T/top.qcow2" || fail "convert"
# Writing needs -f raw (probing never picks raw for a writer) and a
# writable export.
expect_status 1 "$VIMG" convert -n -O raw "$T/copy.qcow2" "$v"
grep -q 'read-only' "$T/err" || fail "$(cat "$T/err")"
qemu-img create -q -f qcow2 "$T/w.qcow2" 64M
qserve "$T/q.sock" -t -f qcow2 "$T/w.qcow2"
"$VIMG" convert -O raw "$T/top.qcow2" "$(uri "$T/q.sock")"
stop_servers
qemu-img check -q "$T/w.qcow2" || fail "target not clean"
qemu-img compare "$T/w.qcow2" "$T/top.qcow2" || fail "bytes written"
exit 0
