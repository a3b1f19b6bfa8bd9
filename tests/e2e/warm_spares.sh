#!/bin/sh
# warm_spares.sh - a slot that goes idle ends its job's warm sandbox but
# keeps its spares (they belong to no job): the next job, even after the
# idle spell, starts in a spare, not in a sandbox started for it; and its
# output is right. When jobs change shape (here their memory), the pool
# turns over to the new shape: a later job of that shape gets a spare.
. tests/e2e/lib.sh
need curl jq

start_exchange 0 30s
start_provider p1 1
make_key
wait_for 60 "provider start" test -s "$T/p1/provider.json"

for name in one two three four; do
    case $name in three | four) mem=96MiB ;; *) mem=64MiB ;; esac
    cat >"$T/$name.yaml" <<YAML
name: $name
command: ["sh", "-c", "echo $name > /out/r.txt"]
tasks: 1
resources: {cores: 1, memory: $mem, time: 30s, output: 1MiB}
outputs: ["*.txt"]
price: {max_per_cu: 10}
YAML
done

# idles: how many times the slot went idle so far (its log says so).
idles() { grep -c "idle: its job's warm sandbox ends" "$T/p1.log"; }
# wait_idle N: until the slot went idle more than N times (no lease for 2 s
# ends the job's sandbox; by then the spares have been refilled too).
wait_idle() {
    wait_for 60 "the slot to go idle" sh -c "[ \$(grep -c \"idle: its job's warm sandbox ends\" '$T/p1.log') -gt $1 ]"
}

submit "$T/one.yaml"
ONE=$JOB
"$CU" wait "$ONE" --timeout 120s >/dev/null 2>&1 || fail "job one did not finish"
grep -q "warm sandbox started for job $ONE" "$T/p1.log" || fail "job one ran in no warm sandbox"
wait_idle 0
grep "idle: its job's warm sandbox ends" "$T/p1.log" | tail -n 1

n=$(idles)
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

# Another shape, once the pool is full of the old one: no spare fits job
# three; one spare makes room, and the provider keeps spares of the new
# shape from then on (started once quiet).
wait_idle "$n"
n=$(idles)
submit "$T/three.yaml"
THREE=$JOB
"$CU" wait "$THREE" --timeout 120s >/dev/null 2>&1 || fail "job three did not finish"
grep "warm sandbox started for job $THREE" "$T/p1.log" || fail "job three ran in no warm sandbox"
wait_idle "$n"
submit "$T/four.yaml"
FOUR=$JOB
"$CU" wait "$FOUR" --timeout 120s >/dev/null 2>&1 || fail "job four did not finish"
grep -q "warm sandbox started for job $FOUR (the spare)" "$T/p1.log" ||
    fail "a job of the new shape found no spare of it: the pool kept the old shape"
say "ok: the pool turned over to the new shape"
