#!/bin/sh
# Time vimg against qemu-img on qcow2 conversions of a 1 GiB image that is
# about half random data (4 MiB chunks) and half holes, in one run:
# qemu-img at its defaults and at its best settings (-m 16 -W), vimg at its
# defaults and with -W. Each round runs every variant once, in rotating
# order; medians of N rounds are printed with ratios against qemu-img.
# Then max RSS and time for metadata commands on a 64 TiB image with a few
# MiB written at scattered offsets. Never asserts a time.
#
# Usage: bench/qcow2.sh [VIMG [ROUNDS]]   (VIMG default build/cli/vimg)
set -eu
VIMG=${1:-build/cli/vimg}
ROUNDS=${2:-3}
command -v qemu-img >/dev/null && command -v qemu-io >/dev/null ||
    { echo "needs qemu-img and qemu-io" >&2; exit 1; }
[ -x "$VIMG" ] || { echo "no vimg binary at $VIMG" >&2; exit 1; }
VIMG=$(cd "$(dirname "$VIMG")" && pwd)/$(basename "$VIMG")
T=$(mktemp -d "${TMPDIR:-/tmp}/vimg-bench.XXXXXX")
trap 'rm -rf "$T"' EXIT INT TERM

echo "Preparing a 1 GiB source (50% random data in 4 MiB chunks)..."
python3 - "$T/src.raw" <<'PY'
import os, sys
size, chunk = 1 << 30, 4 << 20
pool = os.urandom(64 << 20)
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.ftruncate(fd, size)
for i, off in enumerate(range(0, size, 2 * chunk)):
    start = (i * 7919 * 4096) % (len(pool) - chunk)
    os.pwrite(fd, pool[start:start + chunk], off + (i % 2) * chunk)
os.close(fd)
PY
qemu-img convert -f raw -O qcow2 "$T/src.raw" "$T/src.qcow2"

# seconds CMD...: wall-clock seconds of CMD (output discarded).
seconds() {
    python3 -c '
import subprocess, sys, time
t = time.monotonic()
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print("%.3f" % (time.monotonic() - t))' "$@"
}
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {
    print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# case NAME SRCFMT SRC DSTFMT
bench_case() {
    name=$1 sfmt=$2 src=$3 dfmt=$4
    qd="" qb="" vd="" vw=""
    r=0
    while [ $r -lt "$ROUNDS" ]; do
        for k in 0 1 2 3; do
            v=$(( (k + r) % 4 ))
            rm -f "$T/dst"
            case $v in
            0) qd="$qd $(seconds qemu-img convert -f "$sfmt" -O "$dfmt" \
                   "$src" "$T/dst")" ;;
            1) qb="$qb $(seconds qemu-img convert -m 16 -W -f "$sfmt" \
                   -O "$dfmt" "$src" "$T/dst")" ;;
            2) vd="$vd $(seconds "$VIMG" convert -f "$sfmt" -O "$dfmt" \
                   "$src" "$T/dst")" ;;
            3) vw="$vw $(seconds "$VIMG" convert -W -f "$sfmt" \
                   -O "$dfmt" "$src" "$T/dst")" ;;
            esac
        done
        r=$((r + 1))
    done
    rm -f "$T/dst"
    qd=$(echo "$qd" | median) qb=$(echo "$qb" | median)
    vd=$(echo "$vd" | median) vw=$(echo "$vw" | median)
    printf '%-14s qemu-img %6.2fs  qemu-img -m16 -W %6.2fs  vimg %6.2fs  vimg -W %6.2fs  vimg/qemu-img %.2f  vimg -W/qemu-img -m16 -W %.2f\n' \
        "$name" "$qd" "$qb" "$vd" "$vw" \
        "$(echo "$vd $qd" | awk '{print $1 / $2}')" \
        "$(echo "$vw $qb" | awk '{print $1 / $2}')"
}

echo "Convert, median of $ROUNDS rounds (lower ratio = vimg faster):"
bench_case raw-\>qcow2 raw "$T/src.raw" qcow2
bench_case qcow2-\>raw qcow2 "$T/src.qcow2" raw
bench_case qcow2-\>qcow2 qcow2 "$T/src.qcow2" qcow2

# rss TOOL ARGS...: "max RSS KiB, elapsed s" of one command.
rss() {
    /usr/bin/time -f '%M %e' -o "$T/time.out" "$@" >/dev/null 2>&1 ||
        true
    awk '{printf "%6d KiB %6.2fs", $1, $2}' "$T/time.out"
}

echo "64 TiB image, a few MiB written at scattered offsets:"
"$VIMG" create -q -f qcow2 "$T/big.qcow2" 64T
qemu-io -c 'write -P 1 0 1M' -c 'write -P 2 1T 1M' -c 'write -P 3 17T 2M' \
    -c 'write -P 4 40T 64k' -c 'write -P 5 70368743129088 1M' "$T/big.qcow2" \
    >/dev/null
printf '  %-22s %-26s %s\n' command vimg qemu-img
printf '  %-22s %-26s %s\n' "create 64T" \
    "$(rss "$VIMG" create -q -f qcow2 "$T/c1.qcow2" 64T)" \
    "$(rss qemu-img create -q -f qcow2 "$T/c2.qcow2" 64T)"
for cmd in info check map; do
    printf '  %-22s %-26s %s\n' "$cmd" \
        "$(rss "$VIMG" $cmd "$T/big.qcow2")" \
        "$(rss qemu-img $cmd "$T/big.qcow2")"
done
printf '  %-22s %-26s %s\n' "convert -O qcow2" \
    "$(rss "$VIMG" convert -O qcow2 "$T/big.qcow2" "$T/o1.qcow2")" \
    "$(rss qemu-img convert -O qcow2 "$T/big.qcow2" "$T/o2.qcow2")"
qemu-img compare -q "$T/o1.qcow2" "$T/big.qcow2" &&
    echo "  (vimg's 64T copy compares identical)" ||
    echo "  (vimg's 64T copy DIFFERS)"
