#!/bin/sh
# Committing into a raw base: the same bytes as qemu-img commit gives, and
# only what the overlay holds is touched, so a 64 GiB sparse base takes a
# moment and stays sparse (zeroed ranges become holes, not written
# zeros). A base whose format was only guessed is refused.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
requires qemu-img qemu-io

for tool in q v; do
    mkdir "$T/$tool"
    qemu-img create -q -f raw "$T/$tool/base.raw" 64G
    qemu-io -f raw -c 'write -P 0x11 1G 2M' -c 'write -P 0x12 40G 1M' \
        "$T/$tool/base.raw" >/dev/null
    qemu-img create -q -f qcow2 -b base.raw -F raw "$T/$tool/top.qcow2"
    qemu-io -c 'write -P 0x21 1G 512k' -c 'write -z 1025M 512k' \
        -c 'write -P 0x22 63G 1M' "$T/$tool/top.qcow2" >/dev/null
done
before=$(du_k "$T/v/base.raw")
qemu-img commit -q "$T/q/top.qcow2"
"$VIMG" commit -q "$T/v/top.qcow2"
qemu-img compare -q -f raw -F raw "$T/q/base.raw" "$T/v/base.raw" ||
    fail "raw bases differ"
after=$(du_k "$T/v/base.raw")
[ $((after - before)) -le 2048 ] ||
    fail "base grew by $((after - before)) KiB for 1.5 MiB of data"
qemu-img compare -q "$T/q/top.qcow2" "$T/v/top.qcow2" ||
    fail "overlays read differently"
qemu_clean "$T/v/top.qcow2"
[ "$(qemu-img map --output=json "$T/v/top.qcow2" | grep -c '"depth": 0')" \
    = 0 ] || fail "top not emptied"

# A backing file whose format the overlay does not record is probed;
# vimg writes no file whose format it guessed to be raw. (qemu-img 7.2
# makes no such overlay: the backing format extension becomes an unknown
# one here.)
qemu-img create -q -f raw "$T/g.raw" 1M
qemu-img create -q -f qcow2 -b g.raw -F raw "$T/g.qcow2" 1M
"$PY" - "$T/g.qcow2" <<'PY'
import struct, sys
f = open(sys.argv[1], "r+b")
b = f.read(65536)
i = b.index(struct.pack(">I", 0xe2792aca))
f.seek(i)
f.write(struct.pack(">I", 0x7e570001))
PY
qemu-io -c 'write -P 1 0 64k' "$T/g.qcow2" >/dev/null
expect_status 1 "$VIMG" commit "$T/g.qcow2"
grep -q "guessed to be raw" "$T/err" || { cat "$T/err" >&2; fail "no reason given"; }
cmp -n 65536 "$T/g.raw" /dev/zero || fail "guessed raw base written"
echo "PASS"
