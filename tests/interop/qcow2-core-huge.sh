#!/bin/sh
# A 64 TiB image is created, mapped, checked and resized in under 16 MiB of
# memory (nothing is sized by the virtual size except the 1 MiB L1 table),
# and qemu-img agrees with the result.
. "$(dirname "$0")/functions.sh"
requires qemu-img
[ -x /usr/bin/time ] || { echo "SKIP: /usr/bin/time not installed"; exit 77; }

img="$T/huge.qcow2"
rss() { /usr/bin/time -f %M -o "$T/rss" "$@" > "$T/out"
        [ "$(cat "$T/rss")" -lt 16384 ] || fail "$* used $(cat "$T/rss") KiB"; }
rss "$VIMG" create -q -f qcow2 "$img" 64T
qemu-img check -q "$img" || fail "qemu-img check of a new 64 TiB image"
rss "$VIMG" map --output=json "$img"
qemu-img map --output=json "$img" > "$T/q.map"
cmp -s "$T/out" "$T/q.map" || fail "map differs"
rss "$VIMG" check "$img"
rss "$VIMG" resize "$img" 100T
qemu-img check -q "$img" || fail "qemu-img check after resize"
qemu-img info --output=json "$img" > "$T/q.json"
[ "$(json_get "$T/q.json" virtual-size)" = 109951162777600 ] ||
    fail "resize to 100 TiB not seen by qemu-img"
