#!/bin/sh
# Extended L2 entries written by qemu-io (subcluster writes, zero writes,
# a backing file, preallocation): vimg reads the same bytes and maps the
# same extents as qemu-img, and info says "extended l2: true".
. "$(dirname "$0")/functions.sh"
requires qemu-img qemu-io

for cs in 16k 64k 2M; do
    sc=$(( $(echo "$cs" | sed 's/k$/*1024/; s/M$/*1048576/') / 32 ))
    qemu-img create -q -f qcow2 "$T/base.qcow2" 8M
    qemu-io -c "write -P 0x11 0 8M" "$T/base.qcow2" >/dev/null
    qemu-img create -q -f qcow2 -o "extended_l2=on,cluster_size=$cs" \
        -b "$T/base.qcow2" -F qcow2 "$T/top.qcow2" 8M
    # One subcluster, a partial one, a run across a cluster boundary,
    # zeroed subclusters in an allocated cluster and in an unallocated
    # one, and a discard.
    qemu-io -c "write -P 0x22 $sc $sc" \
            -c "write -P 0x33 $((5 * sc + 100)) 1000" \
            -c "write -P 0x44 $((32 * sc - 3 * sc)) $((6 * sc))" \
            -c "write -z $((2 * sc)) $((2 * sc))" \
            -c "write -z $((40 * sc)) $((3 * sc))" \
            -c "write -P 0x55 $((64 * sc)) $((32 * sc))" \
            -c "write -z $((66 * sc)) $((sc))" \
            -c "discard $((96 * sc)) $((32 * sc))" \
            "$T/top.qcow2" >/dev/null
    [ "$(vimg_sha "$T/top.qcow2" qcow2)" = "$(qemu_sha "$T/top.qcow2" qcow2)" ] ||
        fail "$cs: contents differ"
    qemu-img map --output=json "$T/top.qcow2" >"$T/q.map"
    "$VIMG" map --output=json "$T/top.qcow2" >"$T/v.map"
    cmp -s "$T/q.map" "$T/v.map" || { diff "$T/q.map" "$T/v.map" >&2; fail "$cs: map differs"; }
    "$VIMG" info "$T/top.qcow2" | grep -q "extended l2: true" ||
        fail "$cs: info does not say extended l2: true"
    # Without a backing file, and preallocated: clusters allocated with
    # no subcluster allocated (qemu-img map shows their offsets).
    qemu-img create -q -f qcow2 \
        -o "extended_l2=on,cluster_size=$cs,preallocation=metadata" \
        "$T/pre.qcow2" 4M
    qemu-io -c "write -P 0x66 $((3 * sc)) $sc" "$T/pre.qcow2" >/dev/null
    qemu-img map --output=json "$T/pre.qcow2" >"$T/q.map"
    "$VIMG" map --output=json "$T/pre.qcow2" >"$T/v.map"
    cmp -s "$T/q.map" "$T/v.map" || { diff "$T/q.map" "$T/v.map" >&2; fail "$cs: preallocated map differs"; }
    [ "$(vimg_sha "$T/pre.qcow2" qcow2)" = "$(qemu_sha "$T/pre.qcow2" qcow2)" ] ||
        fail "$cs: preallocated contents differ"
done
qemu-img info "$T/top.qcow2" | grep "extended l2" >"$T/q.info"
"$VIMG" info "$T/top.qcow2" | grep "extended l2" >"$T/v.info"
cmp -s "$T/q.info" "$T/v.info" || fail "info lines differ"
echo ok
