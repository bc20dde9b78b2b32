# commit into an encrypted base, with qemu-img commit's syntax: the base's
# key as backing.key-secret / backing.encrypt.key-secret in --image-opts
# and its secret in --object. A luks base under a plain qcow2 overlay, a
# qcow2+LUKS base under an overlay encrypted with another key, and -b into
# the encrypted base two levels down: qemu-io reads the committed bytes in
# the base with its key, qemu-img check finds the base clean, and the
# overlay reads the same as before. The encrypted images are made by vimg
# create (qemu-img spends seconds timing PBKDF2 for each; other crypto
# tests read its images) and written by qemu-io.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/crypto.inc"
requires qemu-img qemu-io

# commit_check TOP-OPTS BASE-OPTS [ARGS...]: vimg commit ARGS TOP-OPTS; the
# base then reads what TOP read before, and TOP still reads the same.
commit_check() {
    qemu-img convert $SEC $SEC2 --image-opts -O raw "$1" "$T/before.raw"
    expect_status 0 "$VIMG" commit $SEC $SEC2 --image-opts ${3-} "$1"
    grep -q 'Image committed' "$T/out" || fail "commit $1: $(cat "$T/out")"
    qemu-img convert $SEC $SEC2 --image-opts -O raw "$2" "$T/base.raw"
    cmp -s "$T/before.raw" "$T/base.raw" || fail "base differs: $2"
    qemu-img convert $SEC $SEC2 --image-opts -O raw "$1" "$T/after.raw"
    cmp -s "$T/before.raw" "$T/after.raw" || fail "top changed: $1"
}

# A luks base (sec0) under a plain qcow2 overlay.
"$VIMG" create -q -f luks $SEC -o key-secret=sec0,iter-time=10 "$T/a.luks" 4M
qemu-io $SEC --image-opts "$(iopts luks "$T/a.luks")" \
    -c 'write -P 0x11 0 2M' > /dev/null
qemu-img create -q -f qcow2 -b "$T/a.luks" -F luks "$T/a-top.qcow2"
top="driver=qcow2,file.filename=$T/a-top.qcow2,backing.key-secret=sec0"
qemu-io $SEC --image-opts "$top" -c 'write -P 0x22 1M 64k' \
    -c 'write -z 1536k 64k' > /dev/null
commit_check "$top" "$(iopts luks "$T/a.luks")"
qemu-io $SEC --image-opts "$(iopts luks "$T/a.luks")" \
    -c 'read -P 0x22 1M 64k' -c 'read -P 0 1536k 64k' > "$T/io" ||
    fail "qemu-io reads the luks base: $(cat "$T/io")"

# A qcow2+LUKS base (sec0) under a qcow2+LUKS overlay (sec1).
o=encrypt.format=luks,encrypt.iter-time=10
"$VIMG" create -q -f qcow2 $SEC -o "$o,encrypt.key-secret=sec0" \
    "$T/b.qcow2" 4M
qemu-io $SEC --image-opts "$(iopts qcow2 "$T/b.qcow2")" \
    -c 'write -P 0x33 0 3M' > /dev/null
"$VIMG" create -q -f qcow2 $SEC2 -b "$T/b.qcow2" -F qcow2 \
    -o "$o,encrypt.key-secret=sec1" "$T/b-top.qcow2"
top="$(iopts qcow2 "$T/b-top.qcow2" sec1),backing.encrypt.key-secret=sec0"
qemu-io $SEC $SEC2 --image-opts "$top" -c 'write -P 0x44 512k 1M' > /dev/null
commit_check "$top" "$(iopts qcow2 "$T/b.qcow2")"
qemu-io $SEC --image-opts "$(iopts qcow2 "$T/b.qcow2")" \
    -c 'read -P 0x44 512k 1M' > "$T/io" || fail "qemu-io: $(cat "$T/io")"
qemu-img check -q $SEC --image-opts "$(iopts qcow2 "$T/b.qcow2")" ||
    fail "qemu-img check of the committed qcow2+LUKS base"

# -b: into the luks base under an encrypted middle image (sec1), from a
# plain top; the keys of both lower images as qemu-img nests them.
"$VIMG" create -q -f qcow2 $SEC2 -b "$T/a.luks" -F luks \
    -o "$o,encrypt.key-secret=sec1" "$T/c-mid.qcow2"
qemu-img create -q -f qcow2 -b "$T/c-mid.qcow2" -F qcow2 "$T/c-top.qcow2"
top="driver=qcow2,file.filename=$T/c-top.qcow2"
top="$top,backing.encrypt.key-secret=sec1,backing.backing.key-secret=sec0"
qemu-io $SEC $SEC2 --image-opts "$top" -c 'write -P 0x55 2M 64k' > /dev/null
qemu-io $SEC $SEC2 --image-opts "$(iopts qcow2 "$T/c-mid.qcow2" sec1),backing.key-secret=sec0" \
    -c 'write -P 0x66 3M 64k' > /dev/null
commit_check "$top" "$(iopts luks "$T/a.luks")" "-b $T/a.luks"
qemu-io $SEC --image-opts "$(iopts luks "$T/a.luks")" \
    -c 'read -P 0x55 2M 64k' -c 'read -P 0x66 3M 64k' > "$T/io" ||
    fail "qemu-io reads the -b base: $(cat "$T/io")"
exit 0
