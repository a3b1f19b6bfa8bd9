#!/bin/sh
# read_keystore.sh - escape suite: a task reads the provider's keystore, state database and data dir (absolute host paths, /proc/1/root, the parent's /proc): none readable.
. tests/e2e/lib.sh
. tests/e2e/sandbox/_escape.sh
need curl jq
escape_setup
cat >"$T/a.sh" <<EOS
v=contained
for f in "$T/p1/identity.key" "$T/p1/state.db" "$T/p1/provider.json" /proc/1/root$T/p1/identity.key /proc/1/environ; do
    if cat "\$f" 2>/dev/null | grep -q .; then v="escaped: read \$f"; fi
done
if ls "$T/p1" >/dev/null 2>&1; then v="escaped: listed $T/p1"; fi
if grep -rl '"id"' / --include=identity.key 2>/dev/null | grep -q .; then v="escaped: found a keystore"; fi
echo "\$v" > /out/verdict.txt
EOS
escape_run keystore "$T/a.sh" "{cores: 1, memory: 64MiB, time: 30s, output: 1MiB}"
escape_verdict
escape_still_serving
