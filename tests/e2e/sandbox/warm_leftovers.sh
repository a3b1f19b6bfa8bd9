#!/bin/sh
# warm_leftovers.sh - escape suite, warm sandbox: consecutive tasks of one job
# share a warm sandbox on a one-slot provider. Each task first looks for
# anything an earlier task left (a background process, files in /work, /out,
# /tmp, /dev/shm, a System V message queue, a POSIX message queue, a /tmp
# whose mode the task changed), then leaves all of those behind.
# Every task must find nothing, and the provider log must show that the
# tasks really ran in one warm sandbox.
. tests/e2e/lib.sh
. tests/e2e/sandbox/_escape.sh
need curl jq
escape_setup
cat >"$T/leave.sh" <<'EOS'
found=""
for p in /proc/[0-9]*; do
    if tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -q 'sleep 7777'; then found="$found process"; fi
done
[ -e /work/leftover ] && found="$found work"
[ -e /out/leftover.txt ] && found="$found out"
[ -e /tmp/leftover ] && found="$found tmp"
[ -e /dev/shm/leftover ] && found="$found shm"
if [ -r /proc/sysvipc/msg ] && [ "$(wc -l </proc/sysvipc/msg)" -gt 1 ]; then found="$found ipc"; fi
# A POSIX message queue: creating a file on the mqueue mount makes one.
[ -d /dev/mqueue ] || found="$found no-mqueue-mount"
[ -e /dev/mqueue/leftover ] && found="$found mqueue"
# An earlier task made /tmp read-only (it owns the mount's root).
if ! touch /tmp/probe 2>/dev/null; then found="$found tmp-mode"; fi
rm -f /tmp/probe
if [ -z "$found" ]; then echo contained >/out/verdict.txt; else echo "leaked:$found" >/out/verdict.txt; fi
# Now leave all of it for the next task.
(trap '' HUP TERM; sleep 7777) >/dev/null 2>&1 &
echo x >/work/leftover
echo x >/out/leftover.txt
echo x >/tmp/leftover
echo x >/dev/shm/leftover 2>/dev/null
command -v ipcmk >/dev/null && ipcmk -Q >/dev/null
touch /dev/mqueue/leftover
mkdir /tmp/locked && chmod 0 /tmp/locked
chmod 0555 /tmp
exit 0
EOS
escape_leftovers_job warm-leftovers
n=$(grep -c "warm sandbox started for job $JOB" "$T/p1.log")
say "warm sandboxes started for the job: $n"
[ "$n" -ge 1 ] || fail "the tasks did not run in a warm sandbox: $(grep -i warm "$T/p1.log")"
[ "$n" -lt 3 ] || fail "every task had a sandbox of its own: the warm sandbox was not reused"
if grep -q "running the task in a sandbox of its own" "$T/p1.log"; then
    fail "the warm sandbox fell back to a cold one: $(grep -i warm "$T/p1.log")"
fi
escape_still_serving
