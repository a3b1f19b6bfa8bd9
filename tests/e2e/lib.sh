# lib.sh - shared helpers for the end-to-end tests (POSIX sh). Source it
# from the repository root:   . tests/e2e/lib.sh
#
# It makes a temporary directory $T, installs a cleanup trap that stops every
# process started through it (SIGTERM, then SIGKILL after 5 s) and removes
# $T, and prints every log under $T when the test fails. Correctness never
# depends on a fixed sleep: everything waits with wait_for and a deadline
# generous enough for a slow, busy 2-core machine.
set -u

CU=${CUMULUS_BIN:-$PWD/build/cumulus}
case "$CU" in /*) ;; *) CU=$PWD/$CU ;; esac
if [ ! -x "$CU" ]; then
    echo "FAIL: $CU not found or not executable (run make)"
    exit 1
fi

T=$(mktemp -d "${TMPDIR:-/tmp}/cu-e2e-XXXXXX") || exit 1
# Sandboxed tasks run as uid 65534 and must traverse into provider dirs.
chmod 711 "$T"
PIDS=""
EX_PID=""
EX_URL=""
EX_PORT=""
EX_DATA="$T/exchange"
LAST_PID=""

# Tests must not see the user's own configuration.
unset CUMULUS_EXCHANGE CUMULUS_KEY CUMULUS_PASSPHRASE
export CUMULUS_HOME="$T/home"
mkdir -p "$CUMULUS_HOME"

say() { echo "[$(date +%H:%M:%S)] $*"; }

dump_logs() {
    for f in "$T"/*.log "$T"/*/*.log; do
        [ -f "$f" ] || continue
        echo "----- $f (last 60 lines) -----"
        tail -n 60 "$f"
    done
}

# fail MESSAGE: ends the test; cleanup prints the logs.
fail() {
    echo "FAIL: $*"
    exit 1
}

alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

# stop_pid PID: SIGTERM, up to 5 s, then SIGKILL; reaps it.
stop_pid() {
    alive "$1" || return 0
    kill -TERM "$1" 2>/dev/null
    i=0
    while alive "$1" && [ $i -lt 50 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    if alive "$1"; then
        echo "note: pid $1 ignored SIGTERM for 5 s; killing it"
        kill -KILL "$1" 2>/dev/null
    fi
    wait "$1" 2>/dev/null
    return 0
}

cleanup() {
    rc=$?
    trap - EXIT INT TERM
    for p in $PIDS; do alive "$p" && kill -TERM "$p" 2>/dev/null; done
    for p in $PIDS; do stop_pid "$p"; done
    # Anything still around that was started with $T in its command line
    # (sandboxed tasks, helpers) goes too.
    pkill -KILL -f "$T/" 2>/dev/null
    if [ "$rc" -ne 0 ]; then
        echo "=== test failed (exit $rc); logs follow ==="
        dump_logs
    fi
    rm -rf "$T"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_for SECONDS DESCRIPTION COMMAND [ARG...]: polls COMMAND every 0.2 s
# until it succeeds; fails the test when SECONDS pass first.
wait_for() {
    wf_secs=$1
    wf_what=$2
    shift 2
    wf_end=$(($(date +%s) + wf_secs))
    while ! "$@" >/dev/null 2>&1; do
        if [ "$(date +%s)" -ge "$wf_end" ]; then
            fail "timed out after ${wf_secs}s waiting for: $wf_what"
        fi
        sleep 0.2
    done
}

# need TOOL...: fails clearly when a tool the test uses is missing.
need() {
    for n in "$@"; do
        command -v "$n" >/dev/null 2>&1 || fail "this test needs '$n' (not installed)"
    done
}

# start_exchange [PORT [LEASE]]: starts a devnet exchange on 127.0.0.1:PORT
# (0 = any free port) with data in $EX_DATA and the given lease (default 3s);
# sets EX_PID, EX_URL, EX_PORT and exports CUMULUS_EXCHANGE.
start_exchange() {
    mkdir -p "$EX_DATA"
    rm -f "$EX_DATA/exchange.url"
    "$CU" exchange --listen "127.0.0.1:${1:-0}" --data "$EX_DATA" --lease "${2:-3s}" --devnet \
        >>"$T/exchange.log" 2>&1 &
    EX_PID=$!
    PIDS="$PIDS $EX_PID"
    se_end=$(($(date +%s) + 30))
    while [ ! -s "$EX_DATA/exchange.url" ]; do
        alive "$EX_PID" || fail "the exchange exited during start (see exchange.log)"
        [ "$(date +%s)" -ge "$se_end" ] && fail "the exchange wrote no exchange.url in 30 s"
        sleep 0.1
    done
    EX_URL=$(head -n 1 "$EX_DATA/exchange.url")
    EX_PORT=${EX_URL##*:}
    EX_PORT=${EX_PORT%%/*}
    export CUMULUS_EXCHANGE="$EX_URL"
    wait_for 30 "exchange health at $EX_URL" curl -sf "$EX_URL/v1/health"
    say "exchange pid $EX_PID at $EX_URL"
}

# start_provider NAME [SLOTS]: starts a provider with data in $T/NAME and
# log $T/NAME.log; sets LAST_PID. Its id is provider_id NAME once known.
start_provider() {
    mkdir -p "$T/$1"
    "$CU" provide --exchange "$EX_URL" --data "$T/$1" --slots "${2:-2}" >>"$T/$1.log" 2>&1 &
    LAST_PID=$!
    PIDS="$PIDS $LAST_PID"
    say "provider $1 pid $LAST_PID"
}

# provider_id NAME: prints the provider's key id (from its keystore).
provider_id() {
    [ -s "$T/$1/identity.key" ] || return 1
    sed -n 's/.*"id" *: *"\([0-9a-f]\{64\}\)".*/\1/p' "$T/$1/identity.key" | head -n 1
}

# provider_known NAME: true once the provider has written its identity.
provider_known() { [ -n "$(provider_id "$1")" ]; }

# make_key [AMOUNT]: a plain requester key in $T/requester.key, exported as
# CUMULUS_KEY; once an exchange runs, funded with AMOUNT (default 10^9)
# from its faucet, since a job locks its maximum cost at submission.
make_key() {
    "$CU" keygen --out "$T/requester.key" --insecure-plain >"$T/keygen.log" 2>&1 ||
        fail "keygen failed: $(cat "$T/keygen.log")"
    export CUMULUS_KEY="$T/requester.key"
    if [ -n "$EX_URL" ] && [ "${1:-1000000000}" != 0 ]; then
        "$CU" faucet "${1:-1000000000}" >"$T/faucet.log" 2>&1 ||
            fail "faucet failed: $(cat "$T/faucet.log")"
    fi
}

# submit FILE: submits a job file, sets JOB; stderr is kept in $T/submit.err.
submit() {
    JOB=$("$CU" submit "$1" 2>"$T/submit.err") ||
        fail "submit $1 failed: $(cat "$T/submit.err")"
    [ -n "$JOB" ] || fail "submit printed no job id"
    say "submitted $1 as $JOB"
}

# job_json JOB: the exchange's JSON for the job (status --json).
job_json() { "$CU" status "$1" --json; }

# jq_job JOB FILTER: runs jq -e FILTER over the job's JSON (true/false exit).
jq_job() {
    jj_json=$(job_json "$1" 2>/dev/null) || return 1
    printf '%s\n' "$jj_json" | jq -e "$2" >/dev/null 2>&1
}

# replica_in_state JOB STATE: true when some replica is in STATE.
replica_in_state() {
    jq_job "$1" "[.tasks[].replicas[]? | select(.state == \"$2\")] | length > 0"
}

# paid_once JOB STATUS_JSON: the exchange's ledger, exported, verifies, and
# holds exactly one escrow_release for each accepted replica of JOB in
# STATUS_JSON (status --json) and none for any other replica: since CPU
# time rounds up, every replica that ran is paid (docs/decisions.md "CU
# metering").
paid_once() {
    "$CU" ledger export "$T/ledger.jsonl" >"$T/export.out" 2>&1 ||
        fail "ledger export: $(cat "$T/export.out")"
    "$CU" ledger verify "$T/ledger.jsonl" >"$T/vfile.out" 2>&1 ||
        fail "ledger verify: $(cat "$T/vfile.out")"
    jq -c --arg job "$1" -s '[.[].txs[] | select(.type == "escrow_release" and .job == $job)
        | .replica | tonumber] | sort' "$T/ledger.jsonl" >"$T/released.json"
    jq -c '[.tasks[].replicas[] | select(.state == "accepted") | .id] | sort' "$2" \
        >"$T/accepted.json"
    [ "$(cat "$T/released.json")" = "$(cat "$T/accepted.json")" ] ||
        fail "releases $(cat "$T/released.json") do not match accepted $(cat "$T/accepted.json")"
}

# blob_count: regular files under the exchange's blob store, not counting
# the empty blob that every store holds from the start (docs/api.md).
EMPTY_BLOB=0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8
blob_count() {
    if [ -d "$EX_DATA/blobs" ]; then
        find "$EX_DATA/blobs" -type f ! -name '*.tmp*' ! -path "*/0e/${EMPTY_BLOB#0e}" | wc -l
    else
        echo 0
    fi
}

# gone PATTERN: true when no process has PATTERN in its command line.
gone() { ! pgrep -f "$1" >/dev/null 2>&1; }
