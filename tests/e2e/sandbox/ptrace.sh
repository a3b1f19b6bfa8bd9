#!/bin/sh
# ptrace.sh - escape suite: a task calls ptrace (attach to pid 1, traceme) and strace: refused by the seccomp filter.
. tests/e2e/lib.sh
. tests/e2e/sandbox/_escape.sh
need curl jq
escape_build_attack
escape_setup
cat >"$T/a.sh" <<'EOS'
if /in/attack ptrace > /out/attack.txt 2>&1; then v=contained; else v="escaped: $(cat /out/attack.txt)"; fi
if command -v strace > /dev/null && strace -o /dev/null true 2>/dev/null; then v="escaped: strace works"; fi
echo "$v" > /out/verdict.txt
EOS
escape_run ptrace "$T/a.sh"
escape_verdict
escape_still_serving
