#!/bin/sh
# Regenerate fuzz/corpus/bochs/: small growing images made by bximage
# (empty, a few sectors of data, the version 1 header) and hostile
# variants edited at known offsets.
# Usage: fuzz/make-bochs-corpus.sh [OUTDIR]   (needs bximage, python3)
set -eu
out=${1:-$(dirname "$0")/corpus/bochs}
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
mkdir -p "$out"

python3 - "$t/empty.raw" "$t/data.raw" <<'PY'
import sys
open(sys.argv[1], 'wb').write(bytes(1 << 20))
d = bytearray(1 << 20)
d[0:5] = b'hello'
d[513:520] = b'sector1'
d[(1 << 20) - 512:(1 << 20) - 500] = b'last sector!'
open(sys.argv[2], 'wb').write(d)
PY
for n in empty data; do
    bximage -func=convert -imgmode=growing -q "$t/$n.raw" "$out/$n" \
        >/dev/null 2>&1
done

python3 - "$out/data" "$out" <<'PY'
import struct, sys
src, out = sys.argv[1:3]
base = open(src, 'rb').read()
def variant(name, edits, cut=None):
    b = bytearray(base)
    for off, fmt, val in edits:
        struct.pack_into(fmt, b, off, val)
    open(out + '/' + name, 'wb').write(bytes(b[:cut]))
disk = struct.unpack_from('<Q', base, 88)[0]
variant('v1', [(64, '<I', 0x10000), (84, '<Q', disk), (92, '<I', 0)])
variant('hostile-catalog-huge', [(72, '<I', 0xffffffff)])
variant('hostile-extent-odd', [(80, '<I', 3 << 12)])
variant('hostile-bitmap-huge', [(76, '<I', 0xffffffff)])
variant('hostile-entry-eof', [(512, '<I', 0x7ffffff0)])
variant('hostile-header-eof', [(68, '<I', 0x7fffffff)])
variant('hostile-truncated', [], -700)
PY
ls "$out" | wc -l
du -cb "$out"/* | tail -1
