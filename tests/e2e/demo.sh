#!/bin/sh
# demo.sh - `cumulus demo` renders the fractal end to end and writes a
# 1024x1024 PNG; it leaves no process behind.
. tests/e2e/lib.sh

say "running cumulus demo"
TMPDIR="$T" "$CU" demo --out "$T/out" >"$T/demo.log" 2>&1
rc=$?
cat "$T/demo.log"
[ "$rc" -eq 0 ] || fail "cumulus demo exited with $rc"

png="$T/out/fractal.png"
[ -s "$png" ] || fail "no $png"
sig=$(od -An -tx1 -N8 "$png" | tr -d ' \n')
[ "$sig" = "89504e470d0a1a0a" ] || fail "not a PNG signature: $sig"
chunk=$(od -An -c -j12 -N4 "$png" | tr -d ' \n')
[ "$chunk" = "IHDR" ] || fail "first chunk is '$chunk', not IHDR"
# IHDR: width and height as 4-byte big-endian integers at offsets 16 and 20.
dims=$(od -An -tu1 -j16 -N8 "$png" | tr -s ' \n' ' ' | sed 's/^ //; s/ $//')
set -- $dims
w=$(($1 * 16777216 + $2 * 65536 + $3 * 256 + $4))
h=$(($5 * 16777216 + $6 * 65536 + $7 * 256 + $8))
[ "$w" -eq 1024 ] && [ "$h" -eq 1024 ] || fail "image is ${w}x${h}, expected 1024x1024"
grep -q "fractal.png" "$T/demo.log" || fail "the summary does not say where the PNG is"

# Every process the demo started is gone, and its temporary data dir too.
if pgrep -f "$T/cumulus-demo" >/dev/null; then
    pgrep -af "$T/cumulus-demo"
    fail "the demo left processes running"
fi
ls -d "$T"/cumulus-demo-* 2>/dev/null && fail "the demo left its temporary data directory"
say "demo ok: ${w}x${h} PNG"
exit 0
