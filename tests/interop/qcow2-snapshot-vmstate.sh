#!/bin/sh
# VM state saved by QEMU's savevm (stored past the end of the disk, in the
# snapshot's tables) survives everything vimg does around it: listing
# (VM SIZE as qemu-img shows it), other snapshots created, applied and
# deleted, writes, and applying the VM snapshot itself. QEMU then loads it
# again (-loadvm fails on damaged state), and the disk reads as it was.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
. "$(dirname "$0")/qcow2-snapshot.inc"
requires qemu-img qemu-io qemu-system-x86_64

# qemu_vm IMG ARGS...: a stopped VM on IMG (no guest code runs), driven by
# the monitor commands on stdin.
qemu_vm() {
    img=$1; shift
    timeout 60 qemu-system-x86_64 -nodefaults -display none -S -M pc -m 64 \
        -accel tcg -drive "file=$img,if=virtio,format=qcow2" \
        -monitor stdio "$@" > "$T/vm.out" 2> "$T/vm.err"
}
loadvm_ok() {
    echo quit | qemu_vm "$1" -loadvm "$2" ||
        { cat "$T/vm.err" >&2; fail "QEMU cannot load $2 from $1"; }
}

img=$T/vm.qcow2
qemu-img create -q -f qcow2 "$img" 16M
qemu-io -c 'write -P 0x11 0 1M' -c 'write -P 0x12 9M 100k' "$img" >/dev/null
h0=$(qemu_sha "$img" qcow2)
printf 'savevm vm1\nquit\n' | qemu_vm "$img"
size=$(qemu-img info --output=json "$img" |
       "$PY" -c 'import json,sys; print(json.load(sys.stdin)["snapshots"][0]["vm-state-size"])')
[ "$size" -gt 0 ] || fail "savevm stored no VM state"
same_listing "$img"

"$VIMG" snapshot -c disk1 "$img"
qemu-io -c 'write -P 0x21 0 2M' "$img" >/dev/null
h1=$(qemu_sha "$img" qcow2)
"$VIMG" snapshot -c disk2 "$img"
"$VIMG" snapshot -d disk1 "$img"
step "$img" "$h1"
"$VIMG" snapshot -a vm1 "$img"
step "$img" "$h0"
same_listing "$img"
loadvm_ok "$img" vm1
"$VIMG" snapshot -a disk2 "$img"
step "$img" "$h1"
"$VIMG" snapshot -d disk2 "$img"
step "$img" "$h1"
# QEMU's loadvm reverts the disk too.
loadvm_ok "$img" vm1
step "$img" "$h0"
[ "$(qemu-img info --output=json "$img" |
     "$PY" -c 'import json,sys; print(json.load(sys.stdin)["snapshots"][0]["vm-state-size"])')" \
    = "$size" ] || fail "the VM state size changed"

# A VM snapshot taken after vimg's changes: QEMU writes VM state into an
# image whose tables vimg laid out, vimg applies and deletes it cleanly.
qemu-io -c 'write -P 0x31 4M 1M' "$img" >/dev/null
h2=$(qemu_sha "$img" qcow2)
printf 'savevm vm2\nquit\n' | qemu_vm "$img"
same_listing "$img"
"$VIMG" snapshot -a vm1 "$img"
step "$img" "$h0"
"$VIMG" snapshot -a vm2 "$img"
step "$img" "$h2"
loadvm_ok "$img" vm2
"$VIMG" snapshot -d vm2 "$img"
step "$img" "$h2"
loadvm_ok "$img" vm1
"$VIMG" snapshot -d vm1 "$img"
step "$img" "$h0"
echo "PASS"
