#!/bin/bash
# fs_write_release.sh — finalize right after the last writer's close is never EBUSY: the
# kernel's RELEASE of a file follows its close(), and may come after the finalize the
# writer's process sends next; finalize waits (bounded, 3 s) for the step's writers.
#  1. a writer that closes 1 s after finalize was asked: the finalize waits and succeeds;
#  2. a writer that keeps its file open past the bound: EBUSY, the step stays pending;
#  3. 40 rounds of cp + an immediate setfattr finalize with a load in the background:
#     every finalize succeeds (the audit saw 2 EBUSY in 6,030 under load).
. "$(dirname "$0")/fs_write_lib.sh"

$PY -c "import numpy as np; np.save('$T/a.npy', np.arange(300000, dtype=np.float32))"
fs_mount

# 1: the writer closes while finalize waits.
t mkdir -p "$MNT/10/state"
$PY - "$MNT/10/state/a.npy" "$T/a.npy" <<'PYEOF' &
import sys, time
data = open(sys.argv[2], "rb").read()
with open(sys.argv[1], "wb") as f:
    f.write(data)
    f.flush()
    time.sleep(1.0)
PYEOF
wpid=$!
sleep 0.3
start=$EPOCHREALTIME
finalize 10
wait $wpid
cmp "$MNT/10/state/a.npy" "$T/a.npy" || fail "step 10 differs"
echo "ok 1 - finalize while the writer is still open for 0.7 s: waited and succeeded ($(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.2f", b-a}') s)"

# 2: a writer that stays open past the bound: EBUSY, still pending.
t mkdir -p "$MNT/11/state"
$PY -c "
import sys, time
f = open(sys.argv[1], 'wb'); f.write(b'1'); f.flush(); time.sleep(6)
" "$MNT/11/state/x" &
wpid=$!
sleep 0.3
must_fail "busy" setfattr -n user.ckpt.finalize -v 1 "$MNT/11"
wait $wpid
finalize 11
echo "ok 2 - a file held open past the bound: EBUSY; finalized once closed"

# 3: cp then finalize at once, under load.
load() { while :; do dd if=/dev/zero of="$T/load" bs=1M count=64 conv=fsync 2>/dev/null; done; }
load & lpid=$!
n=0
ROUNDS=${RELEASE_ROUNDS:-40}
for i in $(seq 100 $((99 + ROUNDS))); do
	t mkdir -p "$MNT/$i/state"
	t cp "$T/a.npy" "$MNT/$i/state/a.npy"
	t setfattr -n user.ckpt.finalize -v 1 "$MNT/$i" 2>"$T/err" || { kill $lpid; fail "finalize $i: $(cat "$T/err")"; }
	n=$((n + 1))
done
kill $lpid; wait $lpid 2>/dev/null || true
t cmp "$MNT/$((99 + ROUNDS))/state/a.npy" "$T/a.npy" || fail "the last step differs"
echo "ok 3 - $n rounds of cp + immediate finalize under load: 0 EBUSY"
fs_umount
echo "fs_write_release: 3 passed, 0 failed"
