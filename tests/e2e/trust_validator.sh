#!/bin/sh
# trust_validator.sh - a validator command shipped with the job decides
# agreement for results that are not bitwise equal: replicas whose outputs
# differ only in a timestamp agree (the task is done, both are paid), and a
# validator that never agrees fails the task with "no quorum".
. tests/e2e/lib.sh
need curl jq

start_exchange 0 3s
start_provider p1 1
start_provider p2 1
make_key

cat >"$T/near.yaml" <<'YAML'
name: near-equal
command: ["sh", "-c", "echo result $((CUMULUS_TASK_INDEX * 7)) $(date +%s%N) > /out/r.txt"]
tasks: 2
price: {max_per_cu: 10}
replication: {min: 2, quorum: 2, max: 2}
validator: {command: ["sh", "-c", "[ \"$(cut -d' ' -f1-2 /work/a/r.txt)\" = \"$(cut -d' ' -f1-2 /work/b/r.txt)\" ]"]}
resources: {time: 30s}
outputs: ["r.txt"]
YAML
submit "$T/near.yaml"
"$CU" wait "$JOB" --timeout 90s 2>"$T/wait.err" || fail "near-equal job: $(tail -5 "$T/wait.err")"
job_json "$JOB" >"$T/near.json"
jq -e '[.tasks[] | [.replicas[] | select(.state == "accepted")] | length == 2] | all' \
    "$T/near.json" >/dev/null || fail "not two accepted replicas per task: $(jq -c '[.tasks[].replicas[] | [.state, .reason]]' "$T/near.json")"
# The two results really differed bitwise: the validator, not equality, decided.
jq -e '[.tasks[] | [.replicas[] | select(.state == "accepted") | .merkle_root] | unique | length == 2] | all' "$T/near.json" \
    >/dev/null || fail "the replicas' outputs were bitwise equal; the test proves nothing"
grep -q "the validator says they agree" "$T/exchange.log" || fail "no validator run in the exchange log"

sed -e 's/^name: .*/name: never-equal/' \
    -e 's|^validator: .*|validator: {command: ["false"]}|' "$T/near.yaml" >"$T/never.yaml"
submit "$T/never.yaml"
"$CU" wait "$JOB" --timeout 90s 2>"$T/wait2.err" && fail "a job whose validator never agrees succeeded"
job_json "$JOB" >"$T/never.json"
jq -e '.state == "failed" and ([.tasks[].reason] | all(test("no quorum")))' "$T/never.json" \
    >/dev/null || fail "expected failed tasks with 'no quorum': $(jq -c '[.state, [.tasks[].reason]]' "$T/never.json")"
"$CU" ledger verify "$EX_DATA" >"$T/verify.out" 2>&1 || fail "ledger verify: $(cat "$T/verify.out")"
say "trust_validator ok"
exit 0
