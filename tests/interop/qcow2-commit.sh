#!/bin/sh
# vimg commit does what qemu-img commit does, on copies of one chain
# base <- mid <- top (top larger than the base, data and zeroed ranges in
# every layer): the guest bytes of every image (sha256, both tools
# reading), which ranges the base has allocated afterwards (only what the
# layers above held is written), the overlay emptied unless -d or -b,
# qemu-img check clean, exit codes and messages of the mistakes; -r RATE.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
requires qemu-img qemu-io

# A fresh chain in folder $1 (relative backing names, as people make them).
mkchain() {
    mkdir -p "$1"
    qemu-img create -q -f qcow2 "$1/base.qcow2" 8M
    qemu-io -c 'write -P 0x11 0 2M' -c 'write -P 0x12 5M 1M' \
        "$1/base.qcow2" >/dev/null
    qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 "$1/mid.qcow2"
    qemu-io -c 'write -P 0x21 1M 1M' -c 'write -z 5M 256k' \
        -c 'write -P 0x22 7M 64k' "$1/mid.qcow2" >/dev/null
    qemu-img create -q -f qcow2 -b mid.qcow2 -F qcow2 "$1/top.qcow2" 10M
    qemu-io -c 'write -P 0x31 1536k 1M' -c 'write -z 0 64k' \
        -c 'write -P 0x32 9M 100k' -c 'write -z 7M 4k' \
        "$1/top.qcow2" >/dev/null
}

# The allocation of an image's own layer, offsets left out.
alloc() {
    qemu-img map -U --output=json "$1" | "$PY" -c '
import json, sys
out = []
for e in json.load(sys.stdin):
    if e["depth"] != 0:
        continue
    if out and out[-1][2:] == [e["zero"], e["data"]] and \
            out[-1][0] + out[-1][1] == e["start"]:
        out[-1][1] += e["length"]
    else:
        out.append([e["start"], e["length"], e["zero"], e["data"]])
for o in out:
    print(*o)'
}

# compare ARGS...: commit the q/ chain with qemu-img and the v/ chain with
# vimg (@DIR@ in ARGS stands for the chain's folder), then hold every
# image to the other tool's result.
compare() {
    rm -rf "$T/q" "$T/v"
    mkchain "$T/q"
    mkchain "$T/v"
    before=$(qemu_sha "$T/v/top.qcow2" qcow2)
    qemu-img commit -q $(echo "$@" | sed "s|@DIR@|$T/q|g") "$T/q/top.qcow2"
    "$VIMG" commit -q $(echo "$@" | sed "s|@DIR@|$T/v|g") "$T/v/top.qcow2"
    for f in base mid top; do
        [ "$(qemu_sha "$T/q/$f.qcow2" qcow2)" = \
          "$(qemu_sha "$T/v/$f.qcow2" qcow2)" ] ||
            fail "commit $*: $f reads differently"
        [ "$(vimg_sha "$T/v/$f.qcow2" qcow2)" = \
          "$(qemu_sha "$T/v/$f.qcow2" qcow2)" ] ||
            fail "commit $*: vimg reads $f differently"
        alloc "$T/q/$f.qcow2" > "$T/q.alloc"
        alloc "$T/v/$f.qcow2" > "$T/v.alloc"
        diff "$T/q.alloc" "$T/v.alloc" >&2 ||
            fail "commit $*: $f is allocated differently"
        qemu_clean "$T/v/$f.qcow2"
    done
    [ "$(qemu_sha "$T/v/top.qcow2" qcow2)" = "$before" ] ||
        fail "commit $*: top changed"
}

compare
[ -z "$(alloc "$T/v/top.qcow2")" ] || fail "top not emptied"
compare -d
compare -b base.qcow2
compare -b @DIR@/base.qcow2
compare -b mid.qcow2 -d
# -r: the rate limit (8M/s throttles these few MiB for a moment; nothing
# about the time is asserted), and the same result.
compare -r 8M
compare -r 1G -b base.qcow2

# Mistakes.
mkchain "$T/e"
expect_status 1 "$VIMG" commit "$T/e/base.qcow2"
grep -q "Image does not have a backing file" "$T/err" || fail "no-backing text"
expect_status 1 qemu-img commit "$T/e/base.qcow2"
expect_status 1 "$VIMG" commit -b nowhere.qcow2 "$T/e/top.qcow2"
grep -q "Did not find 'nowhere.qcow2' in the backing chain of '$T/e/top.qcow2'" \
    "$T/err" || { cat "$T/err" >&2; fail "not-found text"; }
expect_status 1 qemu-img commit -b nowhere.qcow2 "$T/e/top.qcow2"
for rate in xyz -1; do
    expect_status 1 "$VIMG" commit -r "$rate" "$T/e/top.qcow2"
    grep -q "Invalid rate limit specified" "$T/err" ||
        { cat "$T/err" >&2; fail "-r $rate text"; }
    expect_status 1 qemu-img commit -r "$rate" "$T/e/top.qcow2"
done
qemu_clean "$T/e/top.qcow2"
echo "PASS"
