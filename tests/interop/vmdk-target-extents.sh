#!/bin/sh
# Extent files of twoGbMaxExtent* and monolithicFlat images are written
# through the target mechanism, as the descriptor is: a convert that fails
# midway (here: the file size limit) leaves no extent file behind, and an
# image it was replacing keeps its extents untouched; an extent another
# process holds is refused; a successful convert passes qemu-img check
# and compare, also over an existing image.
. "$(dirname "$0")/functions.sh"
requires qemu-img qemu-io

mkdir "$T/w"
cd "$T/w"
head -c 3M /dev/urandom > src.raw
truncate -s 3G src.raw

# Fails midway: writes past 1 MiB fail (EFBIG, SIGXFSZ ignored).
for sub in twoGbMaxExtentSparse twoGbMaxExtentFlat monolithicFlat; do
    expect_status 1 sh -c "trap '' XFSZ; ulimit -f 2048;
        '$VIMG' convert -O vmdk -o subformat=$sub src.raw x.vmdk"
    left=$(ls -A | grep -v '^src.raw$' || true)
    [ -z "$left" ] || fail "$sub: a failed convert left: $left"
done

expect_status 0 "$VIMG" convert -O vmdk -o subformat=twoGbMaxExtentSparse \
    src.raw d.vmdk
[ -f d-s001.vmdk ] && [ -f d-s002.vmdk ] || fail "extents missing"
expect_status 0 qemu-img check d.vmdk
expect_status 0 qemu-img compare src.raw d.vmdk
old=$(cat d.vmdk d-s001.vmdk d-s002.vmdk | sha256sum)

# A failing convert over it changes none of its files.
expect_status 1 sh -c "trap '' XFSZ; ulimit -f 2048;
    '$VIMG' convert -O vmdk -o subformat=twoGbMaxExtentSparse src.raw d.vmdk"
[ "$(cat d.vmdk d-s001.vmdk d-s002.vmdk | sha256sum)" = "$old" ] ||
    fail "a failed convert changed the image it would have replaced"
[ -z "$(ls -A | grep vimg- || true)" ] || fail "temporaries left"

# An extent file another process holds is refused before anything
# changes (qemu-io keeps the image and its extents open).
mkfifo hold
qemu-io -f vmdk d.vmdk < hold > /dev/null 2>&1 &
pid=$!
exec 9> hold
stop_holder() { exec 9>&- 2>/dev/null; wait $pid 2>/dev/null || true; }
on_exit stop_holder
sleep 1
expect_status 1 "$VIMG" convert -O vmdk -o subformat=twoGbMaxExtentSparse \
    src.raw d.vmdk
grep -q "lock" "$T/err" || { cat "$T/err"; fail "held extent: message"; }
[ "$(cat d.vmdk d-s001.vmdk d-s002.vmdk | sha256sum)" = "$old" ] ||
    fail "a refused convert changed the image"
stop_holder

# Replacing works, and the new image is whole.
head -c 1M /dev/urandom > src2.raw
truncate -s 2100M src2.raw
expect_status 0 "$VIMG" convert -O vmdk -o subformat=twoGbMaxExtentFlat \
    src2.raw d.vmdk
expect_status 0 qemu-img compare src2.raw d.vmdk
expect_status 0 "$VIMG" create -f vmdk -o subformat=monolithicFlat m.vmdk 1M
expect_status 0 qemu-img compare -f raw -F vmdk m-flat.vmdk m.vmdk
