#!/bin/sh
# trust_challenge.sh - proofs of capability: jobs that demand a factoring
# challenge and a memory-hard (argon2id) one. Honest providers solve them
# and run the job; a provider that answers wrongly (--cheat fail-challenge)
# is never leased a replica, gets a challenge_failed record and no pay.
. tests/e2e/lib.sh
. tests/e2e/_trust.sh
need curl jq

start_exchange 0 3s
make_key
trust_provider cheat fail-challenge
CHEAT=$(provider_id cheat)
trust_job "$T/factor.yaml" 2 "replication: 2
challenge: {kind: factor, bits: 48}"
submit "$T/factor.yaml"
FJOB=$JOB
wait_for 60 "the cheater failing the challenge" grep -q "challenge .* failed" "$T/cheat.log"
trust_provider h1
H1=$(provider_id h1)
trust_provider h2
wait_done "$FJOB"
check_results "$FJOB" 2
grep -q "challenge .* passed" "$T/h1.log" || fail "h1 logged no passed challenge"

trust_job "$T/memory.yaml" 2 "replication: 2
challenge: {kind: memory, mib: 16}"
submit "$T/memory.yaml"
MJOB=$JOB
wait_done "$MJOB"
check_results "$MJOB" 2
grep -q "answering memory challenge" "$T/h1.log" "$T/h2.log" || fail "no memory challenge was answered"

for j in "$FJOB" "$MJOB"; do
    [ "$(replicas_of "$CHEAT" "$j")" -eq 0 ] || fail "the cheater was leased a replica of $j"
done
export_ledger
not_paid "$CHEAT" "$FJOB"
not_paid "$CHEAT" "$MJOB"
paid_someone "$FJOB"
has_record "$CHEAT" "$FJOB" challenge_failed
"$CU" reputation "$CHEAT" --json | jq -e '.counts.challenge_failed > 0' >/dev/null ||
    fail "reputation shows no challenge_failed for the cheater"
say "trust_challenge ok"
exit 0
