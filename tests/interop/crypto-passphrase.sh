# Passphrases: a wrong one, a missing secret, an unknown secret id and no
# secret at all are each one line and exit 1, never with the passphrase in
# it; file= and data=...,format=base64 secrets work; info needs no key.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/crypto.inc"
requires qemu-img

o=encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10
expect_status 0 "$VIMG" create -q -f qcow2 $SEC -o "$o" "$T/e.qcow2" 1M
one_line() {
    [ "$(wc -l < "$T/err")" = 1 ] || fail "$1: not one line: $(cat "$T/err")"
    grep -q "$PASS\|$PASS2\|wrong-one" "$T/err" && fail "$1: passphrase shown"
    grep -q "$2" "$T/err" || fail "$1: $(cat "$T/err")"
}
expect_status 1 "$VIMG" convert --object secret,id=sec0,data=wrong-one \
    --image-opts -O raw "$(iopts qcow2 "$T/e.qcow2")" "$T/o.raw"
one_line wrong 'invalid passphrase'
[ ! -e "$T/o.raw" ] || fail "a failed open left its target"
expect_status 1 "$VIMG" convert $SEC --image-opts -O raw \
    "$(iopts qcow2 "$T/e.qcow2" nosuch)" "$T/o.raw"
one_line unknown-id "no secret with id 'nosuch'"
expect_status 1 "$VIMG" convert -O raw "$T/e.qcow2" "$T/o.raw" < /dev/null
one_line no-secret 'passphrase is needed'
expect_status 1 "$VIMG" create -f qcow2 -o "$o" "$T/n.qcow2" 1M
one_line create-no-secret "no secret with id 'sec0'"
# qemu-io refuses the wrong passphrase too.
expect_status 1 qemu-io --object secret,id=sec0,data=wrong-one \
    --image-opts "$(iopts qcow2 "$T/e.qcow2")" -c 'read 0 512'
grep -q 'Invalid password' "$T/err" || fail "qemu-io: $(cat "$T/err")"

# file= (as given: no newline stripped, as in QEMU) and base64.
printf %s "$PASS" > "$T/pass"
expect_status 0 "$VIMG" convert --object secret,id=f,file="$T/pass" \
    --image-opts -O raw "$(iopts qcow2 "$T/e.qcow2" f)" "$T/o.raw"
b64=$(printf %s "$PASS" | base64)
expect_status 0 "$VIMG" convert --object "secret,id=b,data=$b64,format=base64" \
    --image-opts -O raw "$(iopts qcow2 "$T/e.qcow2" b)" "$T/o.raw"
# On a terminal without a secret, vimg asks (script gives it a pty); the
# passphrase is not echoed.
if command -v script > /dev/null; then
    (sleep 1; printf '%s\n' "$PASS") | timeout 60 script -qec \
        "'$VIMG' convert -O raw '$T/e.qcow2' '$T/p.raw'" /dev/null \
        > "$T/tty" 2>&1 || fail "prompt: $(cat "$T/tty")"
    grep -q 'Password for' "$T/tty" || fail "no prompt: $(cat "$T/tty")"
    grep -q "$PASS" "$T/tty" && fail "the passphrase was echoed"
    cmp -s "$T/p.raw" "$T/o.raw" || fail "prompted convert read other bytes"
fi
# Metadata needs no key.
expect_status 0 "$VIMG" info "$T/e.qcow2"
expect_status 0 "$VIMG" check "$T/e.qcow2"
exit 0
