#!/bin/sh
# callgrind_dispatch.sh - instructions the exchange spends in dispatch's
# batched round, counted by valgrind's callgrind: a figure that does not
# move with the host's speed, for comparing two builds of the exchange
# where the replicas/s of one run swing by +-25 % from minute to minute.
#
#   [TASKS=N] bench/callgrind_dispatch.sh [CUMULUS_BIN [OUT]]
#
# CUMULUS_BIN defaults to build/cumulus, OUT to build/bench/callgrind.out,
# TASKS (dispatch's --tasks) to 2000.
# build/bench/dispatch starts a fresh exchange for each round; the first
# (single claims) runs plain, the second (batched) under callgrind. Under
# valgrind the exchange runs ~50x slower and one thread at a time, so the
# batches it sees differ a little from a native run: compare builds with
# this script, never its rate with a native one. Prints the exchange's
# total instructions per replica and the handlers' shares.
# Needs valgrind (scripts/install-deps.sh does not install it; apt-get
# install valgrind).
set -eu

bin=${1:-build/cumulus}
out=${2:-build/bench/callgrind.out}
tasks=${TASKS:-2000}

command -v valgrind >/dev/null || { echo "callgrind_dispatch: valgrind is not installed" >&2; exit 2; }
[ -x "$bin" ] || { echo "callgrind_dispatch: no executable $bin" >&2; exit 2; }
[ -x build/bench/dispatch ] || { echo "callgrind_dispatch: build build/bench/dispatch first (make build/bench/dispatch)" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bin_abs=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
out_abs=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
cat >"$work/wrap" <<EOF
#!/bin/sh
if [ -e "$work/first" ]; then
    exec valgrind --tool=callgrind --callgrind-out-file="$out_abs" "$bin_abs" "\$@"
fi
touch "$work/first"
exec "$bin_abs" "\$@"
EOF
chmod +x "$work/wrap"
CUMULUS_BIN="$work/wrap" build/bench/dispatch --tasks "$tasks" --rounds 1 >"$work/json" 2>"$work/err" || {
    cat "$work/err" >&2
    exit 1
}
total=$(callgrind_annotate "$out_abs" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
echo "exchange (batched round, $tasks tasks): $total instructions, $((total / tasks)) per replica"
# Per function: inclusive instructions per replica, and calls (the number
# of claims and reports moves with the batches, more under valgrind).
callgrind_annotate --inclusive=yes --tree=calling "$out_abs" 2>/dev/null | awk -v n="$tasks" '
    / \*  / && match($0, /:(h_reports|h_claim|gate_auth|ex_report_apply_batch|ex_claim_batch|ex_txn_commit|ex_ledger_seal)( |$)/) {
        f = substr($0, RSTART + 1, RLENGTH - 1); sub(/ $/, "", f); c = $1; gsub(",", "", c); cost[f] = c; next }
    /=> / && match($0, /:(h_reports|h_claim|gate_auth|ex_report_apply_batch|ex_claim_batch|ex_txn_commit|ex_ledger_seal) \([0-9,]+x\)/) {
        s = substr($0, RSTART + 1, RLENGTH - 1); split(s, a, " "); k = a[2]; gsub(/[(),x]/, "", k);
        calls[a[1]] += k }
    END { for (f in cost) printf "  %-22s %8d per replica  %6d calls\n", f, cost[f] / n, calls[f] }' | sort -k2 -rn
