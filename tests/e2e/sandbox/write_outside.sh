#!/bin/sh
# write_outside.sh - escape suite: a task writes outside its work dir: the host's /etc, /usr, /tmp, its inputs, the provider's data dir by absolute path; nothing lands on the host.
. tests/e2e/lib.sh
. tests/e2e/sandbox/_escape.sh
need curl jq
escape_setup
[ -e /etc/cu-escape-test ] && fail "/etc/cu-escape-test exists before the test"
cat >"$T/a.sh" <<EOS
v=contained
for f in /etc/cu-escape-test /usr/cu-escape-test /bin/cu-escape-test /in/x /cu-escape-test /proc/1/root/etc/cu-escape-test "$T/p1/cu-escape-test" "$T/cu-escape-test"; do
    if (echo x > "\$f") 2>/dev/null; then v="escaped: wrote \$f"; fi
done
echo "\$v" > /out/verdict.txt
EOS
escape_run write "$T/a.sh"
escape_verdict
for f in /etc/cu-escape-test /usr/cu-escape-test /cu-escape-test "$T/p1/cu-escape-test" "$T/cu-escape-test"; do
    [ -e "$f" ] && { rm -f "$f"; fail "the task wrote $f on the host"; }
done
escape_still_serving
