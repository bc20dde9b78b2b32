#!/bin/sh
# Images left behind by simulated crashes (tests/unit/qcow2/test-qcow2-
# crash.c, which fails every write from the Nth on) are consistent for
# qemu-img too: no corruption (leaks are allowed), and qemu-img reads the
# same guest data as vimg.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
requires qemu-img

crash=$(dirname "$VIMG")/../tests/unit/qcow2/test-qcow2-crash
[ -x "$crash" ] || { echo "SKIP: $crash not built"; exit 77; }
mkdir "$T/dumps"
VIMG_CRASH_DUMP_DIR="$T/dumps" "$crash" > "$T/crash.out" ||
    { cat "$T/crash.out" >&2; fail "crash test failed"; }
n=0
for img in "$T"/dumps/*.qcow2; do
    set +e
    qemu-img check -f qcow2 "$img" > "$T/check.out" 2>&1
    rc=$?
    set -e
    case $rc in
        0|3) ;;
        *) cat "$T/check.out" >&2; fail "qemu-img check $img exited $rc" ;;
    esac
    same_data qcow2 "$img"
    n=$((n + 1))
done
[ "$n" -ge 10 ] || fail "only $n crash images dumped"
echo "PASS: $n crash images clean for qemu-img"
