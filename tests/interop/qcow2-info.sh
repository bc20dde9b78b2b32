#!/bin/sh
# `vimg info --output=json` agrees with qemu-img on every field both know,
# over the option grid, for images with and without a backing file.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
requires qemu-img

fields="virtual-size cluster-size format dirty-flag
format-specific.type format-specific.data.compat
format-specific.data.lazy-refcounts format-specific.data.refcount-bits
format-specific.data.corrupt format-specific.data.extended-l2
format-specific.data.compression-type backing-filename
backing-filename-format full-backing-filename"

same_info() {
    qemu-img info -U --output=json "$1" > "$T/q.json"
    "$VIMG" info -U --output=json "$1" > "$T/v.json"
    # shellcheck disable=SC2086
    json_diff "$T/q.json" "$T/v.json" $fields ||
        fail "info $1 differs (qemu-img != vimg)"
}

qemu-img create -q -f raw "$T/base.raw" 3M
qcow2_grid | while read -r compat cs rb; do
    o="compat=$compat,cluster_size=$cs,refcount_bits=$rb"
    qemu-img create -q -f qcow2 -o "$o" "$T/a.qcow2" 5000000
    same_info "$T/a.qcow2"
    "$VIMG" create -q -f qcow2 -o "$o" "$T/b.qcow2" 5000000
    same_info "$T/b.qcow2"
    (cd "$T" && qemu-img create -q -f qcow2 -o "$o" -b base.raw -F raw \
        c.qcow2)
    same_info "$T/c.qcow2"
    (cd "$T" && "$VIMG" create -q -f qcow2 -o "$o" -b base.raw -F raw \
        d.qcow2)
    same_info "$T/d.qcow2"
done
qemu-img create -q -f qcow2 -o lazy_refcounts=on "$T/lazy.qcow2" 1M
same_info "$T/lazy.qcow2"
"$VIMG" create -q -f qcow2 -o lazy_refcounts=on "$T/lazy2.qcow2" 1M
same_info "$T/lazy2.qcow2"
