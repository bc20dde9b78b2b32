#!/bin/sh
# Internal snapshots by vimg and qemu-img in turn: 512-byte clusters (an
# L2 table per 32 KiB, many refcount blocks) and 64-bit refcounts.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
. "$(dirname "$0")/qcow2-snapshot.inc"
requires qemu-img qemu-io

run_layout v3-512-rc64 cluster_size=512,refcount_bits=64
