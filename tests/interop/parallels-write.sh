#!/bin/sh
# Parallels images made and written by vimg read the same in qemu-img and
# qemu-io and pass qemu-img check: create is byte for byte qemu-img's,
# convert -O parallels, writes into an image qemu-io filled (both magics),
# an image left in use refused for writing until check -r all, the format
# extension dropped by a writer, and resize growing within the BAT's room.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
requires qemu-img qemu-io

inuse() { od -An -tx4 -j44 -N4 "$1" | tr -d ' '; }
clean() { # IMG WHAT: qemu-img check finds nothing, the image is not in use
    qemu-img check -q -f parallels "$1" || fail "$2: qemu-img check"
    [ "$(inuse "$1")" = 00000000 ] || fail "$2: left in use ($(inuse "$1"))"
}

for args in 100M "-o cluster_size=4k 10M" "-o cluster_size=1000 1001" 3G \
            "-o cluster_size=64k 1"; do
    rm -f "$T/q.hdd" "$T/v.hdd"
    # shellcheck disable=SC2086
    qemu-img create -q -f parallels "$T/q.hdd" $args
    # shellcheck disable=SC2086
    "$VIMG" create -q -f parallels "$T/v.hdd" $args
    cmp "$T/q.hdd" "$T/v.hdd" || fail "create $args: not qemu-img's file"
    # qemu-img 7.2 calls all but the first cluster of a BAT longer than
    # one cluster (4k here) leaked, even in its own new images.
    "$VIMG" check -q "$T/v.hdd" || fail "create $args: vimg check"
done

src=$T/src.raw
qemu-img create -q -f raw "$src" 9000000
qemu-io -f raw -c 'write -P 0x11 0 1k' -c 'write -P 0x22 3M 2M' \
    -c 'write -P 0x33 8M 4k' -c 'write -P 0x44 8999424 512' "$src" >/dev/null
for cs in 1M 4k; do
    "$VIMG" convert -f raw -O parallels -o cluster_size=$cs "$src" "$T/v.hdd"
    qemu-img compare -q -f raw -F parallels "$src" "$T/v.hdd" ||
        fail "convert $cs: qemu-img reads other data"
    clean "$T/v.hdd" "convert $cs"
    qemu-io -f parallels -c 'read -P 0x22 3M 2M' -c 'read -P 0 5M 3M' \
        -c 'read -P 0x44 8999424 512' "$T/v.hdd" > "$T/io"
    ! grep -q 'Pattern verification failed' "$T/io" ||
        fail "convert $cs: qemu-io pattern mismatch"
    same_map parallels "$T/v.hdd"
done

# Into a disk qemu-io filled (clusters 0-5 of 1 MiB): only clusters 8
# (0x33, 0x44) is new; the zeros over 0-5 allocate nothing. Then the same
# with the old magic, whose BAT counts sectors.
for magic in new old; do
    qemu-img create -q -f parallels "$T/t.hdd" 9000000
    qemu-io -f parallels -c 'write -P 0x55 0 6M' "$T/t.hdd" >/dev/null
    if [ $magic = old ]; then
        "$PY" - "$T/t.hdd" <<'PY'
import struct, sys
f = open(sys.argv[1], 'r+b')
b = bytearray(f.read())
tracks, n = struct.unpack_from('<II', b, 28)
b[0:16] = b'WithoutFreeSpace'
for i in range(n):
    e = struct.unpack_from('<I', b, 64 + 4 * i)[0]
    struct.pack_into('<I', b, 64 + 4 * i, e * tracks)
f.seek(0)
f.write(b)
PY
    fi
    before=$(stat -c %s "$T/t.hdd")
    "$VIMG" convert -n -f raw -O parallels "$src" "$T/t.hdd"
    qemu-img compare -q -f raw -F parallels "$src" "$T/t.hdd" ||
        fail "convert -n $magic: data"
    clean "$T/t.hdd" "convert -n $magic"
    after=$(stat -c %s "$T/t.hdd")
    [ "$after" = $((before + 1048576)) ] ||
        fail "convert -n $magic grew by $((after - before))"
done

# Left in use by a writer that did not close it: read, but not written,
# until check -r all, after which qemu-img finds it clean.
qemu-img create -q -f parallels "$T/u.hdd" 4M
qemu-io -f parallels -c 'write -P 0x66 1M 64k' "$T/u.hdd" >/dev/null
printf 'Ynot' | dd of="$T/u.hdd" bs=1 seek=44 conv=notrunc status=none
expect_status 1 "$VIMG" convert -n -f raw -O parallels "$src" "$T/u.hdd"
[ "$(wc -l < "$T/err")" = 1 ] && grep -q "u.hdd: .*not closed correctly" \
    "$T/err" || fail "in use: $(cat "$T/err")"
"$VIMG" info "$T/u.hdd" | grep -q '^cleanly shut down: no$' ||
    fail "in use: info does not say so"
[ "$(vimg_sha "$T/u.hdd" parallels)" = "$(qemu_sha "$T/u.hdd" parallels)" ] ||
    fail "in use: read differs"
expect_status 2 "$VIMG" check "$T/u.hdd"
grep -q 'ERROR image was not closed correctly' "$T/err" ||
    fail "check: $(cat "$T/err")"
expect_status 0 "$VIMG" check -r all "$T/u.hdd"
clean "$T/u.hdd" "check -r all"

# A writer drops the format extension (its bitmaps would go stale).
qemu-img create -q -f parallels "$T/e.hdd" 4M
"$PY" - "$T/e.hdd" <<'PY'
import os, struct, sys
f = open(sys.argv[1], 'r+b')
end = os.path.getsize(sys.argv[1])
f.seek(56)
f.write(struct.pack('<Q', end // 512))
f.seek(end)
f.write(struct.pack('<Q', 0xAB234CEF23DCEA87) + bytes((1 << 20) - 8))
PY
qemu-img create -q -f raw "$T/four.raw" 4M
qemu-io -f raw -c 'write -P 0x77 0 4M' "$T/four.raw" >/dev/null
"$VIMG" convert -n -f raw -O parallels "$T/four.raw" "$T/e.hdd"
[ "$(od -An -tx8 -j56 -N8 "$T/e.hdd" | tr -d ' ')" = 0000000000000000 ] ||
    fail "extension still named after a write"
qemu-img compare -q -f raw -F parallels "$T/four.raw" "$T/e.hdd" ||
    fail "extension: data"

# Resize: growing within the BAT's cluster keeps the data and reads zeros
# after it; past it, and shrinking, are refused with one line.
qemu-img create -q -f parallels -o cluster_size=64k "$T/r.hdd" 1000000
qemu-io -f parallels -c 'write -P 0x88 0 1000000' "$T/r.hdd" >/dev/null
# Bytes past the old end (1000448, rounded up to a sector) in the last
# cluster (15) must not show up.
"$PY" - "$T/r.hdd" <<'PY'
import struct, sys
f = open(sys.argv[1], 'r+b')
f.seek(64 + 4 * 15)
at = struct.unpack('<I', f.read(4))[0] * 65536 + 1000448 % 65536
f.seek(at)
f.write(b'\x99' * (65536 - 1000448 % 65536))
PY
"$VIMG" resize -f parallels "$T/r.hdd" 2M
[ "$(qemu-img info -f parallels --output=json "$T/r.hdd" |
     sed -n 's/.*"virtual-size": \([0-9]*\).*/\1/p')" = 2097152 ] ||
    fail "resize: virtual size"
clean "$T/r.hdd" "resize"
qemu-io -f parallels -c 'read -P 0x88 0 1000000' \
    -c 'read -P 0 1000448 1096704' "$T/r.hdd" > "$T/io"
! grep -q 'Pattern verification failed' "$T/io" || fail "resize: data"
expect_status 1 "$VIMG" resize -f parallels "$T/r.hdd" 2G
[ "$(wc -l < "$T/err")" = 1 ] && grep -q 'r.hdd: .*BAT' "$T/err" ||
    fail "resize past the BAT: $(cat "$T/err")"
expect_status 1 "$VIMG" resize -f parallels --shrink "$T/r.hdd" 1M
clean "$T/r.hdd" "refused resizes"
