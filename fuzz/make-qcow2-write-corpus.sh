#!/bin/sh
# Regenerate fuzz/corpus/qcow2-write/: small images made by qemu-img and
# qemu-io (zlib and zstd compressed clusters, an internal snapshot, a
# bitmap, v2, refcount widths 1 and 64, a dirty lazy-refcount image) and
# hostile variants (compressed spans and plain entries over the header,
# refcount table and block, L1, L2 and a snapshot's L2; a data cluster
# whose refcount is 0). Each file ends with the 32-byte request script
# that fuzz-qcow2-write.c reads from the last bytes of its input.
# Usage: fuzz/make-qcow2-write-corpus.sh [OUTDIR]  (needs qemu-img, python3)
set -eu
out=${1:-$(dirname "$0")/corpus/qcow2-write}
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
mkdir -p "$out"
q() { qemu-img "$@" >/dev/null; }
io() { qemu-io "$@" >/dev/null; }

head -c 1024 /dev/urandom > "$t/rand"
dd if=/dev/zero bs=1k count=4 2>/dev/null >> "$t/rand"
printf 'compress me %0500d' 0 >> "$t/rand"
yes 'compressible' | head -c 6k >> "$t/rand"
truncate -s 16k "$t/rand"

q convert -c -O qcow2 -o cluster_size=512 "$t/rand" "$t/zlib-512"
q convert -c -O qcow2 -o cluster_size=512,compression_type=zstd \
    "$t/rand" "$t/zstd-512"
# A compressed image with a snapshot, written after it: the snapshot's
# L2 table is no longer shared with the active one.
q convert -c -O qcow2 -o cluster_size=1k "$t/rand" "$t/snap-1k"
q snapshot -c s1 "$t/snap-1k"
io -c 'write -P 0x33 15k 1k' "$t/snap-1k"
q create -f qcow2 -o cluster_size=512 "$t/bitmap-512" 32k
io -c 'write -P 0x44 0 2k' "$t/bitmap-512"
q bitmap --add "$t/bitmap-512" bm0
q create -f qcow2 -o compat=0.10,cluster_size=512 "$t/v2-512" 32k
io -c 'write -P 0x55 0 4k' -c 'discard 1k 1k' "$t/v2-512"
for rb in 1 64; do
    q create -f qcow2 -o cluster_size=512,refcount_bits=$rb "$t/rc$rb-512" 32k
    io -c 'write -P 0x66 0 3k' "$t/rc$rb-512"
done
q create -f qcow2 -o cluster_size=512,lazy_refcounts=on "$t/dirty-512" 32k
io -c 'write -P 0x77 0 2k' -c 'abort' "$t/dirty-512" 2>/dev/null || true
# The base of the hostile variants: 1 KiB clusters, every data cluster
# compressed (two bits of sector count: spans of up to 2 KiB).
q convert -c -O qcow2 -o cluster_size=1k "$t/rand" "$t/hostile-base"

python3 - "$t" "$out" <<'PY'
import os, struct, sys
t, out = sys.argv[1], sys.argv[2]

# Requests: kind (| 0x80 flush), position (16-bit fraction), length.
W, WU, Z, ZU, D, R = range(6)
plain = bytes([W, 0, 0, 7, WU, 0x40, 0, 0x50, Z | 0x80, 0x80, 0, 3,
               ZU, 0x10, 0, 1, D, 0, 0, 3, W, 0xc0, 0, 15,
               D | 0x80, 0x20, 0, 0, W, 0, 0, 0])
resize = bytes([W, 0, 0, 3, R, 0, 0, 0xc0, W | 0x80, 0xf0, 0, 15,
                R, 0, 0, 0x40, ZU, 0, 0, 7, D, 0x40, 0, 7,
                R | 0x80, 0, 0, 100, W, 0x80, 0, 1])
assert len(plain) == len(resize) == 32

def emit(name, data, script=plain):
    assert len(data) + 32 < 65536, name
    open(os.path.join(out, name), 'wb').write(data + script)

for name in ['zlib-512', 'zstd-512', 'snap-1k', 'bitmap-512', 'v2-512',
             'rc1-512', 'rc64-512', 'dirty-512']:
    emit(name, open(os.path.join(t, name), 'rb').read())
emit('zlib-512-resize', open(os.path.join(t, 'zlib-512'), 'rb').read(),
     resize)

def layout(b):
    l1 = struct.unpack_from('>Q', b, 40)[0]
    rt = struct.unpack_from('>Q', b, 48)[0]
    return {'header': 0, 'rt': rt, 'l1': l1,
            'rb': struct.unpack_from('>Q', b, rt)[0],
            'l2': struct.unpack_from('>Q', b, l1)[0] & 0x00fffffffffffe00}

def compressed(cb, host, sectors):
    return (1 << 62) | ((sectors - 1) << (62 - (cb - 8))) | host

base = open(os.path.join(t, 'hostile-base'), 'rb').read()
lay = layout(base)
for what in ['header', 'rt', 'rb', 'l1', 'l2']:
    b = bytearray(base)
    struct.pack_into('>Q', b, lay['l2'],
                     compressed(10, lay[what], 4 if what == 'header' else 2))
    emit('hostile-compressed-' + what, bytes(b))
for what in ['rt', 'l1', 'l2']:
    b = bytearray(base)
    struct.pack_into('>Q', b, lay['l2'] + 8, lay[what])  # not COPIED
    emit('hostile-plain-' + what, bytes(b))

snap = open(os.path.join(t, 'snap-1k'), 'rb').read()
lay = layout(snap)
sn = struct.unpack_from('>Q', snap, 64)[0]
snl1 = struct.unpack_from('>Q', snap, sn)[0]
snl2 = struct.unpack_from('>Q', snap, snl1)[0] & 0x00fffffffffffe00
assert snl2 != lay['l2']
b = bytearray(snap)
struct.pack_into('>Q', b, lay['l2'], compressed(10, snl2, 2))
emit('hostile-compressed-snapl2', bytes(b))

# A data cluster in use whose refcount is 0 (64-bit refcounts), its L2
# entry not COPIED: a write must not be handed it and then punch it.
rc = bytearray(open(os.path.join(t, 'rc64-512'), 'rb').read())
lay = layout(rc)
e = struct.unpack_from('>Q', rc, lay['l2'])[0] & 0x00fffffffffffe00
struct.pack_into('>Q', rc, lay['l2'], e)
struct.pack_into('>Q', rc, lay['rb'] + 8 * (e // 512), 0)
emit('hostile-refcount-zero', bytes(rc))
PY
ls "$out" | wc -l
du -cb "$out"/* | tail -1
