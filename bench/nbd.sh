#!/bin/sh
# Time nbdcopy reading the same qcow2 from `vimg serve` and from qemu-nbd,
# in one run: a 1 GiB image about half random data (4 MiB chunks) and
# half holes, stored plainly and zstd-compressed. Both servers run
# read-only with -e 4 (so nbdcopy uses multi-conn, four connections) on a
# Unix socket; nbdcopy writes to null:. Each round times every variant
# once in rotating order; medians of N rounds are printed with the
# throughput ratio vimg/qemu-nbd (above 1: vimg is faster), and the CPU
# time each server used over all its rounds (steadier than wall-clock
# time on a busy machine). Never asserts a time.
#
# Usage: bench/nbd.sh [VIMG [ROUNDS]]   (VIMG default build/cli/vimg)
set -eu
VIMG=${1:-build/cli/vimg}
ROUNDS=${2:-5}
for c in qemu-img qemu-nbd nbdcopy python3; do
    command -v $c >/dev/null || { echo "needs $c" >&2; exit 1; }
done
[ -x "$VIMG" ] || { echo "no vimg binary at $VIMG" >&2; exit 1; }
VIMG=$(cd "$(dirname "$VIMG")" && pwd)/$(basename "$VIMG")
T=$(mktemp -d "${TMPDIR:-/tmp}/vimg-bench.XXXXXX")
pids=""
cleanup() { for p in $pids; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; rm -rf "$T"; }
trap cleanup EXIT INT TERM

echo "Preparing a 1 GiB qcow2 (50% random data in 4 MiB chunks), plain and zstd..."
python3 - "$T/src.raw" <<'PY'
import os, sys
size, chunk = 1 << 30, 4 << 20
pool = os.urandom(64 << 20)
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.ftruncate(fd, size)
for i, off in enumerate(range(0, size, 2 * chunk)):
    start = (i * 7919 * 4096) % (len(pool) - chunk)
    # Half of each chunk random, half a repeated pattern: compressible.
    data = pool[start:start + chunk // 2] + bytes([i % 251]) * (chunk // 2)
    os.pwrite(fd, data, off + (i % 2) * chunk)
os.close(fd)
PY
qemu-img convert -f raw -O qcow2 "$T/src.raw" "$T/plain.qcow2"
qemu-img convert -f raw -O qcow2 -c -o compression_type=zstd "$T/src.raw" \
    "$T/zstd.qcow2"
rm -f "$T/src.raw"

wait_socket() {
    i=0
    while [ ! -S "$1" ]; do
        i=$((i + 1)); [ $i -lt 200 ] || { echo "no server on $1" >&2; exit 1; }
        sleep 0.05
    done
}
seconds() {
    python3 -c '
import subprocess, sys, time
t = time.monotonic()
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print("%.3f" % (time.monotonic() - t))' "$@"
}
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {
    print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# cpu PID: user+system seconds the process has used.
cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }

printf '%-8s %12s %12s %10s %12s %12s\n' image qemu-nbd "vimg serve" ratio \
    "qemu-nbd cpu" "vimg cpu"
for img in plain zstd; do
    "$VIMG" serve -t -r -e 4 -f qcow2 -k "$T/v.sock" "$T/$img.qcow2" &
    vpid=$!
    qemu-nbd -t -r -e 4 -f qcow2 -k "$T/q.sock" "$T/$img.qcow2" &
    qpid=$!
    pids="$vpid $qpid"
    wait_socket "$T/v.sock"
    wait_socket "$T/q.sock"
    q="" v="" r=0
    while [ $r -lt "$ROUNDS" ]; do
        if [ $((r % 2)) = 0 ]; then
            q="$q $(seconds nbdcopy "nbd+unix:///?socket=$T/q.sock" null:)"
            v="$v $(seconds nbdcopy "nbd+unix:///?socket=$T/v.sock" null:)"
        else
            v="$v $(seconds nbdcopy "nbd+unix:///?socket=$T/v.sock" null:)"
            q="$q $(seconds nbdcopy "nbd+unix:///?socket=$T/q.sock" null:)"
        fi
        r=$((r + 1))
    done
    qm=$(echo "$q" | median) vm=$(echo "$v" | median)
    printf '%-8s %11ss %11ss %9sx %11ss %11ss\n' "$img" "$qm" "$vm" \
        "$(awk -v a="$qm" -v b="$vm" 'BEGIN { printf "%.2f", a / b }')" \
        "$(cpu "$qpid")" "$(cpu "$vpid")"
    for p in $pids; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    pids=""
    rm -f "$T/v.sock" "$T/q.sock"
done
