#!/bin/sh
# OVA archives open as their first disk, read in place: an archive built
# with tar (ustar and GNU formats) from a streamOptimized VMDK made by
# qemu-img, and one made by vimg, convert to the bytes qemu-img reads from
# the extracted disk; info lists the members; hostile archives (a member
# past the end, a '..' name, a link, a damaged header, a gzip-compressed
# disk, too many members) are refused with one line and exit 1, in a small
# address space.
. "$(dirname "$0")/functions.sh"
requires qemu-img tar python3

mkdir "$T/w"
cd "$T/w"
head -c 300k /dev/urandom > src.raw
printf 'text in the middle %04000d' 7 >> src.raw
truncate -s 3M src.raw
head -c 100k /dev/urandom >> src.raw
qemu-img convert -f raw -O vmdk -o subformat=streamOptimized src.raw q.vmdk
"$VIMG" convert -f raw -O vmdk -o subformat=streamOptimized src.raw v.vmdk
printf '<?xml version="1.0"?>\n<Envelope/>\n' > vm.ovf
printf 'SHA256(q.vmdk)= 00\n' > vm.mf

for disk in q.vmdk v.vmdk; do
    for fmt in ustar gnu; do
        rm -f vm.ova x.raw q.raw
        tar --format=$fmt -cf vm.ova vm.ovf vm.mf $disk
        expect_status 0 "$VIMG" convert -O raw vm.ova x.raw
        mkdir ex && (cd ex && tar -xf ../vm.ova)
        qemu-img convert -f vmdk -O raw "ex/$disk" q.raw
        rm -rf ex
        cmp -s x.raw q.raw || fail "$disk ($fmt): vimg reads other bytes"
        cmp -s x.raw src.raw || fail "$disk ($fmt): not the source"
    done
done
"$VIMG" info --output=json vm.ova > i.json
python3 - i.json <<'PY' || fail "info"
import json, sys
i = json.load(open(sys.argv[1]))
assert i["format"] == "ova" and i["virtual-size"] == 3 * 1024 * 1024 + 102400
d = i["format-specific"]["data"]
assert [m["name"] for m in d["members"]] == ["vm.ovf", "vm.mf", "v.vmdk"]
assert d["disk"] == "v.vmdk" and d["disk-format"] == "vmdk"
assert d["disk-info"]["format-specific"]["data"]["create-type"] == \
    "streamOptimized"
PY
"$VIMG" info vm.ova > i.txt
grep -q "name: v.vmdk" i.txt || fail "human info lists no members"
# Read-only: writing into it is refused.
expect_status 1 "$VIMG" convert -n -f raw -O ova src.raw vm.ova
grep -q "read-only" "$T/err" || { cat "$T/err"; fail "write not refused"; }

# Hostile archives, made from a good one.
gzip -c q.vmdk > q.vmdk.gz
tar --format=ustar -cf gz.ova vm.ovf q.vmdk.gz
tar --format=ustar -cf good.ova vm.ovf q.vmdk
python3 - good.ova <<'PY'
import struct, sys
good = open(sys.argv[1], "rb").read()

def fix(h):
    h[148:156] = b" " * 8
    h[148:156] = b"%06o\0 " % sum(h)

def member(data, n, edit):
    """Apply EDIT to the header of member N (0-based) of DATA."""
    b = bytearray(data)
    at = 0
    for _ in range(n):
        size = int(b[at + 124:at + 136].split(b"\0")[0].strip() or b"0", 8)
        at += 512 + (size + 511) // 512 * 512
    h = b[at:at + 512]
    edit(h)
    b[at:at + 512] = h
    return b

def put(name, b):
    open(name + ".ova", "wb").write(b)

def size_past_eof(h):
    h[124:136] = b"%011o\0" % (len(good) * 4)
    fix(h)
put("past-eof", member(good, 1, size_past_eof))
def dotdot(h):
    h[0:100] = b"../../etc/q.vmdk".ljust(100, b"\0")
    fix(h)
put("dotdot", member(good, 1, dotdot))
def absolute(h):
    h[0:100] = b"/tmp/q.vmdk".ljust(100, b"\0")
    fix(h)
put("absolute", member(good, 1, absolute))
def link(h):
    h[156] = ord("2")
    fix(h)
put("link", member(good, 1, link))
def damaged(h):
    h[130] ^= 1
put("damaged", member(good, 1, damaged))
def huge(h):
    h[124:136] = b"\x80" + bytes(3) + struct.pack(">Q", 1 << 62)
    fix(h)
put("huge", member(good, 1, huge))
# 300 tiny members after the descriptor.
hdr = bytearray(good[:512])
many = bytearray(good[:1024])
for i in range(300):
    h = bytearray(hdr)
    h[0:100] = (b"f%d.txt" % i).ljust(100, b"\0")
    h[124:136] = b"%011o\0" % 0
    fix(h)
    many += h
put("many", many + bytes(1024))
PY
hostile() {
    expect_status 1 sh -c "ulimit -v 300000; timeout 10 '$VIMG' convert \
        -O raw $1.ova h.raw"
    [ "$(wc -l < "$T/err")" = 1 ] ||
        { cat "$T/err"; fail "$1: not one line"; }
    grep -q "^vimg: $1.ova: .*$2" "$T/err" ||
        { cat "$T/err"; fail "$1: wrong message"; }
}
hostile gz "gzip-compressed"
hostile past-eof "more bytes than the archive holds"
hostile dotdot "unsafe name"
hostile absolute "unsafe name"
hostile link "not a regular file"
hostile damaged "damaged"
hostile huge "more bytes than the archive holds"
hostile many "more than 256 members"
