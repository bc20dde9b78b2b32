#!/bin/sh
# One table: vimg at its defaults against qemu-img at its best settings
# (convert -m 16 -W), alternately on the same inputs, RUNS times each;
# medians, ratios (qemu-img time / vimg time: above 1 means vimg is faster),
# output sizes and peak memory. Asserts nothing.
#
# Inputs it makes: 256 MiB of real binaries from /usr (raw, and qcow2 /
# zlib qcow2 / zstd qcow2 made by qemu-img), a 4 GiB sparse image with 10%
# data, and a 1 TiB qcow2 with scattered data.
#
# Usage: RUNS=3 sh bench/run.sh [VIMG]     (VIMG default build/cli/vimg)
set -eu
VIMG=${1:-build/cli/vimg}
RUNS=${RUNS:-3}
for c in qemu-img qemu-io python3 /usr/bin/time; do
    command -v "$c" >/dev/null || { echo "needs $c" >&2; exit 1; }
done
[ -x "$VIMG" ] || { echo "no vimg binary at $VIMG" >&2; exit 1; }
VIMG=$(cd "$(dirname "$VIMG")" && pwd)/$(basename "$VIMG")
T=$(mktemp -d "${BENCH_TMPDIR:-/var/tmp}/vimg-bench.XXXXXX")
trap 'rm -rf "$T"' EXIT INT TERM

echo "Preparing inputs in $T ..."
# 256 MiB of the largest files under /usr, concatenated: real code and
# data, which compresses like a guest's system disk.
python3 - "$T/bin.raw" <<'PY'
import os, sys
want, out = 256 << 20, bytearray()
files = []
for root in ("/usr/lib", "/usr/bin", "/usr/libexec", "/usr/share"):
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            try:
                if os.path.isfile(p) and not os.path.islink(p):
                    files.append((os.path.getsize(p), p))
            except OSError:
                pass
files.sort(reverse=True)
for _, p in files:
    if len(out) >= want:
        break
    try:
        with open(p, "rb") as f:
            out += f.read(want - len(out))
    except OSError:
        pass
out += bytes(want - len(out))
open(sys.argv[1], "wb").write(out)
PY
qemu-img convert -f raw -O qcow2 "$T/bin.raw" "$T/bin.qcow2"
qemu-img convert -c -f raw -O qcow2 -o compression_type=zlib \
    "$T/bin.raw" "$T/zlib.qcow2"
qemu-img convert -c -f raw -O qcow2 -o compression_type=zstd \
    "$T/bin.raw" "$T/zstd.qcow2"
# 4 GiB, 10% data in 4 MiB chunks.
python3 - "$T/sparse.raw" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.ftruncate(fd, 4 << 30)
pool = os.urandom(4 << 20)
for off in range(0, 4 << 30, 40 << 20):
    os.pwrite(fd, pool, off)
os.close(fd)
PY
qemu-img create -q -f qcow2 "$T/big.qcow2" 1T
qemu-io -c 'write -P 1 0 1M' -c 'write -P 2 100G 1M' -c 'write -P 3 517G 2M' \
    -c 'write -P 4 1000G 64k' "$T/big.qcow2" >/dev/null
sync

# run_one OUT-PREFIX CMD...: append wall seconds and max RSS (KiB) of CMD.
run_one() {
    pre=$1; shift
    if /usr/bin/time -f '%e %M' -o "$T/time.out" "$@" >/dev/null \
        2>"$T/err.out"; then
        read -r s m < "$T/time.out"
        echo "$s" >> "$pre.t"
        echo "$m" >> "$pre.m"
    else
        echo "FAILED: $*" >&2
        sed 's/^/  /' "$T/err.out" >&2
        echo fail >> "$pre.t"
    fi
}
median() {
    if grep -q fail "$1"; then echo fail; return; fi
    sort -g "$1" | awk '{a[NR]=$1} END {
        print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
maxof() { [ -s "$1" ] && sort -g "$1" | tail -1 || echo 0; }
size_mib() { [ -e "$1" ] && du -m --apparent-size "$1" | cut -f1 || echo -; }

printf '%-28s %9s %9s %7s %9s %9s %8s %8s\n' case qemu-img vimg ratio \
    q-MiB v-MiB q-RSS v-RSS
# row NAME OUTFILE -- QEMU-ARGS... -- VIMG-ARGS...: both tools, alternating.
row() {
    name=$1 out=$2; shift 3
    qargs="" vargs="" side=q
    for a in "$@"; do
        if [ "$a" = "--" ]; then side=v; continue; fi
        if [ $side = q ]; then qargs="$qargs $a"; else vargs="$vargs $a"; fi
    done
    rm -f "$T/q.t" "$T/q.m" "$T/v.t" "$T/v.m"
    i=0 qsize=- vsize=-
    while [ $i -lt "$RUNS" ]; do
        for who in q v; do
            [ "$out" = - ] || rm -f "$out"
            if [ $who = q ]; then
                # shellcheck disable=SC2086
                run_one "$T/q" qemu-img $qargs
                [ "$out" = - ] || qsize=$(size_mib "$out")
            else
                # shellcheck disable=SC2086
                run_one "$T/v" "$VIMG" $vargs
                [ "$out" = - ] || vsize=$(size_mib "$out")
            fi
        done
        i=$((i + 1))
    done
    [ "$out" = - ] || rm -f "$out"
    qt=$(median "$T/q.t") vt=$(median "$T/v.t")
    ratio=$(awk -v q="$qt" -v v="$vt" 'BEGIN {
        if (q == "fail" || v == "fail" || v == 0) print "-";
        else printf "%.2f", q / v }')
    printf '%-28s %9s %9s %7s %9s %9s %7sM %7sM\n' "$name" "$qt" "$vt" \
        "$ratio" "$qsize" "$vsize" \
        "$(( $(maxof "$T/q.m") / 1024 ))" \
        "$(( $(maxof "$T/v.m") / 1024 ))"
}

B="-m 16 -W"
O=$T/out
row "raw->qcow2" "$O" -- convert $B -f raw -O qcow2 "$T/bin.raw" "$O" \
    -- convert -f raw -O qcow2 "$T/bin.raw" "$O"
row "qcow2->raw" "$O" -- convert $B -f qcow2 -O raw "$T/bin.qcow2" "$O" \
    -- convert -f qcow2 -O raw "$T/bin.qcow2" "$O"
row "raw->raw" "$O" -- convert $B -f raw -O raw "$T/bin.raw" "$O" \
    -- convert -f raw -O raw "$T/bin.raw" "$O"
row "raw->raw sparse 4G" "$O" -- convert $B -f raw -O raw \
    "$T/sparse.raw" "$O" -- convert -f raw -O raw "$T/sparse.raw" "$O"
row "-c zlib" "$O" -- convert $B -c -f raw -O qcow2 \
    -o compression_type=zlib "$T/bin.raw" "$O" \
    -- convert -c -f raw -O qcow2 -o compression_type=zlib "$T/bin.raw" "$O"
row "-c zstd" "$O" -- convert $B -c -f raw -O qcow2 \
    -o compression_type=zstd "$T/bin.raw" "$O" \
    -- convert -c -f raw -O qcow2 -o compression_type=zstd "$T/bin.raw" "$O"
row "read zlib qcow2" "$O" -- convert $B -f qcow2 -O raw "$T/zlib.qcow2" \
    "$O" -- convert -f qcow2 -O raw "$T/zlib.qcow2" "$O"
row "read zstd qcow2" "$O" -- convert $B -f qcow2 -O raw "$T/zstd.qcow2" \
    "$O" -- convert -f qcow2 -O raw "$T/zstd.qcow2" "$O"
row "raw->raw -t none -T none" "$O" -- convert $B -t none -T none -f raw \
    -O raw "$T/bin.raw" "$O" \
    -- convert -t none -T none -f raw -O raw "$T/bin.raw" "$O"
row "raw->qcow2 -t none -T none" "$O" -- convert $B -t none -T none \
    -f raw -O qcow2 "$T/bin.raw" "$O" \
    -- convert -t none -T none -f raw -O qcow2 "$T/bin.raw" "$O"
row "raw->qcow2 -t writeback" "$O" -- convert $B -t writeback -f raw \
    -O qcow2 "$T/bin.raw" "$O" \
    -- convert -t writeback -f raw -O qcow2 "$T/bin.raw" "$O"
row "1T qcow2->qcow2" "$O" -- convert $B -f qcow2 -O qcow2 "$T/big.qcow2" \
    "$O" -- convert -f qcow2 -O qcow2 "$T/big.qcow2" "$O"
for cmd in info check map; do
    row "$cmd small qcow2" - -- $cmd "$T/bin.qcow2" -- $cmd "$T/bin.qcow2"
    row "$cmd 1T qcow2" - -- $cmd "$T/big.qcow2" -- $cmd "$T/big.qcow2"
done
echo "Machine: $(nproc) cores; ratio = qemu-img time / vimg time (median" \
    "of $RUNS); qemu-img convert runs with $B."
