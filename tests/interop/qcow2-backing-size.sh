#!/bin/sh
# `vimg create -f qcow2 -b BASE -F FMT` without a size takes the backing
# file's size, as qemu-img does, and records name and format.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
requires qemu-img

qemu-img create -q -f qcow2 "$T/base.qcow2" 5000000
qemu-img create -q -f raw "$T/base.raw" 3M
for fmt in qcow2 raw; do
    "$VIMG" create -q -f qcow2 -b "$T/base.$fmt" -F $fmt "$T/v-$fmt.qcow2"
    qemu-img create -q -f qcow2 -b "$T/base.$fmt" -F $fmt "$T/q-$fmt.qcow2"
    qemu-img info --output=json "$T/v-$fmt.qcow2" > "$T/v.json"
    qemu-img info --output=json "$T/q-$fmt.qcow2" > "$T/q.json"
    for f in virtual-size backing-filename backing-filename-format; do
        [ "$(json_get "$T/v.json" $f)" = "$(json_get "$T/q.json" $f)" ] ||
            fail "$fmt backing: $f differs"
    done
    qemu_clean "$T/v-$fmt.qcow2"
    qemu-img compare -q "$T/base.$fmt" "$T/v-$fmt.qcow2" ||
        fail "overlay of $fmt does not read as its backing file"
done
# An explicit size wins over the backing file's.
"$VIMG" create -q -f qcow2 -b "$T/base.raw" -F raw "$T/big.qcow2" 8M
qemu-img info --output=json "$T/big.qcow2" > "$T/v.json"
[ "$(json_get "$T/v.json" virtual-size)" = 8388608 ] || fail "size ignored"
# A missing backing file without a size fails cleanly.
expect_status 1 "$VIMG" create -f qcow2 -b "$T/nosuch.qcow2" -F qcow2 \
    "$T/x.qcow2"
[ ! -e "$T/x.qcow2" ] || fail "failed create left a file"
