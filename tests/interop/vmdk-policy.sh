#!/bin/sh
# Extent files are opened only through the open policy: --untrusted
# (--refs=never) opens none of them yet info lists them as qemu-img does;
# --refs=same-dir and --untrusted refuse absolute and ".." extent names
# before anything is opened; protocol names are refused under every
# policy; data reads under --untrusted fail with one line.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
requires qemu-img

cd "$T"
mkdir d
qemu-img create -q -f vmdk -o subformat=twoGbMaxExtentFlat d/split.vmdk 3G
qemu-img info d/split.vmdk > q.txt
# The extent files are gone: untrusted info never notices.
mv d/split-f001.vmdk d/split-f002.vmdk .
expect_status 0 "$VIMG" --untrusted info d/split.vmdk
grep -v '^disk size' q.txt > q2.txt
grep -v '^disk size' out > v2.txt
diff q2.txt v2.txt >&2 || fail "untrusted info differs from qemu-img's"
expect_status 1 "$VIMG" info d/split.vmdk
expect_status 1 "$VIMG" --untrusted convert -O raw d/split.vmdk x.raw
grep -q 'not opened' err || fail "untrusted read: $(cat err)"
[ "$(wc -l < err)" = 1 ] || fail "more than one line: $(cat err)"
mv split-f001.vmdk split-f002.vmdk d/
# map still places the data of flat extents it did not open, by path.
qemu-img map --output=json d/split.vmdk > q.map
"$VIMG" --untrusted map --output=json d/split.vmdk > v.map
"$PY" - q.map v.map <<'PY' || fail "untrusted map differs from qemu-img's"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
# Without opening the flat files vimg cannot see their holes: compare
# where the data lives, not whether it is zero.
place = lambda m: [(e["start"] + i, e.get("offset", 0) + i)
                   for e in m for i in (0, e["length"] - 1) if e["data"]]
if not all(any(e["start"] <= s < e["start"] + e["length"] and
               e.get("offset", 0) + s - e["start"] == o for e in b)
           for s, o in place(a)):
    sys.exit(1)
PY

# Descriptors naming files elsewhere.
mk_desc() { # NAME EXTENT-NAME
    cat > "$1" <<DESC
# Disk DescriptorFile
version=1
CID=12345678
parentCID=ffffffff
createType="monolithicFlat"

# Extent description
RW 2048 FLAT "$2" 0

# The Disk Data Base
#DDB

ddb.adapterType = "ide"
DESC
}
head -c 1M /dev/urandom > outside.raw
mk_desc d/abs.vmdk "$T/outside.raw"
mk_desc d/up.vmdk "../outside.raw"
mk_desc d/json.vmdk 'json:{file.driver:nbd}'
mk_desc d/proto.vmdk 'nbd://localhost/x'
for pol in --untrusted --refs=same-dir; do
    for f in abs up; do
        expect_status 1 "$VIMG" $pol info d/$f.vmdk
        grep -q 'absolute or leaves the image' err ||
            fail "$pol $f: $(cat err)"
        [ "$(wc -l < err)" = 1 ] || fail "$pol $f: several lines"
    done
done
# Followed freely, as qemu-img follows them, they read the same.
expect_status 0 "$VIMG" convert -O raw d/up.vmdk up.raw
cmp -s up.raw outside.raw || fail "an extent outside the folder"
for pol in "" --untrusted --refs=same-dir; do
    for f in json proto; do
        # shellcheck disable=SC2086
        expect_status 1 "$VIMG" $pol info d/$f.vmdk
        grep -q 'only plain file paths' err || fail "$pol $f: $(cat err)"
    done
done
exit 0
