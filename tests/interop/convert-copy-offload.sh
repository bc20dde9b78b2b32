#!/bin/sh
# convert -C copies the data of raw and qcow2 sources into a raw file with
# copy_file_range (seen with strace), holes stay holes, the bytes are what
# qemu-img -C writes; without -C nothing is offloaded; -C with -c, -S or
# --salvage is refused as qemu-img refuses it.
. "$(dirname "$0")/functions.sh"
requires qemu-img qemu-io strace
qemu-img create -q -f raw "$T/in.raw" 8M
qemu-io -f raw -c 'write -P 0x11 0 1M' -c 'write -P 0x22 3M 1M' "$T/in.raw" \
    >/dev/null
qemu-img convert -f raw -O qcow2 "$T/in.raw" "$T/in.qcow2"
for fmt in raw qcow2; do
    strace -f -o "$T/trace" -e trace=copy_file_range \
        "$VIMG" convert -C -f $fmt -O raw "$T/in.$fmt" "$T/v.raw"
    grep -q 'copy_file_range(.*= [1-9]' "$T/trace" ||
        fail "-C from $fmt did not use copy_file_range: $(cat "$T/trace")"
    qemu-img convert -C -f $fmt -O raw "$T/in.$fmt" "$T/q.raw"
    cmp "$T/v.raw" "$T/q.raw" || fail "-C from $fmt: bytes differ"
    [ "$(du_k "$T/v.raw")" -le 2100 ] || fail "-C from $fmt filled the holes"
done
strace -f -o "$T/trace" -e trace=copy_file_range \
    "$VIMG" convert -f raw -O raw "$T/in.raw" "$T/v.raw"
! grep -q 'copy_file_range(' "$T/trace" || fail "offloaded without -C"
# Into qcow2, -C copies as usual (qemu-img falls back the same way).
"$VIMG" convert -C -f raw -O qcow2 "$T/in.raw" "$T/v.qcow2"
qemu-img compare -f raw -F qcow2 "$T/in.raw" "$T/v.qcow2" >/dev/null ||
    fail "-C into qcow2"
for opt in -c "-S 4k" --salvage; do
    # shellcheck disable=SC2086
    expect_status 1 qemu-img convert -C $opt -O qcow2 "$T/in.raw" "$T/x"
    # shellcheck disable=SC2086
    expect_status 1 "$VIMG" convert -C $opt -O qcow2 "$T/in.raw" "$T/x"
    [ ! -e "$T/x" ] || fail "-C $opt made a file"
done
