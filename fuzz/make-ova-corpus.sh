#!/bin/sh
# Regenerate fuzz/corpus/ova/: small OVA archives (an .ovf, a manifest and
# a 64 KiB streamOptimized disk made by vimg) in ustar and GNU tar formats,
# and hostile variants (a member past the end, an unsafe name, a link, a
# gzip-compressed disk, a damaged header, the longest name).
# Usage: VIMG=build/cli/vimg fuzz/make-ova-corpus.sh [OUTDIR]
set -eu
out=${1:-$(dirname "$0")/corpus/ova}
: "${VIMG:=$(dirname "$0")/../build/cli/vimg}"
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
mkdir -p "$out"

printf 'an ova disk %01000d' 0 > "$t/src.raw"
head -c 2000 /dev/urandom >> "$t/src.raw"
truncate -s 64k "$t/src.raw"
"$VIMG" convert -f raw -O vmdk -o subformat=streamOptimized "$t/src.raw" \
    "$t/disk.vmdk"

python3 - "$t/disk.vmdk" "$out" <<'PY'
import gzip, io, sys, tarfile
disk, out = open(sys.argv[1], "rb").read(), sys.argv[2]
ovf = b'<?xml version="1.0"?>\n<Envelope/>\n'

def archive(members, fmt=tarfile.USTAR_FORMAT, kind=tarfile.REGTYPE):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for name, data in members:
            i = tarfile.TarInfo(name)
            i.size = len(data)
            i.type = kind if name.endswith(".lnk") else tarfile.REGTYPE
            t.addfile(i, io.BytesIO(data))
    b = buf.getvalue()
    while len(b) > 1024 and not any(b[-1536:-1024]):
        b = b[:-512]   # keep two end blocks, drop the record padding
    return b

def put(name, b):
    open(out + "/" + name, "wb").write(b)

good = [("vm.ovf", ovf), ("vm.mf", b"SHA256(disk.vmdk)= 00\n"),
        ("disk.vmdk", disk)]
put("ustar", archive(good))
put("gnu", archive(good, tarfile.GNU_FORMAT))
put("gz", archive([("vm.ovf", ovf), ("disk.vmdk.gz", gzip.compress(disk))]))
put("dotdot", archive([("vm.ovf", ovf), ("../disk.vmdk", disk)]))
put("link", archive([("vm.ovf", ovf), ("disk.lnk", b"")],
                    kind=tarfile.SYMTYPE))
b = bytearray(archive(good))
h = b[1024:1536]
h[124:136] = b"77777777777\0"
h[148:156] = b" " * 8
h[148:156] = b"%06o\0 " % sum(h)
b[1024:1536] = h
put("past-eof", bytes(b))
b[1024 + 130] ^= 1
put("damaged", bytes(b))
put("truncated", archive(good)[:3000])
# The longest ustar name: a 155-byte prefix, '/', a 100-byte name.
put("long-name", archive([("vm.ovf", ovf),
                          ("p" * 155 + "/" + "n" * 95 + ".vmdk", disk)]))
PY
