#!/bin/sh
# Compressed clusters (zlib and zstd) read back identically, map like
# qemu-img, and check reports the same cluster statistics.
. "$(dirname "$0")/functions.sh"
requires qemu-img

head -c 2M /dev/urandom > "$T/r.raw"
dd if=/dev/zero bs=1M count=1 2>/dev/null >> "$T/r.raw"
yes vimg | head -c 1M >> "$T/r.raw"
for ct in zlib zstd; do
    img="$T/c-$ct.qcow2"
    qemu-img convert -c -f raw -O qcow2 -o compression_type=$ct \
        "$T/r.raw" "$img"
    "$VIMG" convert -f qcow2 -O raw "$img" "$T/v.raw"
    cmp -s "$T/r.raw" "$T/v.raw" || fail "$ct: data differs"
    qemu-img map --output=json "$img" > "$T/q.map"
    "$VIMG" map --output=json "$img" > "$T/v.map"
    cmp -s "$T/q.map" "$T/v.map" || fail "$ct: map differs"
    qemu-img check --output=json "$img" > "$T/q.json"
    "$VIMG" check --output=json "$img" > "$T/v.json"
    for f in allocated-clusters compressed-clusters fragmented-clusters \
             image-end-offset; do
        [ "$(json_get "$T/q.json" $f)" = "$(json_get "$T/v.json" $f)" ] ||
            fail "$ct: check $f differs"
    done
done
