#!/bin/sh
# vimg check on VMDK images answers as qemu-img check does: clean images of
# every subformat pass (exit 0), a grain pointing past the end of its file
# is reported with QEMU's line and fails the check (exit 1), and repair is
# not offered (exit 63).
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
requires qemu-img qemu-io

cd "$T"
for sub in monolithicSparse monolithicFlat twoGbMaxExtentSparse \
           streamOptimized; do
    rm -f c*.vmdk
    "$VIMG" create -q -f vmdk -o subformat=$sub c.vmdk 3M
    head -c 200k /dev/urandom > d.raw
    "$VIMG" convert -n -f raw -O vmdk d.raw c.vmdk
    expect_status 0 "$VIMG" check c.vmdk
    grep -q 'No errors were found on the image.' out || fail "$sub: $(cat out)"
    qemu-img check -q c.vmdk || fail "$sub: qemu-img check"
done

qemu-img create -q -f vmdk m.vmdk 1M
qemu-io -f vmdk -c 'write -P 1 0 128k' m.vmdk > /dev/null
"$PY" - m.vmdk bad.vmdk <<'PY'
import struct, sys
b = bytearray(open(sys.argv[1], "rb").read())
gd = struct.unpack_from("<Q", b, 56)[0]
gt = struct.unpack_from("<I", b, gd * 512)[0]
struct.pack_into("<I", b, gt * 512 + 4, 0x7fffff)
open(sys.argv[2], "wb").write(b)
PY
set +e
qemu-img check bad.vmdk > q.out 2>&1
qrc=$?
set -e
expect_status $qrc "$VIMG" check bad.vmdk
grep -q '^ERROR: cluster offset for sector 128 points after EOF$' err ||
    fail "report: $(cat err)"
grep -q '^ERROR: cluster offset for sector 128 points after EOF$' q.out ||
    fail "qemu-img reports otherwise: $(cat q.out)"
expect_status 63 "$VIMG" check -r all m.vmdk
grep -q 'does not support checks' err || fail "repair: $(cat err)"
exit 0
