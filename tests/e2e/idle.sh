#!/bin/sh
# idle.sh - an --idle-only provider, its owner simulated with --idle-probe:
# owner active -> the job stays queued and the provider says it waits for
# idle; owner away -> the task starts; owner back -> every task process is
# stopped (state T) while the lease lives on past several lease lengths;
# owner away again -> the task resumes and the job completes.
. tests/e2e/lib.sh
need curl jq pgrep

start_exchange 0 2s
make_key
PROBE="$T/owner"
MARK="cu-idle-$$-mark"
echo active >"$PROBE"
mkdir -p "$T/p1"
"$CU" provide --exchange "$EX_URL" --data "$T/p1" --slots 1 --idle-only --idle-after 1s \
    --idle-probe "$PROBE" >>"$T/p1.log" 2>&1 &
PROV=$!
PIDS="$PIDS $PROV"

# The task counts to 8 in 1-second steps (a few seconds of work that a
# pause must not lose) and leaves its count in /out.
cat >"$T/idle.yaml" <<YAML
name: idle
command: ["sh", "-c", ": $MARK; i=0; while [ \$i -lt 8 ]; do i=\$((i+1)); echo \$i > /out/count.txt; sleep 1; done"]
tasks: 1
price: {max_per_cu: 10}
resources: {cores: 1, memory: 128MiB, time: 60s, output: 1MiB}
outputs: ["*.txt"]
YAML
wait_for 60 "the provider to wait for idle" grep -q "waiting for idle" "$T/p1.log"
submit "$T/idle.yaml"

# Owner active: nothing is claimed. Give the provider several claim
# periods' worth of chances to get it wrong.
sleep 3
jq_job "$JOB" '.tasks[0].state == "queued"' ||
    fail "job not queued while the owner is active: $(job_json "$JOB")"
replica_in_state "$JOB" running && fail "a replica runs while the owner is active"
pgrep -f "$MARK" >/dev/null && fail "the task started while the owner is active"
grep -q "slot 0: waiting for idle before claiming (owner active" "$T/p1.log" ||
    fail "the provider does not say it waits for idle"
say "owner active: job queued, provider waiting"

# Owner away: after --idle-after the task starts.
echo idle >"$PROBE"
wait_for 60 "the task to start" pgrep -f "$MARK"
wait_for 60 "a running replica" replica_in_state "$JOB" running
# The running task's /out: its task directory, or the slot's warm sandbox
# directory while it runs there (the default; see fabric/warm.h).
count() { cat "$T/p1/tasks/"*/out/count.txt "$T/p1/warm/"*/out/count.txt 2>/dev/null; }
wait_for 30 "the task to count" sh -c "[ -n \"\$(cat '$T'/p1/tasks/*/out/count.txt '$T'/p1/warm/*/out/count.txt 2>/dev/null)\" ]"
say "owner away: task running"

# all_stopped: true when every process of the task (its sh and sleep, found
# by the marker and as children of it) is in state T.
all_stopped() {
    pids=$(pgrep -f "$MARK") || return 1
    for p in $pids $(for q in $pids; do pgrep -P "$q"; done); do
        st=$(sed 's/.*) \(.\).*/\1/' "/proc/$p/stat" 2>/dev/null) || continue
        [ "$st" = T ] || return 1
    done
    return 0
}

# Owner returns: the task is paused at once, the lease kept.
echo active >"$PROBE"
wait_for 30 "the task's processes to stop" all_stopped
grep -q "replica [0-9]*: paused (owner active" "$T/p1.log" || fail "no pause logged"
before=$(count)
# More than two lease lengths (2 s each): the keeper's heartbeats keep it.
sleep 6
all_stopped || fail "the task ran again while the owner was active"
after=$(count)
[ "$before" = "$after" ] || fail "the paused task kept counting ($before -> $after)"
replica_in_state "$JOB" running || fail "the replica did not stay running: $(job_json "$JOB")"
jq_job "$JOB" '[.tasks[].replicas[]? | select(.state == "expired")] | length == 0' ||
    fail "the paused replica's lease expired: $(job_json "$JOB")"
say "owner back: task stopped at count $before, lease alive after 6 s"

# Owner away again: it resumes where it was and the job completes.
echo idle >"$PROBE"
wait_for 30 "the resume" grep -q "replica [0-9]*: resumed" "$T/p1.log"
timeout 120 "$CU" wait "$JOB" >"$T/wait.log" 2>&1 || fail "wait failed: $(cat "$T/wait.log")"
jq_job "$JOB" '.state == "done" or .state == "completed" or .state == "succeeded"' ||
    jq_job "$JOB" '.tasks[0].state == "done"' || fail "job did not complete: $(job_json "$JOB")"
"$CU" results "$JOB" --out "$T/res" >"$T/results.log" 2>&1 ||
    fail "results failed: $(cat "$T/results.log")"
[ "$(cat "$T/res/0/count.txt")" = 8 ] || fail "count.txt is '$(cat "$T/res/0/count.txt")', not 8"
# The wall time it reports leaves out the pause, which lasted more than 6 s.
jq_job "$JOB" '.tasks[0].replicas[0] | .wall_ms <= (.reported_ms - .leased_ms) - 6000' ||
    fail "the reported wall time counts the pause: $(job_json "$JOB")"
alive "$PROV" || fail "the provider died"
say "idle ok"
exit 0
