# On a terminal, vimg asks for the passphrase of every encrypted image of
# a chain that no key-secret option names, naming each file, as QEMU asks
# per image: a plain overlay on a luks base (convert), an encrypted
# overlay on an encrypted base (two prompts, each file named), and commit,
# which reopens the base and does not ask twice. `script` gives the pty.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/crypto.inc"
requires qemu-img qemu-io script

"$VIMG" create -q -f luks $SEC -o key-secret=sec0,iter-time=10 \
    "$T/base.luks" 4M
qemu-io $SEC --image-opts "$(iopts luks "$T/base.luks")" \
    -c 'write -P 0x11 0 2M' > /dev/null
qemu-img create -q -f qcow2 -b "$T/base.luks" -F luks "$T/top.qcow2"
qemu-io $SEC --image-opts \
    "driver=qcow2,file.filename=$T/top.qcow2,backing.key-secret=sec0" \
    -c 'write -P 0x22 1M 64k' > /dev/null
qemu-img convert $SEC --image-opts -O raw \
    "driver=qcow2,file.filename=$T/top.qcow2,backing.key-secret=sec0" \
    "$T/q.raw"

# on_tty ANSWER... -- CMD: run CMD on a pty, typing one ANSWER a second.
on_tty() {
    answers=
    while [ "$1" != -- ]; do answers="$answers $1"; shift; done
    shift
    (for a in $answers; do sleep 1; printf '%s\n' "$a"; done) |
        timeout 60 script -qec "$*" /dev/null > "$T/tty" 2>&1 ||
        fail "$*: $(cat "$T/tty")"
    grep -q "$PASS\|$PASS2" "$T/tty" && fail "a passphrase was echoed"
    return 0
}

on_tty "$PASS" -- "'$VIMG' convert -O raw '$T/top.qcow2' '$T/v.raw'"
grep -q "Password for .*base.luks" "$T/tty" || fail "$(cat "$T/tty")"
grep -q "Password for .*top.qcow2" "$T/tty" && fail "asked for a plain image"
cmp -s "$T/q.raw" "$T/v.raw" || fail "prompted convert read other bytes"

# An encrypted overlay (sec1) on the base: both asked, top first.
"$VIMG" create -q -f qcow2 $SEC2 -b "$T/base.luks" -F luks \
    -o encrypt.format=luks,encrypt.key-secret=sec1,encrypt.iter-time=10 \
    "$T/enc.qcow2"
on_tty "$PASS2" "$PASS" -- "'$VIMG' convert -O raw '$T/enc.qcow2' '$T/e.raw'"
[ "$(grep -c 'Password for' "$T/tty")" = 2 ] &&
    grep -q "Password for .*enc.qcow2" "$T/tty" ||
    fail "two prompts: $(cat "$T/tty")"
qemu-img convert -O raw --image-opts $SEC \
    "$(iopts luks "$T/base.luks")" "$T/b.raw"
cmp -s "$T/b.raw" "$T/e.raw" || fail "encrypted chain read other bytes"

# commit asks once; the base then holds the overlay's data.
on_tty "$PASS" -- "'$VIMG' commit '$T/top.qcow2'"
[ "$(grep -c 'Password for' "$T/tty")" = 1 ] || fail "$(cat "$T/tty")"
qemu-io $SEC --image-opts "$(iopts luks "$T/base.luks")" \
    -c 'read -P 0x22 1M 64k' -c 'read -P 0x11 0 1M' > "$T/io" ||
    fail "committed base: $(cat "$T/io")"
exit 0
