# The thread-safe qcow2 driver under convert's workers: -W (out of order,
# allocating writes in parallel) into qcow2 at several cluster sizes, out
# of qcow2 and out of compressed qcow2 (parallel decompression); every
# result passes qemu-img check and compares equal to the source.
. "$(dirname "$0")/functions.sh"
requires qemu-img python3

# 24 MiB: text-like data with holes and random stretches.
python3 - "$T/src.raw" <<'PY'
import random, sys
r = random.Random(3)
out = bytearray()
while len(out) < 24 << 20:
    kind = r.randrange(3)
    n = r.randrange(1, 64) * 4096
    if kind == 0:
        out += bytes(n)
    elif kind == 1:
        out += r.randbytes(n)
    else:
        out += (b"vimg parallel %d\n" % r.randrange(1000)) * (n // 18 + 1)
open(sys.argv[1], "wb").write(out[:24 << 20])
PY

for cs in 512 64k 2M; do
    expect_status 0 "$VIMG" convert -W -m 8 -f raw -O qcow2 \
        -o cluster_size=$cs "$T/src.raw" "$T/a.qcow2"
    qemu-img check -q "$T/a.qcow2" || fail "check after convert -W ($cs)"
    qemu-img compare -q -f raw -F qcow2 "$T/src.raw" "$T/a.qcow2" ||
        fail "convert -W into qcow2 differs ($cs)"
    expect_status 0 "$VIMG" convert -W -m 8 -f qcow2 -O qcow2 \
        "$T/a.qcow2" "$T/b.qcow2"
    qemu-img check -q "$T/b.qcow2" || fail "check after qcow2->qcow2 ($cs)"
    qemu-img compare -q -f raw -F qcow2 "$T/src.raw" "$T/b.qcow2" ||
        fail "qcow2->qcow2 -W differs ($cs)"
    rm -f "$T/a.qcow2" "$T/b.qcow2"
done

for ct in zlib zstd; do
    qemu-img convert -c -f raw -O qcow2 -o compression_type=$ct \
        "$T/src.raw" "$T/c.qcow2"
    expect_status 0 "$VIMG" convert -m 8 -f qcow2 -O raw "$T/c.qcow2" \
        "$T/c.raw"
    cmp -s "$T/src.raw" "$T/c.raw" || fail "parallel $ct decompression differs"
    rm -f "$T/c.qcow2" "$T/c.raw"
done
exit 0
