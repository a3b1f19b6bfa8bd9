#!/bin/sh
# hello.sh - the README's hello job: 4 tasks, one input file; results, status,
# logs; a second submission of the same inputs skips the upload.
. tests/e2e/lib.sh
need curl jq

start_exchange 0 3s
start_provider p1 2
make_key

submit examples/hello/job.yaml
"$CU" wait "$JOB" 2>"$T/wait.err" || fail "wait exited non-zero: $(tail -5 "$T/wait.err")"

"$CU" results "$JOB" --out "$T/res" >"$T/results.log" 2>&1 ||
    fail "results failed: $(cat "$T/results.log")"
data=$(cat examples/hello/data.txt)
for i in 0 1 2 3; do
    f="$T/res/$i/hello.txt"
    [ -f "$f" ] || fail "missing $f"
    expect=$(printf 'task %s of 4\n%s' "$i" "$data")
    [ "$(cat "$f")" = "$expect" ] || fail "task $i wrote '$(cat "$f")', expected '$expect'"
done

job_json "$JOB" >"$T/status.json" || fail "status --json failed"
jq -e . "$T/status.json" >/dev/null || fail "status --json is not JSON"
grep -q '"done"' "$T/status.json" || fail "status --json does not say done"
jq -e '.state == "done" and .counts.done == 4 and (.tasks | length) == 4' "$T/status.json" \
    >/dev/null || fail "job not done with 4 tasks: $(cat "$T/status.json")"
"$CU" status "$JOB" >"$T/status.txt" 2>&1 || fail "status failed: $(cat "$T/status.txt")"
"$CU" status >"$T/list.txt" 2>&1 || fail "status (list) failed"
grep -q "$JOB" "$T/list.txt" || fail "status does not list $JOB"

"$CU" logs "$JOB" 0 >"$T/logs.txt" 2>&1 || fail "logs failed: $(cat "$T/logs.txt")"

# The same inputs again: the blob is already on the exchange.
submit examples/hello/job.yaml
grep -qi "already" "$T/submit.err" ||
    fail "second submit did not skip the upload; stderr: $(cat "$T/submit.err")"
"$CU" wait "$JOB" 2>/dev/null || fail "second job failed"
say "hello ok"
exit 0
