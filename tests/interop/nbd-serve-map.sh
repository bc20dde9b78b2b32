# nbdinfo --map (base:allocation) and --map=qemu:allocation-depth of a
# served qcow2 with a backing file: vimg serve answers as qemu-nbd does,
# and the data/zero extents agree with `vimg map`.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/nbd.inc"
requires qemu-img qemu-io qemu-nbd nbdinfo python3
make_chain
vserve "$T/v.sock" -t -r -A -f qcow2 "$T/top.qcow2"
qserve "$T/q.sock" -t -r -A -f qcow2 "$T/top.qcow2"
for ctx in base:allocation qemu:allocation-depth; do
    nbdinfo --map="$ctx" "$(uri "$T/v.sock")" > "$T/v.map"
    nbdinfo --map="$ctx" "$(uri "$T/q.sock")" > "$T/q.map"
    diff "$T/q.map" "$T/v.map" || fail "$ctx map differs from qemu-nbd's"
done
# `vimg map` extents (depth, zero, data) as nbdinfo's base:allocation
# ranges: hole = not data, zero = zero.
"$VIMG" map --output=json "$T/top.qcow2" > "$T/m.json"
nbdinfo --map --json "$(uri "$T/v.sock")" > "$T/v.json"
python3 - "$T/m.json" "$T/v.json" <<'PY'
import json, sys
def runs(ext):
    out = []
    for start, length, t in ext:
        if out and out[-1][2] == t and out[-1][0] + out[-1][1] == start:
            out[-1][1] += length
        else:
            out.append([start, length, t])
    return out
m = json.load(open(sys.argv[1]))
v = json.load(open(sys.argv[2]))
a = runs([(e["start"], e["length"], (0 if e["data"] else 1) | (2 if e["zero"] else 0)) for e in m])
b = runs([(e["offset"], e["length"], e["type"]) for e in v])
if a != b:
    sys.exit("vimg map %s\nnbdinfo   %s" % (a, b))
PY
# The depth context is offered only with -A, as qemu-nbd does.
vserve "$T/n.sock" -t -r -f qcow2 "$T/top.qcow2"
nbdinfo --json "$(uri "$T/n.sock")" > "$T/n.json"
grep -q 'qemu:allocation-depth' "$T/n.json" && fail "depth offered without -A"
exit 0
