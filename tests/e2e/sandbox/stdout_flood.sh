#!/bin/sh
# stdout_flood.sh - escape suite: a task prints gigabytes to stdout: the provider keeps 1 MiB of it, stays small and responsive; the time limit ends the task.
. tests/e2e/lib.sh
. tests/e2e/sandbox/_escape.sh
need curl jq
escape_setup
cat >"$T/a.sh" <<'EOS'
yes 'a line of output that goes on and on' | head -c 4000000000
EOS
escape_run flood "$T/a.sh"
case "$STATE" in done | failed) ;; *) fail "task state '$STATE'" ;; esac
"$CU" logs "$JOB" 0 >"$T/flood.logs" 2>&1 || fail "logs failed"
size=$(wc -c <"$T/flood.logs")
say "kept $size bytes of the task's output"
[ "$size" -le 2200000 ] || fail "kept $size bytes of stdout (cap 1 MiB)"
du=$(du -sk "$T/p1" | cut -f1)
[ "$du" -le 65536 ] || fail "the provider's data dir grew to $du KiB"
escape_still_serving
