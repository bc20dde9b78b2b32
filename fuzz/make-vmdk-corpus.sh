#!/bin/sh
# Regenerate fuzz/corpus/vmdk/: small images in every layout the driver
# parses and hostile variants of them. qemu-img's sparse files start their
# grains at 64 KiB, so compact sparse extents (4 KiB grains, as VMware
# allows) are built here byte by byte; streams come from vimg (open-vmdk's
# layout) and from this script (ovftool's, with a footer); descriptor files
# are text.
# regress-* files are inputs the fuzzer found, kept as they are.
# Usage: VIMG=build/cli/vimg fuzz/make-vmdk-corpus.sh [OUTDIR]
set -eu
out=${1:-$(dirname "$0")/corpus/vmdk}
: "${VIMG:=$(dirname "$0")/../build/cli/vimg}"
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
mkdir -p "$out"

head -c 3000 /dev/urandom > "$t/src.raw"
printf 'stream me %01000d' 0 >> "$t/src.raw"
truncate -s 40k "$t/src.raw"
"$VIMG" convert -f raw -O vmdk -o subformat=streamOptimized "$t/src.raw" \
    "$out/stream-vimg"

python3 - "$out" <<'PY'
import struct, sys, zlib
out = sys.argv[1]
S = 512

def desc(create, extents, parent=None):
    d = ('# Disk DescriptorFile\nversion=1\nCID=1a2b3c4d\nparentCID=%s\n'
         'createType="%s"\n' % ("ffffffff" if not parent else "0badf00d",
                                create))
    if parent:
        d += 'parentFileNameHint="%s"\n' % parent
    d += '\n# Extent description\n' + extents
    d += '\n# The Disk Data Base\n#DDB\n\nddb.adapterType = "ide"\n'
    return d.encode()

def header(version, flags, capacity, grain, desc_off, desc_size, gtes, rgd,
           gd, overhead, algo=0):
    h = struct.pack("<IIIQQQQIQQQB4sH", 0x564d444b, version, flags,
                    capacity, grain, desc_off, desc_size, gtes, rgd, gd,
                    overhead, 0, b"\n \r\n", algo)
    return h + bytes(S - len(h))

def sparse(name, zeroed=False, parent=None):
    """64 KiB disk, 4 KiB grains, 16-entry tables: header, descriptor
    (sectors 1-2), redundant directory and tables, directory and tables,
    grains from sector 16."""
    cap, grain, gtes = 128, 8, 16
    tables = 2
    d = desc("monolithicSparse", 'RW %d SPARSE "%s"\n' % (cap, name),
             parent)
    rgd, gd = 3, 6
    img = bytearray(header(2 if zeroed else 1, 3 | (4 if zeroed else 0),
                           cap, grain, 1, 2, gtes, rgd, gd, 16))
    img += d + bytes(2 * S - len(d))
    img += bytes(16 * S - len(img))
    gte = [0] * (tables * gtes)
    for g, fill in ((0, 0x11), (3, 0x22), (15, 0x33)):
        gte[g] = len(img) // S
        img += bytes([fill]) * (grain * S)
    if zeroed:
        gte[5] = 1
    for base in (rgd, gd):
        struct.pack_into("<2I", img, base * S, base + 1, base + 1 + 1)
        for t in range(tables):
            struct.pack_into("<16I", img, (base + 1 + t) * S,
                             *gte[t * gtes:(t + 1) * gtes])
    open(out + "/" + name, "wb").write(img)
    return bytes(img)

mono = sparse("sparse-v1")
sparse("sparse-zeroed", zeroed=True)
sparse("sparse-child", parent="sparse-v1")

# ovftool's stream: grains, table markers, directory marker, footer, EOS.
def marker(n, t):
    return struct.pack("<QII", n, 0, t) + bytes(S - 16)
cap, grain = 96, 8
img = bytearray(header(3, 0x30001, cap, grain, 1, 2, 16, 0,
                       (1 << 64) - 1, 8, 1))
d = desc("streamOptimized", 'RW %d SPARSE "stream-footer"\n' % cap)
img += d + bytes(7 * S - len(d))
gte = [0] * 16
for g, text in ((0, b"first grain " * 50), (11, b"last " * 300)):
    z = zlib.compress(text + bytes(grain * S - len(text)))
    gte[g] = len(img) // S
    rec = struct.pack("<QI", g * grain, len(z)) + z
    img += rec + bytes(-len(rec) % S)
img += marker(1, 1)
gt_at = len(img) // S
img += struct.pack("<16I", *gte) + bytes(S - 64)
img += marker(1, 2)
gd_at = len(img) // S
img += struct.pack("<I", gt_at) + bytes(S - 4)
img += marker(1, 3) + header(3, 0x30001, cap, grain, 1, 2, 16, 0, gd_at,
                             8, 1) + marker(0, 0)
open(out + "/stream-footer", "wb").write(img)

def text(name, body):
    open(out + "/" + name, "wb").write(body)
text("desc-flat", desc("monolithicFlat", 'RW 128 FLAT "flat.img" 0\n'))
text("desc-split", desc("twoGbMaxExtentSparse",
                        'RW 64 SPARSE "a.vmdk"\nRW 64 SPARSE "b.vmdk"\n'))
text("desc-zero-rdonly", desc("twoGbMaxExtentFlat",
                              'RW 64 ZERO\nRDONLY 64 FLAT "ro.img" 8\n'
                              'RW 8 VMFS "v.img"\n'))
text("desc-crlf", desc("vmfs", 'RW 64 VMFS "v.img"\n').replace(b"\n",
                                                                b"\r\n"))

def variant(name, base, *edits):
    b = bytearray(base)
    for off, fmt, val in edits:
        struct.pack_into(fmt, b, off, val)
    open(out + "/hostile-" + name, "wb").write(b)
variant("gte-past-eof", mono, (7 * S, "<I", 0x7fffffff))
variant("gd-past-eof", mono, (6 * S, "<I", 0x7fffffff))
# Header lies need no grains: they keep the metadata sectors only.
meta = mono[:16 * S]
variant("grain-huge", meta, (20, "<Q", 1 << 40))
variant("gtes-zero", meta, (44, "<I", 0))
variant("capacity-huge", meta, (12, "<Q", 1 << 50), (20, "<Q", 1))
variant("desc-size-huge", meta, (36, "<Q", 1 << 30))
variant("marker-size", img, (8 * S + 8, "<I", 0xffffffff))
variant("footer-lies", img, (len(img) - 2 * S + 56, "<Q", (1 << 64) - 1))
variant("truncated", mono[:700])
PY
ls "$out" | wc -l
du -cb "$out"/* | tail -1
