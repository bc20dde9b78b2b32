# vimg serve -s: writes go to a temporary overlay that no file names, the
# image is untouched and nothing is left in $TMPDIR; --fork returns once
# the server listens, with its pid file written, and SIGTERM ends it
# cleanly (socket and pid file removed).
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/nbd.inc"
requires qemu-img qemu-io
make_chain
before=$(qemu_sha "$T/top.qcow2" qcow2)
mkdir "$T/tmp"
TMPDIR=$T/tmp "$VIMG" serve -s --fork --pid-file="$T/pid" -k "$T/s.sock" \
    -f qcow2 "$T/top.qcow2"
[ -S "$T/s.sock" ] && [ -s "$T/pid" ] || fail "--fork returned before serving"
pid=$(cat "$T/pid")
[ -z "$(ls -A "$T/tmp")" ] || fail "the overlay has a name: $(ls "$T/tmp")"
qemu-io -f raw -c 'write -P 0x99 0 1M' -c 'read -P 0x99 0 1M' \
    "$(uri "$T/s.sock")" > "$T/io"
grep -q '^read 1048576/1048576' "$T/io" || fail "write not read back: $(cat "$T/io")"
# The served disk keeps the write for the next client (-s, not -r)...
kill "$pid"
i=0; while kill -0 "$pid" 2>/dev/null; do
    i=$((i+1)); [ $i -lt 100 ] || fail "server ignored SIGTERM"; sleep 0.05; done
[ ! -e "$T/s.sock" ] || fail "socket left behind"
[ ! -e "$T/pid" ] || fail "pid file left behind"
# ...but the image itself never saw it.
[ "$(qemu_sha "$T/top.qcow2" qcow2)" = "$before" ] || fail "image changed"
qemu-img check -q "$T/top.qcow2" || fail "image not clean"
[ -z "$(ls -A "$T/tmp")" ] || fail "left in TMPDIR: $(ls "$T/tmp")"
exit 0
