#!/bin/sh
# fork_bomb.sh - escape suite: a fork bomb: stopped by the process limit (cgroup pids), reported 'process limit'; without a cgroup, RLIMIT_NPROC and the time limit end it.
. tests/e2e/lib.sh
. tests/e2e/sandbox/_escape.sh
need curl jq
escape_setup
cat >"$T/a.sh" <<'EOS'
bomb() { bomb | bomb & }
bomb
sleep 60
EOS
escape_run forkbomb "$T/a.sh"
if [ "$CGROUP" = none ]; then
    escape_expect_failed 'limit'
else
    escape_expect_failed '^process limit$'
fi
escape_still_serving
