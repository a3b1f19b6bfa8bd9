#!/bin/sh
# money_cli.sh - the money commands end to end (issue 3): faucet, wallet
# balance/transfer/history, ledger verify (URL, export file, data dir),
# tamper detection, and the faucet refused on an exchange that is not a
# devnet.
. tests/e2e/lib.sh
need curl

# start_exchange_args DATA ARGS...: like lib.sh's start_exchange, with extra
# exchange flags (--devnet); sets EX_PID, EX_URL.
start_exchange_args() {
    sx_data=$1
    shift
    mkdir -p "$sx_data"
    rm -f "$sx_data/exchange.url"
    "$CU" exchange --listen 127.0.0.1:0 --data "$sx_data" "$@" >>"$T/exchange.log" 2>&1 &
    EX_PID=$!
    PIDS="$PIDS $EX_PID"
    sx_end=$(($(date +%s) + 30))
    while [ ! -s "$sx_data/exchange.url" ]; do
        alive "$EX_PID" || fail "the exchange exited during start (see exchange.log)"
        [ "$(date +%s)" -ge "$sx_end" ] && fail "the exchange wrote no exchange.url in 30 s"
        sleep 0.1
    done
    EX_URL=$(head -n 1 "$sx_data/exchange.url")
    wait_for 30 "exchange health at $EX_URL" curl -sf "$EX_URL/v1/health"
    say "exchange pid $EX_PID at $EX_URL ($*)"
}

# balance KEY: the account's balance as a number.
balance() {
    "$CU" wallet balance --key "$1" --json >"$T/bal.json" 2>"$T/bal.err" ||
        fail "wallet balance failed: $(cat "$T/bal.err")"
    sed -n 's/.*"balance" *: *\([0-9]*\).*/\1/p' "$T/bal.json" | head -n 1
}

start_exchange_args "$EX_DATA" --devnet
export CUMULUS_EXCHANGE="$EX_URL"
make_key 0
"$CU" keygen --out "$T/b.key" --insecure-plain >>"$T/keygen.log" 2>&1 || fail "keygen b failed"
B=$(sed -n 's/.*"id" *: *"\([0-9a-f]\{64\}\)".*/\1/p' "$T/b.key" | head -n 1)
[ -n "$B" ] || fail "no id in b.key"

# Faucet, then a transfer.
"$CU" faucet 1000 >"$T/faucet.out" 2>&1 || fail "faucet failed: $(cat "$T/faucet.out")"
[ "$(balance "$CUMULUS_KEY")" = 1000 ] || fail "balance after faucet: $(cat "$T/bal.json")"
"$CU" wallet transfer "$B" 300 >"$T/transfer.out" 2>&1 ||
    fail "transfer failed: $(cat "$T/transfer.out")"
grep -q "balance 700" "$T/transfer.out" ||
    fail "transfer did not print the new balance: $(cat "$T/transfer.out")"
[ "$(balance "$CUMULUS_KEY")" = 700 ] || fail "sender balance: $(cat "$T/bal.json")"
[ "$(balance "$T/b.key")" = 300 ] || fail "receiver balance: $(cat "$T/bal.json")"

# More than the balance: refused, nothing moves.
if "$CU" wallet transfer "$B" 5000 >"$T/over.out" 2>&1; then
    fail "a transfer of more than the balance succeeded"
fi
grep -q "exceeds" "$T/over.out" || fail "overdraft message unclear: $(cat "$T/over.out")"
[ "$(balance "$CUMULUS_KEY")" = 700 ] || fail "sender balance changed: $(cat "$T/bal.json")"
[ "$(balance "$T/b.key")" = 300 ] || fail "receiver balance changed: $(cat "$T/bal.json")"

# Bad arguments are usage errors.
"$CU" wallet transfer not-an-id 5 >/dev/null 2>&1
[ $? -eq 2 ] || fail "transfer to a bad id was not a usage error"
"$CU" wallet transfer "$B" 0 >/dev/null 2>&1
[ $? -eq 2 ] || fail "transfer of 0 was not a usage error"

# History, newest first: the transfer, then the faucet mint.
"$CU" wallet history >"$T/history.out" 2>&1 || fail "history failed: $(cat "$T/history.out")"
grep -q "transfer" "$T/history.out" || fail "history lacks the transfer: $(cat "$T/history.out")"
grep -q "faucet_mint" "$T/history.out" || fail "history lacks the faucet: $(cat "$T/history.out")"
first=$(grep -n "transfer" "$T/history.out" | head -n 1 | cut -d: -f1)
second=$(grep -n "faucet_mint" "$T/history.out" | head -n 1 | cut -d: -f1)
[ "$first" -lt "$second" ] || fail "history is not newest first: $(cat "$T/history.out")"

# Verify from the exchange, from an export file, from the data directory.
"$CU" ledger verify "$EX_URL" >"$T/vurl.out" 2>&1 || fail "ledger verify URL: $(cat "$T/vurl.out")"
grep -q "verified" "$T/vurl.out" || fail "verify URL said: $(cat "$T/vurl.out")"
"$CU" ledger export "$T/ledger.jsonl" >"$T/export.out" 2>&1 ||
    fail "ledger export: $(cat "$T/export.out")"
"$CU" ledger verify "$T/ledger.jsonl" >"$T/vfile.out" 2>&1 ||
    fail "ledger verify FILE: $(cat "$T/vfile.out")"
"$CU" ledger verify "$EX_DATA" >"$T/vdir.out" 2>&1 ||
    fail "ledger verify DATA_DIR: $(cat "$T/vdir.out")"
"$CU" ledger show >"$T/show.out" 2>&1 || fail "ledger show: $(cat "$T/show.out")"
grep -q "producer" "$T/show.out" || fail "ledger show said: $(cat "$T/show.out")"

# Tamper: one digit of the transfer's amount; verify names its block.
line=$(grep -n '"amount":300' "$T/ledger.jsonl" | head -n 1 | cut -d: -f1)
[ -n "$line" ] || fail "no amount 300 in the export"
height=$((line - 1))
sed "${line}s/\"amount\":300/\"amount\":900/" "$T/ledger.jsonl" >"$T/bad.jsonl"
cmp -s "$T/ledger.jsonl" "$T/bad.jsonl" && fail "the tamper changed nothing"
if "$CU" ledger verify "$T/bad.jsonl" >"$T/vbad.out" 2>&1; then
    fail "a tampered ledger verified: $(cat "$T/vbad.out")"
fi
grep -q "block $height" "$T/vbad.out" ||
    fail "verify did not name block $height: $(cat "$T/vbad.out")"

# An exchange without --devnet has no faucet.
start_exchange_args "$T/exchange2"
if "$CU" faucet 10 --exchange "$EX_URL" >"$T/nodev.out" 2>&1; then
    fail "the faucet worked on an exchange that is not a devnet"
fi
grep -q "devnet" "$T/nodev.out" ||
    fail "faucet refusal does not mention devnet: $(cat "$T/nodev.out")"
say "money cli ok"
exit 0
