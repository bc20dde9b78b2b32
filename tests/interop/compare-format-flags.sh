#!/bin/sh
# compare -f names the first image only and -F the second, which is probed
# without it (as qemu-img does): `-f raw a.raw b.qcow2` compares a raw and
# a qcow2 image and finds them identical. Same exit status and output as
# qemu-img compare for each combination.
. "$(dirname "$0")/functions.sh"
requires qemu-img qemu-io
a=$T/a.raw b=$T/b.qcow2
qemu-img create -q -f raw "$a" 1M
qemu-io -f raw -c 'write -P 7 0 64k' -c 'write -P 9 512k 4k' "$a" >/dev/null
qemu-img convert -f raw -O qcow2 "$a" "$b"

both() { # both STATUS ARGS...: same status and stdout from both tools
    want=$1; shift
    expect_status "$want" qemu-img compare "$@"; cp "$T/out" "$T/qout"
    expect_status "$want" "$VIMG" compare "$@"
    cmp -s "$T/out" "$T/qout" || { diff "$T/out" "$T/qout" >&2; fail "output of compare $*"; }
}
both 0 -f raw "$a" "$b"
both 0 -f qcow2 "$b" "$a"
both 0 -F qcow2 "$a" "$b"
both 0 -F raw "$b" "$a"
both 0 -f raw -F qcow2 "$a" "$b"
both 0 "$a" "$b"
# -F raw reads the qcow2 file's bytes: different (the first bytes differ;
# the output may differ in the size warning, so only the status counts).
expect_status 1 qemu-img compare -f raw -F raw "$a" "$b"
expect_status 1 "$VIMG" compare -f raw -F raw "$a" "$b"
# -f qcow2 on the raw first image is an error in both.
expect_status 2 qemu-img compare -f qcow2 "$a" "$b"
expect_status 2 "$VIMG" compare -f qcow2 "$a" "$b"
