#!/bin/sh
# New VHDs have the virtual size and file size qemu-img 7.2 gives them, for
# sizes around every CHS geometry boundary, with and without force_size,
# dynamic and fixed; vimg reads qemu-img's images at the size qemu-img
# reads them, and libvhdi agrees.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
. "$(dirname "$0")/vhd.inc"
requires qemu-img

# 65535*16*63 and 65535*16*255 sectors are where the geometry algorithm
# changes its sectors per track; 1024*17*4 where it changes heads.
big1=$((65535 * 16 * 63 * 512))
big2=$((65535 * 16 * 255 * 512))
sizes="512 1000000 1M 35651584 35652096 100M 1G 4095M
$((big1 - 512)) $big1 $((big1 + 512)) $((big2 - 512)) $big2 $((big2 + 512))
130G 1099511627777 2040G"

check() { # FMT-OPTIONS SIZE
    qemu-img create -q -f vpc -o "$1" "$T/q.vhd" "$2"
    "$VIMG" create -q -f vpc -o "$1" "$T/v.vhd" "$2"
    qs=$(vsize qemu-img vpc "$T/q.vhd")
    for img in q v; do
        vs=$(vsize "$VIMG" vpc "$T/$img.vhd")
        [ "$vs" = "$qs" ] || fail "-o $1 size $2: vimg reads $img.vhd as $vs bytes, qemu-img made $qs"
    done
    qv=$(vsize qemu-img vpc "$T/v.vhd")
    [ "$qv" = "$qs" ] || fail "-o $1 size $2: qemu-img reads vimg's image as $qv, its own as $qs"
    [ "$(stat -c %s "$T/q.vhd")" = "$(stat -c %s "$T/v.vhd")" ] ||
        fail "-o $1 size $2: file sizes differ"
    # Between the footers (timestamp, identifier, checksum) a dynamic disk
    # is byte for byte qemu-img's.
    case $1 in subformat=dynamic*)
        cmp -s -i 512:512 -n "$(( $(stat -c %s "$T/q.vhd") - 1024 ))" \
            "$T/q.vhd" "$T/v.vhd" ||
            fail "-o $1 size $2: the dynamic header or BAT differs" ;;
    esac
}

for s in $sizes; do
    check subformat=dynamic,force_size=off "$s"
    check subformat=dynamic,force_size=on "$s"
done
for s in 512 1000000 100M $big2 130G; do
    check subformat=fixed "$s"
    check subformat=fixed,force_size "$s"
done

# Over the limit: both refuse.
expect_status 1 "$VIMG" create -f vpc "$T/big.vhd" 2041G
grep -q "too large" "$T/err" || fail "no 'too large' in: $(cat "$T/err")"
[ ! -e "$T/big.vhd" ] || fail "a refused create left a file"

# libvhdi's media size is the footer's current size.
if command -v vhdiinfo >/dev/null; then
    "$VIMG" create -q -f vpc -o force_size "$T/l.vhd" 1000000
    vhdiinfo "$T/l.vhd" | grep -q '(1000448 bytes)' || fail "libvhdi size"
fi
