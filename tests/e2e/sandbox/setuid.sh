#!/bin/sh
# setuid.sh - escape suite: a task runs setuid-root binaries (su, mount) and calls setuid(0): no_new_privs and the user namespace keep it uid 65534.
. tests/e2e/lib.sh
. tests/e2e/sandbox/_escape.sh
need curl jq
escape_build_attack
escape_setup
cat >"$T/a.sh" <<'EOS'
v=contained
/in/attack setuid > /out/attack.txt 2>&1 || v="escaped: $(cat /out/attack.txt)"
for b in /usr/bin/su /usr/bin/sudo; do
    [ -x "$b" ] || continue
    out=$("$b" root -c 'id -u' </dev/null 2>/dev/null)
    case "$out" in *0*) [ "$(printf '%s' "$out" | tr -d '\n ')" = 0 ] && v="escaped: $b gave root" ;; esac
done
grep -q '^NoNewPrivs:[[:space:]]*1' /proc/self/status || v="escaped: no_new_privs is off"
[ "$(id -u)" = 65534 ] || v="escaped: uid $(id -u)"
echo "$v" > /out/verdict.txt
EOS
escape_run setuid "$T/a.sh" "{cores: 1, memory: 64MiB, time: 30s, output: 1MiB}"
escape_verdict
escape_still_serving
