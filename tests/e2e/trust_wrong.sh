#!/bin/sh
# trust_wrong.sh - a provider that returns wrong outputs every time (--cheat
# wrong) beside honest ones, under {min: 2, quorum: 2, max: 5}: the job's
# results are the honest ones, the cheater is never paid, loses stake in a
# slash and gets wrong_result records; status names the differing file.
. tests/e2e/lib.sh
. tests/e2e/_trust.sh
need curl jq

start_exchange 0 3s
make_key
trust_provider cheat wrong
CHEAT=$(provider_id cheat)
trust_job "$T/job.yaml" 3
submit "$T/job.yaml"
# The cheater is alone at first, so it surely takes part.
wait_for 60 "the cheater leasing a replica" has_replica "$CHEAT" "$JOB"
trust_provider h1
H1=$(provider_id h1)
trust_provider h2
wait_done "$JOB"
check_results "$JOB" 3

job_json "$JOB" >"$T/job.json"
jq -e --arg c "$CHEAT" '[.tasks[].replicas[] | select(.provider == $c and .status == "ok")
    | .agreed] | length > 0 and all(. == false)' "$T/job.json" >/dev/null ||
    fail "the cheater's replicas are not all marked agreed:false: $(jq -c '[.tasks[].replicas[] | [.provider[0:8], .status, .agreed, .slashed]]' "$T/job.json")"
jq -e --arg c "$CHEAT" '[.tasks[].replicas[] | select(.provider == $c) | .slashed // 0] | add > 0' \
    "$T/job.json" >/dev/null || fail "the job JSON shows nothing slashed from the cheater"
jq -e '[.tasks[].disagreement[]?.files[]?] | index("r.txt") != null' "$T/job.json" >/dev/null ||
    fail "no disagreement names r.txt: $(jq -c '[.tasks[].disagreement]' "$T/job.json")"
"$CU" status "$JOB" >"$T/status.txt" 2>&1 || fail "status failed"
grep -q "disagreements" "$T/status.txt" || fail "status shows no disagreements: $(cat "$T/status.txt")"
grep -q "slashed" "$T/status.txt" || fail "status shows nothing slashed"

export_ledger
not_paid "$CHEAT" "$JOB"
paid_someone "$JOB"
slashed "$CHEAT" "$JOB"
has_record "$CHEAT" "$JOB" wrong_result
has_record "$H1" "$JOB" success

# Its reputation shows it; an honest provider's does not.
"$CU" reputation "$CHEAT" --json >"$T/rep.json" 2>"$T/rep.err" || fail "reputation: $(cat "$T/rep.err")"
jq -e '.counts.wrong_result > 0' "$T/rep.json" >/dev/null ||
    fail "reputation shows no wrong_result: $(cat "$T/rep.json")"
"$CU" reputation "$H1" --json >"$T/rep_h1.json" 2>>"$T/rep.err" || fail "reputation h1 failed"
jq -e --slurpfile c "$T/rep.json" '.score_milli > $c[0].score_milli' "$T/rep_h1.json" >/dev/null ||
    fail "the cheater scores no lower than an honest provider"
"$CU" reputation "$CHEAT" >"$T/rep.txt" 2>&1 || fail "reputation (text) failed"
grep -q "wrong_result" "$T/rep.txt" || fail "reputation text lacks wrong_result: $(cat "$T/rep.txt")"
say "trust_wrong ok"
exit 0
