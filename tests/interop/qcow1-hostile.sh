#!/bin/sh
# Hostile qcow (version 1) headers and tables: each lie is refused with one
# line naming the file and the problem, exit status 1, within a small
# address space and a few seconds.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
requires qemu-img qemu-io python3 timeout

cd "$T"
qemu-img create -q -f qcow p.qcow 1M
qemu-io -f qcow -c 'write -P 0x42 0 64k' p.qcow > /dev/null
printf 'compress me %02000d' 0 > c.raw
truncate -s 64k c.raw
qemu-img convert -c -f raw -O qcow c.raw c.qcow || true  # exits 1, see
                                                        # qcow1-interop.sh
mkdir h
"$PY" - p.qcow c.qcow h <<'PY'
import struct, sys
P = open(sys.argv[1], "rb").read()
C = open(sys.argv[2], "rb").read()
out = sys.argv[3]
def edit(base, name, *edits):
    b = bytearray(base)
    for off, fmt, val in edits:
        struct.pack_into(fmt, b, off, val)
    open(out + "/" + name + ".qcow", "wb").write(b)
l1 = struct.unpack_from(">Q", P, 40)[0]
l2 = struct.unpack_from(">Q", P, l1)[0]
cl1 = struct.unpack_from(">Q", C, 40)[0]
cl2 = struct.unpack_from(">Q", C, cl1)[0]
ce = struct.unpack_from(">Q", C, cl2)[0]
edit(P, "version-2", (4, ">I", 2))
edit(P, "size-one", (24, ">Q", 1))
edit(P, "size-huge", (24, ">Q", 1 << 62))
edit(P, "cluster-bits-8", (32, ">B", 8))
edit(P, "cluster-bits-17", (32, ">B", 17))
edit(P, "l2-bits-14", (33, ">B", 14))
edit(P, "crypt-2", (36, ">I", 2))
edit(P, "l1-past-eof", (40, ">Q", 1 << 40))
edit(P, "l1-in-header", (40, ">Q", 8))
edit(P, "backing-too-long", (8, ">Q", 48), (16, ">I", 4000))
edit(P, "backing-past-eof", (8, ">Q", 1 << 40), (16, ">I", 10))
edit(P, "l1-entry-past-eof", (l1, ">Q", 1 << 40))
edit(P, "l1-entry-on-header", (l1, ">Q", 0))
edit(P, "l2-entry-past-eof", (l2, ">Q", 1 << 40))
edit(P, "l2-entry-unaligned", (l2, ">Q", l2 + 100))
edit(P, "l2-entry-on-l2", (l2 + 8, ">Q", l2))
edit(C, "compressed-size-zero", (cl2, ">Q", ce & ~(0xfff << 51)))
edit(C, "compressed-past-eof", (cl2, ">Q", (1 << 63) | (100 << 51) |
                                (1 << 40)))
edit(C, "compressed-damaged", (ce & ((1 << 51) - 1), ">Q",
                               0xffffffffffffffff))
open(out + "/truncated.qcow", "wb").write(P[:30])
PY
# l1-entry-on-header points the first L2 table at offset 0 (the header):
# an L1 entry of 0 is "no table", so make it 8 instead.
"$PY" - h/l1-entry-on-header.qcow <<'PY'
import struct, sys
b = bytearray(open(sys.argv[1], "rb").read())
struct.pack_into(">Q", b, struct.unpack_from(">Q", b, 40)[0], 8)
open(sys.argv[1], "wb").write(b)
PY

check() { # FILE MESSAGE-PART
    set +e
    (ulimit -v 262144; timeout 20 "$VIMG" convert -f qcow -O raw "h/$1.qcow" \
        out.raw) > out 2> err
    rc=$?
    set -e
    [ $rc = 1 ] || fail "$1: exit status $rc: $(cat err)"
    [ "$(wc -l < err)" = 1 ] || fail "$1: not one line: $(cat err)"
    grep -q "h/$1.qcow: .*$2" err || fail "$1: message '$(cat err)'"
    rm -f out.raw
}
check version-2 'does not support qcow version 2 (use the qcow2 format)'
check size-one 'image size 1 is invalid'
check size-huge 'L1 table of .* entries is too large'
check cluster-bits-8 'cluster size must be between 512 and 64k'
check cluster-bits-17 'cluster size must be between 512 and 64k'
check l2-bits-14 'L2 table size must be between 512 and 64k'
check crypt-2 'invalid encryption method 2'
check l1-past-eof 'L1 table at .* lies outside the file'
check l1-in-header 'L1 table at 8 lies outside the file'
check backing-too-long 'backing file name too long'
check backing-past-eof 'backing file name at .* lies outside the file'
check l1-entry-past-eof 'L2 table at 0x10000000000 lies outside'
check l1-entry-on-header 'L2 table at 0x8 lies outside the file or on'
check l2-entry-past-eof 'cluster at 0x10000000000 lies outside'
check l2-entry-unaligned 'cluster at .* lies outside'
check l2-entry-on-l2 'cluster at 0x1000 lies outside the file or on its metadata'
check compressed-size-zero 'compressed cluster at .* lies outside'
check compressed-past-eof 'compressed cluster at 0x10000000000 lies'
check compressed-damaged 'compressed cluster at .* is damaged'
check truncated 'too small for a qcow header'
exit 0
