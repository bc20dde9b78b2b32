#!/bin/sh
# A raw file whose size is not a whole number of sectors is, as in QEMU, a
# disk rounded up to the next sector whose tail reads as zeros: info, map,
# compare and convert agree with qemu-img.
. "$(dirname "$0")/functions.sh"
requires qemu-img
img=$T/odd.img
head -c 5000 /dev/urandom > "$img"
"$VIMG" info --output=json "$img" > "$T/v.json"
qemu-img info --output=json "$img" > "$T/q.json"
[ "$(json_get "$T/v.json" virtual-size)" = 5120 ] || fail "virtual size $(json_get "$T/v.json" virtual-size)"
cmp -s "$T/v.json" "$T/q.json" || { diff "$T/v.json" "$T/q.json" >&2; fail "info"; }
for out in json human; do
    "$VIMG" map -f raw --output=$out "$img" > "$T/v"
    qemu-img map -f raw --output=$out "$img" > "$T/q"
    cmp -s "$T/v" "$T/q" || { diff "$T/v" "$T/q" >&2; fail "map $out"; }
done
"$VIMG" convert -f raw -O raw "$img" "$T/v.img"
qemu-img convert -f raw -O raw "$img" "$T/q.img"
cmp "$T/v.img" "$T/q.img" || fail "converted copies differ"
expect_status 0 "$VIMG" compare -f raw -F raw "$img" "$T/v.img"
expect_status 0 qemu-img compare -f raw -F raw "$img" "$T/v.img"
# Strict mode sees the file's zero tail against the copy's data.
expect_status 1 qemu-img compare -s -f raw -F raw "$img" "$T/v.img"
cp "$T/out" "$T/qout"
expect_status 1 "$VIMG" compare -s -f raw -F raw "$img" "$T/v.img"
cmp -s "$T/out" "$T/qout" || fail "strict compare: $(cat "$T/out") vs $(cat "$T/qout")"
[ "$(vimg_sha "$img" raw)" = "$(qemu_sha "$img" raw)" ] || fail "guest-visible bytes differ"
