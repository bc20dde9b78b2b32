#!/bin/sh
# Parallels images made by qemu-img and written by qemu-io (cluster sizes
# 1M, 4k and an odd 1000 bytes, odd disk sizes, named .hdd) read the same
# in vimg: guest bytes, map (JSON and human), info fields, check output;
# and the same images with the old "WithoutFreeSpace" magic (BAT entries
# in sectors, data_off 0 too), which qemu-img reads as well.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
. "$(dirname "$0")/vhd.inc"
requires qemu-img qemu-io

# old_magic IN OUT [data0]: IN with the old magic, its entries in sectors,
# and with data0 a data_off of 0 (computed from the BAT).
old_magic() {
    "$PY" - "$@" <<'PY'
import struct, sys
b = bytearray(open(sys.argv[1], 'rb').read())
tracks, n = struct.unpack_from('<II', b, 28)
b[0:16] = b'WithoutFreeSpace'
for i in range(n):
    e = struct.unpack_from('<I', b, 64 + 4 * i)[0]
    struct.pack_into('<I', b, 64 + 4 * i, e * tracks)
if sys.argv[3:] == ['data0']:
    struct.pack_into('<I', b, 48, 0)
open(sys.argv[2], 'wb').write(b)
PY
}

# same_all IMG: every cross-check of this test on IMG.
same_all() {
    same_data parallels "$1"
    same_map parallels "$1"
    same_info_fields parallels "$1" virtual-size format \
        cluster-size format-specific
    qemu-img map -f parallels "$1" > "$T/qm.txt"
    "$VIMG" map -f parallels "$1" > "$T/vm.txt"
    diff "$T/qm.txt" "$T/vm.txt" >&2 || fail "$1: human map differs"
    qemu-img check -f parallels "$1" > "$T/qc.txt" 2>&1
    "$VIMG" check -f parallels "$1" > "$T/vc.txt" 2>&1
    diff "$T/qc.txt" "$T/vc.txt" >&2 || fail "$1: check differs"
    "$VIMG" info "$1" | grep -q '^file format: parallels$' ||
        fail "$1: not probed as parallels"
}

for case in 1M:9000000 4k:3M 1000:9000000; do
    img=$T/q.hdd
    qemu-img create -q -f parallels -o cluster_size=${case%:*} "$img" \
        "${case#*:}"
    qemu-io -f parallels -c 'write -P 0x11 0 1k' \
        -c 'write -P 0x22 1M 1536k' -c 'write -z 1100k 4k' \
        -c 'write -P 0x33 2M 512' -c 'write -P 0x44 5k 3k' \
        "$img" >/dev/null
    same_all "$img"
    old_magic "$img" "$T/old.hdd"
    same_all "$T/old.hdd"
done

# data_off 0: the data area starts right after the BAT, sector aligned
# (only the old magic allows it). Clusters of 63 sectors, as old
# Parallels versions made, placed from there.
qemu-img create -q -f parallels -o cluster_size=32256 "$T/q.hdd" 2M
qemu-io -f parallels -c 'write -P 0x55 0 40k' -c 'write -P 0x66 1M 1k' \
    "$T/q.hdd" >/dev/null
old_magic "$T/q.hdd" "$T/old.hdd"
same_all "$T/old.hdd"
"$PY" - "$T/old.hdd" "$T/packed.hdd" <<'PY'
import struct, sys
b = open(sys.argv[1], 'rb').read()
tracks, n = struct.unpack_from('<II', b, 28)
cl = tracks * 512
data = (64 + 4 * n + 511) // 512 * 512
out = bytearray(b[:64 + 4 * n])
out[48:52] = b'\0\0\0\0'
out += bytes(data - len(out))
for i in range(n):
    e = struct.unpack_from('<I', b, 64 + 4 * i)[0]
    if e:
        struct.pack_into('<I', out, 64 + 4 * i, len(out) // 512)
        out += b[e * 512:e * 512 + cl]
open(sys.argv[2], 'wb').write(out)
PY
same_all "$T/packed.hdd"
[ "$(vimg_sha "$T/packed.hdd" parallels)" = \
  "$(qemu_sha "$T/q.hdd" parallels)" ] || fail "data_off 0: other data"

# A format extension (dirty bitmaps) is not read: vimg reads the data as
# if it were absent, and info still works.
cp "$T/q.hdd" "$T/ext.hdd"
"$PY" - "$T/ext.hdd" <<'PY'
import os, struct, sys
f = open(sys.argv[1], 'r+b')
end = os.path.getsize(sys.argv[1])
f.seek(56)
f.write(struct.pack('<Q', end // 512))
f.seek(end)
f.write(struct.pack('<Q', 0xAB234CEF23DCEA87) + bytes(32256 - 8))
PY
[ "$(vimg_sha "$T/ext.hdd" parallels)" = \
  "$(qemu_sha "$T/q.hdd" parallels)" ] || fail "extension: other data"
