#!/bin/sh
# An -o list with an empty item (",", "", a leading comma, an unescaped
# trailing comma) is refused by create, convert and measure, as qemu-img
# refuses it ("Invalid option list"), and nothing is left behind; ",,"
# inside a value stays an escaped comma.
. "$(dirname "$0")/functions.sh"
requires qemu-img
src=$T/src.raw
qemu-img create -q -f raw "$src" 1M

no_leftovers() { # only src.raw may remain
    left=$(ls -A "$T" | grep -v -e '^src.raw$' -e '^out$' -e '^err$' || true)
    [ -z "$left" ] || fail "left behind: $left"
}
for o in ',' '' ',,' ',cluster_size=64k' 'cluster_size=64k,' \
         'cluster_size=64k,,,' 'lazy_refcounts=on,,,'; do
    for tool in qemu-img "$VIMG"; do
        expect_status 1 "$tool" create -f qcow2 -o "$o" "$T/new.qcow2" 1M
        no_leftovers
        expect_status 1 "$tool" convert -f raw -O qcow2 -o "$o" "$src" "$T/new.qcow2"
        no_leftovers
        expect_status 1 "$tool" measure -O qcow2 -o "$o" --size 1M
    done
    grep -q "Invalid option list: $o\$" "$T/err" || fail "vimg measure -o '$o': $(cat "$T/err")"
done
# A trailing ",," escapes a comma: the value is "64k," (a bad size), not an
# empty item; both tools say so rather than "Invalid option list".
for tool in qemu-img "$VIMG"; do
    expect_status 1 "$tool" create -f qcow2 -o 'cluster_size=64k,,' "$T/new.qcow2" 1M
    ! grep -q 'Invalid option list' "$T/err" || fail "$tool: $(cat "$T/err")"
    no_leftovers
done
expect_status 0 "$VIMG" create -q -f qcow2 -o 'cluster_size=64k,lazy_refcounts=on' "$T/ok.qcow2" 1M
