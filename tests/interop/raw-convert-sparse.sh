#!/bin/sh
# convert keeps holes and zero runs sparse, and qemu-img agrees the copy is
# identical; -S 0 allocates everything.
. "$(dirname "$0")/functions.sh"
requires qemu-img
src=$T/src.img
"$VIMG" create -q -f raw "$src" 256M
dd if=/dev/urandom of="$src" bs=1M seek=10 count=4 conv=notrunc 2>/dev/null
# An explicit run of written zeros: must not be allocated in the copy.
dd if=/dev/zero of="$src" bs=1M seek=100 count=8 conv=notrunc 2>/dev/null
"$VIMG" convert -f raw -O raw "$src" "$T/dst.img"
qemu-img compare -f raw -F raw "$src" "$T/dst.img" >/dev/null || fail "compare"
[ "$(du_k "$T/dst.img")" -le 4200 ] || fail "copy not sparse: $(du_k "$T/dst.img") KiB"
[ "$(stat -c %s "$T/dst.img")" = 268435456 ] || fail "size"

"$VIMG" convert -S 0 -f raw -O raw "$src" "$T/full.img"
[ "$(du_k "$T/full.img")" -ge 262144 ] || fail "-S 0 should allocate everything"
qemu-img compare "$src" "$T/full.img" >/dev/null || fail "compare -S 0"

# Parallel, out of order, through O_DIRECT on both sides.
"$VIMG" convert -W -m 4 -t none -T none -f raw -O raw "$src" "$T/d.img"
qemu-img compare "$src" "$T/d.img" >/dev/null || fail "compare -W -t none"
