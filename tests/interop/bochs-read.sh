#!/bin/sh
# Bochs growing images made by bximage (from a raw disk with data, holes and
# single sectors) read by vimg exactly as qemu-img reads them: guest
# sha256, info, map, compare, probing; the version 1 header too. Writes are
# refused with one line, as QEMU refuses them.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/readonly.inc"
requires qemu-img bximage

"$PY" - "$T/src.raw" <<'PY'
import random, sys
r = random.Random(15)
d = bytearray(12 << 20)
for off, n in ((0, 4096), (5 << 20 | 512, 512), (7 << 20, 40000),
               ((12 << 20) - 512, 512)):
    d[off:off + n] = r.randbytes(n)
open(sys.argv[1], 'wb').write(d)
PY
bximage -func=convert -imgmode=growing -q "$T/src.raw" "$T/g.img" \
    >/dev/null 2>&1 || fail "bximage failed"
src=$(sha256sum < "$T/src.raw" | cut -d' ' -f1)

check_image() { # FILE
    [ "$(qemu_sha "$1" bochs)" = "$src" ] || fail "qemu-img misreads $1"
    [ "$(vimg_sha "$1" bochs)" = "$src" ] || fail "vimg misreads $1"
    "$VIMG" convert -O raw "$1" "$T/p.raw" # probed, not named
    cmp -s "$T/p.raw" "$T/src.raw" || fail "probed $1 reads differently"
    like_qemu "$1"
    expect_status 0 "$VIMG" compare "$1" "$T/src.raw"
}
check_image "$T/g.img"

# The version 1 header: no timestamp, the disk size 4 bytes earlier.
"$PY" - "$T/g.img" "$T/v1.img" <<'PY'
import struct, sys
b = bytearray(open(sys.argv[1], 'rb').read())
assert struct.unpack_from('<I', b, 64)[0] == 0x20000
disk = struct.unpack_from('<Q', b, 88)[0]
b[84:96] = bytes(12)
struct.pack_into('<I', b, 64, 0x10000)
struct.pack_into('<Q', b, 84, disk)
open(sys.argv[2], 'wb').write(b)
PY
check_image "$T/v1.img"

refuses_writes "$T/g.img" bochs
