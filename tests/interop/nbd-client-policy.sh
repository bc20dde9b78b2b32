# Only the command line may name nbd://: a qcow2 whose backing file is an
# nbd+unix:// name is refused by the open policy (no connection is made),
# and an image read over NBD never makes vimg open the local files its
# metadata names.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/nbd.inc"
requires qemu-img qemu-nbd nbdkit
kserve "$T/k.sock" memory 1M
qemu-img create -q -f qcow2 -u -b "nbd+unix:///?socket=$T/k.sock" -F raw \
    "$T/evil.qcow2" 1M
expect_status 1 "$VIMG" convert -O raw "$T/evil.qcow2" "$T/out.raw"
grep -q 'protocol' "$T/err" || fail "nbd: backing not refused: $(cat "$T/err")"
[ ! -e "$T/out.raw" ] || fail "output left behind"
# A qcow2 served as raw bytes, naming a local backing file by absolute
# path: vimg reports the name but does not open it.
printf 'secret' > "$T/local.raw"
qemu-img create -q -f qcow2 -b "$T/local.raw" -F raw "$T/remote.qcow2" 1M
qserve "$T/q.sock" -t -r -f raw "$T/remote.qcow2"
"$VIMG" info "$(uri "$T/q.sock")" > "$T/info"
grep -q "^backing file: $T/local.raw" "$T/info" || fail "$(cat "$T/info")"
expect_status 1 "$VIMG" convert -O raw "$(uri "$T/q.sock")" "$T/leak.raw"
grep -q 'not opened' "$T/err" || fail "backing opened: $(cat "$T/err")"
exit 0
