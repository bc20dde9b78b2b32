#!/bin/sh
# The README's Azure recipe: a fixed VHD whose virtual size is the source's
# rounded up to a whole MiB, footer current size equal to it, file one
# footer longer; qemu-img and libvhdi read it at that size with the
# source's data.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
. "$(dirname "$0")/vhd.inc"
requires qemu-img qemu-io

cd "$T"
qemu-img create -q -f qcow2 disk.qcow2 10000000
qemu-io -c 'write -P 0x5a 0 64k' -c 'write -P 0xa5 9999360 512' disk.qcow2 \
    >/dev/null

# The recipe, as README.md gives it.
size=$("$VIMG" info --output=json disk.qcow2 |
       sed -n 's/^ *"virtual-size": \([0-9]*\),$/\1/p')
mib=$(( (size + 1048575) / 1048576 * 1048576 ))
"$VIMG" create -q -f vpc -o subformat=fixed,force_size disk.vhd "$mib"
"$VIMG" convert -n -O vpc disk.qcow2 disk.vhd

[ "$mib" = 10485760 ] || fail "rounded size $mib"
[ "$(stat -c %s disk.vhd)" = $((mib + 512)) ] || fail "file size"
[ "$(vsize qemu-img vpc disk.vhd)" = "$mib" ] || fail "qemu-img size"
[ "$(vsize "$VIMG" vpc disk.vhd)" = "$mib" ] || fail "vimg size"
"$PY" - disk.vhd "$mib" <<'PY' || fail "footer fields"
import struct, sys
b = open(sys.argv[1], 'rb').read()[-512:]
assert b[:8] == b'conectix'
assert struct.unpack_from('>Q', b, 48)[0] == int(sys.argv[2])
assert struct.unpack_from('>I', b, 60)[0] == 2
PY
qemu-img compare -q -f qcow2 -F vpc disk.qcow2 disk.vhd || fail "data"
# qemu-img's own recipe (convert with force_size after a raw resize)
# gives the same guest bytes.
qemu-img convert -O raw disk.qcow2 q.raw
qemu-img resize -q -f raw q.raw "$mib"
qemu-img convert -f raw -O vpc -o subformat=fixed,force_size q.raw q.vhd
qemu-img compare -q -s -f vpc -F vpc q.vhd disk.vhd || fail "vs qemu-img"
if has_pyvhdi; then
    [ "$(vhdi_sha disk.vhd)" = "$mib $(qemu_sha q.raw raw)" ] ||
        fail "libvhdi reads other data"
fi
# And the one-step form for sources already a whole number of MiB.
"$VIMG" convert -O vpc -o subformat=fixed,force_size q.raw one.vhd
[ "$(stat -c %s one.vhd)" = $((mib + 512)) ] || fail "one-step size"
