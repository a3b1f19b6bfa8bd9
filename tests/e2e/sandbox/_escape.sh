# _escape.sh - helpers for the escape suite (tests/e2e/sandbox/*.sh; files
# starting with "_" are not tests). Source after tests/e2e/lib.sh.
#
# Each case is a task that tries to harm the provider. It must be contained
# (the attack fails, or a limit ends the task) and reported (the job's
# state and reason say what happened), and the provider must serve a
# normal job afterwards (escape_still_serving).

# escape_setup [PROVIDE_OPTION...]: exchange, one provider with one slot
# (data in $T/p1, pid PROV) and a requester key.
escape_setup() {
    start_exchange 0 3s
    mkdir -p "$T/p1"
    "$CU" provide --exchange "$EX_URL" --data "$T/p1" --slots 1 "$@" >>"$T/p1.log" 2>&1 &
    PROV=$!
    PIDS="$PIDS $PROV"
    make_key
    wait_for 60 "provider start" test -s "$T/p1/provider.json"
    CGROUP=$(jq -r .cgroup "$T/p1/provider.json")
    say "provider pid $PROV, cgroup $CGROUP"
}

# escape_run NAME SCRIPT_FILE [RESOURCES]: runs SCRIPT_FILE (sh) as a
# one-task job (default resources: 64 MiB, 5 s, 1 MiB output) plus any files
# in $T/extra-inputs as inputs; waits; leaves the job's JSON in
# $T/NAME.json and the task's reason in REASON, its state in STATE.
escape_run() {
    er_res=${3:-"{cores: 1, memory: 64MiB, time: 5s, output: 1MiB}"}
    cp "$2" "$T/$1.sh"
    {
        echo "name: $1"
        echo "command: [\"sh\", \"/in/attack.sh\"]"
        echo "inputs:"
        echo "  - {name: attack.sh, path: ./$1.sh}"
        if [ -f "$T/attack-bin" ]; then echo "  - {name: attack, path: ./attack-bin}"; fi
        echo "tasks: 1"
        echo "resources: $er_res"
        echo "outputs: [\"*.txt\"]"
        echo "price: {max_per_cu: 10}"
    } >"$T/$1.yaml"
    submit "$T/$1.yaml"
    "$CU" wait "$JOB" --timeout 120s >/dev/null 2>"$T/$1.wait.err"
    job_json "$JOB" >"$T/$1.json" || fail "status --json failed"
    STATE=$(jq -r '.tasks[0].state' "$T/$1.json")
    REASON=$(jq -r '.tasks[0].reason // ""' "$T/$1.json")
    say "$1: task $STATE, reason '$REASON'"
}

# escape_expect_failed REGEX: the task failed and its reason matches.
escape_expect_failed() {
    [ "$STATE" = failed ] || fail "task state '$STATE', expected failed: $(cat "$T"/*.json)"
    printf '%s\n' "$REASON" | grep -Eq "$1" || fail "reason '$REASON' does not match '$1'"
    "$CU" status "$JOB" >"$T/status.txt" 2>&1
    grep -Fq "$REASON" "$T/status.txt" || fail "'cumulus status' does not show the reason: $(cat "$T/status.txt")"
}

# escape_verdict: the task ended ok and wrote /out/verdict.txt "contained".
escape_verdict() {
    [ "$STATE" = done ] || fail "task state '$STATE' ($REASON), expected done"
    rm -rf "$T/res"
    "$CU" results "$JOB" --out "$T/res" >"$T/results.log" 2>&1 ||
        fail "results failed: $(cat "$T/results.log")"
    v=$(cat "$T/res/0/verdict.txt" 2>/dev/null)
    say "verdict: $v"
    [ "$v" = contained ] || fail "attack not contained: '$v'"
}

# escape_still_serving: the provider is alive, left no task directory or
# cgroup behind, and runs a normal job to success.
escape_still_serving() {
    alive "$PROV" || fail "the provider died"
    cat >"$T/normal.yaml" <<'YAML'
name: normal
command: ["sh", "-c", "echo fine > /out/ok.txt"]
tasks: 1
resources: {cores: 1, memory: 64MiB, time: 30s, output: 1MiB}
outputs: ["*.txt"]
price: {max_per_cu: 10}
YAML
    submit "$T/normal.yaml"
    "$CU" wait "$JOB" --timeout 120s 2>"$T/normal.err" ||
        fail "the provider no longer serves a normal job: $(tail -3 "$T/normal.err")"
    alive "$PROV" || fail "the provider died after the normal job"
    # Each slot keeps one task directory, tasks/slot-N, emptied after
    # every task (src/provider/taskdir.c): nothing else may be there, and
    # nothing of a task in its work/, out/ or in/.
    for d in "$T/p1/tasks"/*; do
        [ -e "$d" ] || continue
        case "${d##*/}" in
        slot-[0-9]*) ;;
        *) fail "task directory left behind: $(ls "$T/p1/tasks")" ;;
        esac
        left=$(find "$d/work" "$d/out" "$d/in" -mindepth 1 2>/dev/null | wc -l)
        [ "$left" -eq 0 ] || fail "task files left behind: $(find "$d" -mindepth 2 | head)"
    done
    if [ -s "$T/p1/cgroup" ]; then
        cgdir=$(sed -n 's/^memory //p' "$T/p1/cgroup")
        n=$(find "$cgdir" -mindepth 1 -maxdepth 1 -type d -name 'task-*' | wc -l)
        [ "$n" -eq 0 ] || fail "task cgroups left behind under $cgdir"
    fi
    say "provider still serving"
}

# escape_build_attack: compiles tests/e2e/sandbox/_attack.c into
# $T/attack-bin (an input of the next escape_run).
escape_build_attack() {
    need cc
    cc -O1 -o "$T/attack-bin" tests/e2e/sandbox/_attack.c || fail "cannot compile _attack.c"
}

# escape_leftovers_job NAME: runs $T/leave.sh as a job of 3 consecutive
# tasks (one slot) and fails unless each task wrote "contained" to its
# verdict.txt: nothing an earlier task left behind was visible to it.
escape_leftovers_job() {
    cat >"$T/$1.yaml" <<EOF2
name: $1
command: ["sh", "/in/leave.sh"]
inputs:
  - {name: leave.sh, path: ./leave.sh}
tasks: 3
replication: 1
resources: {cores: 1, memory: 64MiB, time: 20s, output: 1MiB}
outputs: ["*.txt"]
price: {max_per_cu: 10}
EOF2
    submit "$T/$1.yaml"
    "$CU" wait "$JOB" --timeout 120s >/dev/null 2>"$T/wait.err" ||
        fail "job failed: $(cat "$T/wait.err")"
    rm -rf "$T/res"
    "$CU" results "$JOB" --out "$T/res" >"$T/results.log" 2>&1 ||
        fail "results failed: $(cat "$T/results.log")"
    for i in 0 1 2; do
        v=$(cat "$T/res/$i/verdict.txt" 2>/dev/null)
        say "task $i: $v"
        [ "$v" = contained ] || fail "task $i saw what an earlier task left: '$v'"
    done
}
