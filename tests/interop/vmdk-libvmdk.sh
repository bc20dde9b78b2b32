#!/bin/sh
# A second reader nobody here wrote: libyal's libvmdk (vmdkinfo and the
# python3 bindings) reads vimg's monolithicSparse and streamOptimized
# images (and the split and flat ones) with the same bytes as the source.
. "$(dirname "$0")/functions.sh"
requires vmdkinfo /usr/bin/python3
/usr/bin/python3 -c 'import pyvmdk' 2>/dev/null ||
    { echo "SKIP: python3-libvmdk not installed"; exit 77; }

cd "$T"
# 5 MiB + 1.5 KiB: text, zeros, random bytes, and a partial last grain.
# (expect_status uses $want and $got: the hashes have other names.)
/usr/bin/python3 - src.raw <<'PY'
import random, sys
r = random.Random(12)
text = b"".join(r.choice([b"grain ", b"vmdk ", b"\n", b"stream "])
                for _ in range(600000))[:2 << 20]
data = text + bytes(1 << 20) + r.randbytes(1 << 20) + text[:(1 << 20) + 1536]
open(sys.argv[1], "wb").write(data)
PY
src_sha=$(sha256sum < src.raw | cut -d' ' -f1)
for sub in monolithicSparse streamOptimized twoGbMaxExtentSparse \
           monolithicFlat; do
    rm -f d*.vmdk
    expect_status 0 "$VIMG" convert -f raw -O vmdk -o subformat=$sub \
        src.raw d.vmdk
    vmdkinfo d.vmdk > info.txt 2>&1 || { cat info.txt; fail "vmdkinfo $sub"; }
    grep -q 'Media size:.*(5244416 bytes)' info.txt ||
        { cat info.txt; fail "vmdkinfo $sub: media size"; }
    lib_sha=$(/usr/bin/python3 - d.vmdk <<'PY'
import hashlib, pyvmdk, sys
h = pyvmdk.handle()
h.open(sys.argv[1])
h.open_extent_data_files()
d = h.read_buffer(h.get_media_size())
print(hashlib.sha256(d).hexdigest())
PY
)
    [ "$lib_sha" = "$src_sha" ] || fail "libvmdk reads vimg's $sub differently"
done
"$VIMG" convert -f raw -O vmdk -o subformat=streamOptimized src.raw s.vmdk
vmdkinfo s.vmdk | grep -q 'Disk type:.*Stream optimized' ||
    fail "libvmdk does not see a stream"
exit 0
