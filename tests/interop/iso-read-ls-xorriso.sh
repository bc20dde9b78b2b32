#!/bin/sh
# vimg iso ls on a Rock Ridge + Joliet image from xorriso: every entry's
# type, permissions, size, path and symlink target match xorriso's own
# listing, and the Joliet tree (isoinfo -J) names the same files.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/iso-fixtures.inc"
requires xorriso isoinfo python3
make_tree "$T/src"
xorriso -as mkisofs -quiet -R -J -V LSTEST -o "$T/a.iso" "$T/src" 2>/dev/null

vimg_lsdl "$T/a.iso" > "$T/vimg.txt"
xorriso_lsdl "$T/a.iso" > "$T/xorriso.txt"
[ "$(wc -l < "$T/vimg.txt")" -ge 15 ] || fail "vimg listed too little"
diff "$T/vimg.txt" "$T/xorriso.txt" || fail "listing differs from xorriso"

# Paths only, against isoinfo's Rock Ridge listing (-R -f).
"$VIMG" iso ls -R --output=json "$T/a.iso" |
    python3 -c 'import json,sys; [print(e["path"]) for e in json.load(sys.stdin)]' |
    sort > "$T/vpaths"
isoinfo -R -f -i "$T/a.iso" | sort > "$T/ipaths"
diff "$T/vpaths" "$T/ipaths" || fail "paths differ from isoinfo -R -f"

# Human forms: plain names, -l like ls -l, PATH argument.
"$VIMG" iso ls "$T/a.iso" /sub > "$T/out"
grep -qx 'link-up' "$T/out" || fail "ls /sub lacks link-up"
"$VIMG" iso ls -l "$T/a.iso" sub | grep -q '^lrwxrwxrwx .* link-up -> \.\./hello\.txt$' ||
    fail "ls -l does not show the symlink target"
"$VIMG" iso ls -l "$T/a.iso" | grep -q '^-rw-r----- .* 2001-02-03 04:05 hello\.txt$' ||
    fail "ls -l mode/mtime of hello.txt"
expect_status 1 "$VIMG" iso ls "$T/a.iso" /nonexistent
grep -q 'a.iso: /nonexistent: no such file' "$T/err" || fail "missing-path message: $(cat "$T/err")"
