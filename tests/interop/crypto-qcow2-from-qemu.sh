# qcow2 with encrypt.format=luks made by qemu-img create and written by
# qemu-io (whole and partial clusters, sub-cluster writes, zeroes, a
# compressed cluster, which QEMU stores unencrypted) reads identically in
# vimg, for XTS-plain64 (QEMU's default) and AES-128-CBC-ESSIV; vimg info
# shows the LUKS fields qemu-img shows, without the key.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/crypto.inc"
requires qemu-img qemu-io python3

for variant in default cbc-essiv; do
    o=encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10
    [ $variant = cbc-essiv ] && o="$o,encrypt.cipher-alg=aes-128,encrypt.cipher-mode=cbc,encrypt.ivgen-alg=essiv"
    f="$T/$variant.qcow2"
    qcrypt create -q -f qcow2 $SEC -o "$o,cluster_size=4k" "$f" 8M
    qemu-io $SEC --image-opts "$(iopts qcow2 "$f")" \
        -c 'write -P 0x5a 0 100k' -c 'write -P 0x11 300k 4k' \
        -c 'write -P 0x22 1000k 512' -c 'write -z 20k 8k' \
        -c 'write -c -P 0x33 2M 4k' -c 'write -P 0x44 7M 1M' > /dev/null
    [ "$(vsha qcow2 "$f")" = "$(qsha qcow2 "$f")" ] ||
        fail "$variant: vimg reads other bytes than qemu-img"
    # Metadata only: no key needed, the same fields as qemu-img.
    "$VIMG" info --output=json "$f" > "$T/v.json"
    qemu-img info --output=json "$f" > "$T/q.json"
    python3 - "$T/v.json" "$T/q.json" <<'PY' || fail "$variant: info differs"
import json, sys
v, q = (json.load(open(p)) for p in sys.argv[1:])
assert v["encrypted"] is True
ve = v["format-specific"]["data"]["encrypt"]
qe = q["format-specific"]["data"]["encrypt"]
assert ve == qe, (ve, qe)
assert list(ve) == list(qe), (list(ve), list(qe))
PY
    "$VIMG" info "$f" | sed -n '/encrypt:/,/corrupt:/p' > "$T/v.txt"
    qemu-img info "$f" | sed -n '/encrypt:/,/corrupt:/p' > "$T/q.txt"
    cmp -s "$T/v.txt" "$T/q.txt" || fail "$variant: human info differs"
done
exit 0
