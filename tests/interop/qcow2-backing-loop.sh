#!/bin/sh
# Backing loops (an image that is its own backing file, and two images
# backing each other, made with `qemu-img rebase -u`) fail cleanly with
# exit status 1 and a one-line message for every command that follows the
# chain (qemu-img info --backing-chain fails too; qemu-img map loops
# forever on them, so it is not run here). Plain info, which does not
# follow the chain, reports the backing name as qemu-img does.
. "$(dirname "$0")/functions.sh"
requires qemu-img timeout

qemu-img create -q -f qcow2 "$T/self.qcow2" 1M
qemu-img rebase -q -u -b self.qcow2 -F qcow2 "$T/self.qcow2"
qemu-img create -q -f qcow2 "$T/a.qcow2" 1M
qemu-img create -q -f qcow2 -b a.qcow2 -F qcow2 "$T/b.qcow2"
qemu-img rebase -q -u -b b.qcow2 -F qcow2 "$T/a.qcow2"
for img in self a b; do
    for cmd in "info --backing-chain" "map" "convert -O raw"; do
        out=""
        [ "$cmd" = "convert -O raw" ] && out="$T/o.raw"
        # shellcheck disable=SC2086
        expect_status 1 timeout 20 "$VIMG" $cmd "$T/$img.qcow2" $out
        grep -q "^vimg: .*is the image itself or an image above it" \
            "$T/err" || fail "$cmd $img: no loop message"
        [ "$(wc -l < "$T/err")" -eq 1 ] || fail "$cmd $img: noisy error"
    done
    expect_status 1 qemu-img info --backing-chain "$T/$img.qcow2"
    "$VIMG" info --output=json "$T/$img.qcow2" > "$T/v.json"
    qemu-img info --output=json "$T/$img.qcow2" > "$T/q.json"
    [ "$(json_get "$T/v.json" backing-filename)" = \
      "$(json_get "$T/q.json" backing-filename)" ] || fail "info $img"
done
