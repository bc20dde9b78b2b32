#!/bin/sh
# Regenerate fuzz/corpus/luks/: the first 4 KiB (header and key slot table)
# of LUKS1 images made by vimg (XTS-plain64, CBC-ESSIV), qemu-img and
# cryptsetup luksFormat --type luks1, each a few KiB.
# Usage: fuzz/make-luks-corpus.sh VIMG [OUTDIR]
#   (needs qemu-img; cryptsetup when installed)
set -eu
vimg=$1
out=${2:-$(dirname "$0")/corpus/luks}
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
mkdir -p "$out"
sec="--object secret,id=s,data=fuzz"
"$vimg" create -q -f luks $sec -o key-secret=s,iter-time=1 "$t/a" 1M
"$vimg" create -q -f luks $sec -o key-secret=s,iter-time=1,cipher-alg=aes-128,cipher-mode=cbc,ivgen-alg=essiv,hash-alg=sha1 "$t/b" 1M
for i in 1 2 3 4 5 6 7 8; do
    qemu-img create -q -f luks $sec -o key-secret=s,iter-time=1,cipher-mode=cbc,ivgen-alg=plain "$t/c" 1M 2>/dev/null && break
done
head -c 300 "$t/a" > "$out/truncated"
for f in a b c; do
    head -c 4096 "$t/$f" > "$out/$f-header"
done
if command -v cryptsetup > /dev/null; then
    truncate -s 3M "$t/d"
    printf fuzz | cryptsetup luksFormat -q --type luks1 \
        --pbkdf-force-iterations 1000 --key-file=- "$t/d"
    head -c 4096 "$t/d" > "$out/cryptsetup-header"
fi
