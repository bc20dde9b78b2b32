#!/bin/sh
# Hostile QED headers and tables: each lie is refused with one line naming
# the file and the problem, exit status 1, within a small address space
# and a few seconds.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
requires qemu-img qemu-io python3 timeout

cd "$T"
qemu-img create -q -f qed p.qed 8M
qemu-io -f qed -c 'write -P 0x42 0 64k' -c 'write -P 0x43 2M 64k' p.qed \
    > /dev/null
mkdir h
"$PY" - p.qed h <<'PY'
import struct, sys
P = open(sys.argv[1], "rb").read()
out = sys.argv[2]
def edit(name, *edits, base=P):
    b = bytearray(base)
    for off, fmt, val in edits:
        struct.pack_into(fmt, b, off, val)
    open(out + "/" + name + ".qed", "wb").write(b)
l1 = struct.unpack_from("<Q", P, 40)[0]
l2 = struct.unpack_from("<Q", P, l1)[0]
edit("magic", (0, "<I", 0x00444552))
edit("feature-unknown", (16, "<Q", 0x10))
edit("feature-high", (16, "<Q", 1 << 63))
edit("cluster-2k", (4, "<I", 2048))
edit("cluster-3x", (4, "<I", 3 << 12))
edit("cluster-128m", (4, "<I", 1 << 27))
edit("cluster-4g", (4, "<I", 0xffffffff))
edit("table-0", (8, "<I", 0))
edit("table-3", (8, "<I", 3))
edit("table-32", (8, "<I", 32))
edit("table-absurd", (8, "<I", 0x80000000))
edit("tables-1g", (4, "<I", 1 << 26), (8, "<I", 16))
edit("header-0", (12, "<I", 0))
edit("header-huge", (12, "<I", 0xffffffff))
edit("size-odd", (48, "<Q", 1000))
edit("size-huge", (48, "<Q", 1 << 62))
edit("size-max", (48, "<Q", 0xfffffffffffffe00))
edit("l1-unaligned", (40, "<Q", l1 + 8))
edit("l1-past-eof", (40, "<Q", 1 << 40))
edit("l1-on-header", (40, "<Q", 0))
edit("backing-outside", (16, "<Q", 1), (56, "<I", 65530), (60, "<I", 100))
edit("backing-too-long", (16, "<Q", 1), (56, "<I", 64), (60, "<I", 5000))
edit("l1-entry-past-eof", (l1, "<Q", 1 << 40))
edit("l1-entry-unaligned", (l1, "<Q", l2 + 8))
edit("l1-entry-on-l1", (l1, "<Q", l1))
edit("l2-entry-past-eof", (l2, "<Q", 1 << 40))
edit("l2-entry-unaligned", (l2, "<Q", 4096 + 2))
edit("l2-entry-on-l2", (l2 + 8 * 32, "<Q", l2))
edit("l2-entry-on-header", (l2, "<Q", 0x1000))
open(out + "/truncated.qed", "wb").write(P[:40])
PY

check() { # FILE MESSAGE-PART
    set +e
    (ulimit -v 262144; timeout 20 "$VIMG" convert -f qed -O raw "h/$1.qed" \
        out.raw) > out 2> err
    rc=$?
    set -e
    [ $rc = 1 ] || fail "$1: exit status $rc: $(cat err)"
    [ "$(wc -l < err)" = 1 ] || fail "$1: not one line: $(cat err)"
    grep -q "h/$1.qed: .*$2" err || fail "$1: message '$(cat err)'"
    rm -f out.raw
}
check magic 'not a QED image'
check feature-unknown 'unsupported feature bits 0x10'
check feature-high 'unsupported feature bits 0x8000000000000000'
check cluster-2k 'cluster size 2048 is invalid'
check cluster-3x 'cluster size 12288 is invalid'
check cluster-128m 'cluster size 134217728 is invalid'
check cluster-4g 'cluster size 4294967295 is invalid'
check table-0 'table size 0 is invalid'
check table-3 'table size 3 is invalid'
check table-32 'table size 32 is invalid'
check table-absurd 'table size 2147483648 is invalid'
check tables-1g 'tables of 1073741824 bytes are larger than vimg reads'
check header-0 'header size of 0 clusters is invalid'
check header-huge 'header size of 4294967295 clusters is invalid'
check size-odd 'image size 1000 is invalid'
check size-huge 'image size 4611686018427387904 is invalid'
check size-max 'image size 18446744073709551104 is invalid'
check l1-unaligned 'L1 table at 0x10008 lies outside the file, over the'
check l1-past-eof 'L1 table at 0x10000000000 lies outside the file'
check l1-on-header 'L1 table at 0x0 lies outside the file, over the header'
check backing-outside 'backing file name at 65530 lies outside the header'
check backing-too-long 'backing file name too long (5000 bytes)'
check l1-entry-past-eof 'L2 table at 0x10000000000 lies outside the file'
check l1-entry-unaligned 'L2 table at 0x.*8 lies outside the file, unaligned'
check l1-entry-on-l1 'L2 table at 0x10000 lies outside the file'
check l2-entry-past-eof 'data cluster at 0x10000000000 lies outside'
check l2-entry-unaligned 'data cluster at 0x1002 lies outside'
check l2-entry-on-l2 'data cluster at 0x.* lies outside the file, unaligned'
check l2-entry-on-header 'data cluster at 0x1000 lies outside the file'
check truncated 'file is too small for a QED header'
# qemu-img agrees that each of these is not a usable QED image (or that
# its tables are corrupt): check, which reads every table, fails.
for f in l1-entry-past-eof l2-entry-past-eof l2-entry-on-l2; do
    expect_status 2 qemu-img check -f qed "h/$f.qed"
    expect_status 2 "$VIMG" check -f qed "h/$f.qed"
done
# A writer refuses a corrupt table too, and writes nothing after it.
cp h/l2-entry-on-l2.qed w.qed
head -c 65536 /dev/urandom > d.raw
expect_status 1 "$VIMG" convert -n -f raw -O qed d.raw w.qed
grep -q 'w.qed: data cluster at 0x.* lies outside' err || fail "$(cat err)"
cmp -s w.qed h/l2-entry-on-l2.qed || fail "a corrupt image was written"
exit 0
