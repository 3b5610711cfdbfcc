#!/bin/bash
# NumpyRandomKeyCheckpointHandler with numpy's own generators: RandomState states (one
# with a cached gaussian, has_gauss=1) and a PCG64 bit_generator.state (128-bit integers,
# a cached uint32) saved through the mount (mkdir, _CHECKPOINT_METADATA, .json files,
# finalize) and with ckpt save; read back from the mount, through ckpt restore and through
# the library (handlers_tool np-get), set into fresh generators: the next 1,000 draws equal
# the originals' next 1,000 draws.
. "$(dirname "$0")/handlers_lib.sh"

EXP=$T/expect.npz
hnp gen "$T/src" "$EXP" || fail "generating the states"

fs_mount
t mkdir "$MNT/5"
hnp gen "$MNT/5" "$T/expect_mnt.npz" || fail "writing the states into pending step 5"
t diff -r "$T/src" "$MNT/5" >/dev/null || fail "numpy gave other states the second time"
finalize 5
[ "$(xattr "$MNT/5" user.ckpt.state)" = finalized ] || fail "step 5 is not finalized"
"$CKPT" save "$ROOT" 6 "$T/src" >/dev/null || fail "ckpt save ROOT 6"
[ "$(finalized_steps "$ROOT")" = "5 6" ] || fail "steps: $(finalized_steps "$ROOT")"
for item in leg legg pcg; do
	[ "$(xattr "$MNT/5/$item" user.ckpt.handler)" = "$NPH" ] || fail "handler of $item in step 5"
done

# From the mount, after finalize.
hnp check "$MNT/5" "$EXP" || fail "step 5 read through the mount draws differently"
wait_for test -d "$MNT/6" || fail "step 6 does not appear in the mount"
hnp check "$MNT/6" "$EXP" || fail "step 6 read through the mount draws differently"
# Through ckpt restore.
for s in 5 6; do
	"$CKPT" restore "$ROOT/$s" "$T/r$s" >/dev/null || fail "ckpt restore ROOT/$s"
	hnp check "$T/r$s" "$EXP" || fail "ckpt restore of step $s draws differently"
done
# Through the library: what it parsed, printed again, is the same state.
for s in 5 6; do
	for item in leg legg pcg; do
		tool np-get "$ROOT/$s" "$item" >"$T/np_$item" || fail "np-get $s $item"
		hnp check-state "$item" "$T/np_$item" "$EXP" ||
			fail "the library's state of $item in step $s draws differently: $(head -c 300 "$T/np_$item")"
	done
done
grep -q '^\["MT19937", \[' "$T/np_legg" || fail "np-get legg is not a legacy state: $(head -c 100 "$T/np_legg")"
grep -q '"has_uint32": 1' "$T/np_pcg" || fail "np-get pcg lost has_uint32: $(cat "$T/np_pcg")"
tool compare "$ROOT/5" "$ROOT/6" || fail "steps 5 and 6 differ"

# The checks can fail: a state from one draw later does not pass.
"$PY" - "$T/src/leg/np_random_key.json" <<'EOF' || fail "advancing a state"
import json, sys
import numpy as np
s = json.load(open(sys.argv[1]))
g = np.random.RandomState()
g.set_state((s[0], np.array(s[1], np.uint32), s[2], s[3], s[4]))
g.random_sample()
n, k, pos, hg, cg = g.get_state()
json.dump([n, k.tolist(), pos, hg, cg], open(sys.argv[1], "w"))
EOF
must_fail "draws differently" "$PY" "$HNP" check "$T/src" "$EXP"

fs_umount
echo "handlers_numpy: ok"
