#!/bin/bash
# multiprocess.sh — several processes saving one step (ckpt/multiprocess.h), seen from
# the outside: 4 writer processes (tests/tools/mp_tool.c: random 1-D, 2-D, replicated and
# uneven shardings, an active subset) save PyTree steps into one ROOT; 1, 2, 3 and 8 reader
# processes restore random boxes bit-exactly; `ckpt ls` shows only finalized steps, `ckpt
# verify` passes, `ckpt cat` prints the merged array, and the mount shows each global array
# as an ordinary .npy leaf that numpy reads bit-exactly.
. "$(dirname "$0")/fslib.sh"
TOOL="$B/tests/tools/mp_tool"
[ -x "$TOOL" ] || fail "$TOOL not built"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}

timeout 300 "$TOOL" save "$ROOT" 1 11 || fail "4 writers, step 1"
timeout 300 "$TOOL" save "$ROOT" 2 12 1 || fail "an active subset, step 2"
for n in 1 2 3 8; do
	timeout 300 "$TOOL" restore "$ROOT/1" 11 "$n" || fail "$n readers of step 1"
done
timeout 300 "$TOOL" restore "$ROOT/2" 12 3 || fail "3 readers of step 2"

# only the steps: no rendezvous or attempt directory left, nothing shown as saving
ls=$("$B/ckpt" ls --json "$ROOT")
[ "$(echo "$ls" | $PY -c 'import json,sys; print(" ".join("%d:%s" % (r["step"], r["state"]) for r in json.load(sys.stdin)))')" = "1:finalized 2:finalized" ] ||
	fail "ckpt ls: $ls"
[ -z "$(find "$ROOT" -maxdepth 1 -name '*.ckpt-tmp-*')" ] || fail "leftovers: $(ls "$ROOT")"
"$B/ckpt" verify "$ROOT/1" >"$T/verify" || fail "ckpt verify: $(cat "$T/verify")"
"$B/ckpt" cat "$ROOT/1/state/arr1" --header >"$T/cat" || fail "ckpt cat"
head -1 "$T/cat" | grep -q uint32 || fail "ckpt cat header: $(head -1 "$T/cat")"

fs_mount
for s in 1 2; do
	seed=$((10 + s))
	for a in 0 1 2; do
		"$TOOL" ref "$seed" "$a" "$T/ref$a.bin" >"$T/shape"
		t $PY - "$MNT/$s/state/arr$a.npy" "$T/ref$a.bin" "$(cat "$T/shape")" <<'PYEOF' || fail "numpy: step $s arr$a"
import sys, numpy as np
leaf, ref, shape = sys.argv[1], sys.argv[2], [int(x) for x in sys.argv[3].split()]
ndim, dims = shape[0], tuple(shape[1:1 + shape[0]])
a = np.load(leaf)
assert a.dtype == np.uint32 and a.shape == dims, (a.dtype, a.shape, dims)
assert a.tobytes() == open(ref, "rb").read(), "bytes differ"
PYEOF
	done
done
fs_umount
echo "multiprocess.sh: ok"
