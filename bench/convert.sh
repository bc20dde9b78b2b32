#!/bin/sh
# Time `vimg convert` against `qemu-img convert`, raw to raw, in one run:
# a dense image (random data) and a sparse one (10% data in spread-out
# chunks), through the page cache and with -t none -T none (O_DIRECT, after
# dropping the page cache when allowed). qemu-img runs at its defaults and
# at its best settings (-m 16 -W). Runs alternate between the tools; the
# table shows medians and ratios (qemu-img time / vimg time: above 1 means
# vimg is faster). Asserts nothing.
#
# Usage: bench/convert.sh VIMG   (env: RUNS=5 DENSE_MIB=1024 SPARSE_GIB=8
#                                  BENCH_DIR=/var/tmp MODES="cache direct";
#                                  BENCH_DIR=/dev/shm MODES=cache measures
#                                  the engines without the disk's noise)
set -eu
VIMG=${1:?usage: bench/convert.sh path/to/vimg}
case $VIMG in /*) ;; *) VIMG=$(pwd)/$VIMG ;; esac
RUNS=${RUNS:-5}
DENSE_MIB=${DENSE_MIB:-1024}
SPARSE_GIB=${SPARSE_GIB:-8}
MODES=${MODES:-cache direct}
command -v qemu-img >/dev/null || { echo "qemu-img is not installed" >&2; exit 1; }
D=$(mktemp -d "${BENCH_DIR:-/var/tmp}/vimg-bench.XXXXXX")
trap 'rm -rf "$D"' EXIT INT TERM

now() { date +%s.%N; }
can_drop=no
if sync && echo 3 > /proc/sys/vm/drop_caches 2>/dev/null; then
    can_drop=yes
fi

echo "Preparing inputs in $D ..."
# Dense: random data, written in 64 MiB pieces of one random 64 MiB block
# mixed with a counter so that no two MiB are alike.
head -c $((64 << 20)) /dev/urandom > "$D/block"
i=0
: > "$D/dense.img"
while [ $i -lt $((DENSE_MIB / 64)) ]; do
    { printf '%016d' $i; tail -c +17 "$D/block"; } >> "$D/dense.img"
    i=$((i + 1))
done
# Sparse: SPARSE_GIB GiB, a 64 MiB chunk of data every 640 MiB (10%).
"$VIMG" create -q -f raw "$D/sparse.img" "${SPARSE_GIB}G"
i=0
while [ $((i * 640 + 64)) -le $((SPARSE_GIB * 1024)) ]; do
    { printf '%016d' $i; tail -c +17 "$D/block"; } |
        dd of="$D/sparse.img" bs=1M seek=$((i * 640)) conv=notrunc iflag=fullblock 2>/dev/null
    i=$((i + 1))
done
rm -f "$D/block"
sync

# run TOOL INPUT MODE: time one convert; prints seconds.
run() {
    tool=$1 in=$2 mode=$3
    rm -f "$D/out.img"
    sync
    cache=""
    if [ "$mode" = direct ]; then
        cache="-t none -T none"
        [ $can_drop = yes ] && sync && echo 3 > /proc/sys/vm/drop_caches
    fi
    t0=$(now)
    case $tool in
        vimg) "$VIMG" convert $cache -f raw -O raw "$D/$in.img" "$D/out.img" ;;
        qemu) qemu-img convert $cache -f raw -O raw "$D/$in.img" "$D/out.img" ;;
        qemu-best) qemu-img convert $cache -m 16 -W -f raw -O raw "$D/$in.img" "$D/out.img" ;;
    esac
    t1=$(now)
    echo "$t0 $t1" | awk '{ printf "%.3f\n", $2 - $1 }'
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

printf '\n%-8s %-7s %10s %10s %12s %9s %11s\n' input mode "vimg s" "qemu-img s" "qemu -m16 -W" "qemu/vimg" "best/vimg"
for in in dense sparse; do
    for mode in $MODES; do
        : > "$D/t.vimg"; : > "$D/t.qemu"; : > "$D/t.qemu-best"
        # Warm the cache for the page-cache runs.
        [ $mode = cache ] && cat "$D/$in.img" > /dev/null
        # Each round starts with the next tool, so none always goes first.
        r=0
        while [ $r -lt "$RUNS" ]; do
            case $((r % 3)) in
                0) order="vimg qemu qemu-best" ;;
                1) order="qemu qemu-best vimg" ;;
                2) order="qemu-best vimg qemu" ;;
            esac
            for tool in $order; do
                run $tool $in $mode >> "$D/t.$tool"
            done
            r=$((r + 1))
        done
        v=$(median < "$D/t.vimg")
        q=$(median < "$D/t.qemu")
        b=$(median < "$D/t.qemu-best")
        printf '%-8s %-7s %10s %10s %12s %9.2f %11.2f\n' $in $mode "$v" "$q" "$b" \
            "$(echo "$q $v" | awk '{ print $1 / $2 }')" \
            "$(echo "$b $v" | awk '{ print $1 / $2 }')"
    done
done
echo
echo "dense: ${DENSE_MIB} MiB random; sparse: ${SPARSE_GIB} GiB, 10% data;" \
     "medians of $RUNS runs; page cache dropped before direct runs: $can_drop"
