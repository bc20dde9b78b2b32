#!/bin/sh
# Regenerate fuzz/corpus/vpc/: tiny VHDs made by qemu-img (empty dynamic,
# fixed, force_size) and dynamic disks with 4 KiB blocks built here (so one
# allocated block keeps a file of a few KiB), plus hostile variants with
# their checksums recomputed so that the lie itself is what gets parsed.
# Usage: fuzz/make-vpc-corpus.sh [OUTDIR]   (needs qemu-img, python3)
set -eu
out=${1:-$(dirname "$0")/corpus/vpc}
mkdir -p "$out"
q() { qemu-img "$@" >/dev/null; }

q create -f vpc "$out/dynamic-empty" 64k
q create -f vpc -o subformat=fixed "$out/fixed-32k" 32k
q create -f vpc -o subformat=fixed,force_size "$out/fixed-force" 16k
qemu-io -f vpc -c 'write -P 0x11 0 1k' "$out/fixed-force" >/dev/null

python3 - "$out" <<'PY'
import struct, sys
out = sys.argv[1]
BS, N = 4096, 4

def csum(b, off, n, at):
    struct.pack_into('>I', b, off + at, 0)
    struct.pack_into('>I', b, off + at, ~sum(b[off:off + n]) & 0xffffffff)

def dynamic(blocks):
    end = 2048 + len(blocks) * (512 + BS)
    b = bytearray(end + 512)
    b[0:8] = b'conectix'
    struct.pack_into('>IIQ', b, 8, 2, 0x10000, 512)
    b[28:32] = b'qem2'
    struct.pack_into('>QQHBBI', b, 40, N * BS, N * BS, 65535, 16, 255, 3)
    csum(b, 0, 512, 64)
    b[512:520] = b'cxsparse'
    struct.pack_into('>QQIII', b, 520, (1 << 64) - 1, 1536, 0x10000, N, BS)
    csum(b, 512, 1024, 36)
    b[1536:1536 + 4 * N] = b'\xff' * 4 * N
    for i, (idx, byte) in enumerate(blocks):
        at = 2048 + i * (512 + BS)
        struct.pack_into('>I', b, 1536 + 4 * idx, at // 512)
        b[at:at + 512] = b'\xff' * 512
        b[at + 512:at + 512 + BS] = bytes([byte]) * BS
    b[end:end + 512] = b[0:512]
    return b

def save(name, b, fix=True):
    if fix:
        csum(b, 0, 512, 64)
        csum(b, 512, 1024, 36)
    open(out + '/' + name, 'wb').write(bytes(b))

base = dynamic([(1, 0x5a)])
save('dynamic-4k', base)
b = bytearray(base); b[100] ^= 1; save('hostile-footer-checksum', b, False)
b = bytearray(base); b[600] ^= 1; save('hostile-dyn-checksum', b, False)
b = bytearray(base); struct.pack_into('>I', b, 540, 0xffffffff)
save('hostile-bat-huge', b)
b = bytearray(base); struct.pack_into('>I', b, 1540, 0x7ffffff0)
save('hostile-entry-eof', b)
b = bytearray(base); struct.pack_into('>I', b, 1540, 3)
save('hostile-entry-overlap', b)
b = bytearray(base); struct.pack_into('>I', b, 544, 3000)
save('hostile-block-size', b)
b = bytearray(base); struct.pack_into('>I', b, 60, 4)
save('hostile-differencing', b)
b = bytearray(base); struct.pack_into('>Q', b, 16, 1 << 50)
save('hostile-dyn-offset', b)
save('hostile-truncated', bytearray(base[:3000]), False)
# A differencing disk: a W2ru locator in the BAT sector's unused tail and
# block 1 holding its first 4 sectors (bitmap 0xf0), the rest the parent's.
b = bytearray(base); struct.pack_into('>I', b, 60, 4)
path = '.\\parent.vhd'.encode('utf-16-le')
b[1600:1600 + len(path)] = path
struct.pack_into('>4sIIIQ', b, 512 + 576, b'W2ru', 512, len(path), 0, 1600)
b[2048] = 0xf0
b[-512:] = b[0:512]
csum(b, len(b) - 512, 512, 64)
save('differencing', b)
PY
ls "$out" | wc -l
du -cb "$out"/* | tail -1
