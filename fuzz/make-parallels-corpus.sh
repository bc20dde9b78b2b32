#!/bin/sh
# Regenerate fuzz/corpus/parallels/: Parallels images made by qemu-img and
# written by qemu-io with small clusters (new magic; the old magic with
# entries in sectors and a data_off of 0; 512-byte clusters), and hostile
# variants edited at known offsets.
# Each file is a few KiB.
# Usage: fuzz/make-parallels-corpus.sh [OUTDIR]   (needs qemu-img, qemu-io,
# python3)
set -eu
out=${1:-$(dirname "$0")/corpus/parallels}
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
mkdir -p "$out"
q() { qemu-img "$@" >/dev/null; }

q create -f parallels -o cluster_size=4k "$out/empty" 64k
q create -f parallels -o cluster_size=1k "$t/w" 32k
qemu-io -f parallels -c 'write -P 0x11 0 3k' -c 'write -P 0x22 20k 1k' \
    "$t/w" >/dev/null
cp "$t/w" "$out/written"
q create -f parallels -o cluster_size=512 "$t/s" 8k
qemu-io -f parallels -c 'write -P 0x33 1k 1k' "$t/s" >/dev/null
cp "$t/s" "$out/sector-clusters"
q create -f parallels "$t/big" 3M
head -c 1024 "$t/big" > "$out/header-1m-clusters"

python3 - "$t/w" "$out" <<'PY'
import struct, sys
src, out = sys.argv[1:3]
base = open(src, 'rb').read()
def save(name, b):
    open(out + '/' + name, 'wb').write(bytes(b))
def variant(name, edits, b=base):
    b = bytearray(b)
    for off, fmt, val in edits:
        struct.pack_into(fmt, b, off, val)
    save('hostile-' + name, b)
# Old magic: entries in sectors, data_off computed from the BAT.
old = bytearray(base)
old[0:16] = b'WithoutFreeSpace'
tracks, n = struct.unpack_from('<II', old, 28)
for i in range(n):
    e = struct.unpack_from('<I', old, 64 + 4 * i)[0]
    struct.pack_into('<I', old, 64 + 4 * i, e * tracks)
save('old-magic', old)
variant('old-data0', [(48, '<I', 0)], old)
variant('old-entry-header', [(64, '<I', 1)], old)
variant('bat-huge', [(32, '<I', 0xffffffff)])
variant('bat-eof', [(32, '<I', 1 << 20)])
variant('tracks-zero', [(28, '<I', 0)])
variant('tracks-odd', [(28, '<I', 3)])
variant('size-huge', [(36, '<Q', 1 << 62)])
variant('entry-far', [(64, '<I', 0xfffffff0)])
variant('entry-shared', [(68, '<I', struct.unpack_from('<I', base, 64)[0])])
variant('in-use', [(44, '<I', 0x746f6e59)])
variant('in-use-bad', [(44, '<I', 7)])
variant('data-off-zero', [(48, '<I', 0)])
variant('data-overlap', [(32, '<I', 400), (48, '<I', 1)])
variant('ext-off', [(56, '<Q', len(base) // 512)])
save('hostile-leak', base + b'\x5a' * 3000)
save('hostile-cut', base[:len(base) - 100])
PY
ls "$out" | wc -l
du -cb "$out"/* | tail -1
