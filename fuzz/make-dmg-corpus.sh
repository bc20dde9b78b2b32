#!/bin/sh
# Regenerate fuzz/corpus/dmg/: small UDIF images made by
# tests/interop/dmg-make.py (zero, ignore, raw, zlib, bzip2 and lzfse
# chunks; property list or resource fork) and hostile variants.
# Usage: fuzz/make-dmg-corpus.sh [OUTDIR]   (needs python3)
set -eu
here=$(dirname "$0")
out=${1:-$here/corpus/dmg}
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
mkdir -p "$out"
mk() { python3 "$here/../tests/interop/dmg-make.py" "$@"; }

python3 - "$t/src.raw" <<'PY'
import sys
d = bytearray(24 << 10)
d[0:2000] = b'dmg corpus ' * 180 + b'12345678901234567890'
d[12 << 10:(12 << 10) + 256] = bytes(range(256))
d[-512:] = bytes(range(256)) * 2
open(sys.argv[1], 'wb').write(d)
PY
mk "$t/src.raw" "$out/mixed" --types zlib,raw,bzip2 --chunk 8 --parts 2
mk "$t/src.raw" "$out/rsrc" --types zlib,raw --chunk 16 --parts 2 --rsrc
mk "$t/src.raw" "$out/base" --types raw,zlib --chunk 8 --parts 3 --mish-base
mk "$t/src.raw" "$out/lzfse" --types zlib,lzfse --chunk 16 --parts 1

python3 - "$out/mixed" "$out" <<'PY'
import struct, sys
src, out = sys.argv[1:3]
base = open(src, 'rb').read()
k = len(base) - 512
def variant(name, edits, b=None):
    b = bytearray(base if b is None else b)
    for off, fmt, val in edits:
        struct.pack_into(fmt, b, off, val)
    open(out + '/hostile-' + name, 'wb').write(bytes(b))
variant('xml-eof', [(k + 224, '>Q', 1 << 40)])
variant('sectors-small', [(k + 492, '>Q', 3)])
variant('sectors-huge', [(k + 492, '>Q', 1 << 62)])
variant('stream', [(0, '>Q', 0)])
# The property list cut right after the blkx key, its <array> and a
# <data>: the parser's edges, in exactly sized buffers.
xml_at, xml_len = struct.unpack_from('>QQ', base, k + 216)
xml = base[xml_at:xml_at + xml_len]
for name, tag in (('key', b'<key>blkx</key>'), ('array', b'<array>'),
                  ('data', b'<data>')):
    cut = xml.index(tag) + len(tag)
    b = base[:xml_at + cut] + base[k:]
    variant('xml-cut-' + name, [(len(b) - 512 + 224, '>Q', cut)], b)
PY
ls "$out" | wc -l
du -cb "$out"/* | tail -1
