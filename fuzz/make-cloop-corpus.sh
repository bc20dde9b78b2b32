#!/bin/sh
# Regenerate fuzz/corpus/cloop/: small images made by create_compressed_fs
# (zeros, text, two block sizes) and hostile variants edited at known
# offsets.
# Usage: fuzz/make-cloop-corpus.sh [OUTDIR]   (needs cloop-utils, python3)
set -eu
out=${1:-$(dirname "$0")/corpus/cloop}
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
mkdir -p "$out"

python3 - "$t/src.raw" <<'PY'
import sys
d = bytearray(40000)
d[0:3000] = b'cloop corpus ' * 230 + b'1234567890'
d[20000:20100] = bytes(range(100))
open(sys.argv[1], 'wb').write(d)
PY
create_compressed_fs -q -B 4096 "$t/src.raw" "$out/b4k" >/dev/null 2>&1
create_compressed_fs -q -B 512 "$t/src.raw" "$out/b512" >/dev/null 2>&1

python3 - "$out/b4k" "$out" <<'PY'
import struct, sys
src, out = sys.argv[1:3]
base = open(src, 'rb').read()
def variant(name, edits, cut=None):
    b = bytearray(base)
    for off, fmt, val in edits:
        struct.pack_into(fmt, b, off, val)
    open(out + '/hostile-' + name, 'wb').write(bytes(b[:cut]))
variant('bs-huge', [(128, '>I', 0xfffffe00)])
variant('n-huge', [(132, '>I', 0xffffffff)])
variant('backwards', [(136 + 16, '>Q', 0)])
variant('last-eof', [(136 + 8 * 10, '>Q', 1 << 40)])
variant('truncated', [], -200)
PY
ls "$out" | wc -l
du -cb "$out"/* | tail -1
