#!/bin/sh
# provider_status.sh - `cumulus provider status` shows a running task with
# its cgroup usage, finished tasks with their outcome, the provider's
# wallet, and says so clearly when the exchange cannot be reached.
. tests/e2e/lib.sh
need curl jq

start_exchange 0 3s
mkdir -p "$T/p1"
"$CU" provide --exchange "$EX_URL" --data "$T/p1" --slots 1 --cpus 1 --memory 1GiB \
    >>"$T/p1.log" 2>&1 &
PROV=$!
PIDS="$PIDS $PROV"
make_key
wait_for 60 "provider start" test -s "$T/p1/provider.json"

"$CU" provider status --help | grep -q "usage: cumulus provider status" || fail "no --help"
"$CU" provider bogus >/dev/null 2>&1 && fail "an unknown subcommand was accepted"

cat >"$T/quick.yaml" <<'YAML'
name: quick
command: ["sh", "-c", "exit 4"]
tasks: 1
resources: {cores: 1, memory: 64MiB, time: 30s, output: 1MiB}
outputs: ["*.txt"]
price: {max_per_cu: 10}
YAML
submit "$T/quick.yaml"
"$CU" wait "$JOB" --timeout 120s >/dev/null 2>&1

cat >"$T/slow.yaml" <<'YAML'
name: slow
command: ["sh", "-c", "head -c 20000000 /dev/zero > /work/x; sleep 60"]
tasks: 1
resources: {cores: 1, memory: 128MiB, time: 90s, output: 64MiB}
outputs: ["*.txt"]
price: {max_per_cu: 10}
YAML
submit "$T/slow.yaml"
SLOW=$JOB
wait_for 60 "the slow task to run" replica_in_state "$SLOW" running

"$CU" provider status --data "$T/p1" --json >"$T/st.json" 2>"$T/st.err" ||
    fail "provider status failed: $(cat "$T/st.err")"
cat "$T/st.json"
jq -e '.running_now == true and (.running | length) == 1' "$T/st.json" >/dev/null ||
    fail "the running task is not shown"
jq -e --arg j "$SLOW" '.running[0].job == $j and .running[0].elapsed_ms >= 0' "$T/st.json" \
    >/dev/null || fail "running task's job or elapsed time is wrong"
if [ "$(jq -r .provider.cgroup "$T/st.json")" != none ]; then
    jq -e '.running[0].memory > 0 and .running[0].cpu_ms >= 0' "$T/st.json" >/dev/null ||
        fail "no cgroup usage for the running task"
fi
jq -e '.recent[0].status == "failed" and .recent[0].reason == "exit code 4"' "$T/st.json" \
    >/dev/null || fail "the finished task is not shown with its outcome"
jq -e '.wallet != null and (.wallet.balance | type) == "number"' "$T/st.json" >/dev/null ||
    fail "no wallet from the exchange"
"$CU" provider status --data "$T/p1" >"$T/st.txt" 2>&1 || fail "text status failed"
cat "$T/st.txt"
grep -q "running tasks: 1" "$T/st.txt" || fail "text: no running task"
grep -q "exit code 4" "$T/st.txt" || fail "text: no recent task reason"
grep -q "^earnings: earned" "$T/st.txt" || fail "text: no earnings"

"$CU" cancel "$SLOW" >/dev/null 2>&1
stop_pid "$EX_PID"
"$CU" provider status --data "$T/p1" >"$T/st2.txt" 2>&1 || fail "status without exchange failed"
cat "$T/st2.txt"
grep -q "^earnings: unknown: the exchange .* cannot be reached" "$T/st2.txt" ||
    fail "an unreachable exchange is not said clearly"
say "provider_status ok"
exit 0
