#!/bin/sh
# A second reader nobody here wrote: libyal's libqcow (qcowinfo and the
# python3 bindings) reads vimg's qcow (version 1) images, plain and
# compressed, with the same bytes as the source.
. "$(dirname "$0")/functions.sh"
requires qcowinfo /usr/bin/python3
/usr/bin/python3 -c 'import pyqcow' 2>/dev/null ||
    { echo "SKIP: python3-libqcow not installed"; exit 77; }

cd "$T"
# Whole sectors (qcow sizes are), a partial last cluster.
/usr/bin/python3 - src.raw <<'PY'
import random, sys
r = random.Random(8)
text = b"".join(r.choice([b"libqcow ", b"v1 ", b"\n"])
                for _ in range(300000))[:1 << 20]
open(sys.argv[1], "wb").write(text + bytes(1 << 20) + r.randbytes(1 << 19) +
                              text[:(1 << 19) + 1536])
PY
src_sha=$(sha256sum < src.raw | cut -d' ' -f1)
for c in "" -c; do
    # shellcheck disable=SC2086
    expect_status 0 "$VIMG" convert $c -f raw -O qcow src.raw v.qcow
    qcowinfo v.qcow > info.txt 2>&1 || { cat info.txt; fail "qcowinfo"; }
    grep -q 'Format version.*: 1' info.txt || { cat info.txt; fail "version"; }
    grep -q 'Media size.*(3147264 bytes)' info.txt ||
        { cat info.txt; fail "media size"; }
    lib_sha=$(/usr/bin/python3 - v.qcow <<'PY'
import hashlib, pyqcow, sys
f = pyqcow.file()
f.open(sys.argv[1])
print(hashlib.sha256(f.read_buffer(f.get_media_size())).hexdigest())
PY
)
    [ "$lib_sha" = "$src_sha" ] || fail "libqcow reads vimg's qcow $c differently"
done
exit 0
