#!/bin/sh
# money_crash.sh - kill -9 the exchange again and again while a job is being
# settled (issue 3, "Crash test"): after the restarts on the same port and
# data dir the job completes, each task has exactly one accepted replica,
# each accepted replica was paid exactly once (escrow_release per replica
# in the exported ledger) at its ask with its exchange fee, the bill adds up, the requester's
# balance is what it was funded less pay and fees, each provider holds
# exactly its releases, and the ledger verifies from the data dir and from
# the export.
. tests/e2e/lib.sh
need curl jq

FUND=100000000
TASKS=30
KILLS=5
FEE_BPS=1000   # 10%: the exchange fee shows even on small payments
ESCROW_FEE=25

# start_priced_provider NAME PRICE: a provider with one slot and its ask.
start_priced_provider() {
    mkdir -p "$T/$1"
    "$CU" provide --exchange "$EX_URL" --data "$T/$1" --slots 1 --price "$2" \
        >>"$T/$1.log" 2>&1 &
    LAST_PID=$!
    PIDS="$PIDS $LAST_PID"
    say "provider $1 (ask $2) pid $LAST_PID"
}

# run_exchange PORT: an exchange on 127.0.0.1:PORT (0: any free port) with
# the data dir, lease, fees and --devnet this test always uses; retried
# briefly while the port is still held after a kill. Sets EX_PID, EX_URL.
run_exchange() {
    re_try=0
    mkdir -p "$EX_DATA"
    while :; do
        rm -f "$EX_DATA/exchange.url"
        "$CU" exchange --listen "127.0.0.1:$1" --data "$EX_DATA" --lease 2s --devnet \
            --fee-bps "$FEE_BPS" --escrow-fee "$ESCROW_FEE" >>"$T/exchange.log" 2>&1 &
        EX_PID=$!
        PIDS="$PIDS $EX_PID"
        re_end=$(($(date +%s) + 30))
        while [ ! -s "$EX_DATA/exchange.url" ] && alive "$EX_PID" &&
            [ "$(date +%s)" -lt "$re_end" ]; do
            sleep 0.1
        done
        [ -s "$EX_DATA/exchange.url" ] && break
        re_try=$((re_try + 1))
        [ $re_try -lt 10 ] || fail "the exchange could not start on port $1"
        stop_pid "$EX_PID"
        sleep 1
    done
    EX_URL=$(head -n 1 "$EX_DATA/exchange.url")
    export CUMULUS_EXCHANGE="$EX_URL"
    wait_for 30 "exchange health at $EX_URL" curl -sf "$EX_URL/v1/health"
}

# done_or_over JOB N: N tasks done, or the job already ended.
done_or_over() { jq_job "$1" ".counts.done >= $2 or .state != \"running\""; }

run_exchange 0
URL0=$EX_URL
PORT=${EX_URL##*:}
PORT=${PORT%%/*}
say "exchange pid $EX_PID at $EX_URL"
start_priced_provider cheap 20
start_priced_provider dear 70
make_key "$FUND"

# ~0.2 s of CPU per task (0.2 CU on the reference core), so every replica
# is paid something: about 4 at the cheap ask, 14 at the dear one.
cat >"$T/crash.yaml" <<YAML
name: crash
command: ["sh", "-c", "i=0; while [ \$i -lt 150000 ]; do i=\$((i+1)); done; echo \$CUMULUS_TASK_INDEX > /out/r.txt"]
tasks: $TASKS
price: {max_per_cu: 100}
resources: {cores: 1, memory: 128MiB, time: 60s, output: 1MiB}
outputs: ["r.txt"]
YAML
submit "$T/crash.yaml"

# Kill at moments spread over the settlement: every few finished tasks.
k=1
while [ $k -le $KILLS ]; do
    target=$((k * TASKS / (KILLS + 1)))
    wait_for 120 "$target tasks done" done_or_over "$JOB" "$target"
    done_now=$(job_json "$JOB" | jq '.counts.done')
    say "kill -9 #$k of the exchange (pid $EX_PID) with $done_now tasks done"
    kill -KILL "$EX_PID"
    wait "$EX_PID" 2>/dev/null
    # Twice it stays down past the lease: leases held then expire at the
    # restart, replacements are issued, and the late reports are refused.
    if [ $k -eq 2 ] || [ $k -eq 4 ]; then
        sleep 3
    fi
    run_exchange "$PORT"
    [ "$EX_URL" = "$URL0" ] || fail "restarted exchange has URL $EX_URL, expected $URL0"
    say "exchange restarted (pid $EX_PID)"
    k=$((k + 1))
done

"$CU" wait "$JOB" >"$T/wait.out" 2>"$T/wait.err" ||
    fail "job did not complete: $(tail -5 "$T/wait.err")"
job_json "$JOB" >"$T/status.json" || fail "status --json failed"
jq -e ".state == \"done\" and (.tasks | length) == $TASKS" "$T/status.json" >/dev/null ||
    fail "job not done: $(jq -c '{state, counts, reason}' "$T/status.json")"
jq -e '[.tasks[] | [.replicas[] | select(.state == "accepted")] | length == 1] | all' \
    "$T/status.json" >/dev/null ||
    fail "some task has not exactly one accepted replica: $(cat "$T/status.json")"

# The ledger, exported; both copies verify from genesis.
"$CU" ledger export "$T/ledger.jsonl" >"$T/export.out" 2>&1 ||
    fail "ledger export: $(cat "$T/export.out")"
"$CU" ledger verify "$EX_DATA" >"$T/vdir.out" 2>&1 ||
    fail "ledger verify DATA_DIR: $(cat "$T/vdir.out")"
"$CU" ledger verify "$T/ledger.jsonl" >"$T/vfile.out" 2>&1 ||
    fail "ledger verify FILE: $(cat "$T/vfile.out")"

# Each accepted replica paid exactly once, at its ask for its CU; nothing
# else of this job paid.
jq -c --arg job "$JOB" -s '[.[].txs[] | select(.type == "escrow_release" and .job == $job)
    | {replica: (.replica | tonumber), amount, to}] | sort_by(.replica)' \
    "$T/ledger.jsonl" >"$T/releases.json"
jq -c '[.tasks[].replicas[] | select(.state == "accepted") | {replica: .id,
    amount: (((.cu_milli * .price_per_cu) + 999) / 1000 | floor), to: .provider}]
    | sort_by(.replica)' "$T/status.json" >"$T/accepted.json"
jq -e 'all(.[]; .amount > 0)' "$T/accepted.json" >/dev/null ||
    fail "an accepted replica used no CPU: $(cat "$T/accepted.json")"
[ "$(cat "$T/releases.json")" = "$(cat "$T/accepted.json")" ] ||
    fail "releases do not match the accepted replicas one to one:
released: $(cat "$T/releases.json")
accepted: $(cat "$T/accepted.json")"
jq -e 'map(.to) | unique | length == 2' "$T/releases.json" >/dev/null ||
    say "note: only one provider was paid (the other got no task)"

# The exchange fee of each replica: floor(pay x FEE_BPS / 10000), once.
jq -c --arg job "$JOB" -s '[.[].txs[] | select(.type == "fee" and .job == $job and .replica)
    | {replica: (.replica | tonumber), amount}] | sort_by(.replica)' \
    "$T/ledger.jsonl" >"$T/fees.json"
jq -c "[.[] | {replica, amount: (.amount * $FEE_BPS / 10000 | floor)} | select(.amount > 0)]" \
    "$T/releases.json" >"$T/fees_want.json"
[ "$(cat "$T/fees.json")" = "$(cat "$T/fees_want.json")" ] ||
    fail "exchange fees per replica: $(cat "$T/fees.json"), expected $(cat "$T/fees_want.json")"

# The bill adds up, and matches the ledger.
jq -e '.bill.locked == .bill.paid_total + .bill.fees + .bill.refunded and
    .bill.still_locked == 0' "$T/status.json" >/dev/null ||
    fail "the bill does not add up: $(jq -c .bill "$T/status.json")"
paid_total=$(jq '.bill.paid_total' "$T/status.json")
fees=$(jq '.bill.fees' "$T/status.json")
released=$(jq 'map(.amount) | add' "$T/releases.json")
[ "$paid_total" = "$released" ] ||
    fail "bill paid_total $paid_total, the ledger released $released"

# The requester holds what it was given less pay and fees; nothing locked.
"$CU" wallet balance --json >"$T/wallet.json" 2>"$T/wallet.err" ||
    fail "wallet balance: $(cat "$T/wallet.err")"
jq -e ".balance == $FUND - $paid_total - $fees and .escrow == 0" "$T/wallet.json" \
    >/dev/null ||
    fail "requester wallet $(jq -c . "$T/wallet.json"), expected $FUND - $paid_total - $fees"

# Each provider holds exactly what was released to it.
for p in cheap dear; do
    pid=$(provider_id "$p")
    [ -n "$pid" ] || fail "no id for provider $p"
    "$CU" wallet balance --json --key "$T/$p/identity.key" >"$T/w-$p.json" 2>"$T/w-$p.err" ||
        fail "wallet balance of $p: $(cat "$T/w-$p.err")"
    got=$(jq '.balance' "$T/w-$p.json")
    want=$(jq --arg p "$pid" '[.[] | select(.to == $p) | .amount] | add // 0' "$T/releases.json")
    [ "$got" = "$want" ] || fail "provider $p holds $got, was released $want"
done
say "money_crash ok: $KILLS kills, paid $paid_total, fees $fees to the exchange"
exit 0
