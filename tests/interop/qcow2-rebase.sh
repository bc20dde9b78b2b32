#!/bin/sh
# vimg rebase does what qemu-img rebase does, on copies of one set of
# images (relative backing names, as people make them): safe rebases onto
# an unrelated image, onto an image deeper in the chain, and onto nothing
# (-b ""), and unsafe ones (-u): the overlay reads the same bytes before
# and after (sha256, both tools), its header names what qemu-img's names,
# qemu-img check is clean, and the mistakes exit and read as in qemu-img.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
requires qemu-img qemu-io

# Folder $1: base <- mid <- top, and other (unrelated, larger).
mkset() {
    mkdir -p "$1"
    qemu-img create -q -f qcow2 "$1/base.qcow2" 8M
    qemu-io -c 'write -P 0x11 0 4M' -c 'write -P 0x12 6M 64k' \
        "$1/base.qcow2" >/dev/null
    qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 "$1/mid.qcow2"
    qemu-io -c 'write -P 0x21 1M 1M' -c 'write -z 3M 128k' \
        "$1/mid.qcow2" >/dev/null
    qemu-img create -q -f qcow2 -b mid.qcow2 -F qcow2 "$1/top.qcow2"
    qemu-io -c 'write -P 0x31 1536k 100k' -c 'write -z 6M 4k' \
        "$1/top.qcow2" >/dev/null
    qemu-img create -q -f raw "$1/other.raw" 12M
    qemu-io -f raw -c 'write -P 0x11 0 2M' -c 'write -P 0x41 5M 2M' \
        -c 'write -P 0x42 9M 1M' "$1/other.raw" >/dev/null
}

# same ARGS...: rebase q/top with qemu-img and v/top with vimg.
same() {
    rm -rf "$T/q" "$T/v"
    mkset "$T/q"
    mkset "$T/v"
    before=$(qemu_sha "$T/v/top.qcow2" qcow2)
    qemu-img rebase -q "$@" "$T/q/top.qcow2"
    "$VIMG" rebase -q "$@" "$T/v/top.qcow2"
    qemu-img info "$T/q/top.qcow2" | sed -n "s|$T/q|DIR|; s/^backing //p" \
        > "$T/q.b"
    qemu-img info "$T/v/top.qcow2" | sed -n "s|$T/v|DIR|; s/^backing //p" \
        > "$T/v.b"
    diff "$T/q.b" "$T/v.b" >&2 || fail "rebase $*: backing fields differ"
    qemu_clean "$T/v/top.qcow2"
    for f in q v; do
        [ "$(qemu_sha "$T/$f/top.qcow2" qcow2)" = "$before" ] ||
            fail "rebase $* ($f): the contents changed"
    done
    [ "$(vimg_sha "$T/v/top.qcow2" qcow2)" = "$before" ] ||
        fail "rebase $*: vimg reads other data"
}

same -b other.raw -F raw
same -b base.qcow2 -F qcow2
same -b mid.qcow2 -F qcow2
same -b ""
# Unsafe: nothing but the backing file fields changes (the contents may),
# the header cluster ends up as qemu-img writes it, and a file that is
# gone can be named.
for args in "-u -b other.raw -F raw" "-u -b gone.qcow2 -F qcow2" "-u"; do
    rm -rf "$T/q" "$T/v"
    mkset "$T/q"
    mkset "$T/v"
    qemu-img rebase $args "$T/q/top.qcow2"
    "$VIMG" rebase $args "$T/v/top.qcow2"
    cmp "$T/q/top.qcow2" "$T/v/top.qcow2" ||
        fail "rebase $args: the files differ"
done
# A header full of other extensions keeps them, in their order.
mkset "$T/x"
"$VIMG" rebase -b other.raw -F raw "$T/x/top.qcow2"
"$VIMG" rebase -u -b base.qcow2 -F qcow2 "$T/x/top.qcow2"
qemu-img info "$T/x/top.qcow2" | grep -q "^backing file format: qcow2" ||
    fail "backing format not written"

# Mistakes, exit codes as qemu-img's.
mkset "$T/e"
for args in "-b other.raw" "-b other.raw -F nosuch" "-f qcow2" \
            "-b missing.qcow2 -F qcow2"; do
    expect_status 1 qemu-img rebase $args "$T/e/top.qcow2"
    cp "$T/err" "$T/q.err"
    expect_status 1 "$VIMG" rebase $args "$T/e/top.qcow2"
    sed -n '1s/^qemu-img: //p' "$T/q.err" | cut -d: -f1 > "$T/q.e"
    sed -n '1s/^vimg: //p' "$T/err" | cut -d: -f1 > "$T/v.e"
    diff "$T/q.e" "$T/v.e" >&2 || fail "rebase $args: messages differ"
done
qemu_clean "$T/e/top.qcow2"
echo "PASS"
