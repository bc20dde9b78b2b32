#!/bin/sh
# Time qcow2 -> RBD and RBD -> qcow2 for vimg and qemu-img (its rbd:
# driver, from qemu-block-extra) in one run, against a one-node Ceph
# cluster this script starts itself (tests/interop/ceph.inc: one monitor
# and one memstore OSD on 127.0.0.1, removed on exit). The image: 4 GiB
# virtual, 1 MiB of random data in every other 4 MiB object (512 MiB of
# data, 1024 objects to report). Twice: on plain loopback, and with the
# OSD delaying each client message by up to 0.5 ms, as a network would.
# Each round times every variant once in alternating order; medians of N
# rounds are printed with the throughput ratio vimg/qemu-img (above 1:
# vimg is faster). Never asserts a time.
#
# Usage: bench/rbd.sh [VIMG [ROUNDS]]   (VIMG default build/cli/vimg)
set -eu
VIMG=${1:-build/cli/vimg}
ROUNDS=${2:-3}
[ -x "$VIMG" ] || { echo "no vimg binary at $VIMG" >&2; exit 1; }
VIMG=$(cd "$(dirname "$VIMG")" && pwd)/$(basename "$VIMG")
here=$(cd "$(dirname "$0")/.." && pwd)
export VIMG
# Each image holds 512 MiB; at most three live at once.
CEPH_MEMSTORE_BYTES=$((3 << 30))
. "$here/tests/interop/functions.sh"
. "$here/tests/interop/ceph.inc"
requires qemu-img python3
requires_qemu_rbd
echo "Starting a one-node Ceph cluster..."
ceph_start

echo "Preparing a 4 GiB qcow2 (1 MiB of data in every other 4 MiB)..."
python3 - "$T/src.raw" <<'PY'
import os, sys
size, obj = 4 << 30, 4 << 20
pool = os.urandom(64 << 20)
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.ftruncate(fd, size)
for i, off in enumerate(range(0, size, 2 * obj)):
    start = (i * 7919 * 4096) % (len(pool) - (1 << 20))
    os.pwrite(fd, pool[start:start + (1 << 20)], off + (i % 4) * (1 << 20))
os.close(fd)
PY
qemu-img convert -f raw -O qcow2 "$T/src.raw" "$T/src.qcow2"
rm -f "$T/src.raw"
qemu-img convert -O raw "$T/src.qcow2" rbd:rbd/src

seconds() {
    python3 -c '
import subprocess, sys, time
t = time.monotonic()
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print("%.3f" % (time.monotonic() - t))' "$@"
}
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {
    print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# run TOOL WHAT: one timed conversion, its target removed afterwards.
run() {
    case "$2" in
    to-rbd)
        seconds "$1" convert -O raw "$T/src.qcow2" rbd:rbd/dst
        rbd rm --no-progress rbd/dst >/dev/null 2>&1 ;;
    from-rbd)
        seconds "$1" convert -O qcow2 rbd:rbd/src "$T/dst.qcow2"
        rm -f "$T/dst.qcow2" ;;
    esac
}

# The OSD holds back each message from a client by up to DELAY seconds
# (uniformly: Ceph's ms_inject_delay_*), standing in for a network
# between client and cluster; 0 is plain loopback.
osd_delay() {
    ceph tell osd.0 config set ms_inject_delay_type client >/dev/null
    ceph tell osd.0 config set ms_inject_delay_probability 1 >/dev/null
    ceph tell osd.0 config set ms_inject_delay_max "$1" >/dev/null
}

printf '%-16s %-12s %10s %10s %8s\n' "" "OSD delay" qemu-img vimg ratio
for delay in 0 0.0005; do
    osd_delay $delay
    for what in to-rbd from-rbd; do
        q="" v="" r=0
        while [ $r -lt "$ROUNDS" ]; do
            if [ $((r % 2)) = 0 ]; then
                q="$q $(run qemu-img $what)"
                v="$v $(run "$VIMG" $what)"
            else
                v="$v $(run "$VIMG" $what)"
                q="$q $(run qemu-img $what)"
            fi
            r=$((r + 1))
        done
        qm=$(echo "$q" | median)
        vm=$(echo "$v" | median)
        label=$([ $what = to-rbd ] && echo "qcow2 -> RBD" || echo "RBD -> qcow2")
        printf '%-16s %-12s %9ss %9ss %7.2fx\n' "$label" \
            "$([ $delay = 0 ] && echo none || echo "<= ${delay}s")" \
            "$qm" "$vm" "$(echo "$qm $vm" | awk '{ print $1 / $2 }')"
    done
done
