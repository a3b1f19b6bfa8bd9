#!/bin/sh
# sandbox.sh - a task cannot reach the network or write outside /out and
# /work, runs with no_new_privs under the seccomp filter (no user
# namespaces), and a task past its time limit is killed and reported; each
# is contained, and the provider keeps running.
. tests/e2e/lib.sh
need curl jq

[ -e /etc/cumulus-test ] && fail "/etc/cumulus-test exists before the test; remove it"
[ -e /usr/x ] && fail "/usr/x exists before the test; remove it"

start_exchange 0 3s
start_provider p1 2
PROV=$LAST_PID
make_key

# The probe records what it could do into /out; it always exits 0 so the
# outcome is judged here, not by the task.
cat >"$T/probe.sh" <<EOF2
#!/bin/sh
awk -F: 'NR > 2 { gsub(/ /, "", \$1); print \$1 }' /proc/net/dev > /out/ifaces.txt 2>&1
if [ -d /sys/class/net ]; then ls /sys/class/net > /out/sysnet.txt 2>&1; else echo absent > /out/sysnet.txt; fi
if command -v bash > /dev/null; then
    if bash -c 'echo hi > /dev/tcp/127.0.0.1/$EX_PORT' 2> /dev/null; then echo connected; else echo refused; fi > /out/tcp.txt
else
    echo nobash > /out/tcp.txt
fi
if getent hosts example.com > /dev/null 2>&1; then echo resolved; else echo failed; fi > /out/dns.txt
for f in /etc/cumulus-test /usr/x /in/x /bin/x; do
    if (echo x > \$f) 2> /dev/null; then echo "\$f written"; else echo "\$f denied"; fi
done > /out/fs.txt
echo ok > /work/scratch && echo writable > /out/work.txt
id -u > /out/uid.txt
grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status | tr -d '\t' > /out/seccomp.txt
if unshare -U true 2> /dev/null; then echo unshared; else echo refused; fi > /out/userns.txt
exit 0
EOF2

cat >"$T/probe.yaml" <<'YAML'
name: probe
command: ["sh", "/in/probe.sh"]
inputs:
  - {name: probe.sh, path: ./probe.sh}
tasks: 1
price: {max_per_cu: 10}
resources: {cores: 1, memory: 256MiB, time: 60s, output: 1MiB}
outputs: ["*.txt"]
YAML
submit "$T/probe.yaml"
"$CU" wait "$JOB" 2>"$T/wait.err" || fail "probe job failed: $(tail -5 "$T/wait.err")"
"$CU" results "$JOB" --out "$T/res" >"$T/results.log" 2>&1 ||
    fail "results failed: $(cat "$T/results.log")"
for f in ifaces sysnet tcp dns fs work uid seccomp userns; do
    echo "--- $f.txt:"
    cat "$T/res/0/$f.txt" || fail "probe wrote no $f.txt"
done
ifaces=$(tr '\n' ' ' <"$T/res/0/ifaces.txt" | sed 's/ *$//')
[ "$ifaces" = "lo" ] || [ -z "$ifaces" ] || fail "task sees network interfaces: '$ifaces'"
sysnet=$(tr '\n' ' ' <"$T/res/0/sysnet.txt" | sed 's/ *$//')
[ "$sysnet" = "lo" ] || [ "$sysnet" = "absent" ] || [ -z "$sysnet" ] ||
    fail "/sys/class/net in the task shows '$sysnet'"
grep -qx connected "$T/res/0/tcp.txt" && fail "task connected to the exchange port $EX_PORT"
grep -qx resolved "$T/res/0/dns.txt" && fail "task resolved a name over the network"
grep -q written "$T/res/0/fs.txt" && fail "task wrote outside /out: $(grep written "$T/res/0/fs.txt")"
[ "$(grep -c denied "$T/res/0/fs.txt")" -eq 4 ] || fail "fs probe incomplete"
grep -qx writable "$T/res/0/work.txt" || fail "/work is not writable"
[ "$(cat "$T/res/0/uid.txt")" != 0 ] || fail "task ran as root"
grep -qx 'NoNewPrivs:1' "$T/res/0/seccomp.txt" || fail "task runs without no_new_privs"
grep -qx 'Seccomp:2' "$T/res/0/seccomp.txt" || fail "task runs without a seccomp filter"
grep -qx refused "$T/res/0/userns.txt" || fail "task created a user namespace"
[ -e /etc/cumulus-test ] && fail "/etc/cumulus-test appeared on the host"
[ -e /usr/x ] && fail "/usr/x appeared on the host"
alive "$PROV" || fail "provider died after the probe"

# Time limit: sleep 30 with 2 s allowed.
MARK="cu-sb-$$-slow"
cat >"$T/slow.yaml" <<YAML
name: slow
command: ["sh", "-c", ": $MARK; sleep 30"]
tasks: 1
price: {max_per_cu: 10}
resources: {cores: 1, memory: 128MiB, time: 2s, output: 1MiB}
outputs: ["*.txt"]
YAML
submit "$T/slow.yaml"
"$CU" wait "$JOB" 2>"$T/wait2.err"
rc=$?
[ "$rc" -eq 1 ] || fail "wait exited $rc for a timed-out job, expected 1"
job_json "$JOB" >"$T/status.json" || fail "status --json failed"
jq -e '.tasks[0].state == "failed"' "$T/status.json" >/dev/null ||
    fail "timed-out task not failed: $(cat "$T/status.json")"
jq -e '((.tasks[0].reason // "") | test("time"; "i")) and
       ([.tasks[0].replicas[] | .status == "timeout"] | any)' "$T/status.json" >/dev/null ||
    fail "no timeout reason: $(cat "$T/status.json")"
wait_for 30 "the timed-out task's processes to go" gone "$MARK"
alive "$PROV" || fail "provider died after the timeout"

# And the provider still works.
cat >"$T/ok.yaml" <<'YAML'
name: ok
command: ["sh", "-c", "echo fine > /out/ok.txt"]
tasks: 1
price: {max_per_cu: 10}
resources: {cores: 1, memory: 128MiB, time: 30s, output: 1MiB}
outputs: ["*.txt"]
YAML
submit "$T/ok.yaml"
"$CU" wait "$JOB" 2>/dev/null || fail "a normal job failed after the sandbox probes"
say "sandbox ok"
exit 0
