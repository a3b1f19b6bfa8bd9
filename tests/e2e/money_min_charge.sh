#!/bin/sh
# money_min_charge.sh - a task far shorter than a millisecond of CPU (`true`
# in a warm sandbox) is still metered and paid: each accepted replica counts
# at least 1 milli-CU and gets an escrow_release of at least one base unit
# (docs/decisions.md "CU metering": CPU time rounds up).
. tests/e2e/lib.sh
need curl jq

TASKS=8
start_exchange 0 3s
start_provider p1 1
make_key

cat >"$T/tiny.yaml" <<'YAML'
name: tiny
command: ["true"]
tasks: 8
replication: 1
price: {max_per_cu: 10}
resources: {cores: 1, memory: 64MiB, time: 30s, output: 1MiB}
outputs: ["*.txt"]
YAML
submit "$T/tiny.yaml"
"$CU" wait "$JOB" --timeout 120s >/dev/null 2>"$T/wait.err" || fail "job failed: $(cat "$T/wait.err")"
job_json "$JOB" >"$T/status.json" || fail "status --json failed"
jq -e ".state == \"done\" and (.tasks | length) == $TASKS" "$T/status.json" >/dev/null ||
    fail "job not done: $(jq -c '{state, counts}' "$T/status.json")"
jq -c '[.tasks[].replicas[] | select(.state == "accepted") | {id, cu_milli}]' \
    "$T/status.json" >"$T/accepted.json"
say "accepted: $(cat "$T/accepted.json")"
jq -e "length == $TASKS and all(.[]; .cu_milli >= 1)" "$T/accepted.json" >/dev/null ||
    fail "an accepted replica counts 0 CU: $(cat "$T/accepted.json")"

"$CU" ledger export "$T/ledger.jsonl" >"$T/export.out" 2>&1 ||
    fail "ledger export: $(cat "$T/export.out")"
jq -c --arg job "$JOB" -s '[.[].txs[] | select(.type == "escrow_release" and .job == $job)
    | .amount]' "$T/ledger.jsonl" >"$T/releases.json"
say "releases: $(cat "$T/releases.json")"
jq -e "length == $TASKS and all(.[]; . >= 1)" "$T/releases.json" >/dev/null ||
    fail "not every replica was paid: $(cat "$T/releases.json")"
say "money_min_charge ok"
