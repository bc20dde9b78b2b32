# A cluster with cephx: --image-opts driver=rbd takes QEMU's key-secret (the
# cephx key from a secret object), server.N.host/server.N.port (Ceph's
# mon_host) and auth-client-required, with a Ceph configuration that names
# neither monitors nor keyring. The key never shows in a name or message;
# a wrong key is one line. qemu-img reads the same way.
. "$(dirname "$0")/functions.sh"
CEPH_AUTH=cephx
. "$(dirname "$0")/ceph.inc"
requires qemu-img
ceph_start

key=$(ceph auth get-key client.admin)
port=$(sed -n 's/^mon host = \[v2:127.0.0.1:\([0-9]*\)\]$/\1/p' "$CEPH_CONF")
[ -n "$key" ] && [ -n "$port" ] || fail "no key or port"
printf %s "$key" > "$T/key"
ceph-authtool --gen-print-key | tr -d '\n' > "$T/badkey"
# Monitors and key come only from the options.
grep -v '^mon host\|^keyring' "$CEPH_CONF" > "$T/bare.conf"
echo "keyring = $T/no-keyring" >> "$T/bare.conf"
# A refused key is retried until the mount timeout: keep it short there.
sed 's/^client mount timeout = .*/client mount timeout = 2/' "$T/bare.conf" > "$T/fast.conf"

qemu-img create -q -f raw "$T/src.raw" 8M
printf 'cephx data' | dd of="$T/src.raw" bs=1 seek=5000000 conv=notrunc 2>/dev/null
"$VIMG" convert -O raw "$T/src.raw" rbd:rbd/img

K="--object secret,id=k,file=$T/key,format=base64"
B="--object secret,id=k,file=$T/badkey,format=base64"
S="driver=rbd,pool=rbd,image=img,conf=$T/bare.conf,server.0.host=127.0.0.1"
S="$S,server.0.port=$port,key-secret=k"
"$VIMG" info $K --image-opts "$S,auth-client-required=cephx" > "$T/info"
grep -q '^virtual size: 8 MiB' "$T/info" || fail "info: $(cat "$T/info")"
! grep -qF "$key" "$T/info" || fail "the key shows in info"
grep -q 'mon_host=127.0.0.1\\:'"$port"':auth_client_required=cephx' "$T/info" ||
    fail "no mon_host in the name: $(cat "$T/info")"
"$VIMG" convert $K --image-opts "$S,auth-client-required.0=cephx" -O raw "$T/v.raw"
cmp "$T/src.raw" "$T/v.raw" || fail "vimg read other bytes"
qemu-img convert $K --image-opts "$S,auth-client-required.0=cephx" -O raw "$T/q.raw"
cmp "$T/src.raw" "$T/q.raw" || fail "qemu-img read other bytes"

# Two servers (the first one dead), as QEMU's list.
"$VIMG" compare -q $K --image-opts \
    "driver=rbd,pool=rbd,image=img,conf=$T/bare.conf,server.0.host=127.0.0.1,server.0.port=1,server.1.host=127.0.0.1,server.1.port=$port,key-secret=k" \
    "driver=raw,file.filename=$T/src.raw" || fail "two servers"

# A wrong key: one line, naming neither key.
expect_status 1 "$VIMG" info $B --image-opts "$(echo "$S" | sed 's/bare.conf/fast.conf/')"
[ "$(wc -l < "$T/err")" -eq 1 ] || fail "wrong key: $(cat "$T/err")"
grep -q 'cannot connect to the Ceph cluster with the cephx key of key-secret' "$T/err" ||
    fail "wrong key: $(cat "$T/err")"
! grep -qF -e "$key" -e "$(cat "$T/badkey")" "$T/err" "$T/out" ||
    fail "a key shows in the message"
# No key-secret: the bare configuration has no keyring.
expect_status 1 "$VIMG" info --image-opts "$(echo "${S%,key-secret=k}" | sed 's/bare.conf/fast.conf/')"
[ "$(wc -l < "$T/err")" -eq 1 ] || fail "no key: $(cat "$T/err")"
expect_status 1 "$VIMG" info $K --image-opts "$S,key-secret=nosuch"
grep -q "nosuch" "$T/err" || fail "unknown secret: $(cat "$T/err")"
expect_status 1 "$VIMG" info $K --image-opts "$S,auth-client-required=krb"
grep -q "'krb' is not cephx or none" "$T/err" || fail "$(cat "$T/err")"
expect_status 1 "$VIMG" info $K --image-opts "$S,server.1.port=6789"
grep -q "server.1 needs a host and a port" "$T/err" || fail "$(cat "$T/err")"
echo PASS
