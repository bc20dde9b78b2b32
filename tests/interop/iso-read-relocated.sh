#!/bin/sh
# genisoimage -R relocates directories deeper than 8 levels (RRIP CL/RE/PL
# records, rr_moved): vimg lists and extracts the logical tree as xorriso
# does.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/iso-fixtures.inc"
requires genisoimage xorriso python3
mkdir -p "$T/src/1/2/3/4/5/6/7/8/9/10/11"
echo deep > "$T/src/1/2/3/4/5/6/7/8/9/10/11/f"
chmod 700 "$T/src/1/2/3/4/5/6/7/8/9/10"
genisoimage -quiet -R -o "$T/d.iso" "$T/src" 2>/dev/null

vimg_lsdl "$T/d.iso" > "$T/vimg.txt"
xorriso_lsdl "$T/d.iso" > "$T/xorriso.txt"
grep -q '^d rwx------ 0 /1/2/3/4/5/6/7/8/9/10$' "$T/vimg.txt" ||
    fail "relocated directory: $(cat "$T/vimg.txt")"
diff "$T/vimg.txt" "$T/xorriso.txt" || fail "listing differs from xorriso"
mkdir "$T/v" "$T/x"
"$VIMG" iso extract "$T/d.iso" "$T/v"
xorriso -osirrox on -indev "$T/d.iso" -extract / "$T/x" 2>/dev/null
diff -r "$T/v" "$T/x" || fail "extracted trees differ"
[ "$(cat "$T/v/1/2/3/4/5/6/7/8/9/10/11/f")" = deep ] || fail "deep file"
