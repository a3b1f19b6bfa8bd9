#!/bin/sh
# trust_wrong_sometimes.sh - a provider that returns wrong outputs for about
# half of its replicas (--cheat wrong-sometimes, chosen by hash of the
# replica id): the results are the honest ones, none of its wrong replicas
# is paid, and it is slashed and marked wrong_result for them.
. tests/e2e/lib.sh
. tests/e2e/_trust.sh
need curl jq

corrupted_once() { grep -q -- "--cheat: corrupting" "$T/cheat.log"; }

start_exchange 0 3s
make_key
trust_provider cheat wrong-sometimes
CHEAT=$(provider_id cheat)
trust_job "$T/job.yaml" 6
submit "$T/job.yaml"
# Alone at first it takes one replica of task after task until one of them
# is corrupted (each is, with probability 1/2, by its id).
wait_for 80 "the cheater corrupting a result" corrupted_once
trust_provider h1
trust_provider h2
wait_done "$JOB"
check_results "$JOB" 6

job_json "$JOB" >"$T/job.json"
jq -r --arg c "$CHEAT" '.tasks[].replicas[] | select(.provider == $c and .agreed == false) | .id' \
    "$T/job.json" >"$T/wrong_ids"
[ -s "$T/wrong_ids" ] || fail "no replica of the cheater is marked agreed:false: $(jq -c '[.tasks[].replicas[] | [.id, .provider[0:8], .status, .agreed]]' "$T/job.json")"
say "wrong replicas of the cheater: $(tr '\n' ' ' <"$T/wrong_ids")"

export_ledger
while read -r rid; do
    n=$(txs "select(.type == \"escrow_release\" and .job == \"$JOB\" and .to == \"$CHEAT\" and .replica == \"$rid\")" | wc -l)
    [ "$n" -eq 0 ] || fail "wrong replica $rid of the cheater was paid"
done <"$T/wrong_ids"
# Paid at most for its right replicas.
right=$(jq --arg c "$CHEAT" '[.tasks[].replicas[] | select(.provider == $c and .agreed == true)] | length' "$T/job.json")
paid=$(txs "select(.type == \"escrow_release\" and .job == \"$JOB\" and .to == \"$CHEAT\")" | wc -l)
[ "$paid" -le "$right" ] || fail "the cheater was paid $paid times for $right right replicas"
slashed "$CHEAT" "$JOB"
has_record "$CHEAT" "$JOB" wrong_result
say "trust_wrong_sometimes ok"
exit 0
