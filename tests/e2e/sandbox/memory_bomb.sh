#!/bin/sh
# memory_bomb.sh - escape suite: a task allocates without end: OOM-killed in its cgroup, reported 'memory limit' (without a cgroup RLIMIT_AS fails its allocations).
. tests/e2e/lib.sh
. tests/e2e/sandbox/_escape.sh
need curl jq
escape_setup
cat >"$T/a.sh" <<'EOS'
awk 'BEGIN { s = "x"; while (1) s = s s }'
sleep 60
EOS
escape_run membomb "$T/a.sh"
if [ "$CGROUP" = none ]; then
    escape_expect_failed '.'
else
    escape_expect_failed '^memory limit$'
fi
escape_still_serving
