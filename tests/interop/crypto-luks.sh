# The standalone luks format both ways: qemu-img's images (XTS and
# CBC-ESSIV) written by qemu-io read identically in vimg; vimg's read
# identically in qemu-img, and cryptsetup luksDump shows their key slot
# and accepts the passphrase; a file formatted by cryptsetup luksFormat
# --type luks1 reads in vimg as in qemu-img.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/crypto.inc"
requires qemu-img qemu-io python3

for o in iter-time=10 iter-time=10,cipher-alg=aes-128,cipher-mode=cbc,ivgen-alg=essiv,hash-alg=sha1; do
    qcrypt create -q -f luks $SEC -o "key-secret=sec0,$o" "$T/q.luks" 4M
    qemu-io $SEC --image-opts "$(iopts luks "$T/q.luks")" \
        -c 'write -P 0x5a 0 100k' -c 'write -P 0x11 3000k 4k' > /dev/null
    [ "$(vsha luks "$T/q.luks")" = "$(qsha luks "$T/q.luks")" ] ||
        fail "$o: vimg reads qemu-img's luks image differently"
    "$VIMG" info --output=json "$T/q.luks" > "$T/v.json"
    qemu-img info --output=json "$T/q.luks" > "$T/q.json"
    python3 - "$T/v.json" "$T/q.json" <<'PY' || fail "$o: info differs"
import json, sys
v, q = (json.load(open(p)) for p in sys.argv[1:])
for k in ("format", "virtual-size", "encrypted", "format-specific"):
    assert v[k] == q[k], (k, v[k], q[k])
PY

    expect_status 0 "$VIMG" convert $SEC -O luks -o "key-secret=sec0,$o" \
        --image-opts "$(iopts luks "$T/q.luks")" "$T/v.luks"
    [ "$(qsha luks "$T/v.luks")" = "$(qsha luks "$T/q.luks")" ] ||
        fail "$o: qemu-img reads vimg's luks image differently"
    qemu-img compare $SEC --image-opts "$(iopts luks "$T/v.luks")" \
        "$(iopts luks "$T/q.luks")" > /dev/null || fail "$o: compare"
done

if command -v cryptsetup > /dev/null; then
    cryptsetup luksDump "$T/v.luks" > "$T/dump" || fail "luksDump refused"
    grep -q 'Key Slot 0: ENABLED' "$T/dump" || fail "luksDump: $(cat "$T/dump")"
    grep -q 'Cipher mode:.*cbc-essiv:sha256' "$T/dump" || fail "luksDump mode"
    printf %s "$PASS" | cryptsetup open --test-passphrase --key-file=- \
        "$T/v.luks" || fail "cryptsetup rejects the passphrase"
    truncate -s 3M "$T/cs.img"
    printf %s "$PASS" | cryptsetup luksFormat -q --type luks1 \
        --pbkdf-force-iterations 1000 --key-file=- "$T/cs.img" ||
        fail "cryptsetup luksFormat"
    [ "$(vsha luks "$T/cs.img")" = "$(qsha luks "$T/cs.img")" ] ||
        fail "vimg reads cryptsetup's image differently from qemu-img"
else
    echo "cryptsetup not installed: luksDump checks skipped"
fi
exit 0
