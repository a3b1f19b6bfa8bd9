#!/bin/sh
# ahead_crash.sh - kill -9 the provider while it holds leases claimed
# ahead (issue 6: a slot whose tasks are short claims several leases at
# once and queues the rest, src/provider/ahead.c). The provider is frozen
# (SIGSTOP) at moments chosen by polling its state until it holds more
# 'running' rows than it has slots, i.e. at least one queued lease; then
# it is killed. After the restart its recovery reports every one of those
# replicas abandoned (the exchange requeues them at once, no lease has to
# expire), the job completes with exactly one accepted replica per task,
# none of the killed provider's held replicas is accepted, each accepted
# replica is paid once, and the ledger verifies.
. tests/e2e/lib.sh
need curl jq sqlite3

TASKS=1000
start_exchange 0 6s
start_provider p1 2
P1=$LAST_PID
make_key

cat >"$T/ahead.yaml" <<YAML
name: ahead
command: ["true"]
tasks: $TASKS
price: {max_per_cu: 10}
resources: {cores: 1, memory: 64MiB, time: 60s, output: 1MiB}
outputs: ["*.txt"]
YAML
submit "$T/ahead.yaml"

running_rows() {
    sqlite3 "file:$T/p1/state.db?mode=ro" \
        "SELECT count(*) FROM replicas WHERE state = 'running'" 2>/dev/null
}

# Freeze p1 until it holds a lease queued ahead (more running rows than
# its 2 slots), thawing it between looks.
held=""
end=$(($(date +%s) + 90))
while [ "$(date +%s)" -lt "$end" ]; do
    kill -STOP "$P1"
    n=$(running_rows)
    if [ "${n:-0}" -gt 2 ] 2>/dev/null; then
        held=$(sqlite3 "file:$T/p1/state.db?mode=ro" \
            "SELECT id FROM replicas WHERE state = 'running'" | tr '\n' ' ')
        break
    fi
    kill -CONT "$P1"
    jq_job "$JOB" '.state == "done"' && fail "the job ended before p1 held a lease ahead"
    sleep 0.02
done
[ -n "$held" ] || { kill -CONT "$P1"; fail "p1 never held more leases than slots"; }
say "p1 frozen holding $n replica(s): $held; kill -9"
kill -KILL "$P1"
wait "$P1" 2>/dev/null

start_provider p1 2
P1=$LAST_PID
"$CU" wait "$JOB" >"$T/wait.out" 2>"$T/wait.err" ||
    fail "job did not complete: $(tail -5 "$T/wait.err")"
for id in $held; do
    grep -q "reporting replica $id .*abandoned by a restart" "$T/p1.log" ||
        fail "the restarted provider did not report held replica $id abandoned"
done

job_json "$JOB" >"$T/status.json" || fail "status --json failed"
jq -e ".state == \"done\" and (.tasks | length) == $TASKS" "$T/status.json" >/dev/null ||
    fail "job not done: $(jq -c '{state, counts, reason}' "$T/status.json")"
jq -e '[.tasks[] | [.replicas[] | select(.state == "accepted")] | length == 1] | all' \
    "$T/status.json" >/dev/null ||
    fail "some task has not exactly one accepted replica"
for id in $held; do
    jq -e --argjson id "$id" '[.tasks[].replicas[] | select(.id == $id and
        .state == "accepted")] | length == 0' "$T/status.json" >/dev/null ||
        fail "replica $id, held by the killed provider, was accepted"
done

paid_once "$JOB" "$T/status.json"
alive "$P1" || fail "p1 died"
say "ahead_crash ok: $n held replica(s) ($held) reported abandoned after kill -9"
exit 0
