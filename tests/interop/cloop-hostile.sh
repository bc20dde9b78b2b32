#!/bin/sh
# Damaged and lying cloop images: each is refused with one line naming the
# file and the problem, exit 1, quickly and within 128 MiB of address
# space; a damaged stream fails the read that needs it the same way.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/readonly.inc"
requires create_compressed_fs

"$PY" -c 'import random, sys; r = random.Random(3); d = bytearray(1 << 16)
d[0:40000] = r.randbytes(40000); open(sys.argv[1], "wb").write(d)' \
    "$T/src.raw"
create_compressed_fs -q -B 4096 "$T/src.raw" "$T/good.cloop" \
    >/dev/null 2>&1 || fail "create_compressed_fs failed"

damage() { # KIND OUT
    "$PY" - "$T/good.cloop" "$2" "$1" <<'PY'
import struct, sys
src, out, kind = sys.argv[1:4]
b = bytearray(open(src, 'rb').read())
n = struct.unpack_from('>I', b, 132)[0]
def off(i): return struct.unpack_from('>Q', b, 136 + 8 * i)[0]
def set_off(i, v): struct.pack_into('>Q', b, 136 + 8 * i, v)
if kind == 'bs-zero': struct.pack_into('>I', b, 128, 0)
elif kind == 'bs-odd': struct.pack_into('>I', b, 128, 1000)
elif kind == 'bs-huge': struct.pack_into('>I', b, 128, 128 << 20)
elif kind == 'n-huge': struct.pack_into('>I', b, 132, 0xffffffff)
elif kind == 'n-eof': struct.pack_into('>I', b, 132, 1 << 20)
elif kind == 'backwards': set_off(2, off(1) - 1)
elif kind == 'last-eof': set_off(n, len(b) + 1)
elif kind == 'first-in-table': set_off(0, 136)
elif kind == 'block-long': set_off(1, off(n))
elif kind == 'stream': b[off(0) + 2:off(0) + 40] = bytes(38)
elif kind == 'truncated': del b[len(b) - 100:]
elif kind == 'tiny': del b[100:]
else: sys.exit('unknown damage ' + kind)
open(out, 'wb').write(b)
PY
}

refused() { # KIND WORDS
    damage "$1" "$T/bad.cloop"
    set +e
    (ulimit -v 131072; "$VIMG" convert -f cloop -O raw "$T/bad.cloop" \
        "$T/out.raw") >"$T/out" 2>"$T/err"
    rc=$?
    set -e
    [ "$rc" = 1 ] || fail "$1: exit $rc: $(cat "$T/err")"
    one_line "^vimg: $T/bad.cloop: .*$2"
}

refused bs-zero 'block_size 0 must be'
refused bs-odd 'block_size 1000 must be'
refused bs-huge 'must be 64 MB or less'
refused n-huge 'too many offsets'
refused n-eof 'offsets table .* past the end of the file'
refused backwards 'not monotonically increasing at index 2'
refused last-eof 'past the end of the file'
refused first-in-table 'over the offsets table'
refused block-long 'invalid compressed block size'
refused stream 'block 0 .* does not inflate'
refused truncated 'past the end of the file'
refused tiny 'too small'
