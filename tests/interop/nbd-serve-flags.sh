# nbdinfo --json shows the same export flags for vimg serve as for
# qemu-nbd with the same options: writable, read-only, several clients
# (multi-conn), an export name and a description.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/nbd.inc"
requires qemu-img qemu-nbd nbdinfo python3
qemu-img create -q -f qcow2 "$T/d.qcow2" 1G
keys='is_read_only can_cache can_df can_fast_zero can_flush can_fua can_multi_conn can_trim can_zero block_size_maximum export-size export-name description'
flags() {
    nbdinfo --json "$1" | python3 -c '
import json, sys
e = json.load(sys.stdin)["exports"][0]
print(" ".join("%s=%s" % (k, e.get(k)) for k in sys.argv[1:]))' $keys
}
n=0
for args in "" "-r" "-e 4" "-r -e 2" "-x disk -D hello"; do
    n=$((n + 1))
    vserve "$T/v$n.sock" -t $args -f qcow2 "$T/d.qcow2"
    name=$(echo "$args" | sed -n 's/.*-x \([a-z]*\).*/\1/p')
    v=$(flags "$(uri "$T/v$n.sock" "$name")")
    stop_servers
    qserve "$T/q$n.sock" -t $args -f qcow2 "$T/d.qcow2"
    q=$(flags "$(uri "$T/q$n.sock" "$name")")
    stop_servers
    [ "$v" = "$q" ] || fail "serve $args: vimg [$v] qemu-nbd [$q]"
done
# Read-only, multi-conn and structured replies as vimg reports them.
vserve "$T/x.sock" -t -r -e 3 -f qcow2 "$T/d.qcow2"
nbdinfo --json "$(uri "$T/x.sock")" > "$T/x.json"
grep -q '"is_read_only": true' "$T/x.json" || fail "not read-only"
grep -q '"can_multi_conn": true' "$T/x.json" || fail "no multi-conn"
grep -q '"structured": true' "$T/x.json" || fail "no structured replies"
# An unknown export name is refused (NBD_REP_ERR_UNKNOWN).
expect_status 1 nbdinfo "$(uri "$T/x.sock" nosuch)"
grep -qi 'unknown\|export' "$T/err" || fail "unexpected error: $(cat "$T/err")"
exit 0
