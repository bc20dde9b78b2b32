#!/bin/sh
# Damaged and lying VDIs: each is refused with one line naming the file and
# the problem, exit 1, quickly and within 128 MiB of address space; map
# damage that QEMU reports through check (shared blocks, a wrong count) is
# reported by vimg check the same way, with the same exit code.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
requires qemu-img qemu-io

good=$T/good.vdi
qemu-img create -q -f vdi "$good" 9M
qemu-io -f vdi -c 'write -P 0x11 0 1k' -c 'write -P 0x22 4M 1k' \
    -c 'write -P 0x33 6M 1k' "$good" >/dev/null

damage() { # KIND OUT
    "$PY" - "$good" "$2" "$1" <<'PY'
import struct, sys
src, out, kind = sys.argv[1:4]
b = bytearray(open(src, 'rb').read())
bmap = struct.unpack_from('<I', b, 340)[0]
def le32(off, v): struct.pack_into('<I', b, off, v)
if kind == 'signature': le32(64, 0x12345678)
elif kind == 'version': le32(68, 0x00010000)
elif kind == 'type': le32(76, 4)
elif kind == 'parent': b[440] = 1
elif kind == 'disk-huge': struct.pack_into('<Q', b, 368, 1 << 62)
elif kind == 'sector-size': le32(360, 4096)
elif kind == 'block-size': le32(376, 2 << 20)
elif kind == 'bmap-huge':
    le32(384, 0xffffffff)
elif kind == 'bmap-eof': le32(384, 1 << 22); le32(344, 1 << 30)
elif kind == 'bmap-unaligned': le32(340, 513)
elif kind == 'data-overlap': le32(344, 512)
elif kind == 'map-small': le32(384, 2)
elif kind == 'entry-eof': le32(bmap + 4 * 4, 100)
elif kind == 'truncated': del b[len(b) - 4096:]
elif kind == 'tiny': del b[300:]
elif kind == 'shared': le32(bmap + 4 * 4, 0)
elif kind == 'count': le32(388, 5)
else: sys.exit('unknown damage ' + kind)
open(out, 'wb').write(b)
PY
}

refused() { # KIND WORD
    damage "$1" "$T/bad.vdi"
    set +e
    (ulimit -v 131072; "$VIMG" convert -f vdi -O raw "$T/bad.vdi" \
        "$T/out.raw") >"$T/out" 2>"$T/err"
    rc=$?
    set -e
    [ "$rc" = 1 ] || fail "$1: exit $rc: $(cat "$T/err")"
    [ "$(wc -l < "$T/err")" = 1 ] || fail "$1: not one line: $(cat "$T/err")"
    grep -q "^vimg: $T/bad.vdi: .*$2" "$T/err" ||
        fail "$1: message lacks '$2': $(cat "$T/err")"
}

refused signature 'bad signature'
refused version 'version 1.0'
refused type 'image type 4'
refused parent 'differencing'
refused disk-huge 'size'
refused sector-size 'sector size 4096'
refused block-size 'block size'
refused bmap-huge 'too large'
refused bmap-eof 'outside the file'
refused bmap-unaligned 'not sector aligned'
refused data-overlap 'overlaps the block map'
refused map-small 'too small for the disk size'
refused entry-eof 'past the end of the file'
refused truncated 'past the end of the file'
refused tiny 'too small'

for kind in shared count; do
    damage $kind "$T/bad.vdi"
    set +e
    qemu-img check -f vdi "$T/bad.vdi" > "$T/q.out" 2>&1; qrc=$?
    "$VIMG" check -f vdi "$T/bad.vdi" > "$T/v.out" 2>&1; vrc=$?
    set -e
    [ "$qrc" = "$vrc" ] || fail "check $kind: exit $vrc, qemu-img $qrc"
    sed 's/^qemu-img: //' "$T/q.out" | sort > "$T/q.sorted"
    sed 's/^vimg: //' "$T/v.out" | sort > "$T/v.sorted"
    diff "$T/q.sorted" "$T/v.sorted" >&2 || fail "check $kind output differs"
done
