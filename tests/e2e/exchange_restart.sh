#!/bin/sh
# exchange_restart.sh - kill -9 the exchange mid-job, restart it on the same
# data dir and port: the job completes, every task has exactly one accepted
# replica, and the results are complete.
. tests/e2e/lib.sh
need curl jq

start_exchange 0 3s
PORT=$EX_PORT
start_provider p1 2
make_key

cat >"$T/twelve.yaml" <<'YAML'
name: twelve
command: ["sh", "-c", "sleep 1; echo task $CUMULUS_TASK_INDEX > /out/r.txt"]
tasks: 12
price: {max_per_cu: 10}
resources: {cores: 1, memory: 128MiB, time: 60s, output: 1MiB}
outputs: ["r.txt"]
YAML
submit "$T/twelve.yaml"

wait_for 120 "three tasks done" jq_job "$JOB" '.counts.done >= 3'
done_before=$(job_json "$JOB" | jq '.counts.done')
say "killing the exchange (pid $EX_PID) with SIGKILL after $done_before tasks"
kill -KILL "$EX_PID"
wait "$EX_PID" 2>/dev/null

# Restart on the same port; retry briefly in case the port is still held.
i=0
while :; do
    rm -f "$EX_DATA/exchange.url"
    "$CU" exchange --listen "127.0.0.1:$PORT" --data "$EX_DATA" --lease 3s --devnet \
        >>"$T/exchange.log" 2>&1 &
    EX_PID=$!
    PIDS="$PIDS $EX_PID"
    end=$(($(date +%s) + 30))
    while [ ! -s "$EX_DATA/exchange.url" ] && alive "$EX_PID" && [ "$(date +%s)" -lt "$end" ]; do
        sleep 0.1
    done
    [ -s "$EX_DATA/exchange.url" ] && break
    i=$((i + 1))
    [ $i -lt 10 ] || fail "the exchange could not restart on port $PORT"
    stop_pid "$EX_PID"
    sleep 1
done
[ "$(head -n 1 "$EX_DATA/exchange.url")" = "$EX_URL" ] ||
    fail "restarted exchange has URL $(cat "$EX_DATA/exchange.url"), expected $EX_URL"
say "exchange restarted (pid $EX_PID)"

"$CU" wait "$JOB" 2>"$T/wait.err" || fail "job did not complete: $(tail -5 "$T/wait.err")"
job_json "$JOB" >"$T/status.json" || fail "status --json failed"
jq -e '.state == "done" and (.tasks | length) == 12' "$T/status.json" >/dev/null ||
    fail "job not done: $(cat "$T/status.json")"
jq -e '[.tasks[] | [.replicas[] | select(.state == "accepted")] | length == 1] | all' \
    "$T/status.json" >/dev/null ||
    fail "some task has not exactly one accepted replica: $(cat "$T/status.json")"
"$CU" results "$JOB" --out "$T/res" >"$T/results.log" 2>&1 ||
    fail "results failed: $(cat "$T/results.log")"
i=0
while [ $i -lt 12 ]; do
    [ "$(cat "$T/res/$i/r.txt" 2>/dev/null)" = "task $i" ] || fail "result of task $i wrong"
    i=$((i + 1))
done
say "exchange_restart ok"
exit 0
