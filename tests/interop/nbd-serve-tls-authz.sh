# vimg serve --tls-authz=ID with --object authz-simple,id=ID,identity=NAME
# (qemu-nbd's syntax): only the client whose verified certificate has
# that distinguished name, or whose PSK username is NAME, gets through the
# handshake; others are refused. qemu-nbd, given the same objects, admits
# and refuses the same X.509 clients (so the DN is written as QEMU writes
# it).
# Unsupported authz objects and unusable combinations are one line and
# exit 1.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/nbd.inc"
requires qemu-img qemu-nbd nbdinfo openssl
qemu-img create -q -f qcow2 "$T/d.qcow2" 1M

# A CA, a server certificate, and two clients with several-part names.
d=$T/pki
mkdir -p "$d" "$T/alice" "$T/bob"
ossl() { openssl "$@" 2>/dev/null; }
key() { ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }
key "$d/ca-key.pem"
ossl req -x509 -key "$d/ca-key.pem" -out "$d/ca-cert.pem" -days 2 \
    -subj "/CN=vimg test CA"
cert() {   # cert DIR NAME SUBJECT USAGE
    key "$1/$2-key.pem"
    ossl req -new -key "$1/$2-key.pem" -out "$T/$2.csr" -subj "$3"
    printf 'subjectAltName=DNS:localhost\nextendedKeyUsage=%s\n' "$4" \
        > "$T/$2.ext"
    ossl x509 -req -in "$T/$2.csr" -CA "$d/ca-cert.pem" \
        -CAkey "$d/ca-key.pem" -CAcreateserial -out "$1/$2-cert.pem" \
        -days 2 -extfile "$T/$2.ext"
}
cert "$d" server /CN=localhost serverAuth
cert "$T/alice" client "/C=GB/O=Example Org/CN=alice" clientAuth
cert "$T/bob" client "/C=GB/O=Example Org/CN=bob" clientAuth
cp "$d/ca-cert.pem" "$T/alice/"
cp "$d/ca-cert.pem" "$T/bob/"
[ -s "$T/bob/client-cert.pem" ] || fail "openssl made no certificates"

x509="tls-creds-x509,id=tls0,dir=$d,endpoint=server,verify-peer=on"
authz="authz-simple,id=auth0,identity=C=GB,,O=Example Org,,CN=alice"
vserve "$T/v.sock" -t -r -f qcow2 --object "$x509" --object "$authz" \
    --tls-creds=tls0 --tls-authz=auth0 "$T/d.qcow2"
qserve "$T/q.sock" -t -r -f qcow2 --object "$x509" --object "$authz" \
    --tls-creds=tls0 --tls-authz=auth0 "$T/d.qcow2"
for s in q v; do
    nbdinfo --size "nbds+unix:///?socket=$T/$s.sock&tls-certificates=$T/alice&tls-hostname=localhost" \
        > "$T/size" || fail "$s: alice refused"
    [ "$(cat "$T/size")" = 1048576 ] || fail "$s: size $(cat "$T/size")"
    expect_status 1 nbdinfo --size "nbds+unix:///?socket=$T/$s.sock&tls-certificates=$T/bob&tls-hostname=localhost"
    expect_status 1 nbdinfo --size "$(uri "$T/$s.sock")"
done
stop_servers

# The DIR form of --tls-creds asks clients for certificates when
# --tls-authz needs one; bob's copy is refused, alice's goes through.
vserve "$T/d.sock" -t -r -f qcow2 --object "$authz" --tls-creds="$d" \
    --tls-authz=auth0 "$T/d.qcow2"
nbdcopy "nbds+unix:///?socket=$T/d.sock&tls-certificates=$T/alice&tls-hostname=localhost" \
    "$T/copy.raw" || fail "DIR form: alice refused"
expect_status 1 nbdinfo --size "nbds+unix:///?socket=$T/d.sock&tls-certificates=$T/bob&tls-hostname=localhost"
stop_servers

# PSK: the username is the identity. A deliberate difference: qemu-nbd
# 7.2 does not check PSK usernames against the authz object and admits
# bob too; vimg admits only the client it was told to.
mkdir "$T/psk"
printf 'alice:%s\nbob:%s\n' "$(openssl rand -hex 32)" "$(openssl rand -hex 32)" \
    > "$T/psk/keys.psk"
grep alice "$T/psk/keys.psk" > "$T/alice.psk"
grep bob "$T/psk/keys.psk" > "$T/bob.psk"
vserve "$T/v.sock" -t -r -f qcow2 \
    --object "tls-creds-psk,id=tls1,dir=$T/psk,endpoint=server" \
    --object authz-simple,id=a1,identity=alice --tls-creds=tls1 \
    --tls-authz=a1 "$T/d.qcow2"
nbdinfo --size "nbds+unix://alice@/?socket=$T/v.sock&tls-psk-file=$T/alice.psk" \
    >/dev/null || fail "PSK alice refused"
expect_status 1 nbdinfo --size "nbds+unix://bob@/?socket=$T/v.sock&tls-psk-file=$T/bob.psk"
stop_servers

# Refused at start, with one line.
refused() {   # refused MESSAGE ARGS...
    m=$1; shift
    expect_status 1 "$VIMG" serve -k "$T/r.sock" -r -f qcow2 "$@" "$T/d.qcow2"
    [ "$(cat "$T/err")" = "vimg: $m" ] || fail "got '$(cat "$T/err")', want '$m'"
}
refused "--object: authz-list is not supported (only authz-simple)" \
    --object authz-list,id=a,policy=deny --tls-creds="$d" --tls-authz=a
refused "--object: authz-pam is not supported (only authz-simple)" \
    --object authz-pam,id=a,service=x --tls-creds="$d" --tls-authz=a
refused "--tls-authz is not permitted without --tls-creds" \
    --object "$authz" --tls-authz=auth0
refused "--tls-authz: no --object authz-simple,id=other" \
    --object "$authz" --tls-creds="$d" --tls-authz=other
refused "--tls-authz needs client certificates checked (verify-peer=on in the tls-creds-x509 object)" \
    --object "tls-creds-x509,id=t,dir=$d,verify-peer=off" --object "$authz" \
    --tls-creds=t --tls-authz=auth0
exit 0
