#!/bin/sh
# Time vimg's ISO reader against xorriso on the same image (made once by
# xorriso -as mkisofs -R -J from a few hundred MiB of real files under /usr;
# regular files only, as vimg refuses to extract absolute symlinks):
# `vimg iso ls -R` vs `xorriso -find /`, and `vimg iso extract` vs
# `xorriso -osirrox on -extract / DIR`. Runs alternate between the tools
# after one untimed warm-up each (image in the page cache); prints medians
# and ratios. Asserts nothing.
# Usage: bench/iso-read.sh [VIMG]   (env: RUNS=5, MIB=300)
set -eu
VIMG=${1:-build/cli/vimg}
RUNS=${RUNS:-5}
MIB=${MIB:-300}
command -v xorriso >/dev/null || { echo "xorriso not installed"; exit 1; }
[ -x "$VIMG" ] || { echo "no vimg binary at $VIMG"; exit 1; }
T=$(mktemp -d "${TMPDIR:-/tmp}/vimg-bench-iso-read.XXXXXX")
trap 'rm -rf "$T"' EXIT INT TERM

pick() {
    (cd /usr && find "$1" -type f -readable \
        -printf '%s %p\n' 2>/dev/null | LC_ALL=C sort -k2) |
        awk -v max=$((MIB * 1048576 / 2)) '$1 < 16777216 { t += $1; print $2;
                                           if (t >= max) exit }'
}
{ pick share; pick lib/x86_64-linux-gnu; } > "$T/list"
mkdir "$T/src"
tar -C /usr -cf - -T "$T/list" 2>/dev/null | tar -C "$T/src" -xf -
xorriso -as mkisofs -quiet -R -J -o "$T/a.iso" "$T/src" 2>/dev/null
rm -rf "$T/src"
echo "image: $(wc -l < "$T/list") files, $(du -m "$T/a.iso" | cut -f1) MiB"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f\n", b - a }'; }
median() { sort -n "$1" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ls_vimg() { "$VIMG" iso ls -R "$T/a.iso" > /dev/null; }
ls_xorriso() { xorriso -indev "$T/a.iso" -find / > /dev/null 2>&1; }
ex_vimg() { rm -rf "$T/v"; mkdir "$T/v"; "$VIMG" iso extract "$T/a.iso" "$T/v"; }
ex_xorriso() {
    rm -rf "$T/x"; mkdir "$T/x"
    xorriso -osirrox on -indev "$T/a.iso" -extract / "$T/x" > /dev/null 2>&1
}
# bench NAME VIMG_FN XORRISO_FN
bench() {
    $2; $3
    : > "$T/tv"; : > "$T/tx"
    i=0
    while [ $i -lt "$RUNS" ]; do
        a=$(now); $2; b=$(now); elapsed "$a" "$b" >> "$T/tv"
        a=$(now); $3; b=$(now); elapsed "$a" "$b" >> "$T/tx"
        i=$((i + 1))
    done
    mv=$(median "$T/tv"); mx=$(median "$T/tx")
    printf '%-8s vimg %.3f s, xorriso %.3f s (medians of %d), ratio vimg/xorriso %.2f\n' \
        "$1" "$mv" "$mx" "$RUNS" "$(awk -v v="$mv" -v x="$mx" 'BEGIN { print v / x }')"
}
bench list ls_vimg ls_xorriso
bench extract ex_vimg ex_xorriso
diff -r "$T/v" "$T/x" > /dev/null && echo "extracted trees identical" ||
    echo "extracted trees DIFFER"
