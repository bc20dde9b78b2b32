#!/bin/sh
# create -o preallocation=off|falloc|full allocates what qemu-img's own
# file of the same size allocates (du and info actual-size), and a sparse
# file has the same extents.
. "$(dirname "$0")/functions.sh"
requires qemu-img python3
for mode in off falloc full; do
    "$VIMG" create -q -f raw -o preallocation=$mode "$T/v.img" 10M
    qemu-img create -q -f raw -o preallocation=$mode "$T/q.img" 10M
    [ "$(stat -c %s "$T/v.img")" = 10485760 ] || fail "$mode: size"
    [ "$(du_k "$T/v.img")" = "$(du_k "$T/q.img")" ] ||
        fail "$mode: du vimg $(du_k "$T/v.img") KiB, qemu-img $(du_k "$T/q.img") KiB"
    qemu-img info --output=json "$T/v.img" > "$T/vq.json"
    qemu-img info --output=json "$T/q.img" > "$T/qq.json"
    [ "$(json_get "$T/vq.json" actual-size)" = "$(json_get "$T/qq.json" actual-size)" ] ||
        fail "$mode: actual-size differs"
    qemu-img map --output=json -f raw "$T/v.img" > "$T/vm.json"
    qemu-img map --output=json -f raw "$T/q.img" > "$T/qm.json"
    cmp -s "$T/vm.json" "$T/qm.json" || fail "$mode: map differs"
done
# Sizes round up to whole sectors, as qemu-img's do.
"$VIMG" create -q -f raw "$T/odd.img" 1000
[ "$(stat -c %s "$T/odd.img")" = 1024 ] || fail "1000 bytes not rounded to 1024"
expect_status 1 "$VIMG" create -f raw -o preallocation=bogus "$T/bad.img" 1M
[ ! -e "$T/bad.img" ] || fail "bad preallocation left a file"
