#!/bin/sh
# measure -O raw prints what qemu-img measure prints, for --size and for
# an image, human and JSON.
. "$(dirname "$0")/functions.sh"
requires qemu-img
img=$T/disk.img
"$VIMG" create -q -f raw "$img" 100M
dd if=/dev/urandom of="$img" bs=1M seek=3 count=2 conv=notrunc 2>/dev/null
for args in "--size 10G" "--size 1000" "--size 0" "-f raw $img" \
            "-o preallocation=full --size 5M"; do
    for out in human json; do
        # shellcheck disable=SC2086
        "$VIMG" measure -O raw --output=$out $args > "$T/v" ||
            fail "vimg measure $args failed"
        # shellcheck disable=SC2086
        qemu-img measure -O raw --output=$out $args > "$T/q"
        cmp -s "$T/v" "$T/q" || { diff "$T/v" "$T/q" >&2; fail "measure $args --output=$out"; }
    done
done
expect_status 1 "$VIMG" measure -O raw
expect_status 1 "$VIMG" measure -O raw --size 1M "$img"
