#!/bin/sh
# task_fail.sh - a task that exits 3: the job fails with the reason, logs hold
# its stderr, and the provider goes on to run the next job.
. tests/e2e/lib.sh
need curl jq

start_exchange 0 3s
start_provider p1 2
PROV=$LAST_PID
make_key

cat >"$T/fail.yaml" <<'YAML'
name: fails
command: ["sh", "-c", "echo about-to-fail-xyzzy >&2; exit 3"]
tasks: 1
price: {max_per_cu: 10}
resources: {cores: 1, memory: 128MiB, time: 30s, output: 1MiB}
outputs: ["*.txt"]
YAML
submit "$T/fail.yaml"
"$CU" wait "$JOB" 2>"$T/wait.err"
rc=$?
[ "$rc" -eq 1 ] || fail "wait exited $rc for a failing job, expected 1"

job_json "$JOB" >"$T/status.json" || fail "status --json failed"
jq -e '.state == "failed" and .tasks[0].state == "failed"' "$T/status.json" >/dev/null ||
    fail "job/task not failed: $(cat "$T/status.json")"
jq -e '(.tasks[0].reason // "") | test("exit code 3")' "$T/status.json" >/dev/null ||
    fail "task reason does not say 'exit code 3': $(cat "$T/status.json")"
"$CU" status "$JOB" >"$T/status.txt" 2>&1
grep -q "exit code 3" "$T/status.txt" || fail "status does not show 'exit code 3'"
"$CU" logs "$JOB" 0 >"$T/logs.txt" 2>&1 || fail "logs failed: $(cat "$T/logs.txt")"
grep -q "about-to-fail-xyzzy" "$T/logs.txt" || fail "logs lack the task's stderr"

alive "$PROV" || fail "the provider died after a failing task"
cat >"$T/ok.yaml" <<'YAML'
name: fine
command: ["sh", "-c", "echo fine > /out/ok.txt"]
tasks: 2
price: {max_per_cu: 10}
resources: {cores: 1, memory: 128MiB, time: 30s, output: 1MiB}
outputs: ["*.txt"]
YAML
submit "$T/ok.yaml"
"$CU" wait "$JOB" 2>"$T/wait2.err" || fail "the next job failed: $(tail -3 "$T/wait2.err")"
alive "$PROV" || fail "the provider is gone"
say "task_fail ok"
exit 0
