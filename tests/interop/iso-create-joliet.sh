#!/bin/sh
# vimg iso create: the Joliet tree, read by xorriso ignoring Rock Ridge
# (-read_fs norock) and by isoinfo -J, holds the regular files and folders
# under their UCS-2 names (cut to 64 characters, extension kept) with the
# same contents.
. "$(dirname "$0")/functions.sh"
requires xorriso isoinfo
src=$T/src
mkdir -p "$src/Sub Folder/deeper"
printf 'one\n' > "$src/Read Me.txt"
printf 'two\n' > "$src/Sub Folder/na$(printf '\303\257')ve caf$(printf '\303\251').md"
printf 'three\n' > "$src/Sub Folder/deeper/MiXeD.CaSe"
long=$(printf 'abcdefghij%.0s' $(seq 1 9)).txt
printf 'four\n' > "$src/$long"
ln -s "Read Me.txt" "$src/link"

"$VIMG" iso create -o "$T/t.iso" "$src"
mkdir "$T/x"
xorriso -read_fs norock -osirrox on -indev "$T/t.iso" -extract / "$T/x" \
    > "$T/xo" 2>&1 || { cat "$T/xo"; fail "xorriso failed"; }
! grep -E 'WARNING|SORRY|FAILURE' "$T/xo" || fail "xorriso complained"
# Symbolic links have no Joliet form; the long name is cut to 64.
rm "$src/link"
cut=$(printf 'abcdefghij%.0s' $(seq 1 6)).txt
mv "$src/$long" "$src/$cut"
[ ${#cut} = 64 ] || fail "test setup"
diff -r "$src" "$T/x" || fail "Joliet tree differs"

isoinfo -J -f -i "$T/t.iso" 2>"$T/ie" | LC_ALL=C sort > "$T/names"
[ ! -s "$T/ie" ] || { cat "$T/ie"; fail "isoinfo -J printed errors"; }
grep -qx "/Read Me.txt" "$T/names" || fail "isoinfo -J: Read Me.txt missing"
grep -qx "/Sub Folder/deeper/MiXeD.CaSe" "$T/names" ||
    fail "isoinfo -J: mixed-case name missing"
grep -qx "/$cut" "$T/names" || fail "isoinfo -J: long name not cut to 64"
