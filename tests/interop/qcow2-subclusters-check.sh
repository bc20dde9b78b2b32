#!/bin/sh
# Invalid subcluster bitmaps are corruption, as in qemu-img check: an
# allocated and a zero bit both set, a compressed cluster with a non-zero
# bitmap, allocation bits in an unallocated cluster. vimg check prints
# what qemu-img check prints and exits as it does; reading the cluster
# fails in both.
. "$(dirname "$0")/functions.sh"
requires qemu-img qemu-io python3

qemu-img create -q -f qcow2 -o extended_l2=on "$T/good.qcow2" 1M
qemu-io -c "write -P 1 0 64k" -c "write -c -P 2 64k 64k" \
        -c "write -z 128k 2k" "$T/good.qcow2" >/dev/null
l2=$(python3 -c '
import struct, sys
d = open(sys.argv[1], "rb").read()
l1 = struct.unpack(">Q", d[40:48])[0]
print(struct.unpack(">Q", d[l1:l1 + 8])[0] & 0x00fffffffffffe00)' "$T/good.qcow2")

# bad NAME ENTRY BITMAP-BYTES: a copy with the bitmap of ENTRY replaced.
bad() {
    cp "$T/good.qcow2" "$T/$1.qcow2"
    printf "$3" | dd of="$T/$1.qcow2" bs=1 seek=$((l2 + 16 * $2 + 8)) \
        conv=notrunc 2>/dev/null
}
bad both 0 '\000\000\000\001\377\377\377\377'
bad compressed 1 '\000\000\000\000\000\000\000\001'
bad unalloc 2 '\000\000\000\001\000\000\000\003'

"$VIMG" check -q "$T/good.qcow2" || fail "the good image is not clean"
for c in both compressed unalloc; do
    set +e
    qemu-img check "$T/$c.qcow2" >"$T/q" 2>&1; qs=$?
    "$VIMG" check "$T/$c.qcow2" >"$T/v" 2>&1; vs=$?
    set -e
    [ "$qs" = 2 ] || fail "$c: qemu-img check exited $qs"
    [ "$vs" = "$qs" ] || fail "$c: vimg check exited $vs, qemu-img $qs"
    cmp -s "$T/q" "$T/v" || { diff "$T/q" "$T/v" >&2; fail "$c: check output differs"; }
done
# Reading the bad cluster fails (and marks the image corrupt) in both.
for c in both unalloc; do
    n=$(( $(echo "$c" | sed 's/both/0/; s/unalloc/2/') * 65536 ))
    cp "$T/$c.qcow2" "$T/q.qcow2"
    qemu-io -c "read $n 512" "$T/q.qcow2" 2>&1 | grep -q "error" ||
        fail "$c: qemu-io read succeeded"
    expect_status 1 "$VIMG" dd -f qcow2 if="$T/$c.qcow2" of="$T/dd.raw" \
        bs=512 skip=$((n / 512)) count=$((n / 512 + 1))
    grep -q "invalid subcluster bitmap" "$T/err" || fail "$c: message"
done
echo ok
