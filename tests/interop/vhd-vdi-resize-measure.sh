#!/bin/sh
# resize and measure for vpc, vdi and vhdx, as qemu-img 7.2 has them:
# neither exists for any of the three formats (qemu-img: "Image format
# driver does not support resize", "Block driver '...' does not support
# size measurement"), so vimg refuses both too, with one line and exit 1,
# growing or shrinking, and leaves the image as it was.
. "$(dirname "$0")/functions.sh"
requires qemu-img

status() { # CMD...: print the exit status, output to $T/out and $T/err
    set +e
    "$@" >"$T/out" 2>"$T/err"
    echo $?
    set -e
}
same_refusal() { # WHAT QEMU-CMD -- VIMG-CMD
    what=$1; shift
    q=""
    while [ "$1" != -- ]; do q="$q $1"; shift; done
    shift
    # shellcheck disable=SC2086
    qs=$(status qemu-img $q)
    vs=$(status "$VIMG" "$@")
    [ "$qs" = 1 ] || fail "$what: qemu-img exited $qs (expected a refusal)"
    [ "$vs" = "$qs" ] || fail "$what: vimg exited $vs, qemu-img $qs"
    [ "$(wc -l < "$T/err")" = 1 ] || fail "$what: $(cat "$T/err")"
}

for spec in vpc:subformat=dynamic vpc:subformat=fixed vdi:static=off \
            vdi:static=on vhdx:subformat=dynamic vhdx:subformat=fixed; do
    fmt=${spec%%:*} opt=${spec#*:}
    img=$T/d.$fmt
    qemu-img create -q -f "$fmt" -o "$opt" "$img" 32M
    before=$(sha256sum < "$img")
    same_refusal "$spec grow" resize -f "$fmt" "$img" 64M -- \
        resize -f "$fmt" "$img" 64M
    grep -q "cannot be resized" "$T/err" || fail "$spec: $(cat "$T/err")"
    same_refusal "$spec shrink" resize -f "$fmt" --shrink "$img" 16M -- \
        resize -f "$fmt" --shrink "$img" 16M
    same_refusal "$spec measure" measure -O "$fmt" -o "$opt" --size 32M -- \
        measure -O "$fmt" -o "$opt" --size 32M
    grep -q "does not support measure" "$T/err" ||
        fail "$spec measure: $(cat "$T/err")"
    same_refusal "$spec measure image" measure -O "$fmt" -f "$fmt" "$img" -- \
        measure -O "$fmt" -f "$fmt" "$img"
    [ "$(sha256sum < "$img")" = "$before" ] || fail "$spec: image changed"
    if [ "$fmt" != vpc ]; then
        qemu-img check -q -f "$fmt" "$img" || fail "$spec: check failed"
    fi
done
echo "ok"
