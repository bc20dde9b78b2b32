#!/bin/sh
# Regenerate fuzz/corpus/vdi/: VDI headers and block maps made by qemu-img
# (dynamic, static, one block written) cut before their 1 MiB blocks (the
# fuzz target also runs every input padded with zeros, which supplies the
# blocks), and hostile variants edited at known offsets.
# Usage: fuzz/make-vdi-corpus.sh [OUTDIR]   (needs qemu-img, qemu-io, python3)
set -eu
out=${1:-$(dirname "$0")/corpus/vdi}
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
mkdir -p "$out"
q() { qemu-img "$@" >/dev/null; }

q create -f vdi "$out/dynamic-empty" 3M
q create -f vdi -o static=on "$t/static" 1M
head -c 1024 "$t/static" > "$out/static-1m"
q create -f vdi "$t/one" 2M
qemu-io -f vdi -c 'write -P 0x11 1M 4k' "$t/one" >/dev/null
head -c 1024 "$t/one" > "$out/dynamic-one-block"

python3 - "$out/dynamic-one-block" "$out" <<'PY'
import struct, sys
src, out = sys.argv[1:3]
base = open(src, 'rb').read()
def variant(name, edits):
    b = bytearray(base)
    for off, fmt, val in edits:
        struct.pack_into(fmt, b, off, val)
    open(out + '/hostile-' + name, 'wb').write(bytes(b))
variant('bmap-huge', [(384, '<I', 0xffffffff)])
variant('bmap-eof', [(384, '<I', 1 << 20)])
variant('entry-far', [(512, '<I', 0x3ffffff0)])
variant('entry-shared', [(512, '<I', 0), (516, '<I', 0)])
variant('count-high', [(388, '<I', 0xfffffff0)])
variant('data-overlap', [(344, '<I', 512)])
variant('disk-huge', [(368, '<Q', 1 << 62)])
variant('parent', [(440, '<I', 1)])
PY
ls "$out" | wc -l
du -cb "$out"/* | tail -1
