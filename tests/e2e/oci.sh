#!/bin/sh
# oci.sh - `image: oci:./img.tar`: an OCI image layout built here from
# busybox-static (two layers, the second with a whiteout), uploaded once as
# a blob, unpacked by the provider and run as the task's root file system.
# A second job on the same image uses the image's Cmd/Env and the cached
# rootfs.
. tests/e2e/lib.sh
need curl jq tar sha256sum
BB=$(command -v busybox || true)
[ -n "$BB" ] && file_is_static=$(ldd "$BB" 2>&1 | grep -c "not a dynamic") || file_is_static=0
[ "$file_is_static" = 1 ] || fail "busybox-static is needed (apt-get install busybox-static)"

# ---- the image -------------------------------------------------------------
I="$T/img"
mkdir -p "$I/l1/bin" "$I/l1/etc" "$I/l2/etc" "$I/oci/blobs/sha256"
cp "$BB" "$I/l1/bin/busybox"
for p in sh cat ls echo env pwd; do ln -s busybox "$I/l1/bin/$p"; done
printf 'ID=cumulus-oci-test\nNAME="only in the image"\n' >"$I/l1/etc/os-release"
echo "lower layer" >"$I/l1/etc/gone.txt"
echo "stays" >"$I/l1/etc/kept.txt"
echo "from layer 2" >"$I/l2/etc/added.txt"
: >"$I/l2/etc/.wh.gone.txt"
tar -C "$I/l1" -cf "$I/l1.tar" bin etc
tar -C "$I/l2" -czf "$I/l2.tar.gz" etc

blob() { # blob FILE: stores FILE as a blob, prints its hex digest
    h=$(sha256sum "$1" | cut -d' ' -f1)
    cp "$1" "$I/oci/blobs/sha256/$h"
    echo "$h"
}
L1=$(blob "$I/l1.tar")
L2=$(blob "$I/l2.tar.gz")
cat >"$I/config.json" <<JSON
{"architecture":"amd64","os":"linux",
 "config":{"Env":["PATH=/bin","GREETING=hello from the image config"],
           "Cmd":["sh","-c","echo \$GREETING > /out/cmd.txt; pwd >> /out/cmd.txt"]},
 "rootfs":{"type":"layers","diff_ids":[]}}
JSON
CFG=$(blob "$I/config.json")
cat >"$I/manifest.json" <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
 "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:$CFG","size":$(wc -c <"$I/config.json")},
 "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:$L1","size":$(wc -c <"$I/l1.tar")},
           {"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:$L2","size":$(wc -c <"$I/l2.tar.gz")}]}
JSON
MAN=$(blob "$I/manifest.json")
printf '{"imageLayoutVersion":"1.0.0"}' >"$I/oci/oci-layout"
cat >"$I/oci/index.json" <<JSON
{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:$MAN","size":$(wc -c <"$I/manifest.json")}]}
JSON
tar -C "$I/oci" -cf "$T/img.tar" oci-layout index.json blobs

cat >"$T/job.yaml" <<'YAML'
name: oci-test
image: oci:./img.tar
command: ["sh", "-c", "cat /etc/os-release > /out/os.txt; ls /etc > /out/etc.txt; ls /usr > /out/usr.txt 2>&1; echo $GREETING > /out/env.txt"]
tasks: 1
resources: {time: 60s}
outputs: ["*.txt"]
price: {max_per_cu: 10}
YAML
cat >"$T/job2.yaml" <<'YAML'
name: oci-default-cmd
image: oci:./img.tar
tasks: 1
resources: {time: 60s}
outputs: ["*.txt"]
price: {max_per_cu: 10}
YAML

start_exchange 0 5s
start_provider p1 1
make_key

# A bad image value is refused before any upload, naming the field.
printf 'name: x\nimage: oci:./missing.tar\ncommand: [true]\noutputs: ["*"]\n' >"$T/bad.yaml"
"$CU" submit "$T/bad.yaml" >/dev/null 2>"$T/bad.err" && fail "a missing image tarball was accepted"
grep -q "bad.yaml:2: image: .*missing.tar" "$T/bad.err" || fail "bad image error: $(cat "$T/bad.err")"

submit "$T/job.yaml"
grep -q "image.tar.*uploaded" "$T/submit.err" || fail "the image was not uploaded: $(cat "$T/submit.err")"
"$CU" wait "$JOB" 2>"$T/wait.err" || fail "wait: $(tail -5 "$T/wait.err"); $(cat "$T/p1.log" | tail -5)"
"$CU" results "$JOB" --out "$T/res" >"$T/results.log" 2>&1 || fail "results: $(cat "$T/results.log")"
grep -q "ID=cumulus-oci-test" "$T/res/0/os.txt" || fail "os-release is not the image's: $(cat "$T/res/0/os.txt")"
grep -qx "kept.txt" "$T/res/0/etc.txt" || fail "etc/kept.txt missing: $(cat "$T/res/0/etc.txt")"
grep -qx "added.txt" "$T/res/0/etc.txt" || fail "layer 2's file missing: $(cat "$T/res/0/etc.txt")"
grep -qx "gone.txt" "$T/res/0/etc.txt" && fail "the whiteout did not delete etc/gone.txt"
grep -q "No such file" "$T/res/0/usr.txt" || fail "the host's /usr is visible: $(head -3 "$T/res/0/usr.txt")"
grep -qx "hello from the image config" "$T/res/0/env.txt" || fail "image Env not applied: $(cat "$T/res/0/env.txt")"
grep -q "unpacked in" "$T/p1.log" || fail "the provider did not log the unpack"
# It ran in a warm sandbox (the default) on the image's root: the static
# supervisor needs nothing from the image.
grep -q "warm sandbox started" "$T/p1.log" || fail "no warm sandbox: $(grep -i warm "$T/p1.log")"
grep -q "sandbox of its own" "$T/p1.log" && fail "the warm sandbox fell back: $(grep -i warm "$T/p1.log")"

# Same image again: no upload, the cached rootfs, and the image's Cmd.
submit "$T/job2.yaml"
grep -q "image.tar.*already there" "$T/submit.err" || fail "the image was uploaded twice: $(cat "$T/submit.err")"
"$CU" wait "$JOB" 2>"$T/wait.err" || fail "wait 2: $(tail -5 "$T/wait.err")"
"$CU" results "$JOB" --out "$T/res2" >"$T/results2.log" 2>&1 || fail "results 2: $(cat "$T/results2.log")"
[ "$(cat "$T/res2/0/cmd.txt")" = "hello from the image config
/work" ] || fail "image Cmd output: $(cat "$T/res2/0/cmd.txt")"
grep -q "found in the cache" "$T/p1.log" || fail "the second task did not reuse the cached rootfs"
[ "$(ls "$T/p1/oci" | grep -vc '^\.')" = 1 ] || fail "oci cache: $(ls -a "$T/p1/oci")"
ls -a "$T/p1/oci" | grep -q '^\.tmp' && fail "a temporary unpack directory was left behind"

# --allow-image: a provider that allows another image never takes this one;
# one that allows it (by the tarball's BLAKE2b-256, as b2sum -l 256 prints
# it) does.
need b2sum
HASH=$(b2sum -l 256 "$T/img.tar" | cut -d' ' -f1)
P1=$LAST_PID
stop_pid "$P1"
OTHER=0000000000000000000000000000000000000000000000000000000000000000
mkdir -p "$T/p2" "$T/p3"
"$CU" provide --exchange "$EX_URL" --data "$T/p2" --slots 1 --allow-image "$OTHER" >>"$T/p2.log" 2>&1 &
PIDS="$PIDS $!"
sed 's/^name: .*/name: oci-allow/' "$T/job2.yaml" >"$T/job3.yaml"
submit "$T/job3.yaml"
# Long enough for p2 to say hello and claim, were the job open to it.
sleep 4
# (p1's last long-poll may still take it on p1's behalf; that lease then
# expires and the job is requeued.)
grep -q "leased" "$T/p2.log" && fail "a provider that allows another image took the job"
"$CU" provide --exchange "$EX_URL" --data "$T/p3" --slots 1 --allow-image "$HASH" >>"$T/p3.log" 2>&1 &
PIDS="$PIDS $!"
"$CU" wait "$JOB" --timeout 60s 2>"$T/wait.err" || fail "wait 3: $(tail -5 "$T/wait.err")"
grep -q "leased" "$T/p3.log" || fail "the provider allowing the image did not run it"
grep -q "leased" "$T/p2.log" && fail "the provider allowing another image leased something"
say "oci ok"
exit 0
