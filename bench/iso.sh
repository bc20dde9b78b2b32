#!/bin/sh
# Time `vimg iso create` against `xorriso -as mkisofs -R -J -o` on the same
# folder: a few hundred MiB of real files copied once from /usr/share and
# /usr/lib/x86_64-linux-gnu. Runs alternate between the two tools (after
# one untimed warm-up each, so both read from the page cache); prints the
# median seconds of each and the ratio. Asserts nothing.
# Usage: bench/iso.sh [VIMG]   (env: RUNS=5, MIB=300)
set -eu
VIMG=${1:-build/cli/vimg}
RUNS=${RUNS:-5}
MIB=${MIB:-300}
command -v xorriso >/dev/null || { echo "xorriso not installed"; exit 1; }
[ -x "$VIMG" ] || { echo "no vimg binary at $VIMG"; exit 1; }
T=$(mktemp -d "${TMPDIR:-/tmp}/vimg-bench-iso.XXXXXX")
trap 'rm -rf "$T"' EXIT INT TERM

# Half from /usr/share (many small files), half from the libraries (fewer,
# larger ones): regular files under 16 MiB and symlinks, in path order.
pick() {
    (cd /usr && find "$1" \( -type f -o -type l \) -readable \
        -printf '%s %p\n' 2>/dev/null | LC_ALL=C sort -k2) |
        awk -v max=$((MIB * 1048576 / 2)) '$1 < 16777216 { t += $1; print $2;
                                           if (t >= max) exit }'
}
{ pick share; pick lib/x86_64-linux-gnu; } > "$T/list"
mkdir "$T/src"
tar -C /usr -cf - -T "$T/list" 2>/dev/null | tar -C "$T/src" -xf -
files=$(wc -l < "$T/list")
size=$(du -sm "$T/src" | cut -f1)
echo "tree: $files files, $size MiB"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f\n", b - a }'; }
run_vimg() { "$VIMG" iso create -o "$T/v.iso" "$T/src"; }
run_xorriso() { xorriso -as mkisofs -quiet -R -J -o "$T/x.iso" "$T/src" 2>/dev/null; }
run_vimg; run_xorriso
: > "$T/v"; : > "$T/x"
i=0
while [ $i -lt "$RUNS" ]; do
    rm -f "$T/v.iso" "$T/x.iso"
    a=$(now); run_vimg; b=$(now); elapsed "$a" "$b" >> "$T/v"
    a=$(now); run_xorriso; b=$(now); elapsed "$a" "$b" >> "$T/x"
    i=$((i + 1))
done
median() { sort -n "$1" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
mv=$(median "$T/v"); mx=$(median "$T/x")
printf 'vimg iso create:        %.3f s (median of %d)\n' "$mv" "$RUNS"
printf 'xorriso -as mkisofs -R -J: %.3f s (median of %d)\n' "$mx" "$RUNS"
printf 'image sizes: vimg %s bytes, xorriso %s bytes\n' \
    "$(stat -c %s "$T/v.iso")" "$(stat -c %s "$T/x.iso")"
awk -v v="$mv" -v x="$mx" 'BEGIN { printf "ratio vimg/xorriso: %.2f\n", v / x }'
