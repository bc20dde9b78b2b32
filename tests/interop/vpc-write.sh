#!/bin/sh
# VHDs made and written by vimg (create, convert, convert -n into a disk
# qemu-io filled) read the same in qemu-img, qemu-io and libvhdi, and take
# as many bytes as qemu-img's own conversions.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
. "$(dirname "$0")/vhd.inc"
requires qemu-img qemu-io

src=$T/src.raw
qemu-img create -q -f raw "$src" 9000000
qemu-io -f raw -c 'write -P 0x11 0 1k' -c 'write -P 0x22 3M 2M' \
    -c 'write -P 0x33 8M 4k' -c 'write -P 0x44 8999936 512' "$src" >/dev/null

for o in subformat=dynamic subformat=dynamic,force_size \
         subformat=fixed subformat=fixed,force_size; do
    "$VIMG" convert -f raw -O vpc -o "$o" "$src" "$T/v.vhd"
    qemu-img convert -f raw -O vpc -o "$o" "$src" "$T/q.vhd"
    qemu-img compare -q -f raw -F vpc "$src" "$T/v.vhd" ||
        fail "-o $o: qemu-img reads other data"
    [ "$(vsize qemu-img vpc "$T/v.vhd")" = "$(vsize qemu-img vpc "$T/q.vhd")" ] ||
        fail "-o $o: virtual size differs from qemu-img convert's"
    [ "$(stat -c %s "$T/v.vhd")" = "$(stat -c %s "$T/q.vhd")" ] ||
        fail "-o $o: file size differs from qemu-img convert's"
    qemu-io -f vpc -c 'read -P 0x22 3M 2M' -c 'read -P 0 5M 3M' \
        -c 'read -P 0x44 8999936 512' "$T/v.vhd" > "$T/io" ||
        fail "-o $o: qemu-io read"
    ! grep -q 'Pattern verification failed' "$T/io" ||
        fail "-o $o: qemu-io pattern mismatch"
    if has_pyvhdi; then
        [ "$(vhdi_sha "$T/v.vhd")" = "$(vsize "$VIMG" vpc "$T/v.vhd") $(qemu_sha "$T/v.vhd" vpc)" ] ||
            fail "-o $o: libvhdi reads other data"
    fi
done

# Writes into a disk qemu-io filled: over allocated blocks, into new ones,
# and zeros over allocated data (no new blocks for them).
for o in subformat=dynamic subformat=fixed; do
    qemu-img create -q -f vpc -o "$o" "$T/t.vhd" 9000000
    qemu-io -f vpc -c 'write -P 0x55 0 6M' "$T/t.vhd" >/dev/null
    before=$(stat -c %s "$T/t.vhd")
    "$VIMG" convert -n -f raw -O vpc "$src" "$T/t.vhd"
    qemu-img compare -q -f raw -F vpc "$src" "$T/t.vhd" ||
        fail "-o $o: convert -n result differs"
    # Blocks 0-2 existed; only the block holding 8M and the last sector
    # is new (2 MiB of data and 512 bytes of bitmap; qemu-img also
    # allocates block 3 to write zeros into it).
    case $o in subformat=dynamic)
        [ "$(stat -c %s "$T/t.vhd")" = $((before + 2097152 + 512)) ] ||
            fail "convert -n allocated blocks for zeros" ;;
    esac
    if has_pyvhdi; then
        [ "$(vhdi_sha "$T/t.vhd")" = "$(vsize "$VIMG" vpc "$T/t.vhd") $(qemu_sha "$T/t.vhd" vpc)" ] ||
            fail "-o $o: libvhdi reads other data after convert -n"
    fi
done

# vimg reads back what it wrote, and converts to qcow2 and back.
"$VIMG" convert -f raw -O vpc "$src" "$T/v.vhd"
"$VIMG" convert -f vpc -O qcow2 "$T/v.vhd" "$T/v.qcow2"
"$VIMG" convert -f qcow2 -O vpc -o subformat=fixed "$T/v.qcow2" "$T/w.vhd"
qemu-img compare -q -f vpc -F vpc "$T/v.vhd" "$T/w.vhd" ||
    fail "vpc -> qcow2 -> fixed vpc changed the data"
