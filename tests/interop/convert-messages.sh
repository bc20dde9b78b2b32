#!/bin/sh
# convert's messages name the real problem: converting into the source
# itself or into a file of its backing chain says so (not "another
# process" holding a lock), and -n into a file smaller than the source
# names the file's own size (not its size rounded up to a sector). Exit
# codes as qemu-img's; the files are left as they were.
. "$(dirname "$0")/functions.sh"
requires qemu-img
qemu-img create -q -f raw "$T/base.raw" 1M
qemu-img create -q -f qcow2 -b base.raw -F raw "$T/ov.qcow2"
ln -s ov.qcow2 "$T/link.qcow2"
before=$(cat "$T/base.raw" "$T/ov.qcow2" | sha256sum)

one_line() { # one_line TEXT: stderr is one "vimg: ..." line with TEXT
    [ "$(wc -l < "$T/err")" = 1 ] || fail "not one line: $(cat "$T/err")"
    grep -q "^vimg: $1" "$T/err" || fail "message: $(cat "$T/err")"
    ! grep -q "another process" "$T/err" || fail "blames another process: $(cat "$T/err")"
}
for n in -n ""; do
    # shellcheck disable=SC2086
    expect_status 1 qemu-img convert $n -f raw -O raw "$T/base.raw" "$T/base.raw"
    # shellcheck disable=SC2086
    expect_status 1 "$VIMG" convert $n -f raw -O raw "$T/base.raw" "$T/base.raw"
    one_line "$T/base.raw: cannot convert into the source itself"
    # shellcheck disable=SC2086
    expect_status 1 "$VIMG" convert $n -O qcow2 "$T/ov.qcow2" "$T/link.qcow2"
    one_line "$T/link.qcow2: cannot convert into the source itself"
    # shellcheck disable=SC2086
    expect_status 1 qemu-img convert $n -O raw "$T/ov.qcow2" "$T/base.raw"
    # shellcheck disable=SC2086
    expect_status 1 "$VIMG" convert $n -O raw "$T/ov.qcow2" "$T/base.raw"
    one_line "$T/base.raw: cannot convert into the source's backing file .*base.raw"
done
[ "$(cat "$T/base.raw" "$T/ov.qcow2" | sha256sum)" = "$before" ] || fail "files changed"
[ -L "$T/link.qcow2" ] || fail "link replaced"

printf abcd > "$T/four"
expect_status 1 qemu-img convert -n -f raw -O raw "$T/base.raw" "$T/four"
expect_status 1 "$VIMG" convert -n -f raw -O raw "$T/base.raw" "$T/four"
one_line "$T/four: target (4 bytes) is smaller than the source (1048576 bytes)"
[ "$(cat "$T/four")" = abcd ] || fail "small target changed"
