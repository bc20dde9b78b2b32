#!/bin/sh
# vimg convert --bitmaps against qemu-img convert --bitmaps: the target
# gets the same bitmaps (names, granularities, enabled or not) and dirty
# ranges, into a new image or an existing one (-n), and checks clean;
# targets or sources that cannot hold bitmaps and inconsistent bitmaps are
# refused as qemu-img refuses them (nothing is left behind), unless
# --skip-broken-bitmaps leaves the inconsistent ones out.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
. "$(dirname "$0")/bitmap.inc"
requires qemu-img qemu-io qemu-nbd nbdinfo

src="$T/src.qcow2"
qemu-img create -q -f qcow2 "$src" 12M
qemu-img bitmap --add "$src" a
qemu-img bitmap --add -g 512 "$src" b
qemu-io -f qcow2 -c 'write -P 1 1M 100k' -c 'write -P 2 7M 3k' "$src" > /dev/null
qemu-img bitmap --disable "$src" b
qemu-img bitmap --add -g 1M "$src" c
qemu-io -f qcow2 -c 'write -P 3 11M 4k' "$src" > /dev/null

qemu-img convert --bitmaps -O qcow2 "$src" "$T/q.qcow2"
"$VIMG" convert --bitmaps -O qcow2 "$src" "$T/v.qcow2"
qemu_clean "$T/v.qcow2"
[ "$(bitmaps_json "$T/v.qcow2")" = "$(bitmaps_json "$T/q.qcow2")" ] ||
    fail "bitmaps differ: $(bitmaps_json "$T/v.qcow2")"
same_dirty "$T/v.qcow2" "$T/q.qcow2" a b c
[ "$(qemu_sha "$T/v.qcow2" qcow2)" = "$(qemu_sha "$src" qcow2)" ] ||
    fail "guest data differs"

# Into an existing image: its own bitmaps stay, the source's are added.
for t in q v; do
    qemu-img create -q -f qcow2 "$T/n$t.qcow2" 12M
    qemu-img bitmap --add "$T/n$t.qcow2" mine
done
qemu-img convert -n --bitmaps -O qcow2 "$src" "$T/nq.qcow2"
"$VIMG" convert -n --bitmaps -O qcow2 "$src" "$T/nv.qcow2"
qemu_clean "$T/nv.qcow2"
[ "$(bitmaps_json "$T/nv.qcow2")" = "$(bitmaps_json "$T/nq.qcow2")" ] ||
    fail "-n: bitmaps differ: $(bitmaps_json "$T/nv.qcow2")"
same_dirty "$T/nv.qcow2" "$T/nq.qcow2" mine a b c

# Refusals.
qemu-img create -q -f raw "$T/r.raw" 12M
expect_status 1 "$VIMG" convert --bitmaps -O raw "$src" "$T/x.raw"
grep -q "Format driver 'raw' does not support bitmaps" "$T/err" || fail "raw target: $(cat "$T/err")"
expect_status 1 "$VIMG" convert --bitmaps -O qcow2 -o compat=0.10 "$src" "$T/x.qcow2"
grep -q "Format driver 'qcow2' does not support bitmaps" "$T/err" || fail "v2 target: $(cat "$T/err")"
expect_status 1 "$VIMG" convert --bitmaps -f raw -O qcow2 "$T/r.raw" "$T/x.qcow2"
grep -q "Source lacks bitmap support" "$T/err" || fail "raw source: $(cat "$T/err")"
expect_status 1 "$VIMG" convert --skip-broken-bitmaps -O qcow2 "$src" "$T/x.qcow2"
grep -q "requires --bitmaps" "$T/err" || fail "skip alone: $(cat "$T/err")"
[ ! -e "$T/x.raw" ] && [ ! -e "$T/x.qcow2" ] || fail "a refused convert left a file"

# An inconsistent bitmap (a writer stopped while it was in use).
cp "$src" "$T/broken.qcow2"
"$PY" - "$T/broken.qcow2" <<'PY'
import struct, sys
f = open(sys.argv[1], 'r+b'); h = f.read(65536)
off = struct.unpack_from('>I', h, 100)[0]
while True:
    t, l = struct.unpack_from('>II', h, off)
    if t == 0x23852875:
        d = struct.unpack_from('>Q', h, off + 24)[0]
        break
    off += 8 + (l + 7) // 8 * 8
f.seek(d + 12); flags = struct.unpack('>I', f.read(4))[0]
f.seek(d + 12); f.write(struct.pack('>I', flags | 1))
PY
expect_status 1 "$VIMG" convert --bitmaps -O qcow2 "$T/broken.qcow2" "$T/x.qcow2"
grep -q "Cannot copy inconsistent bitmap 'a'" "$T/err" || fail "inconsistent: $(cat "$T/err")"
[ ! -e "$T/x.qcow2" ] || fail "a refused convert left a file"
"$VIMG" convert --bitmaps --skip-broken-bitmaps -O qcow2 "$T/broken.qcow2" "$T/x.qcow2"
qemu-img convert --bitmaps --skip-broken-bitmaps -O qcow2 "$T/broken.qcow2" "$T/y.qcow2" 2> /dev/null
[ "$(bitmaps_json "$T/x.qcow2")" = "$(bitmaps_json "$T/y.qcow2")" ] ||
    fail "skip: $(bitmaps_json "$T/x.qcow2")"
qemu_clean "$T/x.qcow2"
exit 0
