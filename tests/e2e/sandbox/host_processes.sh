#!/bin/sh
# host_processes.sh - escape suite: a task lists host processes and signals the provider: it sees only its own pid namespace and the provider lives.
. tests/e2e/lib.sh
. tests/e2e/sandbox/_escape.sh
need curl jq
escape_setup
cat >"$T/a.sh" <<EOS
v=contained
n=\$(ls -d /proc/[0-9]* | wc -l)
[ "\$n" -le 5 ] || v="escaped: sees \$n processes"
ps -e -o args 2>/dev/null | grep -q '[c]umulus provide' && v="escaped: sees the provider"
kill -9 $PROV 2>/dev/null && v="escaped: signalled pid $PROV"
kill -9 -1 2>/dev/null
echo "\$v" > /out/verdict.txt
EOS
escape_run procs "$T/a.sh"
alive "$PROV" || fail "the provider was killed"
alive "$EX_PID" || fail "the exchange was killed"
escape_verdict
escape_still_serving
