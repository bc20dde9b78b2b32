#!/bin/sh
# Internal snapshots by vimg and qemu-img in turn over compressed clusters
# (written by qemu-img convert -c; a host cluster holds several).
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
. "$(dirname "$0")/qcow2-snapshot.inc"
requires qemu-img qemu-io

run_layout compressed cluster_size=64k
