#!/bin/sh
# Damaged and lying Bochs images: each is refused with one line naming the
# file and the problem, exit 1, quickly and within 128 MiB of address
# space.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/readonly.inc"
requires bximage

"$PY" -c 'import sys; d = bytearray(3 << 20); d[0:9] = b"some data"
d[(2 << 20) + 512:(2 << 20) + 520] = b"and more"
open(sys.argv[1], "wb").write(d)' "$T/src.raw"
bximage -func=convert -imgmode=growing -q "$T/src.raw" "$T/good.img" \
    >/dev/null 2>&1 || fail "bximage failed"

damage() { # KIND OUT
    "$PY" - "$T/good.img" "$2" "$1" <<'PY'
import struct, sys
src, out, kind = sys.argv[1:4]
b = bytearray(open(src, 'rb').read())
def le32(off, v): struct.pack_into('<I', b, off, v)
header = struct.unpack_from('<I', b, 68)[0]
if kind == 'magic': b[0:5] = b'Bachs'
elif kind == 'subtype': b[48:64] = b'Undoable'.ljust(16, b'\0')
elif kind == 'version': le32(64, 0x30000)
elif kind == 'catalog-huge': le32(72, 0xffffffff)
elif kind == 'extent-zero': le32(80, 0)
elif kind == 'extent-odd': le32(80, 3 << 12)
elif kind == 'extent-huge': le32(80, 1 << 30)
elif kind == 'bitmap-small': le32(76, 1)
elif kind == 'bitmap-huge': le32(76, 0xffffffff)
elif kind == 'disk-huge': struct.pack_into('<Q', b, 88, 1 << 60)
elif kind == 'header-eof': le32(68, 0x7fffffff)
elif kind == 'header-low': le32(68, 16)
elif kind == 'entry-eof': le32(header, 0x7ffffff0)
elif kind == 'truncated': del b[len(b) - 1024:]
elif kind == 'tiny': del b[300:]
else: sys.exit('unknown damage ' + kind)
open(out, 'wb').write(b)
PY
}

refused() { # KIND WORDS
    damage "$1" "$T/bad.img"
    set +e
    (ulimit -v 131072; "$VIMG" convert -f bochs -O raw "$T/bad.img" \
        "$T/out.raw") >"$T/out" 2>"$T/err"
    rc=$?
    set -e
    [ "$rc" = 1 ] || fail "$1: exit $rc: $(cat "$T/err")"
    one_line "^vimg: $T/bad.img: .*$2"
}

refused magic 'not in Bochs format'
refused subtype "subtype 'Undoable'"
refused version 'version 0x00030000'
refused catalog-huge 'Catalog size is too large'
refused extent-zero 'Extent size 0'
refused extent-odd 'not a power of two'
refused extent-huge 'Extent size'
refused bitmap-small 'bitmap size 1 '
refused bitmap-huge 'bitmap size'
refused disk-huge 'too small for this disk size'
refused header-eof 'past the end of the file'
refused header-low 'over the header'
refused entry-eof 'past the end of the file'
refused truncated 'past the end of the file'
refused tiny 'too small'
