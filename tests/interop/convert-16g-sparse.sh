#!/bin/sh
# convert -O raw of a 16 GiB image that is 10% data keeps the holes (the
# copy allocates about 1.6 GiB) and qemu-img finds it identical. The data
# is written in 64 MiB chunks spread over the disk.
. "$(dirname "$0")/functions.sh"
requires qemu-img
avail=$(df -Pk "$T" | awk 'NR == 2 { print $4 }')
[ "$avail" -gt $((4 * 1024 * 1024)) ] || { echo "SKIP: need 4 GiB free in $T"; exit 77; }
src=$T/src.img
"$VIMG" create -q -f raw "$src" 16G
# 26 chunks of 64 MiB, one every 640 MiB: 1.625 GiB of data.
i=0
while [ $i -lt 26 ]; do
    head -c 1048576 /dev/urandom > "$T/chunk"
    for k in $(seq 64); do cat "$T/chunk"; done |
        dd of="$src" bs=1M seek=$((i * 640)) conv=notrunc iflag=fullblock 2>/dev/null
    i=$((i + 1))
done
"$VIMG" convert -f raw -O raw "$src" "$T/dst.img"
[ "$(stat -c %s "$T/dst.img")" = 17179869184 ] || fail "size"
used=$(du_k "$T/dst.img")
want=$((26 * 64 * 1024))
[ "$used" -ge "$want" ] && [ "$used" -le $((want + 1024)) ] ||
    fail "copy allocates $used KiB, expected about $want KiB"
qemu-img compare -f raw -F raw "$src" "$T/dst.img" > /dev/null || fail "qemu-img compare"
