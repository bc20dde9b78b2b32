#!/bin/sh
# resize grows, refuses to shrink without --shrink, and takes +SIZE and
# "--shrink -- IMG -SIZE", giving the sizes qemu-img gives.
. "$(dirname "$0")/functions.sh"
requires qemu-img
v=$T/v.img q=$T/q.img
"$VIMG" create -q -f raw "$v" 1G
qemu-img create -q -f raw "$q" 1G
same() {
    [ "$(stat -c %s "$v")" = "$(stat -c %s "$q")" ] ||
        fail "$1: vimg $(stat -c %s "$v"), qemu-img $(stat -c %s "$q")"
}
"$VIMG" resize -f raw "$v" 2G >/dev/null
qemu-img resize -f raw "$q" 2G >/dev/null
same grow
expect_status 1 "$VIMG" resize -f raw "$v" 512M
grep -q -- '--shrink' "$T/err" || fail "shrink refusal does not mention --shrink"
expect_status 1 qemu-img resize -f raw "$q" 512M
same "refused shrink"
"$VIMG" resize -f raw --shrink "$v" 512M >/dev/null
qemu-img resize -f raw --shrink "$q" 512M >/dev/null
same shrink
"$VIMG" resize -f raw "$v" +1G >/dev/null
qemu-img resize -f raw "$q" +1G >/dev/null
same "+1G"
"$VIMG" resize -f raw --shrink -- "$v" -1M >/dev/null
qemu-img resize -f raw --shrink -- "$q" -1M >/dev/null
same "-1M"
[ "$(stat -c %s "$v")" = $((1536 * 1048576 - 1048576)) ] || fail "final size"
# Data below the new end survives a shrink.
printf 'keep' | dd of="$v" bs=1 seek=1000 conv=notrunc 2>/dev/null
"$VIMG" resize -f raw --shrink "$v" 4096 >/dev/null
[ "$(dd if="$v" bs=1 skip=1000 count=4 2>/dev/null)" = keep ] || fail "data lost"
