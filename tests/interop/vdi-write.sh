#!/bin/sh
# VDIs made and written by vimg read the same in qemu-img and qemu-io, pass
# qemu-img check, match qemu-img's own files byte for byte but for the two
# random UUIDs (create) and in size (convert), and take writes into a disk
# qemu-io filled without allocating blocks for zeros.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
. "$(dirname "$0")/vhd.inc"
requires qemu-img qemu-io

# create: the header and map are qemu-img's, except image and snapshot
# UUIDs (bytes 392-423).
for o in static=off static=on; do
    for size in 1 1000000 100M 3G; do
        qemu-img create -q -f vdi -o "$o" "$T/q.vdi" "$size"
        "$VIMG" create -q -f vdi -o "$o" "$T/v.vdi" "$size"
        [ "$(stat -c %s "$T/q.vdi")" = "$(stat -c %s "$T/v.vdi")" ] ||
            fail "create $o $size: file size differs"
        cmp -s -n 392 "$T/q.vdi" "$T/v.vdi" &&
            cmp -s -i 424 -n 1048576 "$T/q.vdi" "$T/v.vdi" ||
            fail "create $o $size: header or block map differs"
        qemu-img check -q -f vdi "$T/v.vdi" || fail "create $o: qemu check"
    done
done

src=$T/src.raw
qemu-img create -q -f raw "$src" 9000000
qemu-io -f raw -c 'write -P 0x11 0 1k' -c 'write -P 0x22 3M 2M' \
    -c 'write -P 0x33 8M 4k' -c 'write -P 0x44 8999936 512' "$src" >/dev/null
for o in static=off static=on; do
    "$VIMG" convert -f raw -O vdi -o "$o" "$src" "$T/v.vdi"
    qemu-img convert -f raw -O vdi -o "$o" "$src" "$T/q.vdi"
    qemu-img compare -q -f raw -F vdi "$src" "$T/v.vdi" ||
        fail "convert $o: qemu-img reads other data"
    qemu-img check -q -f vdi "$T/v.vdi" || fail "convert $o: qemu-img check"
    [ "$(stat -c %s "$T/v.vdi")" = "$(stat -c %s "$T/q.vdi")" ] ||
        fail "convert $o: file size differs from qemu-img convert's"
    qemu-io -f vdi -c 'read -P 0x22 3M 2M' -c 'read -P 0 5M 3M' \
        -c 'read -P 0x44 8999936 512' "$T/v.vdi" > "$T/io"
    ! grep -q 'Pattern verification failed' "$T/io" ||
        fail "convert $o: qemu-io pattern mismatch"
    same_map vdi "$T/v.vdi"
done

# Into a disk qemu-io filled (blocks 0-5 allocated): only blocks 8 (8M,
# the last sector) are new; the zeros over blocks 0-5 allocate nothing.
qemu-img create -q -f vdi "$T/t.vdi" 9000000
qemu-io -f vdi -c 'write -P 0x55 0 6M' "$T/t.vdi" >/dev/null
before=$(stat -c %s "$T/t.vdi")
"$VIMG" convert -n -f raw -O vdi "$src" "$T/t.vdi"
qemu-img compare -q -f raw -F vdi "$src" "$T/t.vdi" || fail "convert -n data"
qemu-img check -q -f vdi "$T/t.vdi" || fail "convert -n: qemu-img check"
[ "$(stat -c %s "$T/t.vdi")" = $((before + 1048576)) ] ||
    fail "convert -n allocated $(( $(stat -c %s "$T/t.vdi") - before )) bytes"

# Round trip through qcow2.
"$VIMG" convert -f vdi -O qcow2 "$T/t.vdi" "$T/t.qcow2"
"$VIMG" convert -f qcow2 -O vdi "$T/t.qcow2" "$T/u.vdi"
qemu-img compare -q -f vdi -F vdi "$T/t.vdi" "$T/u.vdi" || fail "round trip"
