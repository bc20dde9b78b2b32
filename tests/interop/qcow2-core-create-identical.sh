#!/bin/sh
# `vimg create -f qcow2` writes the same bytes as `qemu-img create` for
# every cluster size, compat level, refcount width, lazy refcounts,
# compression type, backing file and metadata preallocation (at 64 KiB
# clusters; with tiny clusters the refcount structure grows differently).
. "$(dirname "$0")/functions.sh"
requires qemu-img

qemu-img create -q -f raw "$T/base.raw" 10M
cd "$T"
for o in cluster_size=512 cluster_size=1024 cluster_size=4k cluster_size=8k \
         cluster_size=2M compat=0.10 compat=0.10,cluster_size=512 \
         refcount_bits=1 refcount_bits=64 lazy_refcounts=on \
         compression_type=zstd preallocation=metadata; do
    for size in 1G 5000000 64T; do
        case $o,$size in *cluster_size=[0-9]k*,64T|*cluster_size=[0-9]*[0-9],64T|\
            *preallocation*,64T) continue;;
        esac
        "$VIMG" create -q -f qcow2 -o "$o" v.qcow2 $size
        qemu-img create -q -f qcow2 -o "$o" q.qcow2 $size
        cmp -s v.qcow2 q.qcow2 || fail "create -o $o $size differs"
    done
    case $o in *preallocation*) continue;; esac
    "$VIMG" create -q -f qcow2 -o "$o" -b base.raw -F raw v.qcow2
    qemu-img create -q -f qcow2 -o "$o" -b base.raw -F raw q.qcow2
    cmp -s v.qcow2 q.qcow2 || fail "create -o $o with a backing file differs"
done
