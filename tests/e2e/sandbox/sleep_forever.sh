#!/bin/sh
# sleep_forever.sh - escape suite: a task sleeps forever: killed at its time limit, reported 'time limit 5s exceeded'.
. tests/e2e/lib.sh
. tests/e2e/sandbox/_escape.sh
need curl jq
escape_setup
cat >"$T/a.sh" <<'EOS'
trap '' TERM HUP INT
while :; do sleep 1000; done
EOS
escape_run sleeper "$T/a.sh"
escape_expect_failed 'time limit 5s exceeded'
escape_still_serving
