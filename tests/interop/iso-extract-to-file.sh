#!/bin/sh
# iso extract IMAGE /path/file DEST writes the file at DEST when DEST is not
# an existing folder, as xorriso -extract (and cp) do: same bytes, mode and
# mtime; into an existing folder it lands inside it; an existing file is
# not replaced; a folder PATH keeps the folder behaviour.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/iso-fixtures.inc"
requires xorriso
make_tree "$T/src"
xorriso -as mkisofs -quiet -R -J -o "$T/a.iso" "$T/src" 2>/dev/null

"$VIMG" iso extract "$T/a.iso" /hello.txt "$T/copy.txt" ||
    fail "extract to a file name"
xorriso -osirrox on -indev "$T/a.iso" -extract /hello.txt "$T/x.txt" \
    2>/dev/null
[ -f "$T/copy.txt" ] || fail "no regular file at DEST"
cmp "$T/copy.txt" "$T/x.txt" || fail "contents differ from xorriso's"
[ "$(stat -c '%a %Y' "$T/copy.txt")" = "$(stat -c '%a %Y' "$T/x.txt")" ] ||
    fail "mode or mtime differ from xorriso's"
"$VIMG" iso extract "$T/a.iso" /sub/random.bin "$T/r.bin"
cmp "$T/r.bin" "$T/src/sub/random.bin" || fail "a file in a folder"

# An existing folder: the file goes inside it.
mkdir "$T/d"
"$VIMG" iso extract "$T/a.iso" /hello.txt "$T/d"
cmp "$T/d/hello.txt" "$T/x.txt" || fail "into an existing folder"
# An existing file is kept.
echo keep > "$T/keep.txt"
expect_status 1 "$VIMG" iso extract "$T/a.iso" /hello.txt "$T/keep.txt"
[ "$(cat "$T/keep.txt")" = keep ] || fail "an existing file was replaced"
# A missing parent folder: an error, nothing made.
expect_status 1 "$VIMG" iso extract "$T/a.iso" /hello.txt "$T/no/such.txt"
[ ! -e "$T/no" ] || fail "made a folder for a missing parent"
# A folder PATH and a new DEST: DEST is a folder holding it, as before.
"$VIMG" iso extract "$T/a.iso" /sub "$T/newdir"
[ -f "$T/newdir/sub/random.bin" ] || fail "folder extract into a new DEST"
