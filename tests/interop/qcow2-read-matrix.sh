#!/bin/sh
# Images written by qemu-io (patterns, zero writes, discards, writes that
# straddle L2 tables) over the whole option grid, with and without a
# backing file: vimg reads the same guest bytes and the same map.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
requires qemu-img qemu-io

n=0
qcow2_grid | while read -r compat cs rb; do
    o="compat=$compat,cluster_size=$cs,refcount_bits=$rb"
    # Bytes mapped by one L2 table, when small enough to cross cheaply.
    case $cs in
        512) l2=32768 ;;
        4k) l2=2097152 ;;
        *) l2=1048576 ;;
    esac
    qemu-img create -q -f qcow2 -o "$o" "$T/base.qcow2" 8M
    qemu-io -c 'write -P 0x55 0 3M' -c 'write -P 0x56 5M 3M' \
        "$T/base.qcow2" >/dev/null
    for backing in no yes; do
        img="$T/img.qcow2"
        if [ $backing = yes ]; then
            qemu-img create -q -f qcow2 -o "$o" -b "$T/base.qcow2" -F qcow2 \
                "$img"
        else
            qemu-img create -q -f qcow2 -o "$o" "$img" 8M
        fi
        qemu-io -c 'write -P 0x11 0 100k' -c 'write -z 80k 8k' \
            -c "write -P 0x22 $((l2 - 3072)) 6k" \
            -c 'write -z 200k 64k' -c 'discard 40k 20k' \
            -c 'write -P 0x33 4M 65k' -c 'write -z 4200k 8k' \
            -c 'write -P 0x44 7M 1047552' "$img" >/dev/null
        same_data qcow2 "$img"
        same_map qcow2 "$img"
        n=$((n + 1))
        echo "ok $n: $o backing=$backing"
    done
done
