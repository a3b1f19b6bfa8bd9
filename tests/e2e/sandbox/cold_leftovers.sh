#!/bin/sh
# cold_leftovers.sh - escape suite, a sandbox per task (--no-warm-sandbox):
# the slot's task directory is reused (src/provider/taskdir.c), and a task
# in a sandbox of its own sees work/ and out/ themselves, so it can change
# them (files, the directory's mode). Consecutive tasks on a one-slot
# provider each look for what an earlier one left, then leave it behind:
# every task must find a fresh /work and /out.
. tests/e2e/lib.sh
. tests/e2e/sandbox/_escape.sh
need curl jq
escape_setup --no-warm-sandbox
cat >"$T/leave.sh" <<'EOS'
found=""
[ -e /work/leftover ] && found="$found work"
[ -e /out/leftover.txt ] && found="$found out"
[ "$(stat -c %a /work)" = 755 ] || found="$found work-mode:$(stat -c %a /work)"
[ "$(stat -c %a /out)" = 755 ] || found="$found out-mode:$(stat -c %a /out)"
if [ -z "$found" ]; then echo contained >/out/verdict.txt; else echo "leaked:$found" >/out/verdict.txt; fi
echo x >/work/leftover
echo x >/out/leftover.txt
mkdir /work/locked && chmod 0 /work/locked
chmod 700 /work
chmod 777 /out
exit 0
EOS
escape_leftovers_job cold-leftovers
grep -q "warm sandbox started" "$T/p1.log" && fail "a warm sandbox ran despite --no-warm-sandbox"
escape_still_serving
