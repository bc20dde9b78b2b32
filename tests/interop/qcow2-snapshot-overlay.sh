#!/bin/sh
# Internal snapshots by vimg and qemu-img in turn in an overlay: what
# the overlay lacks still reads from its backing file.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
. "$(dirname "$0")/qcow2-snapshot.inc"
requires qemu-img qemu-io

run_layout overlay cluster_size=64k
