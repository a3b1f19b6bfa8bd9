#!/bin/sh
# bad_spec.sh - malformed or impossible job files are refused before any
# upload, and the message names the file's line and the field.
. tests/e2e/lib.sh
need curl

start_exchange 0 3s
make_key
echo "some input" >"$T/data.txt"

# check NAME FIELD-PATTERN: submits $T/NAME.yaml, which must be refused with
# a message naming the line and matching FIELD-PATTERN.
check() {
    "$CU" submit "$T/$1.yaml" >"$T/$1.out" 2>"$T/$1.err"
    rc=$?
    [ "$rc" -ne 0 ] || fail "$1: submit accepted a bad spec (job $(cat "$T/$1.out"))"
    [ -s "$T/$1.out" ] && fail "$1: submit printed a job id for a bad spec"
    grep -Eq 'line|:[0-9]+' "$T/$1.err" || fail "$1: message names no line: $(cat "$T/$1.err")"
    grep -Eq "$2" "$T/$1.err" || fail "$1: message does not name '$2': $(cat "$T/$1.err")"
    say "$1 refused: $(head -n 1 "$T/$1.err")"
    n=$(blob_count)
    [ "$n" -eq 0 ] || fail "$1: $n blob(s) uploaded for a refused spec"
}

cat >"$T/unknown_key.yaml" <<'YAML'
name: bad
command: ["sh", "-c", "true"]
inputs:
  - {name: data.txt, path: ./data.txt}
tasks: 2
price: {max_per_cu: 10}
colour: blue
outputs: ["*.txt"]
YAML
check unknown_key colour

cat >"$T/bad_size.yaml" <<'YAML'
name: bad
command: ["sh", "-c", "true"]
inputs:
  - {name: data.txt, path: ./data.txt}
tasks: 2
price: {max_per_cu: 10}
resources: {cores: 1, memory: 12XB, time: 30s}
outputs: ["*.txt"]
YAML
check bad_size memory

cat >"$T/zero_tasks.yaml" <<'YAML'
name: bad
command: ["sh", "-c", "true"]
inputs:
  - {name: data.txt, path: ./data.txt}
tasks: 0
price: {max_per_cu: 10}
outputs: ["*.txt"]
YAML
check zero_tasks tasks

cat >"$T/missing_input.yaml" <<'YAML'
name: bad
command: ["sh", "-c", "true"]
inputs:
  - {name: data.txt, path: ./data.txt}
  - {name: nope.txt, path: ./does-not-exist.txt}
tasks: 2
price: {max_per_cu: 10}
outputs: ["*.txt"]
YAML
check missing_input 'inputs|does-not-exist'

cat >"$T/syntax.yaml" <<'YAML'
name: bad
command: ["sh", "-c", "true"
inputs:
  - {name: data.txt, path: ./data.txt}
tasks: 2
price: {max_per_cu: 10}
YAML
check syntax 'syntax|yaml|YAML|parse|expected|flow|sequence|line'

# A bad time and a bad command type, for good measure.
cat >"$T/bad_time.yaml" <<'YAML'
name: bad
command: ["sh", "-c", "true"]
tasks: 1
price: {max_per_cu: 10}
resources: {time: soon}
YAML
check bad_time time

# The exchange is unharmed and still has nothing.
curl -sf "$EX_URL/v1/health" >/dev/null || fail "the exchange is not healthy"
"$CU" status >"$T/list.txt" 2>&1 || fail "status failed: $(cat "$T/list.txt")"
grep -q 'j-' "$T/list.txt" && fail "a job exists after only bad submissions"
say "bad_spec ok"
exit 0
