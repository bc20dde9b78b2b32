#!/bin/sh
# Regenerate fuzz/corpus/qcow/: small qcow (version 1) images made by
# qemu-img and qemu-io (plain, compressed, backing file, 512-byte
# clusters, AES) and hostile variants made by editing header and table bytes.
# Usage: fuzz/make-qcow-corpus.sh [OUTDIR]   (needs qemu-img, python3)
set -eu
out=${1:-$(dirname "$0")/corpus/qcow}
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
mkdir -p "$out"
q() { qemu-img "$@" >/dev/null 2>&1; }
io() { qemu-io "$@" >/dev/null; }

q create -f qcow "$out/empty" 64k
q create -f qcow "$out/data" 64k
io -f qcow -c 'write -P 0x11 0 4k' -c 'write -P 0x22 40k 6k' "$out/data"
q create -f qcow -u -b base.raw -F raw "$out/backing" 64k
io -f qcow -c 'write -P 0x33 1k 1k' "$out/backing" 2>/dev/null || true
# Legacy AES, its passphrase the fuzz target's secret.
k="--object secret,id=k,data=fuzz"
q create -f qcow $k -o encrypt.format=aes,encrypt.key-secret=k "$out/aes" 64k
io $k --image-opts "driver=qcow,file.filename=$out/aes,encrypt.key-secret=k" \
    -c 'write -P 0x44 0 6k'
printf 'compress me %01000d' 0 > "$t/c.raw"
head -c 2000 /dev/urandom >> "$t/c.raw"
truncate -s 20k "$t/c.raw"
# qemu-img 7.2 exits 1 after writing a compressed qcow (see
# tests/interop/qcow1-interop.sh).
q convert -c -f raw -O qcow "$t/c.raw" "$out/compressed" || true

python3 - "$out/data" "$out/compressed" "$out" <<'PY'
import struct, sys
D = open(sys.argv[1], "rb").read()
C = open(sys.argv[2], "rb").read()
out = sys.argv[3]
def variant(name, base, *edits):
    b = bytearray(base)
    for off, fmt, val in edits:
        struct.pack_into(fmt, b, off, val)
    open(out + "/hostile-" + name, "wb").write(b)
l1 = struct.unpack_from(">Q", D, 40)[0]
l2 = struct.unpack_from(">Q", D, l1)[0]
cl2 = struct.unpack_from(">Q", C, struct.unpack_from(">Q", C, 40)[0])[0]
# Header lies need no data: they start from the first sector only.
H = D[:512]
variant("size-huge", H, (24, ">Q", 1 << 62))
variant("cluster-bits", H, (32, ">B", 17))
variant("l1-past-eof", H, (40, ">Q", 1 << 40))
variant("l2-past-eof", D, (l1, ">Q", 1 << 40))
variant("cluster-unaligned", D, (l2, ">Q", l2 + 3))
variant("compressed-huge", C, (cl2, ">Q", (1 << 63) | (0xfff << 51) | 4096))
variant("backing-long", H, (8, ">Q", 48), (16, ">I", 5000))
variant("truncated", D[:40])
PY
ls "$out" | wc -l
du -cb "$out"/* | tail -1
