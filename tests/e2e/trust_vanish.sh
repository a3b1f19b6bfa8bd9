#!/bin/sh
# trust_vanish.sh - a provider that dies mid-task without reporting (--cheat
# vanish): its lease expires, the replica is run elsewhere, the results are
# the honest ones, it is not paid and gets a timeout (or abandoned) record.
. tests/e2e/lib.sh
. tests/e2e/_trust.sh
need curl jq

start_exchange 0 3s
make_key
trust_provider cheat vanish
CPID=$LAST_PID
CHEAT=$(provider_id cheat)
trust_job "$T/job.yaml" 2
submit "$T/job.yaml"
wait_for 60 "the cheater vanishing mid-task" sh -c "! kill -0 $CPID"
grep -q -- "--cheat vanish: exiting mid-task" "$T/cheat.log" ||
    fail "the cheater exited, but not mid-task: $(tail -5 "$T/cheat.log")"
has_replica "$CHEAT" "$JOB" || fail "the vanished provider never held a replica"
trust_provider h1
trust_provider h2
wait_done "$JOB"
check_results "$JOB" 2

export_ledger
not_paid "$CHEAT" "$JOB"
paid_someone "$JOB"
has_record "$CHEAT" "$JOB" timeout abandoned
say "trust_vanish ok"
exit 0
