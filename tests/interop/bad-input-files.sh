#!/bin/sh
# A missing file, an unreadable file, a directory and an unknown format:
# every command fails with exit 1 (compare: 2) and one line
# "vimg: FILE: problem" on stderr, and nothing crashes.
. "$(dirname "$0")/functions.sh"
requires setpriv
one_line() { # one_line NAME: stderr is one "vimg: ..." line naming NAME
    [ "$(wc -l < "$T/err")" = 1 ] || fail "not one line: $(cat "$T/err")"
    grep -q "^vimg: .*$1" "$T/err" || fail "message does not name $1: $(cat "$T/err")"
}
missing=$T/missing.img
for cmd in "info" "map" "check" "measure" "resize -f raw" "convert -O raw"; do
    case $cmd in
        resize*) set -- $cmd "$missing" 1M ;;
        convert*) set -- $cmd "$missing" "$T/out.img" ;;
        *) set -- $cmd "$missing" ;;
    esac
    expect_status 1 "$VIMG" "$@"
    one_line missing.img
    grep -q 'No such file or directory' "$T/err" || fail "$cmd: $(cat "$T/err")"
done
[ ! -e "$T/out.img" ] || fail "failed convert left a target"
expect_status 2 "$VIMG" compare "$missing" "$missing"
one_line missing.img

# A file only root may read, opened as nobody.
secret=$T/secret.img
"$VIMG" create -q -f raw "$secret" 1M
chmod 0600 "$secret"
chmod 0755 "$T"
if [ "$(id -u)" = 0 ]; then
    expect_status 1 setpriv --reuid=65534 --regid=65534 --clear-groups "$VIMG" info "$secret"
    one_line secret.img
    grep -q 'Permission denied' "$T/err" || fail "unreadable: $(cat "$T/err")"
    expect_status 2 setpriv --reuid=65534 --regid=65534 --clear-groups "$VIMG" compare "$secret" "$secret"
    one_line secret.img
fi

# A directory given as an image, as source and as target.
mkdir "$T/dir"
expect_status 1 "$VIMG" info "$T/dir"
one_line dir
grep -q 'directory' "$T/err" || fail "directory: $(cat "$T/err")"
expect_status 1 "$VIMG" create -f raw "$T/dir" 1M
one_line dir
expect_status 1 "$VIMG" convert -f raw -O raw "$secret" "$T/dir"
one_line dir
[ -d "$T/dir" ] && [ -z "$(ls -A "$T/dir")" ] || fail "directory touched"

# A FIFO or a character device is refused at once, never waited on.
mkfifo "$T/fifo"
for cmd in "info $T/fifo" "convert -f raw -O raw $secret $T/fifo" \
           "convert -n -f raw -O raw $secret $T/fifo" "info /dev/zero"; do
    set +e
    # shellcheck disable=SC2086
    timeout 20 "$VIMG" $cmd > "$T/out" 2> "$T/err"
    rc=$?
    set -e
    [ $rc = 1 ] || fail "$cmd: exit $rc"
    grep -q "not a regular file or block device" "$T/err" || fail "$cmd: $(cat "$T/err")"
done

# Unknown formats, as source, target and for create.
expect_status 1 "$VIMG" info -f bogus "$secret"
one_line secret.img
grep -q "unknown file format 'bogus'" "$T/err" || fail "$(cat "$T/err")"
expect_status 1 "$VIMG" create -f bogus "$T/new.img" 1M
one_line new.img
expect_status 1 "$VIMG" convert -f raw -O bogus "$secret" "$T/new.img"
one_line "unknown file format 'bogus'"
[ ! -e "$T/new.img" ] || fail "unknown format left a file"
[ -z "$(ls -A "$T" | grep vimg)" ] || fail "temporary files left: $(ls -A "$T")"
