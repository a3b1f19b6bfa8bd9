#!/bin/sh
# mount.sh - escape suite: a task mounts (the mount binary, mount(2), new mount and user namespaces): all refused.
. tests/e2e/lib.sh
. tests/e2e/sandbox/_escape.sh
need curl jq
escape_build_attack
escape_setup
cat >"$T/a.sh" <<'EOS'
v=contained
/in/attack mount > /out/attack.txt 2>&1 || v="escaped: $(cat /out/attack.txt)"
mkdir -p /work/mnt
mount -t tmpfs none /work/mnt 2>/dev/null && v="escaped: mount(8) worked"
unshare -m true 2>/dev/null && v="escaped: unshare -m worked"
echo "$v" > /out/verdict.txt
EOS
escape_run mount "$T/a.sh"
escape_verdict
escape_still_serving
