#!/bin/sh
# Images left behind by simulated crashes during bitmap updates and amend
# (also of images with internal snapshots;
# tests/unit/qcow2/test-qcow2-crash-meta.c fails every write from the Nth
# on) are consistent for qemu-img too: it opens them (their bitmap
# directories are valid), finds no corruption (leaks are allowed) and
# reads the same guest data as vimg.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
requires qemu-img

crash=$(dirname "$VIMG")/../tests/unit/qcow2/test-qcow2-crash-meta
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
    qemu-img info -f qcow2 "$img" > /dev/null 2> "$T/info.err" ||
        { cat "$T/info.err" >&2; fail "qemu-img info $img"; }
    same_data qcow2 "$img"
    n=$((n + 1))
done
for kind in bitmaps downgrade upgrade refcounts lazy upgrade-snapshots \
        downgrade-snapshots; do
    ls "$T"/dumps/$kind-*.qcow2 > /dev/null 2>&1 || fail "no $kind images"
done
[ "$n" -ge 20 ] || fail "only $n crash images dumped"
echo "PASS: $n crash images clean for qemu-img"
