#!/bin/sh
# Regenerate fuzz/corpus/qed/: small QED images made by qemu-img and
# qemu-io (4 KiB clusters, 2-cluster tables: a few KiB each; data, zero
# clusters, a backing file, a need-check flag left set) and hostile
# variants made by editing header and table bytes.
# Usage: fuzz/make-qed-corpus.sh [OUTDIR]   (needs qemu-img, qemu-io, python3)
set -eu
out=${1:-$(dirname "$0")/corpus/qed}
mkdir -p "$out"
q() { qemu-img "$@" >/dev/null 2>&1; }
io() { qemu-io "$@" >/dev/null; }
small='-o cluster_size=4k,table_size=2'

# shellcheck disable=SC2086
q create -f qed $small "$out/empty" 64k
# shellcheck disable=SC2086
q create -f qed $small "$out/data" 256k
io -f qed -c 'write -P 0x11 0 5k' -c 'write -z 64k 8k' \
    -c 'write -P 0x22 200k 3k' "$out/data"
# shellcheck disable=SC2086
q create -f qed $small -u -b base.raw -F raw "$out/backing" 64k
# shellcheck disable=SC2086
q create -f qed $small -u -b base.qcow2 -F qcow2 "$out/backing-probed" 64k

python3 - "$out/data" "$out" <<'PY'
import struct, sys
D = open(sys.argv[1], "rb").read()
out = sys.argv[2]
def variant(name, base, *edits):
    b = bytearray(base)
    for off, fmt, val in edits:
        struct.pack_into(fmt, b, off, val)
    open(out + "/hostile-" + name, "wb").write(b)
l1 = struct.unpack_from("<Q", D, 40)[0]
l2 = struct.unpack_from("<Q", D, l1)[0]
H = D[:l1 + 8192]                      # header and L1 table only
variant("need-check", D, (16, "<Q", 2), (l2 + 8 * 3, "<Q", 1 << 40))
variant("features", H, (16, "<Q", 0x18))
variant("cluster-size", H, (4, "<I", 1 << 27))
variant("table-size", H, (8, "<I", 3))
variant("tables-1g", H, (4, "<I", 1 << 26), (8, "<I", 16))
variant("size-huge", H, (48, "<Q", 1 << 62))
variant("l1-past-eof", H, (40, "<Q", 1 << 40))
variant("backing-outside", H, (16, "<Q", 1), (56, "<I", 4090),
        (60, "<I", 100))
variant("l1-entry-past-eof", D, (l1, "<Q", 1 << 40))
variant("l1-entry-on-l1", D, (l1, "<Q", l1))
variant("l2-entry-past-eof", D, (l2, "<Q", 1 << 40))
variant("l2-entry-on-l2", D, (l2 + 8 * 50, "<Q", l2))
variant("cluster-twice", D, (l2 + 8 * 60, "<Q",
                             struct.unpack_from("<Q", D, l2)[0]))
variant("truncated", D[:40])
PY
ls "$out" | wc -l
du -cb "$out"/* | tail -1
