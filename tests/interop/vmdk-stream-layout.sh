#!/bin/sh
# vimg's streamOptimized output against the layout VMware's open-vmdk
# (vmdk/sparse.c, StreamOptimized_Create and StreamOptimizedClose) writes:
# header fields and flags, the grain directory in front with every table
# after it, grain markers in increasing LBA order each padded to a sector,
# no table, directory or footer markers, one end-of-stream marker ending
# the file, and the descriptor keys VMware's importers read. The grains
# are the same whatever the number of workers and with -W (one writer
# keeps them in order while the workers compress).
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
requires python3

cd "$T"
"$PY" - src.raw <<'PY'
import random, sys
r = random.Random(5)
with open(sys.argv[1], "wb") as f:
    f.truncate(40 << 20)  # 40 MiB: two grain tables (512 grains each)
    for i in range(0, 40 << 20, 3 << 20):
        f.seek(i)
        f.write(b"".join(r.choice([b"open-vmdk ", b"grain ", b"\n"])
                         for _ in range(20000)))
    f.seek((40 << 20) - 1000)
    f.write(r.randbytes(1000))
PY
"$VIMG" convert -f raw -O vmdk -o subformat=streamOptimized src.raw s.vmdk
"$PY" - s.vmdk <<'PY' || fail "layout differs from open-vmdk's"
import re, struct, sys, zlib
b = open(sys.argv[1], "rb").read()
S = 512
def die(msg):
    sys.exit("stream layout: " + msg)
(magic, version, flags, capacity, grain, desc_off, desc_size, gtes, rgd, gd,
 overhead, unclean, nl, algo) = struct.unpack_from("<IIIQQQQIQQQB4sH", b, 0)
if magic != 0x564d444b or version != 3:
    die("magic/version")
if flags != (1 | 1 << 16 | 1 << 17):
    die("flags 0x%x, open-vmdk writes 0x30001" % flags)
if (grain, desc_off, desc_size, gtes, rgd, gd, unclean, algo) != \
        (128, 1, 20, 512, 0, 21, 0, 1):
    die("header fields")
if nl != b"\n \r\n" or any(b[79:S]):
    die("newline check bytes or padding")
grains = -(-capacity // grain)
gts = -(-grains // gtes)
gd_sectors = -(-gts * 4 // S)
if overhead != gd + gd_sectors + gts * 4:
    die("overhead %d" % overhead)
gd_entries = struct.unpack_from("<%dI" % gts, b, gd * S)
if list(gd_entries) != [gd + gd_sectors + 4 * i for i in range(gts)]:
    die("grain directory is not followed by its tables in order")
gte = []
for t in gd_entries:
    gte += struct.unpack_from("<512I", b, t * S)
gte = gte[:grains]
# Markers from the overhead to the end.
off, last_lba, seen = overhead * S, -1, {}
while True:
    if off + S > len(b):
        die("no end-of-stream marker")
    lba, size = struct.unpack_from("<QI", b, off)
    if size == 0:
        mtype = struct.unpack_from("<I", b, off + 12)[0]
        if mtype != 0 or lba != 0 or any(b[off:off + S]):
            die("metadata marker type %d: open-vmdk writes only EOS" % mtype)
        if off + S != len(b):
            die("bytes after the end-of-stream marker")
        break
    if lba <= last_lba or lba % grain:
        die("grain LBAs out of order at sector %d" % (off // S))
    data = zlib.decompress(b[off + 12:off + 12 + size])
    want = min(grain * S, capacity * S - lba * S)
    if len(data) != want:
        die("grain at LBA %d inflates to %d bytes" % (lba, len(data)))
    if gte[lba // grain] != off // S:
        die("table entry of LBA %d does not point at its marker" % lba)
    seen[lba // grain] = True
    last_lba = lba
    off += -(-(12 + size) // S) * S
for i, e in enumerate(gte):
    if e and i not in seen:
        die("table entry %d points outside the markers" % i)
desc = b[S:21 * S].split(b"\0")[0].decode()
need = [r'^version=1$', r'^encoding="UTF-8"$', r'^CID=([0-9a-f]{8})$',
        r'^parentCID=ffffffff$', r'^createType="streamOptimized"$',
        r'^RW %d SPARSE "s.vmdk"$' % capacity,
        r'^ddb.longContentID = "[0-9a-f]{24}([0-9a-f]{8})"$',
        r'^ddb.virtualHWVersion = "4"$', r'^ddb.geometry.heads = "255"$',
        r'^ddb.geometry.sectors = "63"$', r'^ddb.geometry.cylinders = "\d+"$',
        r'^ddb.adapterType = "lsilogic"$', r'^ddb.toolsInstallType = "4"$',
        r'^ddb.toolsVersion = "2147483647"$']
found = {}
for pat in need:
    m = re.search(pat, desc, re.M)
    if not m:
        die("descriptor lacks %s" % pat)
    found[pat] = m.groups()
cid = found[need[2]][0]
if found[need[6]][0] != cid:
    die("longContentID does not end with the CID")
PY
qemu-img compare -q -f raw -F vmdk src.raw s.vmdk || fail "qemu-img compare"

# Grains and tables do not depend on the workers or on -W.
"$PY" - s.vmdk > ref.bin <<'PY'
import sys
b = open(sys.argv[1], "rb").read()
sys.stdout.buffer.write(b[:512] + b[21 * 512:])
PY
for opt in "-m 1" "-m 8" "-m 3 -W"; do
    # shellcheck disable=SC2086
    "$VIMG" convert $opt -f raw -O vmdk -o subformat=streamOptimized \
        src.raw t.vmdk
    "$PY" - t.vmdk > t.bin <<'PY'
import sys
b = open(sys.argv[1], "rb").read()
sys.stdout.buffer.write(b[:512] + b[21 * 512:])
PY
    cmp -s ref.bin t.bin || fail "grain layout changes with $opt"
done
exit 0
