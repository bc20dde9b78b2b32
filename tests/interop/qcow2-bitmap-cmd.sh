#!/bin/sh
# vimg bitmap against qemu-img bitmap: the same actions (add with and
# without -g, --disable, --enable, --merge within the image, across
# granularities and from another file with -b/-F, --clear, --remove,
# several actions in one call) leave the same bitmaps, flags and dirty
# ranges, and qemu-img check is clean; refusals exit 1 with qemu-img's
# messages, and actions before a refused one stay done.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
. "$(dirname "$0")/bitmap.inc"
requires qemu-img qemu-io qemu-nbd nbdinfo

base="$T/base.qcow2"
qemu-img create -q -f qcow2 "$base" 16M
qemu-img bitmap --add "$base" src
qemu-io -f qcow2 -c 'write 0 1M' -c 'write 5M 64k' -c 'write 9M 1k' \
    "$base" > /dev/null
other="$T/other.qcow2"
qemu-img create -q -f qcow2 "$other" 16M
qemu-img bitmap --add -g 1M "$other" o
qemu-io -f qcow2 -c 'write 12M 4k' "$other" > /dev/null
cp "$base" "$T/q.qcow2"
cp "$base" "$T/v.qcow2"

for tool in qemu-img "$VIMG"; do
    case $tool in qemu-img) img="$T/q.qcow2" ;; *) img="$T/v.qcow2" ;; esac
    $tool bitmap --add --disable "$img" d1
    $tool bitmap --add -g 4096 "$img" f4k
    $tool bitmap --merge src "$img" f4k
    $tool bitmap --add --merge src --disable "$img" chain
    $tool bitmap --enable "$img" d1
    $tool bitmap --merge src "$img" d1
    $tool bitmap --merge o -b "$other" -F qcow2 "$img" f4k
    $tool bitmap --add -g 2M "$img" big
    $tool bitmap --merge f4k "$img" big
    $tool bitmap --clear "$img" src
    $tool bitmap --add "$img" gone
    $tool bitmap --remove "$img" gone
done
qemu_clean "$T/v.qcow2"
[ "$(bitmaps_json "$T/v.qcow2")" = "$(bitmaps_json "$T/q.qcow2")" ] ||
    fail "bitmaps differ: $(bitmaps_json "$T/v.qcow2")"
same_dirty "$T/v.qcow2" "$T/q.qcow2" src d1 f4k chain big

# Refusals: both exit 1, and vimg says what qemu-img says (IMG stands for
# the image: qemu-img gets a copy, since it rewrites the header even when
# it refuses).
qemu-img create -q -f qcow2 -o compat=0.10 "$T/v2.qcow2" 1M
qemu-img create -q -f qcow2 "$T/small.qcow2" 8M
qemu-img bitmap --add "$T/small.qcow2" s
cp "$T/v.qcow2" "$T/v.qcow2.keep"
refuse() {
    cp "$T/v.qcow2" "$T/scratch.qcow2"
    qargs="" vargs=""
    for a in "$@"; do
        case $a in
            IMG) qargs="$qargs '$T/scratch.qcow2'"; vargs="$vargs '$T/v.qcow2'" ;;
            *) qargs="$qargs '$a'"; vargs="$vargs '$a'" ;;
        esac
    done
    set +e
    eval qemu-img bitmap $qargs 2> "$T/q.err"; qs=$?
    eval "'$VIMG'" bitmap $vargs 2> "$T/v.err"; vs=$?
    set -e
    [ $qs = 1 ] && [ $vs = 1 ] || fail "bitmap $*: exit $qs/$vs"
    want=$(sed -n '1s/^qemu-img: //p' "$T/q.err" |
           sed "s/ in '#block[0-9]*'//")
    got=$(sed "s/ in '[^']*'//" "$T/v.err")
    case $got in
        *"$want"*) ;;
        *) fail "bitmap $*: '$got' does not say '$want'" ;;
    esac
}
refuse --add IMG src
refuse --remove IMG nosuch
refuse --clear IMG nosuch
refuse --merge nosuch IMG d1
refuse --merge src IMG nosuch
refuse --add -g 1000 IMG x
refuse --add -g 256 IMG x
refuse --add IMG ""
refuse IMG d1
refuse -g 64k --clear IMG d1
refuse -F qcow2 --merge src IMG d1
refuse -b "$other" --clear IMG d1
refuse --clear IMG
refuse --merge s -b "$T/small.qcow2" IMG d1
cmp "$T/v.qcow2" "$T/v.qcow2.keep" || fail "a refused action changed the image"
cp "$T/v2.qcow2" "$T/v.qcow2"
refuse --add IMG x
cp "$T/v.qcow2.keep" "$T/v.qcow2"
# A chain stops at the refused action; what came before stays.
for tool in qemu-img "$VIMG"; do
    case $tool in qemu-img) img="$T/q.qcow2" ;; *) img="$T/v.qcow2" ;; esac
    set +e
    $tool bitmap --add --clear --add "$img" late 2> /dev/null
    [ $? = 1 ] || fail "$tool: the chain did not fail"
    set -e
done
[ "$(bitmaps_json "$T/v.qcow2")" = "$(bitmaps_json "$T/q.qcow2")" ] ||
    fail "after a failed chain: $(bitmaps_json "$T/v.qcow2")"
qemu_clean "$T/v.qcow2"

# A bitmap vimg made records QEMU's writes, and QEMU keeps it consistent.
qemu-img create -q -f qcow2 "$T/n.qcow2" 4M
"$VIMG" bitmap --add -g 512 "$T/n.qcow2" made
qemu-io -f qcow2 -c 'write 1M 4k' "$T/n.qcow2" > /dev/null
[ "$(bitmaps_json "$T/n.qcow2")" = "made 512 auto" ] ||
    fail "after qemu-io: $(bitmaps_json "$T/n.qcow2")"
[ "$(dirty_map "$T/n.qcow2" made | tr '\n' ' ')" = \
  "0 1048576 clean 1048576 4096 dirty 1052672 3141632 clean " ] ||
    fail "after qemu-io: $(dirty_map "$T/n.qcow2" made)"
qemu_clean "$T/n.qcow2"
exit 0
