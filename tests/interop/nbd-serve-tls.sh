# TLS: vimg serve with pre-shared keys (--tls-psk) and with X.509
# certificates (--tls-creds DIR, and qemu-nbd's --object
# tls-creds-x509,...,verify-peer=on with a client certificate); nbdinfo
# and nbdcopy connect over nbds+unix:// and nbds://, a client without TLS
# or without a certificate is refused.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/nbd.inc"
requires qemu-img qemu-io nbdinfo nbdcopy openssl
make_chain
sha=$(qemu_sha "$T/top.qcow2" qcow2)

printf 'alice:%s\n' "$(openssl rand -hex 32)" > "$T/keys.psk"
vserve "$T/p.sock" -t -r --tls-psk="$T/keys.psk" -f qcow2 "$T/top.qcow2"
psk="nbds+unix://alice@/?socket=$T/p.sock&tls-psk-file=$T/keys.psk"
nbdinfo --json "$psk" > "$T/info"
grep -q '"TLS": true' "$T/info" || fail "no TLS: $(cat "$T/info")"
nbdcopy "$psk" "$T/psk.raw"
[ "$(sha256sum < "$T/psk.raw" | cut -d' ' -f1)" = "$sha" ] || fail "PSK copy"
expect_status 1 nbdinfo "$(uri "$T/p.sock")"        # no TLS: refused
printf 'alice:%s\n' "$(openssl rand -hex 32)" > "$T/wrong.psk"
expect_status 1 nbdinfo "nbds+unix://alice@/?socket=$T/p.sock&tls-psk-file=$T/wrong.psk"

# X.509: a CA, a server certificate for localhost, a client certificate.
d=$T/pki
mkdir -p "$d/client"
ossl() { openssl "$@" 2>/dev/null; }
ossl req -x509 -newkey rsa:2048 -nodes -keyout "$d/ca-key.pem" \
    -out "$d/ca-cert.pem" -days 2 -subj "/CN=vimg test CA"
cert() {   # cert NAME CN USAGE DIR
    ossl req -newkey rsa:2048 -nodes -keyout "$4/$1-key.pem" \
        -out "$T/$1.csr" -subj "/CN=$2"
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=%s\n' \
        "$3" > "$T/$1.ext"
    ossl x509 -req -in "$T/$1.csr" -CA "$d/ca-cert.pem" -CAkey "$d/ca-key.pem" \
        -CAcreateserial -out "$4/$1-cert.pem" -days 2 -extfile "$T/$1.ext"
}
cert server localhost serverAuth "$d"
cert client client clientAuth "$d/client"
cp "$d/ca-cert.pem" "$d/client/"
mkdir "$T/nocert" && cp "$d/ca-cert.pem" "$T/nocert/"
vserve "$T/x.sock" -t -r --tls-creds="$d" -f qcow2 "$T/top.qcow2"
nbdcopy "nbds+unix:///?socket=$T/x.sock&tls-certificates=$T/nocert" "$T/x509.raw"
[ "$(sha256sum < "$T/x509.raw" | cut -d' ' -f1)" = "$sha" ] || fail "X.509 copy"
# Over TCP (-p, -b): the pid file appears once the server listens.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$VIMG" serve -t -r -b 127.0.0.1 -p "$port" --pid-file="$T/tcp.pid" \
    --tls-creds="$d" -f qcow2 "$T/top.qcow2" & servers="$servers $!"
i=0; until [ -s "$T/tcp.pid" ]; do
    i=$((i+1)); [ $i -lt 100 ] || fail "no TCP server"; sleep 0.05; done
nbdinfo --size "nbds://localhost:$port/?tls-certificates=$T/nocert" > "$T/size"
[ "$(cat "$T/size")" = 67108864 ] || fail "TCP size $(cat "$T/size")"
stop_servers
vserve "$T/o.sock" -t -r -f qcow2 \
    --object "tls-creds-x509,id=tls0,dir=$d,endpoint=server,verify-peer=on" \
    --tls-creds=tls0 "$T/top.qcow2"
nbdinfo --size "nbds+unix:///?socket=$T/o.sock&tls-certificates=$d/client&tls-hostname=localhost" > "$T/size" ||
    fail "client certificate refused"
expect_status 1 nbdinfo --size "nbds+unix:///?socket=$T/o.sock&tls-certificates=$T/nocert&tls-hostname=localhost"
exit 0
