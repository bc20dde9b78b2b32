#!/bin/sh
# Regenerate fuzz/corpus/qcow2/: small images made by qemu-img/qemu-io
# (each version, cluster size, refcount width, backing name, zero and
# compressed clusters, snapshot, bitmap, dirty) and hostile variants made
# by editing header and table bytes at known offsets.
# Usage: fuzz/make-qcow2-corpus.sh [OUTDIR]   (needs qemu-img, python3)
set -eu
out=${1:-$(dirname "$0")/corpus/qcow2}
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
mkdir -p "$out"
q() { qemu-img "$@" >/dev/null; }
io() { qemu-io "$@" >/dev/null; }

q create -f qcow2 -o compat=0.10,cluster_size=512 "$out/v2-512-empty" 64k
q create -f qcow2 -o cluster_size=512 "$out/v3-512-empty" 64k
q create -f qcow2 -o cluster_size=512 "$out/v3-512-data" 64k
io -c 'write -P 0x11 0 512' "$out/v3-512-data"
q create -f qcow2 -o cluster_size=512 "$out/v3-512-zero-discard" 64k
io -c 'write -P 0x44 0 2k' -c 'write -z 512 512' -c 'discard 1k 512' \
    -c 'write -z 40k 4k' "$out/v3-512-zero-discard"
q create -f qcow2 -o compat=0.10,cluster_size=512 "$out/v2-512-discard" 64k
io -c 'write -P 0x55 0 4k' -c 'discard 1k 1k' -c 'write -z 3k 1k' \
    "$out/v2-512-discard"
for rb in 1 8 64; do
    q create -f qcow2 -o cluster_size=512,refcount_bits=$rb \
        "$out/v3-512-rc$rb" 64k
    io -c 'write -P 0x66 1k 1k' "$out/v3-512-rc$rb"
done
q create -f qcow2 -o cluster_size=1k -u -b base.raw -F raw \
    "$out/v3-1k-backing" 64k
io -c 'write -P 0x77 0 2k' "$out/v3-1k-backing" 2>/dev/null || true
q create -f qcow2 -o compat=0.10,cluster_size=512 -u -b base.qcow2 -F qcow2 \
    "$out/v2-512-backing" 64k
q create -f qcow2 -o cluster_size=512,lazy_refcounts=on "$out/v3-512-dirty" 64k
io -c 'write -P 0x88 0 1k' -c 'abort' "$out/v3-512-dirty" 2>/dev/null || true
head -c 1024 /dev/urandom > "$t/rand"
dd if=/dev/zero bs=1k count=8 2>/dev/null >> "$t/rand"
printf 'compress me %0500d' 0 >> "$t/rand"
q convert -c -O qcow2 -o cluster_size=512 "$t/rand" "$out/v3-512-compressed"
q convert -c -O qcow2 -o cluster_size=512,compression_type=zstd \
    "$t/rand" "$out/v3-512-zstd"
q create -f qcow2 -o cluster_size=512 "$out/v3-512-snapshot" 64k
io -c 'write -P 0x99 0 1k' "$out/v3-512-snapshot"
q snapshot -c snap1 "$out/v3-512-snapshot"
io -c 'write -P 0xaa 0 512' "$out/v3-512-snapshot"
q create -f qcow2 -o cluster_size=512 "$out/v3-512-bitmap" 64k
q bitmap --add "$out/v3-512-bitmap" bm0

# Extended L2 entries need 16 KiB clusters, and a complete image with data
# needs six of them: too big for a seed. This one keeps qemu-img's header
# and L1 table but no refcount block (the refcount table is empty: every
# refcount reads 0) and ends after the L2 entries it uses: cluster 0
# at a host cluster past the end of the file (subclusters 0-3 allocated
# in it, 8-9 zero, the rest not allocated), cluster 1 zero subclusters
# only, cluster 2 a compressed cluster over the L2 table's own first
# sector. Reads and writes reach every subcluster type.
q create -f qcow2 -o cluster_size=16k,extended_l2=on "$t/extl2" 1M
python3 - "$t/extl2" "$out/v3-16k-extl2" <<'PY'
import struct, sys
cs = 16384
b = bytearray(open(sys.argv[1], 'rb').read()[:cs])
rt, l1, l2 = cs, 2 * cs, 3 * cs
struct.pack_into('>QII', b, 40, l1, 0, 0)      # L1 offset; keep rt below
struct.pack_into('>Q', b, 48, rt)
struct.pack_into('>I', b, 56, 1)
struct.pack_into('>I', b, 36, 1)               # l1_size
img = b + bytearray(cs)                        # refcount table: no blocks
img += struct.pack('>Q', (1 << 63) | l2) + bytearray(cs - 8)
entries = [((1 << 63) | 5 * cs, 0xf | (0x300 << 32)),
           (0, 0xff << 32),
           ((1 << 62) | l2, 0)]
for e, bm in entries:
    img += struct.pack('>QQ', e, bm)
open(sys.argv[2], 'wb').write(img)
PY

# Hostile variants of v3-512-data (header at 0, fields big-endian).
src="$out/v3-512-data"
python3 - "$src" "$out" <<'PY'
import struct, sys
src, out = sys.argv[1], sys.argv[2]
base = open(src, 'rb').read()
l1_off = struct.unpack_from('>Q', base, 40)[0]
rt_off = struct.unpack_from('>Q', base, 48)[0]
l2_off = struct.unpack_from('>Q', base, l1_off)[0] & 0x00fffffffffffe00
rb_off = struct.unpack_from('>Q', base, rt_off)[0]

def variant(name, edits, data=base):
    b = bytearray(data)
    for off, fmt, val in edits:
        struct.pack_into(fmt, b, off, val)
    open(out + '/hostile-' + name, 'wb').write(b)

variant('l1-huge', [(36, '>I', 0xffffffff)])
variant('l1-past-eof', [(40, '>Q', 1 << 40)])
variant('refcount-order-7', [(96, '>I', 7)])
variant('ext-overrun', [(112, '>I', 0x12345678), (116, '>I', 0xfffffff0)])
variant('backing-1024', [(8, '>Q', 200), (16, '>I', 1024)])
variant('incompat-unknown', [(72, '>Q', 1 << 40)])
variant('size-huge', [(24, '>Q', 1 << 63)])
variant('snapshots-huge', [(60, '>I', 0xffffffff), (64, '>Q', 512)])
variant('l2-past-eof', [(l2_off, '>Q', (1 << 63) | (1 << 40))])
variant('l2-unaligned', [(l2_off, '>Q', (1 << 63) | 0x1234)])
variant('l2-points-at-l1', [(l2_off, '>Q', (1 << 63) | l1_off)])
variant('refcount-zero', [(rb_off + 2 * (l2_off // 512), '>H', 0)])
variant('refcount-leak', [(rb_off + 2 * (len(base) // 512 - 1), '>H', 2)])
variant('compressed-bogus', [(l2_off, '>Q', (1 << 62) | 0x3fffffffffffffff)])
variant('truncated', [], base[:300])
PY
ls "$out" | wc -l
du -cb "$out"/* | tail -1
