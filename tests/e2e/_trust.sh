# _trust.sh - helpers shared by the trust tests (tests/e2e/trust_*.sh):
# staked providers, some told to misbehave with --cheat, a job whose right
# answer is known in advance, and checks on the job JSON and the ledger.
# Source it after lib.sh. (Files starting with "_" are not tests.)

STAKE=1000

# trust_provider NAME [CHEAT [ARGS...]]: a provider with its own key, funded
# from the devnet faucet and staking $STAKE; CHEAT "" or "-" for an honest
# one; ARGS go to `cumulus provide`. Sets LAST_PID; its id is provider_id
# NAME (known at once: the key is made here).
trust_provider() {
    tp_name=$1
    tp_cheat=${2:--}
    [ $# -ge 2 ] && shift 2 || shift 1
    mkdir -p "$T/$tp_name"
    chmod 711 "$T/$tp_name"
    "$CU" keygen --out "$T/$tp_name/identity.key" --insecure-plain >>"$T/keygen.log" 2>&1 ||
        fail "keygen for $tp_name failed"
    "$CU" faucet 100000 --key "$T/$tp_name/identity.key" >>"$T/faucet.log" 2>&1 ||
        fail "faucet for $tp_name failed: $(tail -2 "$T/faucet.log")"
    if [ "$tp_cheat" = - ]; then
        set -- --stake "$STAKE" "$@"
    else
        set -- --stake "$STAKE" --cheat "$tp_cheat" "$@"
    fi
    "$CU" provide --exchange "$EX_URL" --data "$T/$tp_name" --slots 1 "$@" \
        >>"$T/$tp_name.log" 2>&1 &
    LAST_PID=$!
    PIDS="$PIDS $LAST_PID"
    say "provider $tp_name ($tp_cheat) pid $LAST_PID id $(provider_id "$tp_name")"
}

# trust_job FILE TASKS [EXTRA_YAML]: a job whose task i writes
# "task i square i*i" to /out/r.txt (after SLEEP seconds, default 0), under
# the policy {min: 2, quorum: 2, max: 5} unless EXTRA_YAML sets one.
# The task is tiny (well under 1 ms of CPU in a warm sandbox); honest
# providers must still be paid for it, since CPU time rounds up to a whole
# millisecond (docs/decisions.md "CU metering").
trust_job() {
    tj_extra=${3:-"replication: {min: 2, quorum: 2, max: 5}"}
    cat >"$1" <<YAML
name: trust
command: ["sh", "-c", "sleep ${SLEEP:-0}; i=\$CUMULUS_TASK_INDEX; echo task \$i square \$((i * i)) > /out/r.txt"]
tasks: $2
price: {max_per_cu: 10}
resources: {cores: 1, memory: 64MiB, time: 60s, output: 1MiB}
outputs: ["r.txt"]
$tj_extra
YAML
}

# check_results JOB TASKS: downloads the job's results and compares each
# task's r.txt with what an honest provider writes (the task is
# deterministic, so the honest result is known without running it).
check_results() {
    rm -rf "$T/results"
    "$CU" results "$1" --out "$T/results" >"$T/results.log" 2>&1 ||
        fail "results failed: $(tail -3 "$T/results.log")"
    cr_i=0
    while [ $cr_i -lt "$2" ]; do
        cr_want="task $cr_i square $((cr_i * cr_i))"
        cr_got=$(cat "$T/results/$cr_i/r.txt" 2>/dev/null)
        [ "$cr_got" = "$cr_want" ] ||
            fail "task $cr_i result is '$cr_got', an honest provider writes '$cr_want'"
        cr_i=$((cr_i + 1))
    done
    say "all $2 results equal the honest ones"
}

# export_ledger: the exchange's ledger in $T/ledger.jsonl, verified twice
# (ledger verify from the exchange, and the export itself).
export_ledger() {
    "$CU" ledger verify "$EX_URL" >"$T/verify.log" 2>&1 ||
        fail "ledger verify failed: $(tail -5 "$T/verify.log")"
    "$CU" ledger export "$T/ledger.jsonl" >"$T/export.log" 2>&1 ||
        fail "ledger export failed: $(tail -3 "$T/export.log")"
    "$CU" ledger verify "$T/ledger.jsonl" >>"$T/verify.log" 2>&1 ||
        fail "the export does not verify: $(tail -5 "$T/verify.log")"
}

# txs FILTER: the ledger's transactions (one JSON per line) that FILTER
# selects, e.g. txs 'select(.type == "slash")'.
txs() { jq -c ".txs[] | $1" "$T/ledger.jsonl"; }

# not_paid ID JOB: no escrow_release of JOB went to ID.
not_paid() {
    np=$(txs "select(.type == \"escrow_release\" and .job == \"$2\" and .to == \"$1\")" | wc -l)
    [ "$np" -eq 0 ] || fail "provider ${1%"${1#????????????}"} was paid $np time(s) for job $2"
}

# paid_someone JOB: at least one escrow_release of JOB (honest work is paid).
paid_someone() {
    ps=$(txs "select(.type == \"escrow_release\" and .job == \"$1\")" | wc -l)
    [ "$ps" -gt 0 ] || fail "nobody was paid for job $1"
}

# records ID JOB: the statuses of ID's task records for JOB, one a line.
records() {
    txs "select(.type == \"task_record\" and .job == \"$2\" and .record.seller == \"$1\") | .record.status" |
        tr -d '"'
}

# has_record ID JOB STATUS...: ID has a task record of JOB with one of STATUS.
has_record() {
    hr_id=$1
    hr_job=$2
    shift 2
    hr_got=$(records "$hr_id" "$hr_job" | sort -u | tr '\n' ' ')
    for hr_s in "$@"; do
        case " $hr_got " in *" $hr_s "*) return 0 ;; esac
    done
    fail "provider ${hr_id%"${hr_id#????????????}"} has no '$*' record for job $hr_job (has: ${hr_got:-none})"
}

# slashed ID JOB: a slash transaction took stake from ID for JOB.
slashed() {
    sl=$(txs "select(.type == \"slash\" and .from == \"$1\" and (.job // \"$2\") == \"$2\")" | wc -l)
    [ "$sl" -gt 0 ] || fail "provider ${1%"${1#????????????}"} was not slashed for job $2"
}

# replicas_of ID JOB: how many replicas of JOB went to provider ID.
replicas_of() {
    job_json "$2" | jq "[.tasks[].replicas[]? | select(.provider == \"$1\")] | length"
}

# has_replica ID JOB: true once ID holds or held a replica of JOB.
has_replica() { [ "$(replicas_of "$1" "$2")" -gt 0 ]; }

# wait_done JOB: waits (generously) for the job to end; fails unless done.
wait_done() {
    "$CU" wait "$1" --timeout 80s >"$T/wait.out" 2>"$T/wait.err" ||
        fail "job $1 did not finish well: $(tail -3 "$T/wait.err"; job_json "$1" | jq -c '[.state, .reason, [.tasks[] | [.index, .state, .reason]]]')"
}
