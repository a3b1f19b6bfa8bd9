#!/bin/sh
# cli.sh - every command has --help; usage errors exit 2; a missing exchange
# is a clear error.
. tests/e2e/lib.sh

"$CU" help >"$T/help.txt" 2>&1 || fail "cumulus help exited non-zero"
cmds=$(sed -n 's/^  \([a-z][a-z]*\) .*/\1/p' "$T/help.txt")
[ -n "$cmds" ] || fail "cumulus help lists no commands: $(cat "$T/help.txt")"
for c in keygen exchange provide submit status wait results logs cancel demo; do
    echo "$cmds" | grep -qx "$c" || fail "cumulus help does not list '$c'"
done
for c in $cmds; do
    "$CU" "$c" --help >"$T/h.out" 2>"$T/h.err" || fail "cumulus $c --help exited $?"
    [ -s "$T/h.out" ] || fail "cumulus $c --help printed nothing on stdout"
    grep -qi "usage" "$T/h.out" || fail "cumulus $c --help has no usage line"
    "$CU" help "$c" >/dev/null 2>&1 || fail "cumulus help $c failed"
done
"$CU" --help >/dev/null || fail "cumulus --help failed"
"$CU" --version | grep -q cumulus || fail "--version"

"$CU" nosuch >/dev/null 2>"$T/err.txt"
rc=$?
[ "$rc" -eq 2 ] || fail "cumulus nosuch exited $rc, expected 2"
grep -q nosuch "$T/err.txt" || fail "error does not name the bad command"
"$CU" >/dev/null 2>&1
[ $? -eq 2 ] || fail "cumulus without a command should exit 2"

"$CU" submit >/dev/null 2>"$T/err.txt"
rc=$?
[ "$rc" -eq 2 ] || fail "cumulus submit without a file exited $rc, expected 2"
"$CU" submit --no-such-option x.yaml >/dev/null 2>&1
[ $? -eq 2 ] || fail "an unknown option should exit 2"
"$CU" wait >/dev/null 2>&1
[ $? -eq 2 ] || fail "cumulus wait without a job should exit 2"
"$CU" demo --tasks 10 >/dev/null 2>&1
[ $? -eq 2 ] || fail "demo --tasks 10 (not a square) should exit 2"

# No exchange anywhere: a clear error, exit 1.
make_key
"$CU" status >"$T/st.out" 2>"$T/st.err"
rc=$?
[ "$rc" -eq 1 ] || fail "status without an exchange exited $rc, expected 1"
grep -qi "exchange" "$T/st.err" || fail "error does not mention the exchange: $(cat "$T/st.err")"
cat "$T/st.err"

# An exchange that is down: also exit 1, not a hang or a crash.
CUMULUS_EXCHANGE=http://127.0.0.1:9 timeout 60 "$CU" status >/dev/null 2>"$T/st2.err"
rc=$?
[ "$rc" -eq 1 ] || fail "status against a dead exchange exited $rc, expected 1"
say "cli ok"
exit 0
