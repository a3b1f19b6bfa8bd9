#!/bin/sh
# Runs every benchmark under build/bench in turn (built by `make bench`).
# Each prints one JSON line on stdout and a one-line summary on stderr; the
# JSON lines are also collected in build/bench/results.jsonl.
#   bench/run.sh [--smoke] [NAME...]
# --smoke runs each with tiny sizes (checks they still work, figures are
# meaningless).
cd "$(dirname "$0")/.." || exit 1
smoke=0
if [ "${1:-}" = "--smoke" ]; then smoke=1; shift; fi
names="$*"
[ -n "$names" ] || names=$(for f in bench/*.c; do basename "$f" .c; done)
out=build/bench/results.jsonl
: >"$out"
fail=0
for n in $names; do
    args=""
    if [ "$smoke" = 1 ]; then
        case "$n" in
        sandbox) args="--runs 5" ;;
        blob) args="--size 8MiB --runs 1" ;;
        latency) args="--runs 3" ;;
        e2e_trivial) args="--tasks 20 --rounds 1" ;;
        e2e_cpu) args="--tasks 4 --task-ms 50 --rounds 1" ;;
        dispatch) args="--tasks 200 --providers 4 --rounds 2" ;;
        oci) args="--runs 2" ;;
        trust) args="--tasks 300 --solves 3 --mib 8" ;;
        ledger) args="--txs 20000 --runs 1" ;;
        scale) args="--small" ;;
        esac
    fi
    # shellcheck disable=SC2086
    if ! ./build/bench/"$n" $args | tee -a "$out"; then
        echo "bench $n FAILED" >&2
        fail=1
    fi
done
exit $fail
