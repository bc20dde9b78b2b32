#!/bin/sh
# `vimg measure -O qcow2` prints exactly qemu-img's numbers, for empty
# images over a grid of sizes and options, and for sources holding data,
# zeros and holes.
. "$(dirname "$0")/functions.sh"
requires qemu-img qemu-io

# same ARGS...: both tools measure with ARGS; the JSON must be identical,
# or both must fail.
same() {
    set +e
    qemu-img measure --output=json -O qcow2 "$@" >"$T/q" 2>"$T/qe"
    qs=$?
    "$VIMG" measure --output=json -O qcow2 "$@" >"$T/v" 2>"$T/ve"
    vs=$?
    set -e
    [ "$qs" = 0 ] || qs=1
    [ "$vs" = "$qs" ] || { cat "$T/qe" "$T/ve" >&2; fail "measure $* exited $vs, qemu-img $qs"; }
    [ "$qs" = 0 ] || return 0
    cmp -s "$T/q" "$T/v" || { diff "$T/q" "$T/v" >&2; fail "measure $* differs"; }
}

n=0
for size in 0 1 511 65537 536870911 1G 16G 1000000007 64T; do
    for cs in 512 4k 64k 2M; do
        for opts in "" compat=0.10 refcount_bits=1 refcount_bits=64 \
                    preallocation=metadata preallocation=full \
                    preallocation=falloc,refcount_bits=8 \
                    backing_file=base.img extended_l2=on; do
            same --size "$size" -o "cluster_size=$cs${opts:+,$opts}"
            n=$((n + 1))
        done
    done
done
# Invalid options fail in both.
same --size 1G -o cluster_size=1000
same --size 1G -o cluster_size=256
same --size 1G -o cluster_size=4M
same --size 1G -o compat=0.10,refcount_bits=8
same --size 1G -o refcount_bits=128
same --size 1G -o refcount_bits=3
same --size 1G -o compat=2.0
same --size 1G -o cluster_size=4k,extended_l2=on
same --size 1G -o preallocation=bogus

# Sources: raw with data and holes, qcow2 v2/v3 with data, zero clusters,
# discards, and a backing chain.
qemu-img create -q -f raw "$T/src.raw" 10M
qemu-io -f raw -c 'write -P 1 0 100k' -c 'write -P 2 3M 1' \
    -c 'write -P 3 5M 2M' -c 'write -z 8M 1M' "$T/src.raw" >/dev/null
for compat in 0.10 1.1; do
    qemu-img create -q -f qcow2 -o compat=$compat "$T/base-$compat.qcow2" 10M
    qemu-io -c 'write -P 4 0 1M' -c 'write -P 5 4M 64k' \
        "$T/base-$compat.qcow2" >/dev/null
    qemu-img create -q -f qcow2 -o compat=$compat,cluster_size=4k \
        -b "$T/base-$compat.qcow2" -F qcow2 "$T/top-$compat.qcow2"
    qemu-io -c 'write -P 6 512k 1M' -c 'write -z 4M 4k' \
        -c 'discard 0 64k' -c 'write -P 7 9M 3k' \
        "$T/top-$compat.qcow2" >/dev/null
done
# Persistent bitmaps in the source are sized for the target.
qemu-img create -q -f qcow2 "$T/bm.qcow2" 300M
qemu-io -c 'write -P 8 1M 1M' "$T/bm.qcow2" >/dev/null
qemu-img bitmap --add "$T/bm.qcow2" first
qemu-img bitmap --add -g 512 "$T/bm.qcow2" a-longer-bitmap-name
for src in "-f raw $T/src.raw" "-f qcow2 $T/bm.qcow2" "-f qcow2 $T/base-0.10.qcow2" \
           "-f qcow2 $T/base-1.1.qcow2" "-f qcow2 $T/top-0.10.qcow2" \
           "-f qcow2 $T/top-1.1.qcow2"; do
    for opts in "" cluster_size=512 cluster_size=4k,compat=0.10 \
                cluster_size=2M preallocation=metadata preallocation=full \
                backing_file=x.img refcount_bits=64; do
        # shellcheck disable=SC2086
        same ${opts:+-o "$opts"} $src
        n=$((n + 1))
    done
done
echo "PASS: $n measurements identical"
