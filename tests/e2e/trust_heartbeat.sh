#!/bin/sh
# trust_heartbeat.sh - heartbeat challenges: one provider stops heartbeating
# after the first (--cheat no-heartbeat), another answers the nonces wrongly
# (--cheat bad-answer). Both lose their leases (409 challenge_failed for the
# wrong answer), the results are the honest ones, neither is paid and each
# gets a record; the ledger verifies.
. tests/e2e/lib.sh
. tests/e2e/_trust.sh
need curl jq

start_exchange 0 3s
make_key
trust_provider silent no-heartbeat
SILENT=$(provider_id silent)
trust_provider liar bad-answer
LIAR=$(provider_id liar)
# Each task outlives a lease (3 s), so a silent provider cannot finish in time.
SLEEP=5 trust_job "$T/job.yaml" 2
submit "$T/job.yaml"
wait_for 60 "the silent provider leasing" has_replica "$SILENT" "$JOB"
wait_for 60 "the liar leasing" has_replica "$LIAR" "$JOB"
wait_for 60 "the liar losing its lease" grep -q "lease lost" "$T/liar.log"
trust_provider h1
trust_provider h2
wait_done "$JOB"
check_results "$JOB" 2
grep -q "challenge_failed" "$T/liar.log" ||
    fail "the liar's lease did not end with challenge_failed: $(grep -i lease "$T/liar.log" | tail -3)"

export_ledger
not_paid "$SILENT" "$JOB"
not_paid "$LIAR" "$JOB"
paid_someone "$JOB"
has_record "$SILENT" "$JOB" timeout
has_record "$LIAR" "$JOB" challenge_failed timeout abandoned
say "trust_heartbeat ok"
exit 0
