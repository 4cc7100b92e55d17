#!/usr/bin/env bash
# `meson install --destdir` of build directory $1: the expected files, both man pages
# render without a warning, and the unit passes `systemd-analyze verify`.
set -euo pipefail
build=$1
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
meson install -C "$build" --destdir "$dest" --no-rebuild --quiet >/dev/null
prefix=$(meson introspect "$build" --buildoptions |
    python3 -c 'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"]=="prefix"))')
root=$dest$prefix
expected=(bin/fulcrum lib/systemd/system/fulcrum.service share/man/man1/fulcrum.1
    share/man/man5/fulcrum.toml.5 share/doc/fulcrum/LICENSE share/doc/fulcrum/fulcrum.toml)
status=0
for file in "${expected[@]}"; do
    [[ -f $root/$file ]] || { echo "not installed: $prefix/$file"; status=1; }
done
((status == 0)) || exit 1
for page in share/man/man1/fulcrum.1 share/man/man5/fulcrum.toml.5; do
    warnings=$(MANWIDTH=80 man --warnings -l "$root/$page" 2>&1 >/dev/null)
    [[ -z $warnings ]] || { echo "$page: $warnings"; status=1; }
    MANWIDTH=80 man -l "$root/$page" | grep -q . || { echo "$page renders empty"; status=1; }
done
# The unit as installed, its binary where the destdir put it (verify checks it exists).
sed "s|^ExecStart=$prefix/bin/fulcrum|ExecStart=$root/bin/fulcrum|" \
    "$root/lib/systemd/system/fulcrum.service" >"$dest/fulcrum.service"
systemd-analyze verify --man=no "$dest/fulcrum.service" || status=1
exit $status
