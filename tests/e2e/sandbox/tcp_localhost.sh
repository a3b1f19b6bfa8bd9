#!/bin/sh
# tcp_localhost.sh - escape suite: a task opens a TCP connection to 127.0.0.1 (the exchange's port on the host): refused, no network namespace access.
. tests/e2e/lib.sh
. tests/e2e/sandbox/_escape.sh
need curl jq
escape_setup
cat >"$T/a.sh" <<EOS
if bash -c 'exec 3<>/dev/tcp/127.0.0.1/$EX_PORT' 2>/dev/null; then
    echo "escaped: connected to 127.0.0.1:$EX_PORT" > /out/verdict.txt
elif bash -c 'exec 3<>/dev/tcp/127.0.0.1/22' 2>/dev/null; then
    echo "escaped: connected to 127.0.0.1:22" > /out/verdict.txt
else
    echo contained > /out/verdict.txt
fi
EOS
escape_run tcp "$T/a.sh"
escape_verdict
escape_still_serving
