#!/bin/sh
# VHDXs made and written by vimg read the same in qemu-img, qemu-io and
# libvhdi, pass qemu-img check, and match qemu-img's own layout (file
# size; the structures differ only in GUIDs, sequence numbers, checksums
# and the creator string).
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
. "$(dirname "$0")/vhd.inc"
requires qemu-img qemu-io

for o in subformat=dynamic subformat=fixed block_size=1M,log_size=3M \
         block_size=64M block_state_zero=off \
         subformat=fixed,block_state_zero=off; do
    qemu-img create -q -f vhdx -o "$o" "$T/q.vhdx" 300M
    "$VIMG" create -q -f vhdx -o "$o" "$T/v.vhdx" 300M
    [ "$(stat -c %s "$T/q.vhdx")" = "$(stat -c %s "$T/v.vhdx")" ] ||
        fail "create -o $o: file size differs"
    [ "$(cmp -l "$T/q.vhdx" "$T/v.vhdx" | wc -l)" -lt 160 ] ||
        fail "create -o $o: more than GUIDs and checksums differ"
    qemu-img check -q -f vhdx "$T/v.vhdx" || fail "create -o $o: check"
done

src=$T/src.raw
qemu-img create -q -f raw "$src" 20000000
qemu-io -f raw -c 'write -P 0x11 0 1k' -c 'write -P 0x22 3M 2M' \
    -c 'write -P 0x33 17M 4k' -c 'write -P 0x44 19999744 512' "$src" \
    >/dev/null
for o in subformat=dynamic subformat=fixed block_size=1M \
         subformat=fixed,block_state_zero=off; do
    "$VIMG" convert -f raw -O vhdx -o "$o" "$src" "$T/v.vhdx"
    qemu-img compare -q -f raw -F vhdx "$src" "$T/v.vhdx" ||
        fail "convert -o $o: qemu-img reads other data"
    qemu-img check -q -f vhdx "$T/v.vhdx" || fail "convert -o $o: check"
    qemu-io -f vhdx -c 'read -P 0x22 3M 2M' -c 'read -P 0 5M 3M' \
        -c 'read -P 0x44 19999744 512' "$T/v.vhdx" > "$T/io"
    ! grep -q 'Pattern verification failed' "$T/io" ||
        fail "convert -o $o: qemu-io pattern mismatch"
    if has_pyvhdi; then
        [ "$(vhdi_sha "$T/v.vhdx")" = "20000256 $(qemu_sha "$T/v.vhdx" vhdx)" ] ||
            fail "convert -o $o: libvhdi reads other data"
    fi
done

# Into a disk qemu-io filled: existing blocks are overwritten in place,
# zeros over them allocate nothing, new blocks are appended.
qemu-img create -q -f vhdx -o block_size=1M "$T/t.vhdx" 20000256
qemu-io -f vhdx -c 'write -P 0x55 0 6M' "$T/t.vhdx" >/dev/null
before=$(stat -c %s "$T/t.vhdx")
"$VIMG" convert -n -f raw -O vhdx "$src" "$T/t.vhdx"
qemu-img compare -q -f raw -F vhdx "$src" "$T/t.vhdx" || fail "convert -n"
qemu-img check -q -f vhdx "$T/t.vhdx" || fail "convert -n: check"
# New: the blocks at 17M and 19M (the last sector).
[ "$(stat -c %s "$T/t.vhdx")" = $((before + 2 * 1048576)) ] ||
    fail "convert -n grew the file by $(( $(stat -c %s "$T/t.vhdx") - before ))"

# Round trip through qcow2.
"$VIMG" convert -f vhdx -O qcow2 "$T/t.vhdx" "$T/t.qcow2"
"$VIMG" convert -f qcow2 -O vhdx "$T/t.qcow2" "$T/u.vhdx"
qemu-img compare -q -f vhdx -F vhdx "$T/t.vhdx" "$T/u.vhdx" || fail "trip"
