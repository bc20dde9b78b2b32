# nbdkit as the other end of vimg's nbd:// images: the sparse-random
# plugin as a source (info, map, compare, convert with holes skipped) and
# the memory plugin as a target (convert into nbd://), checked with
# nbdcopy and qemu-img.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/nbd.inc"
requires nbdkit nbdcopy qemu-img
kserve "$T/r.sock" sparse-random 256M seed=42 percent=5
src=$(uri "$T/r.sock")
"$VIMG" info "$src" > "$T/info"
grep -q '^virtual size: 256 MiB (268435456 bytes)$' "$T/info" ||
    fail "info: $(cat "$T/info")"
grep -q '^disk size: unavailable$' "$T/info" || fail "disk size"
# map: the same extents qemu-img reports over the same connection kind.
"$VIMG" map --output=json "$src" > "$T/v.map"
qemu-img map --output=json -f raw "$src" > "$T/q.map"
diff "$T/q.map" "$T/v.map" > /dev/null || fail "map differs from qemu-img's"
nbdcopy "$src" "$T/ref.raw"
"$VIMG" convert -O qcow2 "$src" "$T/c.qcow2"
"$VIMG" compare "$src" "$T/c.qcow2" || fail "compare after convert"
qemu-img compare -f raw -F qcow2 "$T/ref.raw" "$T/c.qcow2" ||
    fail "converted bytes differ from nbdcopy's"
# Holes stayed holes: about 5% of 256M is data.
[ "$(du_k "$T/c.qcow2")" -lt 65536 ] || fail "holes were copied as data"

# Into the memory plugin, then back out through nbdcopy.
kserve "$T/m.sock" memory 256M
dst=$(uri "$T/m.sock")
"$VIMG" convert -O raw "$T/c.qcow2" "$dst"
"$VIMG" compare "$dst" "$T/c.qcow2" || fail "compare of the nbd:// target"
nbdcopy "$dst" "$T/back.raw"
cmp "$T/ref.raw" "$T/back.raw" || fail "bytes read back differ"
# A target smaller than the source is refused with its size.
kserve "$T/small.sock" memory 1M
expect_status 1 "$VIMG" convert -O raw "$T/c.qcow2" "$(uri "$T/small.sock")"
grep -q 'smaller than the source' "$T/err" || fail "$(cat "$T/err")"
exit 0
