#!/bin/sh
# compare -s also compares block status, as qemu-img does: a hole against
# written zeros, data at different places, and extents ending at different
# places all differ at the same offset with the same message; equal
# layouts fall through to the content check.
. "$(dirname "$0")/functions.sh"
requires qemu-img
truncate -s 1M "$T/hole"
head -c 1048576 /dev/zero > "$T/zeros"
cp "$T/hole" "$T/d100k"; printf x | dd of="$T/d100k" bs=1 seek=100000 conv=notrunc 2>/dev/null
cp "$T/hole" "$T/d500k"; printf x | dd of="$T/d500k" bs=1 seek=500000 conv=notrunc 2>/dev/null
cp "$T/hole" "$T/e100k"; printf y | dd of="$T/e100k" bs=1 seek=100000 conv=notrunc 2>/dev/null
for pair in "hole zeros" "zeros hole" "hole d100k" "d100k d500k" "d500k d100k" \
            "d100k e100k" "hole hole" "d100k d100k"; do
    set -- $pair
    set +e
    qemu-img compare -s -f raw -F raw "$T/$1" "$T/$2" > "$T/q" 2>&1; qrc=$?
    "$VIMG" compare -s -f raw -F raw "$T/$1" "$T/$2" > "$T/v" 2>&1; vrc=$?
    set -e
    [ $qrc = $vrc ] || fail "$pair: vimg exit $vrc, qemu-img $qrc"
    cmp -s "$T/q" "$T/v" || { diff "$T/v" "$T/q" >&2; fail "$pair: output differs"; }
done
grep -q '^Images are identical.$' "$T/v" || fail "last pair not identical"
# Without -s the layouts do not matter.
expect_status 0 "$VIMG" compare -f raw -F raw "$T/hole" "$T/zeros"
