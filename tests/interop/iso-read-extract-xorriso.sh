#!/bin/sh
# vimg iso extract gives the same tree as xorriso -osirrox: contents
# (diff -r), modes and mtimes (stat), symlink targets (readlink); a single
# file and a subtree extract too, and iso cat prints one file.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/iso-fixtures.inc"
requires xorriso python3
make_tree "$T/src"
xorriso -as mkisofs -quiet -R -J -o "$T/a.iso" "$T/src" 2>/dev/null

mkdir "$T/v" "$T/x"
"$VIMG" iso extract "$T/a.iso" "$T/v" || fail "extract failed"
xorriso -osirrox on -indev "$T/a.iso" -extract / "$T/x" 2>/dev/null
diff -r "$T/v" "$T/x" || fail "extracted trees differ"
# Modes and mtimes of everything but symlinks (xorriso leaves symlink
# times at extraction time), and the link targets.
meta() {
    (cd "$1" && find . -mindepth 1 ! -type l | sort | while read -r f; do
        stat -c '%n %F %a %Y %s' "$f"; done
     find . -type l | sort | while read -r f; do
        echo "$f -> $(readlink "$f")"; done)
}
meta "$T/v" > "$T/v.meta"
meta "$T/x" > "$T/x.meta"
diff "$T/v.meta" "$T/x.meta" || fail "modes, mtimes or link targets differ"
# And against the source tree the ISO came from.
meta "$T/src" > "$T/src.meta"
diff "$T/src.meta" "$T/v.meta" || fail "extracted metadata differs from the source"

mkdir "$T/one"
"$VIMG" iso extract "$T/a.iso" /sub/deeper /hello.txt "$T/one"
[ -f "$T/one/deeper/deepest/leaf" ] && [ -f "$T/one/hello.txt" ] ||
    fail "extracting paths"
[ "$(stat -c %a "$T/one/hello.txt")" = 640 ] || fail "mode of a single file"
cmp "$T/src/sub/random.bin" "$T/v/sub/random.bin" || fail "random.bin content"
"$VIMG" iso cat "$T/a.iso" /sub/random.bin | cmp - "$T/src/sub/random.bin" ||
    fail "iso cat output"
expect_status 1 "$VIMG" iso cat "$T/a.iso" /sub
grep -q 'is not a regular file' "$T/err" || fail "cat of a directory"
# Existing files are never replaced.
expect_status 1 "$VIMG" iso extract "$T/a.iso" /hello.txt "$T/one"
grep -q 'hello.txt: cannot create: File exists' "$T/err" || fail "overwrite message: $(cat "$T/err")"
