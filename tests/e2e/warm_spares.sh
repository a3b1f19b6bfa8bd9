#!/bin/sh
# warm_spares.sh - a slot that goes idle ends its job's warm sandbox but
# keeps its spares (they belong to no job): the next job, even after the
# idle spell, starts in a spare, not in a sandbox started for it; and its
# output is right.
. tests/e2e/lib.sh
need curl jq

start_exchange 0 30s
start_provider p1 1
make_key
wait_for 60 "provider start" test -s "$T/p1/provider.json"

for name in one two; do
    cat >"$T/$name.yaml" <<YAML
name: $name
command: ["sh", "-c", "echo $name > /out/r.txt"]
tasks: 1
resources: {cores: 1, memory: 64MiB, time: 30s, output: 1MiB}
outputs: ["*.txt"]
price: {max_per_cu: 10}
YAML
done

submit "$T/one.yaml"
ONE=$JOB
"$CU" wait "$ONE" --timeout 120s >/dev/null 2>&1 || fail "job one did not finish"
grep -q "warm sandbox started for job $ONE" "$T/p1.log" || fail "job one ran in no warm sandbox"

# No lease for 2 s ends the job's sandbox (its claim's long-poll ends).
wait_for 60 "the slot to go idle" grep -q "idle: its job's warm sandbox ends" "$T/p1.log"
grep "idle: its job's warm sandbox ends" "$T/p1.log" | tail -n 1

submit "$T/two.yaml"
TWO=$JOB
"$CU" wait "$TWO" --timeout 120s >/dev/null 2>&1 || fail "job two did not finish"
grep "warm sandbox started for job $TWO" "$T/p1.log" ||
    fail "job two ran in no warm sandbox"
grep -q "warm sandbox started for job $TWO (the spare)" "$T/p1.log" ||
    fail "after the idle spell, job two waited for a sandbox of its own instead of a spare"
"$CU" results "$TWO" --out "$T/res" >/dev/null 2>&1 || fail "cumulus results failed"
found=$(find "$T/res" -name r.txt | head -n 1)
[ -n "$found" ] && [ "$(cat "$found")" = two ] || fail "job two's output is wrong"
say "ok: the spare outlived the idle spell"
