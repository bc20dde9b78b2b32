#!/bin/sh
# Time vimg against qemu-img on `convert -O vmdk -o subformat=
# streamOptimized` of 256 MiB of real binaries (from /usr): the compressing
# conversion VMware imports need. Each round runs both once, in rotating
# order; medians of N rounds are printed with the ratio and output sizes.
# Never asserts a time.
#
# Usage: bench/vmdk.sh [VIMG [ROUNDS]]   (VIMG default build/cli/vimg)
set -eu
VIMG=${1:-build/cli/vimg}
ROUNDS=${2:-3}
command -v qemu-img >/dev/null || { echo "needs qemu-img" >&2; exit 1; }
[ -x "$VIMG" ] || { echo "no vimg binary at $VIMG" >&2; exit 1; }
VIMG=$(cd "$(dirname "$VIMG")" && pwd)/$(basename "$VIMG")
T=$(mktemp -d "${TMPDIR:-/tmp}/vimg-bench.XXXXXX")
trap 'rm -rf "$T"' EXIT INT TERM

echo "Preparing 256 MiB of binaries from /usr..."
python3 - "$T/src.raw" <<'PY'
import os, sys
limit, total = 256 << 20, 0
with open(sys.argv[1], "wb") as out:
    for root in ("/usr/bin", "/usr/lib", "/usr/libexec"):
        for dp, dn, fn in sorted(os.walk(root)):
            for f in sorted(fn):
                p = os.path.join(dp, f)
                if total >= limit or os.path.islink(p) or \
                        not os.path.isfile(p):
                    continue
                try:
                    d = open(p, "rb").read()[:limit - total]
                except OSError:
                    continue
                out.write(d)
                total += len(d)
print("%d MiB" % (total >> 20))
PY
cat "$T/src.raw" > /dev/null

seconds() {
    python3 -c '
import subprocess, sys, time
t = time.monotonic()
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print("%.3f" % (time.monotonic() - t))' "$@"
}
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {
    print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

o="-f raw -O vmdk -o subformat=streamOptimized"
q="" v="" r=0
while [ $r -lt "$ROUNDS" ]; do
    for k in 0 1; do
        # shellcheck disable=SC2086
        if [ $(( (k + r) % 2 )) = 0 ]; then
            rm -f "$T/q.vmdk"
            q="$q $(seconds qemu-img convert $o "$T/src.raw" "$T/q.vmdk")"
        else
            rm -f "$T/v.vmdk"
            v="$v $(seconds "$VIMG" convert $o "$T/src.raw" "$T/v.vmdk")"
        fi
    done
    r=$((r + 1))
done
qm=$(echo "$q" | median)
vm=$(echo "$v" | median)
echo "streamOptimized, 256 MiB of binaries, $(nproc) cores (median of $ROUNDS)"
printf '  qemu-img %6.2f s  %s bytes\n' "$qm" "$(stat -c %s "$T/q.vmdk")"
printf '  vimg     %6.2f s  %s bytes  ratio %.2f\n' "$vm" \
    "$(stat -c %s "$T/v.vmdk")" "$(echo "$vm $qm" | awk '{print $1 / $2}')"
