#!/bin/sh
# map --start-offset/--max-length on several layouts gives qemu-img's
# extents, JSON and human.
. "$(dirname "$0")/functions.sh"
requires qemu-img
img=$T/disk.img
"$VIMG" create -q -f raw "$img" 32M
dd if=/dev/urandom of="$img" bs=4k seek=1 count=3 conv=notrunc 2>/dev/null
dd if=/dev/urandom of="$img" bs=1M seek=5 count=2 conv=notrunc 2>/dev/null
dd if=/dev/urandom of="$img" bs=64k seek=511 count=1 conv=notrunc 2>/dev/null
"$VIMG" create -q -f raw -o preallocation=full "$T/full.img" 2M
for f in "$img" "$T/full.img"; do
    for range in "" "--start-offset=8192" "--start-offset=5M --max-length=1M" \
                 "--max-length=4096" "--start-offset=1000 --max-length=7000" \
                 "--start-offset=32M" "--start-offset=6M"; do
        for out in json human; do
            # shellcheck disable=SC2086
            "$VIMG" map -f raw --output=$out $range "$f" > "$T/v" || fail "vimg map $range"
            # shellcheck disable=SC2086
            qemu-img map -f raw --output=$out $range "$f" > "$T/q"
            cmp -s "$T/v" "$T/q" || { diff "$T/v" "$T/q" >&2; fail "map $out $range $f"; }
        done
    done
done
