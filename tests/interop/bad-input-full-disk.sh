#!/bin/sh
# Output on a full file system (an 8 MiB tmpfs) and past RLIMIT_FSIZE:
# create and convert fail with one line "vimg: FILE: problem" and exit 1,
# leave no partial or temporary file, and leave an existing target as it
# was. Skips when tmpfs cannot be mounted here.
. "$(dirname "$0")/functions.sh"
src=$T/src.img
dd if=/dev/urandom of="$src" bs=1M count=16 2>/dev/null

check_failure() { # check_failure NAME WHAT: one line naming NAME and WHAT
    [ "$(wc -l < "$T/err")" = 1 ] || fail "not one line: $(cat "$T/err")"
    grep -q "^vimg: [^ ]*$1: .*$2" "$T/err" || fail "message: $(cat "$T/err")"
}
no_leftovers() { # no_leftovers DIR: only the files the test put there
    left=$(ls -A "$1" | grep -v -e '^keep.img$' -e '^src.img$' || true)
    [ -z "$left" ] || fail "left behind in $1: $left"
}

# RLIMIT_FSIZE: vimg ignores SIGXFSZ, so writes fail with EFBIG.
d=$T/limit
mkdir "$d"
echo "old contents" > "$d/keep.img"
keep=$(sha256sum < "$d/keep.img")
for cmd in "create -f raw -o preallocation=full $d/new.img 16M" \
           "create -f raw -o preallocation=falloc $d/new.img 16M" \
           "convert -f raw -O raw $src $d/new.img" \
           "convert -S 0 -f raw -O raw $src $d/keep.img" \
           "create -f raw -o preallocation=full $d/keep.img 16M"; do
    set +e
    # shellcheck disable=SC2086
    (ulimit -f 4096; exec "$VIMG" $cmd) > "$T/out" 2> "$T/err"
    rc=$?
    set -e
    [ $rc = 1 ] || fail "$cmd: exit $rc: $(cat "$T/err")"
    case $cmd in *keep.img*) name=keep.img ;; *) name=new.img ;; esac
    check_failure "$name" 'File too large'
    no_leftovers "$d"
    [ "$(sha256sum < "$d/keep.img")" = "$keep" ] || fail "$cmd changed keep.img"
done

# A full file system.
m=$T/mnt
mkdir "$m"
mount -t tmpfs -o size=8M vimgtest "$m" 2>/dev/null || { echo "SKIP: cannot mount tmpfs"; exit 77; }
unmount() { umount "$m"; }
on_exit unmount
echo "old contents" > "$m/keep.img"
keep=$(sha256sum < "$m/keep.img")
for cmd in "create -f raw -o preallocation=full $m/new.img 16M" \
           "create -f raw -o preallocation=falloc $m/new.img 16M" \
           "convert -f raw -O raw $src $m/new.img" \
           "convert -W -m 4 -f raw -O raw $src $m/keep.img" \
           "create -f raw -o preallocation=full $m/keep.img 16M"; do
    # shellcheck disable=SC2086
    expect_status 1 "$VIMG" $cmd
    case $cmd in *keep.img*) name=keep.img ;; *) name=new.img ;; esac
    check_failure "$name" 'No space left on device'
    no_leftovers "$m"
    [ "$(sha256sum < "$m/keep.img")" = "$keep" ] || fail "$cmd changed keep.img"
done
# The failed attempts gave all the space back: a file that fits works.
"$VIMG" create -q -f raw -o preallocation=full "$m/fits.img" 6M
