#!/bin/sh
# The ISO writer and reader agree on how deep folders may nest
# (ISO_MAX_DEPTH, 255 levels below the root): a 70-level tree made by
# vimg iso create lists and extracts with vimg and with xorriso; a tree
# one level deeper than the limit is refused by iso create, and vimg
# refuses to read one (made by xorriso, which has no such limit), each
# with one line.
. "$(dirname "$0")/functions.sh"
requires xorriso python3
limit=255

# tree DIR LEVELS: folders d/d/... LEVELS deep, a file at the bottom.
tree() {
    python3 -c '
import os, sys
p = os.path.join(sys.argv[1], *["d"] * int(sys.argv[2]))
os.makedirs(p)
open(os.path.join(p, "leaf"), "w").write("bottom\n")' "$1" "$2"
}
bottom() { python3 -c 'import sys; print("/d" * int(sys.argv[1]) + "/leaf")' "$1"; }

tree "$T/s70" 70
"$VIMG" iso create -o "$T/70.iso" "$T/s70"
"$VIMG" iso ls -R "$T/70.iso" > "$T/ls" || fail "vimg cannot list its own tree"
[ "$(wc -l < "$T/ls")" = 71 ] || fail "vimg lists $(wc -l < "$T/ls") entries, not 71"
[ "$("$VIMG" iso cat "$T/70.iso" "$(bottom 70)")" = bottom ] ||
    fail "vimg iso cat of the deepest file"
mkdir "$T/x"
"$VIMG" iso extract "$T/70.iso" "$T/x" || fail "vimg cannot extract its own tree"
[ "$(cat "$T/x$(bottom 70)")" = bottom ] || fail "extracted leaf"
xorriso -indev "$T/70.iso" -find / -type f 2>/dev/null > "$T/xls"
[ "$(tr -d "'" < "$T/xls")" = "$(bottom 70)" ] ||
    fail "xorriso lists $(cat "$T/xls")"
xorriso -osirrox on -indev "$T/70.iso" -extract / "$T/xx" 2>/dev/null
diff -r "$T/x" "$T/xx" || fail "xorriso extracts something else"

# The deepest tree allowed, and one level more.
tree "$T/max" $limit
"$VIMG" iso create -o "$T/max.iso" "$T/max" || fail "$limit levels refused"
"$VIMG" iso ls -R "$T/max.iso" > /dev/null || fail "$limit levels unreadable"
tree "$T/over" $((limit + 1))
expect_status 1 "$VIMG" iso create -o "$T/over.iso" "$T/over"
grep -q "^vimg: $T/over.iso: folders nest more than $limit levels deep" \
    "$T/err" || fail "create message: $(cat "$T/err")"
[ "$(wc -l < "$T/err")" = 1 ] || fail "create: not one line"
[ ! -e "$T/over.iso" ] || fail "create left an output"
xorriso -as mkisofs -quiet -R -o "$T/over-x.iso" "$T/over" 2>/dev/null
for cmd in "iso ls -R" "iso extract"; do
    rm -rf "$T/y" && mkdir "$T/y"
    target=""
    [ "$cmd" = "iso extract" ] && target=$T/y
    # shellcheck disable=SC2086
    expect_status 1 "$VIMG" $cmd "$T/over-x.iso" $target
    grep -q "^vimg: $T/over-x.iso: directories nest more than $limit levels deep: /d/d/" \
        "$T/err" || fail "$cmd message: $(cat "$T/err")"
    [ "$(wc -l < "$T/err")" = 1 ] || fail "$cmd: not one line"
done
