# convert -c: vimg's compressed qcow2 (zlib, zstd; several cluster sizes)
# passes qemu-img check, compares equal to the source, is byte-identical to
# qemu-img convert -c at 64 KiB and 2 MiB clusters; qemu-img's compressed
# images read identically in vimg; compressed clusters are overwritten
# cleanly; formats without compression refuse -c and leave nothing.
. "$(dirname "$0")/functions.sh"
requires qemu-img qemu-io python3

# 6 MiB + 1.5 KiB: text, zeros, random bytes (stored plain), and a tail
# that is not a whole cluster.
python3 - "$T/src.raw" <<'PY'
import os, random, sys
r = random.Random(7)
words = [b"qcow2 ", b"cluster ", b"guest ", b"\n", b"vimg ", b"zstd "]
text = b"".join(r.choice(words) for _ in range(800000))[:3 << 20]
assert len(text) == 3 << 20
data = text + bytes(1 << 20) + r.randbytes(1 << 20) + text[:(1 << 20) + 1536]
open(sys.argv[1], "wb").write(data)
PY
src_sha=$(sha256sum < "$T/src.raw" | cut -d' ' -f1)

for ct in zlib zstd; do
    for cs in 4k 64k 2M; do
        o="-o compression_type=$ct,cluster_size=$cs"
        expect_status 0 "$VIMG" convert -c -f raw -O qcow2 $o "$T/src.raw" \
            "$T/v.qcow2"
        qemu-img convert -c -f raw -O qcow2 $o "$T/src.raw" "$T/q.qcow2"
        qemu-img check "$T/v.qcow2" > "$T/check" ||
            { cat "$T/check"; fail "qemu-img check ($ct, $cs)"; }
        grep -q 'compressed clusters' "$T/check" ||
            fail "no compressed clusters ($ct, $cs)"
        [ "$(qemu_sha "$T/v.qcow2" qcow2)" = "$src_sha" ] ||
            fail "vimg's compressed image reads wrong in qemu-img ($ct, $cs)"
        [ "$(vimg_sha "$T/q.qcow2" qcow2)" = "$src_sha" ] ||
            fail "qemu-img's compressed image reads wrong in vimg ($ct, $cs)"
        qemu-io -f qcow2 -c 'read -P 0 3M 1M' "$T/v.qcow2" | grep -q '^read' ||
            fail "zero run not read as zeros ($ct, $cs)"
        case $cs in
        64k|2M) cmp -s "$T/v.qcow2" "$T/q.qcow2" ||
                    fail "not byte-identical to qemu-img convert -c ($ct, $cs)"
                ;;
        esac
        rm -f "$T/v.qcow2" "$T/q.qcow2"
    done
done

# Writing over compressed clusters: the data is rewritten plainly and the
# compressed space is released (no leaks).
"$VIMG" convert -c -f raw -O qcow2 "$T/src.raw" "$T/v.qcow2"
python3 - "$T/src.raw" "$T/src2.raw" <<'PY'
import sys
d = bytearray(open(sys.argv[1], "rb").read())
d[100000:2200000] = bytes([0x5a]) * 2100000
open(sys.argv[2], "wb").write(d)
PY
expect_status 0 "$VIMG" convert -n -f raw -O qcow2 "$T/src2.raw" "$T/v.qcow2"
qemu-img check "$T/v.qcow2" > "$T/check" ||
    { cat "$T/check"; fail "check after overwriting compressed clusters"; }
qemu-img compare -q -f raw -F qcow2 "$T/src2.raw" "$T/v.qcow2" ||
    fail "overwritten compressed image differs"

# A format without compressed blocks refuses -c and leaves no file.
expect_status 1 "$VIMG" convert -c -f raw -O raw "$T/src.raw" "$T/out.raw"
grep -qi 'compression not supported' "$T/err" || fail "message: $(cat "$T/err")"
[ ! -e "$T/out.raw" ] || fail "convert -c -O raw left a file"
ls -a "$T" | grep -q vimg-convert && fail "a temporary was left behind"
exit 0
