#!/bin/sh
# auth.sh - unsigned requests are refused with 401; health is open.
. tests/e2e/lib.sh
need curl

start_exchange 0 3s

code=$(curl -s -o "$T/post.body" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
    --data '{"spec":{},"client_ref":"00000000000000000000000000000000"}' "$EX_URL/v1/jobs")
[ "$code" = 401 ] || fail "unsigned POST /v1/jobs answered $code: $(cat "$T/post.body")"
grep -q "unsigned" "$T/post.body" || fail "401 body does not say unsigned: $(cat "$T/post.body")"
grep -q '"error"' "$T/post.body" || fail "401 body is not an error object"

code=$(curl -s -o "$T/get.body" -w '%{http_code}' "$EX_URL/v1/jobs")
[ "$code" = 401 ] || fail "unsigned GET /v1/jobs answered $code"

# Half-signed: a key header alone is still refused.
code=$(curl -s -o "$T/half.body" -w '%{http_code}' \
    -H "X-Cumulus-Key: $(printf '%064d' 0)" "$EX_URL/v1/jobs")
[ "$code" = 401 ] || fail "GET with only X-Cumulus-Key answered $code"

code=$(curl -s -o "$T/health.body" -w '%{http_code}' "$EX_URL/v1/health")
[ "$code" = 200 ] || fail "health answered $code"
grep -q '"ok"' "$T/health.body" || fail "health body: $(cat "$T/health.body")"
say "auth ok"
exit 0
