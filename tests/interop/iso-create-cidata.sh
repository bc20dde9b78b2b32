#!/bin/sh
# vimg iso cidata: a NoCloud seed with volume id "cidata" whose files are
# named user-data, meta-data and network-config whatever the host files
# are called, in both the Rock Ridge and the Joliet tree.
. "$(dirname "$0")/functions.sh"
requires xorriso isoinfo
printf '#cloud-config\npassword: secret\nchpasswd: { expire: False }\n' > "$T/u.yaml"
printf 'instance-id: vimg-test\nlocal-hostname: vimg\n' > "$T/m.yaml"
printf 'version: 2\nethernets: {}\n' > "$T/n.yaml"

"$VIMG" iso cidata -o "$T/seed.iso" "$T/u.yaml" "$T/m.yaml" "$T/n.yaml"
isoinfo -d -i "$T/seed.iso" > "$T/d"
grep -qx 'Volume id: cidata' "$T/d" || { cat "$T/d"; fail "volume id"; }
grep -q 'Joliet' "$T/d" || fail "no Joliet"
grep -q 'Rock Ridge' "$T/d" || fail "no Rock Ridge"
for view in any norock; do
    rm -rf "$T/x" && mkdir "$T/x"
    xorriso -read_fs $view -osirrox on -indev "$T/seed.iso" -extract / "$T/x" \
        >/dev/null 2>&1 || fail "xorriso ($view)"
    [ "$(cd "$T/x" && ls | tr '\n' ' ')" = "meta-data network-config user-data " ] ||
        fail "names ($view): $(ls "$T/x")"
    cmp "$T/x/user-data" "$T/u.yaml" && cmp "$T/x/meta-data" "$T/m.yaml" &&
        cmp "$T/x/network-config" "$T/n.yaml" || fail "contents ($view)"
done

# Two files are enough; one is not.
"$VIMG" iso cidata -o "$T/seed2.iso" "$T/u.yaml" "$T/m.yaml"
isoinfo -R -f -i "$T/seed2.iso" | sort | tr '\n' ' ' > "$T/n"
[ "$(cat "$T/n")" = "/meta-data /user-data " ] || fail "two-file seed: $(cat "$T/n")"
expect_status 1 "$VIMG" iso cidata -o "$T/seed3.iso" "$T/u.yaml"
[ ! -e "$T/seed3.iso" ] || fail "output written on a usage error"
