#!/bin/sh
# cancel.sh - cancelling a job stops its running sandboxes within a few
# heartbeats, and wait reports the failure promptly.
. tests/e2e/lib.sh
need curl jq

start_exchange 0 3s
start_provider p1 2
PROV=$LAST_PID
make_key
MARK="cu-cancel-$$-mark"

cat >"$T/long.yaml" <<YAML
name: long
command: ["sh", "-c", ": $MARK; sleep 30"]
tasks: 6
price: {max_per_cu: 10}
resources: {cores: 1, memory: 128MiB, time: 120s, output: 1MiB}
outputs: ["*.txt"]
YAML
submit "$T/long.yaml"
wait_for 60 "a replica running" replica_in_state "$JOB" running
pgrep -f "$MARK" >/dev/null || say "note: no task process visible yet"

"$CU" cancel "$JOB" >"$T/cancel.log" 2>&1 || fail "cancel failed: $(cat "$T/cancel.log")"
start=$(date +%s)
timeout 60 "$CU" wait "$JOB" 2>"$T/wait.err"
rc=$?
[ "$rc" -ne 124 ] || fail "wait did not return within 60 s of the cancel"
[ "$rc" -eq 1 ] || fail "wait exited $rc for a cancelled job, expected 1"
say "wait returned $rc after $(($(date +%s) - start)) s"

jq_job "$JOB" '.state == "cancelled"' || fail "job not cancelled: $(job_json "$JOB")"
"$CU" status "$JOB" 2>&1 | grep -qi cancel || fail "status does not show cancelled"
# Lease 3 s: heartbeats every second; allow many.
wait_for 30 "the cancelled tasks' sandboxes to go" gone "$MARK"
alive "$PROV" || fail "the provider died"
# Nothing of the job runs later either.
jq_job "$JOB" '[.tasks[].replicas[]? | select(.state == "running" or .state == "leased")] | length == 0' ||
    wait_for 30 "no live replicas" jq_job "$JOB" \
        '[.tasks[].replicas[]? | select(.state == "running" or .state == "leased")] | length == 0'
say "cancel ok"
exit 0
