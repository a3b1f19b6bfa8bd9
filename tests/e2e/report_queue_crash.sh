#!/bin/sh
# report_queue_crash.sh - kill -9 the provider while finished reports wait
# in its reporter queue (issue 6: reports leave off the slots' path). The
# exchange is frozen (SIGSTOP) so that the reports of the tasks that end
# cannot be answered; once the provider's state holds them as 'finished'
# (stored, not yet answered) it is killed. After the restart its recovery
# sends them again: every task has exactly one accepted replica, each
# queued report's replica is the accepted one of its task, each accepted
# replica is paid exactly once, and the ledger verifies. (Claims the killed provider had sent to the
# frozen exchange may still be granted after it thaws: those leases expire,
# their tasks go to the restarted provider.)
# With REPORT_QUEUE_SIG=TERM (report_queue_term.sh) the provider gets
# SIGTERM instead: it must exit within the shutdown wait although the
# exchange does not answer, leaving the unanswered reports for recovery.
. tests/e2e/lib.sh
need curl jq sqlite3
SIG=${REPORT_QUEUE_SIG:-KILL}

TASKS=6
# Long enough that no lease expires while the exchange is frozen.
start_exchange 0 8s
start_provider p1 2
P1=$LAST_PID
make_key

cat >"$T/q.yaml" <<YAML
name: queued
command: ["sh", "-c", "sleep 1; echo r \$CUMULUS_TASK_INDEX > /out/r.txt"]
tasks: $TASKS
price: {max_per_cu: 10}
resources: {cores: 1, memory: 128MiB, time: 60s, output: 1MiB}
outputs: ["r.txt"]
YAML
submit "$T/q.yaml"

# finished_rows: replicas whose report is stored but not yet answered.
finished_rows() {
    sqlite3 "file:$T/p1/state.db?mode=ro" \
        "SELECT count(*) FROM replicas WHERE state = 'finished'" 2>/dev/null
}
some_finished() { [ "$(finished_rows)" -ge 1 ] 2>/dev/null; }

wait_for 60 "a replica running on p1" replica_in_state "$JOB" running
say "freezing the exchange (pid $EX_PID)"
kill -STOP "$EX_PID"
wait_for 30 "a report of p1 stored and unanswered" some_finished
n=$(finished_rows)
queued=$(sqlite3 "file:$T/p1/state.db?mode=ro" \
    "SELECT id FROM replicas WHERE state = 'finished'" | tr '\n' ' ')
say "sending SIG$SIG to provider p1 (pid $P1), $n report(s) queued"
t0=$(date +%s)
kill -"$SIG" "$P1"
wait "$P1" 2>/dev/null
took=$(($(date +%s) - t0))
[ "$took" -le 10 ] || fail "the provider took $took s to exit after SIG$SIG"
kill -CONT "$EX_PID"

start_provider p1 2
P1=$LAST_PID
"$CU" wait "$JOB" >"$T/wait.out" 2>"$T/wait.err" ||
    fail "job did not complete: $(tail -5 "$T/wait.err")"
grep -q "re-sending the report of replica" "$T/p1.log" ||
    fail "the restarted provider re-sent no report"

job_json "$JOB" >"$T/status.json" || fail "status --json failed"
jq -e ".state == \"done\" and (.tasks | length) == $TASKS" "$T/status.json" >/dev/null ||
    fail "job not done: $(jq -c '{state, counts, reason}' "$T/status.json")"
jq -e '[.tasks[] | [.replicas[] | select(.state == "accepted")] | length == 1] | all' \
    "$T/status.json" >/dev/null ||
    fail "some task has not exactly one accepted replica: $(cat "$T/status.json")"
for id in $queued; do
    jq -e --argjson id "$id" '[.tasks[].replicas[] | select(.id == $id and
        .state == "accepted")] | length == 1' "$T/status.json" >/dev/null ||
        fail "queued replica $id was not accepted: $(cat "$T/status.json")"
done
"$CU" results "$JOB" --out "$T/res" >"$T/results.log" 2>&1 || fail "results failed"
i=0
while [ $i -lt $TASKS ]; do
    [ "$(cat "$T/res/$i/r.txt")" = "r $i" ] || fail "task $i output wrong"
    i=$((i + 1))
done

# Each accepted replica paid exactly once (none twice), nothing else of
# this job paid.
paid_once "$JOB" "$T/status.json"
[ "$(finished_rows)" = 0 ] || fail "reports still unanswered in p1's state"
alive "$P1" || fail "p1 died"
say "report_queue_crash ok: $n queued report(s) ($queued) resent after SIG$SIG, each paid once"
exit 0
