#!/bin/sh
# Runs every test and ends with "N passed, N failed".
#  - unit tests: each cmocka binary under build/asan/test (ASan+UBSan build),
#    then the sandbox's under build/test (release build, as "NAME-release");
#    every cmocka test case counts once (TAP output).
#  - end-to-end tests: each tests/e2e/*.sh and tests/e2e/sandbox/*.sh (as
#    "sandbox/NAME") counts once; they drive the real
#    binary (build/cumulus) on loopback. CUMULUS_BIN overrides it.
# Usage: tests/run.sh [PATTERN]   (runs only tests whose name contains PATTERN)
cd "$(dirname "$0")/.." || exit 1
pattern="${1:-}"
pass=0
fail=0
failed_names=""
export CMOCKA_MESSAGE_OUTPUT=TAP
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
logdir="build/test-logs"
mkdir -p "$logdir"

for t in build/asan/test/* build/test/*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    case "$t" in build/test/*) name="$name-release" ;; esac
    case "$name" in *"$pattern"*) ;; *) continue ;; esac
    out="$logdir/$name.log"
    "$t" >"$out" 2>&1
    rc=$?
    p=$(grep -c '^ok ' "$out")
    f=$(grep -c '^not ok ' "$out")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    pass=$((pass + p))
    fail=$((fail + f))
    if [ "$f" -ne 0 ]; then
        failed_names="$failed_names unit:$name"
        echo "FAIL unit $name (log: $out)"
        grep -E '^not ok|ERROR|error:|runtime error' "$out" | head -20
    else
        echo "ok   unit $name ($p cases)"
    fi
done

# tests/e2e/sandbox/*.sh (the escape suite) count as "sandbox/NAME"; files
# whose name starts with "_" there are helpers.
for t in tests/e2e/*.sh tests/e2e/sandbox/*.sh; do
    [ -f "$t" ] || continue
    name=$(basename "$t" .sh)
    [ "$name" = lib ] && continue   # shared helpers, not a test
    case "$name" in _*) continue ;; esac
    case "$t" in tests/e2e/sandbox/*) name="sandbox/$name" ;; esac
    case "$name" in *"$pattern"*) ;; *) continue ;; esac
    out="$logdir/e2e-$(echo "$name" | tr / -).log"
    start=$(date +%s)
    timeout 300 sh "$t" >"$out" 2>&1
    rc=$?
    secs=$(( $(date +%s) - start ))
    if [ "$rc" -eq 0 ]; then
        pass=$((pass + 1))
        echo "ok   e2e  $name (${secs}s)"
    else
        fail=$((fail + 1))
        failed_names="$failed_names e2e:$name"
        echo "FAIL e2e  $name (exit $rc, ${secs}s, log: $out)"
        tail -30 "$out"
    fi
done

[ -n "$failed_names" ] && echo "failed:$failed_names"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
