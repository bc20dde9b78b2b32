#!/bin/sh
# vimg iso create: the volume descriptor texts land where isoinfo reads
# them, in the primary and the Joliet descriptor, and --no-rock-ridge /
# --no-joliet leave those extensions out (symlinks then disappear).
. "$(dirname "$0")/functions.sh"
requires isoinfo xorriso
mkdir "$T/src"
echo data > "$T/src/file.txt"
ln -s file.txt "$T/src/link"

"$VIMG" iso create -o "$T/t.iso" -V 'My Volume_1' --publisher 'Pub Lisher' \
    --preparer 'Pre Parer' --application 'App 2.0' --system 'SYS' \
    --volset 'Set 7' "$T/src"
for j in "" -J; do
    isoinfo $j -d -i "$T/t.iso" > "$T/d"
    for line in 'Volume id: My Volume_1' 'Publisher id: Pub Lisher' \
        'Data preparer id: Pre Parer' 'Application id: App 2.0' \
        'System id: SYS' 'Volume set id: Set 7' 'Logical block size is: 2048'; do
        grep -qx "$line" "$T/d" || { cat "$T/d"; fail "isoinfo $j -d: $line"; }
    done
done
grep -q 'Rock Ridge signatures version 1 found' "$T/d" || fail "Rock Ridge"
grep -q 'Joliet with UCS level 3 found' "$T/d" || fail "Joliet"
# The volume size in the descriptor is the file size.
[ $(( $(sed -n 's/^Volume size is: //p' "$T/d") * 2048 )) = "$(stat -c %s "$T/t.iso")" ] ||
    fail "volume size"

"$VIMG" iso create -o "$T/plain.iso" --no-rock-ridge --no-joliet "$T/src"
isoinfo -d -i "$T/plain.iso" > "$T/d"
grep -qx 'NO Rock Ridge present' "$T/d" || fail "Rock Ridge not disabled"
grep -qx 'NO Joliet present' "$T/d" || fail "Joliet not disabled"
[ "$(isoinfo -f -i "$T/plain.iso")" = "/FILE.TXT;1" ] ||
    fail "plain tree: $(isoinfo -f -i "$T/plain.iso")"

"$VIMG" iso create -o "$T/j.iso" --no-rock-ridge "$T/src"
[ "$(isoinfo -J -f -i "$T/j.iso")" = "/file.txt" ] || fail "Joliet-only tree"
xorriso -indev "$T/j.iso" -find / 2>/dev/null | grep -q "^'/file.txt'$" ||
    fail "xorriso does not see the Joliet names"
