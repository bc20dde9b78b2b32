#!/bin/sh
# convert -S SIZE leaves the same zero runs unallocated as qemu-img: a
# source of 64 KiB data blocks each holding a zero run of 0 to 28 KiB,
# copied with -S 4k, 16k and 64k, allocates what qemu-img's copy does.
. "$(dirname "$0")/functions.sh"
requires qemu-img python3
python3 - "$T/src.img" <<'PY'
import os, sys
with open(sys.argv[1], "wb") as f:
    for i in range(256):
        z = (i % 8) * 4096
        blk = bytearray(os.urandom(65536))
        blk[8192:8192 + z] = bytes(z)
        f.write(blk)
PY
for s in 4k 16k 64k; do
    rm -f "$T/v.img" "$T/q.img"
    "$VIMG" convert -S $s -f raw -O raw "$T/src.img" "$T/v.img"
    qemu-img convert -S $s -f raw -O raw "$T/src.img" "$T/q.img"
    cmp "$T/v.img" "$T/q.img" || fail "-S $s: contents differ"
    [ "$(data_map "$T/v.img")" = "$(data_map "$T/q.img")" ] ||
        fail "-S $s: vimg allocates $(du_k "$T/v.img") KiB, qemu-img $(du_k "$T/q.img") KiB (data extents differ)"
done
