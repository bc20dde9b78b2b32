# rebase with encrypted backing files, as qemu-img 7.2 takes keys: the old
# chain's keys come from the image's --image-opts (backing.key-secret=ID);
# the new backing file (-b, a file name) is opened without options, so an
# encrypted one outside the old chain is refused by both (vimg names -u and
# the terminal prompt). An encrypted new backing file that lies in the old
# chain is read with the keys given for it there (qemu-img 7.2 opens it
# again without keys and fails: a deliberate difference). -u needs no key.
# On a terminal vimg asks for the new file's passphrase.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/crypto.inc"
requires qemu-img qemu-io

o=encrypt.format=luks,encrypt.iter-time=10
"$VIMG" create -q -f luks $SEC -o key-secret=sec0,iter-time=10 \
    "$T/base.luks" 4M
qemu-io $SEC --image-opts "$(iopts luks "$T/base.luks")" \
    -c 'write -P 0x11 0 2M' > /dev/null
qemu-img create -q -f qcow2 "$T/plain.qcow2" 4M

# From an encrypted old backing file to a plain one: vimg as qemu-img.
qemu-img create -q -f qcow2 -b "$T/base.luks" -F luks "$T/v.qcow2"
qemu-io $SEC --image-opts \
    "driver=qcow2,file.filename=$T/v.qcow2,backing.key-secret=sec0" \
    -c 'write -P 0x22 1M 64k' > /dev/null
cp "$T/v.qcow2" "$T/q.qcow2"
qemu-img rebase $SEC --image-opts -b "$T/plain.qcow2" -F qcow2 \
    "driver=qcow2,file.filename=$T/q.qcow2,backing.key-secret=sec0"
expect_status 0 "$VIMG" rebase $SEC --image-opts -b "$T/plain.qcow2" \
    -F qcow2 "driver=qcow2,file.filename=$T/v.qcow2,backing.key-secret=sec0"
qemu-img compare -q "$T/q.qcow2" "$T/v.qcow2" || fail "old encrypted chain"
qemu-io -c 'read -P 0x11 0 1M' -c 'read -P 0x22 1M 64k' "$T/v.qcow2" \
    > "$T/io" || fail "rebased image: $(cat "$T/io")"

# Onto an encrypted file outside the chain: no key can be given.
qemu-img create -q -f qcow2 -b "$T/plain.qcow2" -F qcow2 "$T/w.qcow2"
expect_status 1 qemu-img rebase $SEC -b "$T/base.luks" -F luks "$T/w.qcow2"
grep -q "key-secret' is required" "$T/err" || fail "qemu-img: $(cat "$T/err")"
expect_status 1 "$VIMG" rebase $SEC -b "$T/base.luks" -F luks "$T/w.qcow2" \
    < /dev/null
[ "$(wc -l < "$T/err")" = 1 ] && grep -q "base.luks'.*encrypted.*-u" \
    "$T/err" || fail "vimg: $(cat "$T/err")"
"$VIMG" info --output=json "$T/w.qcow2" > "$T/i.json"
[ "$(json_get "$T/i.json" backing-filename)" = "$T/plain.qcow2" ] ||
    fail "a refused rebase changed the header"
# -u reads nothing: both rebase without a key.
cp "$T/w.qcow2" "$T/wq.qcow2"
qemu-img rebase -u -b "$T/base.luks" -F luks "$T/wq.qcow2"
expect_status 0 "$VIMG" rebase -u -b "$T/base.luks" -F luks "$T/w.qcow2"
cmp -s "$T/w.qcow2" "$T/wq.qcow2" || fail "rebase -u differs from qemu-img"

# Onto the encrypted file two levels down (top -> mid, sec1 -> base.luks).
"$VIMG" create -q -f qcow2 $SEC2 -o "$o,encrypt.key-secret=sec1" \
    -b "$T/base.luks" -F luks "$T/mid.qcow2"
mid="$(iopts qcow2 "$T/mid.qcow2" sec1),backing.key-secret=sec0"
qemu-io $SEC $SEC2 --image-opts "$mid" -c 'write -P 0x33 512k 1M' > /dev/null
qemu-img create -q -f qcow2 -b "$T/mid.qcow2" -F qcow2 "$T/top.qcow2"
top="driver=qcow2,file.filename=$T/top.qcow2"
top="$top,backing.encrypt.key-secret=sec1,backing.backing.key-secret=sec0"
qemu-img convert $SEC $SEC2 --image-opts -O raw "$top" "$T/before.raw"
expect_status 0 "$VIMG" rebase $SEC $SEC2 --image-opts -b "$T/base.luks" \
    -F luks "$top"
qemu-img convert $SEC --image-opts -O raw \
    "driver=qcow2,file.filename=$T/top.qcow2,backing.key-secret=sec0" \
    "$T/after.raw"
cmp -s "$T/before.raw" "$T/after.raw" || fail "rebase into the chain"

# On a terminal, vimg asks for the new backing file's passphrase.
if command -v script > /dev/null; then
    qemu-img create -q -f qcow2 -b "$T/plain.qcow2" -F qcow2 "$T/p.qcow2"
    qemu-io -c 'write -P 0x44 0 64k' "$T/p.qcow2" > /dev/null
    (sleep 1; printf '%s\n' "$PASS") | timeout 60 script -qec \
        "'$VIMG' rebase -b '$T/base.luks' -F luks '$T/p.qcow2'" /dev/null \
        > "$T/tty" 2>&1 || fail "prompt: $(cat "$T/tty")"
    grep -q "Password for .*base.luks" "$T/tty" || fail "$(cat "$T/tty")"
    qemu-io $SEC --image-opts \
        "driver=qcow2,file.filename=$T/p.qcow2,backing.key-secret=sec0" \
        -c 'read -P 0x44 0 64k' -c 'read -P 0 64k 1M' > "$T/io" ||
        fail "prompted rebase: $(cat "$T/io")"
fi
exit 0
