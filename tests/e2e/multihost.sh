#!/bin/bash
# multihost.sh — the multi-host example (docs/examples/multihost.c): 4 worker processes
# train a sharded model and checkpoint it together through their managers; a run that
# loses workers mid-job fails its next save after the barrier timeout (no step appears),
# and resumed with 3 workers, then continued with 5, it reaches bit-identical parameters
# to an uninterrupted run of 4.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
MH="$B/examples/multihost"
[ -x "$MH" ] || fail "$MH not built (make $B/examples/multihost)"
steps() { "$CKPT" ls --json "$1" | $PY -c 'import json,sys; print(" ".join(str(r["step"]) for r in json.load(sys.stdin) if r["state"] == "finalized"))'; }

run 0 timeout 300 "$MH" "$T/a" --workers 4 --steps 60 --every 10 --out "$T/A.bin"
grep_out '^saved step 60$'
[ "$(steps "$T/a")" = "50 60" ] || fail "uninterrupted run keeps $(steps "$T/a")"
pass "4 workers, 60 steps, the primary keeps the latest 2"

run 1 timeout 300 "$MH" "$T/b" --workers 4 --steps 60 --every 10 --die-at 35 --timeout-ms 2000
grep_err 'process [123] did not reach barrier'
[ "$(steps "$T/b")" = "20 30" ] || fail "killed run left $(steps "$T/b")"
[ -z "$(find "$T/b" -maxdepth 1 -name '*.ckpt-tmp-*')" ] || fail "left: $(ls "$T/b")"
pass "workers killed at step 35: the save of step 40 fails naming one, no step 40"

run 0 timeout 300 "$MH" "$T/b" --workers 3 --steps 45 --every 10
grep_out '^worker 0: resumed at step 30$'
run 0 timeout 300 "$MH" "$T/b" --workers 5 --steps 60 --every 10 --out "$T/B.bin"
grep_out '^worker 4: resumed at step 40$'
cmp "$T/A.bin" "$T/B.bin" || fail "resumed run differs from the uninterrupted one"
[ "$(steps "$T/b")" = "50 60" ] || fail "resumed run keeps $(steps "$T/b")"
pass "resumed with 3 workers, then 5: bit-identical to 4 uninterrupted"
finish multihost.sh
