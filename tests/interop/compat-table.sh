#!/bin/sh
# The compatibility table: qemu-img 7.2 and vimg run the same invocations
# on the same inputs; exit codes, outputs, JSON fields and result files
# must agree, except for the deliberate differences that
# compat-allowlist.txt lists with their reasons (see compat-table.py).
. "$(dirname "$0")/functions.sh"
requires qemu-img qemu-io python3 xorriso
python3 "$(dirname "$0")/compat-table.py" "$VIMG"
