#!/bin/sh
# fill_disk.sh - escape suite: a task writes to its work dir without end: killed at the provider's --disk share, reported 'disk limit'; the task dir is removed.
. tests/e2e/lib.sh
. tests/e2e/sandbox/_escape.sh
need curl jq
escape_setup --disk 16MiB
cat >"$T/a.sh" <<'EOS'
i=0
while :; do head -c 1048576 /dev/zero > /work/fill$i || break; i=$((i + 1)); done
sleep 60
EOS
escape_run filldisk "$T/a.sh" "{cores: 1, memory: 64MiB, time: 30s, output: 1GiB}"
escape_expect_failed '^disk limit$'
escape_still_serving
