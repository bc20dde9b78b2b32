#!/bin/sh
# A VHDX whose writer stopped after its log entry reached the disk and
# before the BAT did: vimg reads it (read-only) as qemu-img reads it once
# qemu-img check -r all has replayed the log, without writing a byte;
# vimg check reports the log, vimg check -r all replays it as qemu-img
# does; a read-write open without -r is refused.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
. "$(dirname "$0")/vhd.inc"
requires qemu-img qemu-io

img=$T/dirty.vhdx
qemu-img create -q -f vhdx "$img" 20M
qemu-io -f vhdx -c 'write -P 0x11 0 64k' "$img" >/dev/null
vhdx_dirty "$img" >/dev/null
sum=$(sha256sum < "$img")

# qemu-img itself refuses to read it until the log is replayed.
cp "$img" "$T/q.vhdx"
qemu-img check -q -r all "$T/q.vhdx" >/dev/null
qemu-img convert -f vhdx -O raw "$T/q.vhdx" "$T/q.raw"
"$VIMG" convert -f vhdx -O raw "$img" "$T/v.raw"
cmp -s "$T/q.raw" "$T/v.raw" || fail "in-memory replay reads other data"
"$PY" -c 'import sys; b=open(sys.argv[1],"rb").read(); assert b[8<<20:16<<20] == b"\x5c" * (8<<20)' "$T/v.raw" ||
    fail "the logged block is not there"
"$VIMG" info "$img" >/dev/null
[ "$(sha256sum < "$img")" = "$sum" ] || fail "a read-only open wrote"

expect_status 2 "$VIMG" check -f vhdx "$img"
grep -q 'never replayed' "$T/err" || fail "check does not name the log"
[ "$(sha256sum < "$img")" = "$sum" ] || fail "check wrote"

expect_status 1 "$VIMG" convert -n -f raw -O vhdx "$T/q.raw" "$img"
grep -q 'log must be replayed' "$T/err" || fail "write open: $(cat "$T/err")"
[ "$(sha256sum < "$img")" = "$sum" ] || fail "a refused write open wrote"

cp "$img" "$T/v.vhdx"
"$VIMG" check -r all -f vhdx "$T/v.vhdx" > "$T/vc.txt"
cp "$img" "$T/q2.vhdx"
qemu-img check -r all -f vhdx "$T/q2.vhdx" > "$T/qc.txt"
diff "$T/qc.txt" "$T/vc.txt" >&2 || fail "check -r all output differs"
qemu-img check -q -f vhdx "$T/v.vhdx" || fail "qemu-img check after repair"
qemu-img compare -q -f vhdx -F vhdx "$T/q.vhdx" "$T/v.vhdx" ||
    fail "vimg's replay differs from qemu-img's"
if has_pyvhdi; then
    [ "$(vhdi_sha "$T/v.vhdx")" = "20971520 $(sha256sum < "$T/q.raw" | cut -d' ' -f1)" ] ||
        fail "libvhdi reads other data after the replay"
fi
