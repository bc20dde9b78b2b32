#!/bin/sh
# Hostile VMDK files: lying sparse headers, grain tables and directories
# pointing past the end, absurd grain markers, footers that lie, and
# descriptors outside the grammar or beyond the caps. Each is refused with
# one line naming the file and the problem, exit status 1, within a small
# address space and a few seconds.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
requires qemu-img qemu-io python3 timeout

cd "$T"
qemu-img create -q -f vmdk m.vmdk 1M
qemu-io -f vmdk -c 'write -P 0x42 0 128k' m.vmdk > /dev/null
head -c 200000 /dev/urandom > r.raw
truncate -s 1M r.raw
"$VIMG" convert -f raw -O vmdk -o subformat=streamOptimized r.raw s.vmdk
mkdir h
"$PY" - m.vmdk s.vmdk h <<'PY'
import struct, sys
mono, stream, out = sys.argv[1], sys.argv[2], sys.argv[3]
M = open(mono, "rb").read()
St = open(stream, "rb").read()
S = 512

def put(name, data):
    open(out + "/" + name + ".vmdk", "wb").write(data)

def edit(base, name, *edits):
    b = bytearray(base)
    for off, fmt, val in edits:
        struct.pack_into(fmt, b, off, val)
    put(name, b)

gd = struct.unpack_from("<Q", M, 56)[0]
gt0 = struct.unpack_from("<I", M, gd * S)[0]
edit(M, "hdr-version", (4, "<I", 4))
edit(M, "hdr-incompat", (8, "<I", 0x3 | 1 << 20))
edit(M, "hdr-newline", (75, "<B", 10))
edit(M, "hdr-grain-zero", (20, "<Q", 0))
edit(M, "hdr-grain-huge", (20, "<Q", 1 << 40))
edit(M, "hdr-gtes-huge", (44, "<I", 0xffffffff))
edit(M, "hdr-capacity-huge", (12, "<Q", 1 << 60))
edit(M, "hdr-gd-huge", (12, "<Q", 1 << 50), (20, "<Q", 1), (44, "<I", 1))
edit(M, "hdr-gd-past-eof", (56, "<Q", 1 << 40))
edit(M, "hdr-rgd-past-eof", (48, "<Q", 1 << 40))
edit(M, "hdr-desc-huge", (36, "<Q", 1 << 30))
edit(M, "hdr-overhead", (64, "<Q", 1 << 40))
edit(M, "hdr-algo", (77, "<H", 7))
edit(M, "cowd", (0, "<I", 0x44574f43))
put("truncated", M[:100])
edit(M, "gte-past-eof", (gt0 * S, "<I", 0x7fffffff))
edit(M, "gte-in-header", (gt0 * S, "<I", 1))
edit(M, "gd-entry-past-eof", (gd * S, "<I", 0x7ffffff0))
rgd = struct.unpack_from("<Q", M, 48)[0]
edit(M, "gd-entry-on-grains", (gd * S, "<I",
                               struct.unpack_from("<Q", M, 64)[0]))
edit(M, "gd-entry-shared", (rgd * S, "<I", gt0))
edit(M, "gd-entry-on-header", (gd * S, "<I", 1))
# Streams: the first grain marker sits at the overhead.
oh = struct.unpack_from("<Q", St, 64)[0] * S
edit(St, "marker-size-huge", (oh + 8, "<I", 0xffffffff))
edit(St, "marker-size-zero", (oh + 8, "<I", 0))
edit(St, "marker-lba", (oh, "<Q", 12345))
edit(St, "grain-damaged", (oh + 40, "<Q", 0x0123456789abcdef))
edit(St, "footer-missing", (56, "<Q", (1 << 64) - 1))
# A footer that lies: it too says "at the end", or another capacity.
foot = bytearray(St[:S])
struct.pack_into("<Q", foot, 56, (1 << 64) - 1)
def with_footer(name, footer):
    b = bytearray(St)
    struct.pack_into("<Q", b, 56, (1 << 64) - 1)
    b += struct.pack("<QII", 1, 0, 3) + bytes(S - 16) + footer
    b += bytes(S)
    put(name, b)
with_footer("footer-gd-at-end", bytes(foot))
f2 = bytearray(St[:S])
struct.pack_into("<Q", f2, 12, 999)
with_footer("footer-capacity", bytes(f2))
# Embedded descriptors outside the grammar (same length, sector 1).
desc = M[S:21 * S].split(b"\0")[0].decode()
def desc_variant(name, text):
    b = bytearray(M)
    t = text.encode()
    b[S:21 * S] = t + bytes(20 * S - len(t))
    put(name, b)
desc_variant("desc-garbage", desc + "rm -rf /\n")
desc_variant("desc-unknown-type", desc + 'RW 8 FOO "x.vmdk"\n')
desc_variant("desc-noaccess", desc + 'NOACCESS 8 FLAT "x.vmdk" 0\n')
desc_variant("desc-vmfsraw", desc + 'RW 8 VMFSRAW "x.vmdk"\n')
desc_variant("desc-no-cid", desc.replace("CID=", "XID=", 1))
desc_variant("desc-dup-key", desc + "version=1\n")
desc_variant("desc-control", desc + "ddb.x = \"\x01\"\n")
# Descriptor files.
head = ('# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\n'
        'createType="twoGbMaxExtentFlat"\n')
def text(name, body):
    open(out + "/" + name + ".vmdk", "w").write(head + body)
text("file-huge", "# filler\n" * 130000 + 'RW 8 ZERO\n')
text("file-extents", 'RW 8 ZERO\n' * 5000)
text("file-extent-size", 'RW 36028797018963968 ZERO\n')
text("file-extent-sum", 'RW 18014398509481983 ZERO\n' * 2)
text("file-no-extents", "")
text("file-sparse-short", 'RW 999999 SPARSE "../m.vmdk"\n')
open(out + "/file-type.vmdk", "w").write(
    head.replace("twoGbMaxExtentFlat", "vmfsRaw") + 'RW 8 ZERO\n')
PY

check() { # FILE MESSAGE-PART
    set +e
    (ulimit -v 262144; timeout 20 "$VIMG" convert -f vmdk -O raw "h/$1.vmdk" \
        out.raw) > out 2> err
    rc=$?
    set -e
    [ $rc = 1 ] || fail "$1: exit status $rc: $(cat err)"
    [ "$(wc -l < err)" = 1 ] || fail "$1: not one line: $(cat err)"
    grep -q "h/$1.vmdk: .*$2" err || fail "$1: message '$(cat err)'"
    rm -f out.raw
}
check hdr-version 'unsupported VMDK version 4'
check hdr-incompat 'unsupported incompatible VMDK flags'
check hdr-newline 'newline check bytes'
check hdr-grain-zero 'grain size of 0 sectors'
check hdr-grain-huge 'grain size of'
check hdr-gtes-huge 'entries per grain table'
check hdr-capacity-huge 'capacity of'
check hdr-gd-huge 'grain directory of .* too large'
check hdr-gd-past-eof 'grain directory at sector'
check hdr-rgd-past-eof 'redundant grain directory'
check hdr-desc-huge 'descriptor (.*) is too large'
check hdr-overhead 'file truncated'
check hdr-algo 'compression algorithm 7'
check cowd 'COWD'
check truncated 'truncated'
check gte-past-eof 'points to sector 2147483647, outside the grains'
check gte-in-header 'points to sector 1, outside the grains'
check gd-entry-past-eof 'grain table 0 at sector .* past the end'
check gd-entry-on-grains 'grain table at sector 128 overlaps'
check gd-entry-shared 'overlaps other metadata'
check gd-entry-on-header 'grain table at sector 1 overlaps'
check marker-size-huge 'claims 4294967295 bytes'
check marker-size-zero 'claims 0 bytes'
check marker-lba 'is for sector 12345'
check grain-damaged 'damaged'
check footer-missing 'invalid footer'
check footer-gd-at-end 'does not locate the grain directory'
check footer-capacity 'footer disagrees'
check desc-garbage 'descriptor line'
check desc-unknown-type "unknown extent type 'FOO'"
check desc-noaccess 'NOACCESS extents are not supported'
check desc-vmfsraw 'VMFSRAW extents are not supported'
check desc-no-cid 'lacks a CID'
check desc-dup-key 'given twice'
check desc-control 'control character'
check file-huge 'larger than'
check file-extents 'more than 4096 extents'
check file-extent-size 'invalid extent size'
check file-extent-sum 'add up to more'
check file-no-extents 'names no extents'
check file-sparse-short 'fewer than'
check file-type "unsupported image type 'vmfsRaw'"
exit 0
