#!/bin/sh
# Internal snapshots by vimg and qemu-img in turn: v3, 64 KiB clusters
# (see qcow2-snapshot.inc).
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
. "$(dirname "$0")/qcow2-snapshot.inc"
requires qemu-img qemu-io

run_layout v3-64k cluster_size=64k
