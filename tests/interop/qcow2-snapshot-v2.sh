#!/bin/sh
# Internal snapshots by vimg and qemu-img in turn: compat=0.10 (no
# recorded disk size, no zero flag), 4 KiB clusters.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
. "$(dirname "$0")/qcow2-snapshot.inc"
requires qemu-img qemu-io

run_layout v2-4k compat=0.10,cluster_size=4k
