#!/bin/sh
# A stream laid out as VMware's ovftool and ESXi export it: grains first,
# then each grain table and the directory behind their markers, then a
# footer (a header copy that locates the directory) and the end-of-stream
# marker. qemu-img can make no such file, so it is built here byte by byte;
# vimg reads it as qemu-img does, and refuses to append to it.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
. "$(dirname "$0")/vmdk.inc"
requires qemu-img python3

cd "$T"
"$PY" - src.raw footer.vmdk <<'PY'
import random, struct, sys, zlib
S, GRAIN, GTES = 512, 128, 512
r = random.Random(9)
capacity = (33 << 20) // S + 3           # a partial last grain
data = bytearray(capacity * S)
for lba in (0, 7 * GRAIN, 600 * GRAIN, capacity - 5):
    chunk = b"".join(r.choice([b"ovftool ", b"footer ", b"\n"])
                     for _ in range(5000))[:40000]
    data[lba * S:lba * S + len(chunk)] = chunk[:len(data) - lba * S]
open(sys.argv[1], "wb").write(data)

def header(gd):
    h = struct.pack("<IIIQQQQIQQQB4sH", 0x564d444b, 3, 0x30001, capacity,
                    GRAIN, 1, 20, GTES, 0, gd, 128, 0, b"\n \r\n", 1)
    return h + bytes(S - len(h))

def marker(sectors, mtype):
    return struct.pack("<QII", sectors, 0, mtype) + bytes(S - 16)

desc = ('# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\n'
        'createType="streamOptimized"\n\n# Extent description\n'
        'RW %d SPARSE "footer.vmdk"\n\n# The Disk Data Base\n#DDB\n\n'
        'ddb.adapterType = "lsilogic"\n' % capacity).encode()
out = bytearray(header(0xffffffffffffffff))
out += desc + bytes(20 * S - len(desc))
out += bytes(128 * S - len(out))
grains = -(-capacity // GRAIN)
gte = [0] * (-(-grains // GTES) * GTES)
for g in range(grains):
    chunk = bytes(data[g * GRAIN * S:(g + 1) * GRAIN * S])
    if not any(chunk):
        continue
    z = zlib.compress(chunk)
    gte[g] = len(out) // S
    rec = struct.pack("<QI", g * GRAIN, len(z)) + z
    out += rec + bytes(-len(rec) % S)
gd = []
for t in range(len(gte) // GTES):
    out += marker(4, 1)
    gd.append(len(out) // S)
    out += struct.pack("<512I", *gte[t * GTES:(t + 1) * GTES])
out += marker(1, 2)
gd_sector = len(out) // S
gdb = struct.pack("<%dI" % len(gd), *gd)
out += gdb + bytes(-len(gdb) % S)
out += marker(1, 3) + header(gd_sector) + marker(0, 0)
open(sys.argv[2], "wb").write(out)
PY
same_guest vmdk footer.vmdk
qemu-img compare -q -f raw -F vmdk src.raw footer.vmdk ||
    fail "the generated stream is not what qemu-img reads"
same_map vmdk footer.vmdk
expect_status 0 "$VIMG" info footer.vmdk
grep -q 'create type: streamOptimized' out || fail "$(cat out)"

# Appending would need the directory and footer moved: refused.
printf 'x' > one.raw
truncate -s 64k one.raw
cp footer.vmdk f2.vmdk
expect_status 1 "$VIMG" convert -n -f raw -O vmdk one.raw f2.vmdk
grep -q 'cannot be appended to' err || fail "$(cat err)"
cmp -s footer.vmdk f2.vmdk || fail "a refused write changed the image"
exit 0
