#!/bin/sh
# Hard links share one data extent in an ISO (same extent, same Rock Ridge
# serial number, same attributes): vimg iso extract makes them hard links
# again, as xorriso -hardlinks on -osirrox on does, for images from
# xorriso, genisoimage (RRIP 1.09: no serial number) and vimg iso create.
# A file sharing the extent with other attributes is a copy. Sharing
# extents is not refused for files (only directories are entered once).
. "$(dirname "$0")/functions.sh"
requires xorriso genisoimage python3

mkdir -p "$T/s/sub"
head -c 300000 /dev/urandom > "$T/s/a"
ln "$T/s/a" "$T/s/b"
ln "$T/s/a" "$T/s/sub/c"
echo other > "$T/s/d"
ln "$T/s/d" "$T/s/sub/e"
: > "$T/s/empty1"
ln "$T/s/empty1" "$T/s/empty2"
chmod 600 "$T/s/d"

# groups DIR: "path:link-group-id" per file, the ids numbered in order of
# first appearance, so two trees with the same link structure print alike.
groups() {
    (cd "$1" && find . -type f | sort | while read -r f; do
        echo "$f $(stat -c %i "$f")"
    done) | awk '{ if (!($2 in g)) g[$2] = ++n; print $1 ":" g[$2] }'
}

xorriso -hardlinks on -outdev "$T/xorriso.iso" -map "$T/s" / 2>/dev/null
genisoimage -quiet -R -o "$T/genisoimage.iso" "$T/s" 2>/dev/null
"$VIMG" iso create -o "$T/vimg.iso" "$T/s"
for iso in xorriso genisoimage vimg; do
    mkdir "$T/v-$iso"
    "$VIMG" iso extract "$T/$iso.iso" "$T/v-$iso" || fail "$iso: extract"
    xorriso -hardlinks on -osirrox on -indev "$T/$iso.iso" \
        -extract / "$T/x-$iso" 2>/dev/null
    diff -r "$T/s" "$T/v-$iso" || fail "$iso: contents differ"
    groups "$T/v-$iso" > "$T/v-$iso.groups"
    groups "$T/s" > "$T/s.groups"
    [ "$iso" = genisoimage ] ||
        diff "$T/s.groups" "$T/v-$iso.groups" || fail "$iso: link groups"
    # xorriso links only names with one serial number: genisoimage
    # writes none, so there vimg links what xorriso copies.
    [ "$iso" = genisoimage ] || { groups "$T/x-$iso" |
        diff - "$T/v-$iso.groups" || fail "$iso: unlike xorriso's extraction"; }
    [ "$(stat -c %h "$T/v-$iso/a")" = 3 ] || fail "$iso: a has $(stat -c %h "$T/v-$iso/a") links"
    [ "$(stat -c %h "$T/v-$iso/sub/e")" = 2 ] || fail "$iso: e is not linked to d"
    [ "$(stat -c %a "$T/v-$iso/sub/e")" = 600 ] || fail "$iso: mode of e"
done
# genisoimage's empty files have no serial number to tell them apart:
# copies, the rest as in the source.
grep -v empty "$T/s.groups" > "$T/s.ne"
grep -v empty "$T/v-genisoimage.groups" > "$T/g.ne"
diff "$T/s.ne" "$T/g.ne" || fail "genisoimage: link groups"

# d given a's extent (keeping its own serial number and mode) is a copy
# holding a's data, not a link to a.
python3 "$(dirname "$0")/iso-damage.py" "$T/xorriso.iso" "$T/other.iso" \
    share-extent a d
mkdir "$T/o"
"$VIMG" iso extract "$T/other.iso" "$T/o" || fail "extract of other.iso"
cmp "$T/s/a" "$T/o/d" || fail "d does not hold a's data"
[ "$(stat -c %i "$T/o/d")" != "$(stat -c %i "$T/o/a")" ] || fail "d linked to a"
[ "$(stat -c %a "$T/o/d")" = 600 ] || fail "mode of d"
