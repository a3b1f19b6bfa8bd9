#!/bin/sh
# provider_killed.sh - kill -9 a provider mid-task: its lease expires, the
# replica goes back to the queue and a second provider finishes the job.
. tests/e2e/lib.sh
need curl jq

start_exchange 0 3s
start_provider p1 2
P1=$LAST_PID
make_key
MARK="cu-pk-$$-mark"

cat >"$T/slow.yaml" <<YAML
name: slow
command: ["sh", "-c", ": $MARK; sleep 4; echo done \$CUMULUS_TASK_INDEX > /out/r.txt"]
tasks: 2
price: {max_per_cu: 10}
resources: {cores: 1, memory: 128MiB, time: 60s, output: 1MiB}
outputs: ["r.txt"]
YAML
submit "$T/slow.yaml"

wait_for 60 "a replica running on p1" replica_in_state "$JOB" running
say "killing provider p1 (pid $P1) with SIGKILL"
kill -KILL "$P1"
wait "$P1" 2>/dev/null
# bwrap runs with --die-with-parent; make sure of it anyway.

wait_for 20 "p1's sandboxed tasks to die" gone "$MARK"

start_provider p2 2
P2=$LAST_PID
"$CU" wait "$JOB" 2>"$T/wait.err" || fail "job did not complete: $(tail -5 "$T/wait.err")"

wait_for 30 "p2's identity" provider_known p2
id2=$(provider_id p2)
id1=$(provider_id p1)
job_json "$JOB" >"$T/status.json" || fail "status --json failed"
jq -e '[.tasks[].replicas[] | select(.state == "expired")] | length >= 1' "$T/status.json" \
    >/dev/null || fail "no expired replica: $(cat "$T/status.json")"
jq -e --arg p1 "$id1" '[.tasks[].replicas[] | select(.state == "expired") |
    .provider == $p1] | all' "$T/status.json" >/dev/null ||
    fail "an expired replica was not p1's"
jq -e --arg p2 "$id2" '[.tasks[] | [.replicas[] | select(.state == "accepted")] |
    length == 1 and .[0].provider == $p2] | all' "$T/status.json" >/dev/null ||
    fail "accepted replicas were not (exactly one per task) run by p2 ($id2): $(cat "$T/status.json")"
"$CU" results "$JOB" --out "$T/res" >"$T/results.log" 2>&1 || fail "results failed"
for i in 0 1; do
    [ "$(cat "$T/res/$i/r.txt")" = "done $i" ] || fail "task $i output wrong"
done
alive "$P2" || fail "p2 died"
say "provider_killed ok"
exit 0
