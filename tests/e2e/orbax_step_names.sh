#!/bin/bash
# Orbax step directories named by CheckpointManager's step_prefix and
# step_format_fixed_length ("ckpt_0000007", "run_12", "0000003"), copied from
# Orbax's own samples: `ckpt ls` lists them by their real names, the mount
# shows them under those names (latest points at the newest), `ckpt` reads
# them by path; an unfinished save (".orbax-checkpoint-tmp") is never a step.
. "$(dirname "$0")/fslib.sh"
cd "$HERE/../.."
OX=tests/data/orbax/google-orbax/checkpoint/orbax/checkpoint/experimental/v1/_src/testing/compatibility/checkpoints
S=checkpoint_metadata_present/pytree_checkpointable_has_metadata
CK="$B/ckpt"

mkdir -p "$ROOT"
cp -r "$OX/v1_checkpoints/composite_checkpoint/$S" "$ROOT/ckpt_0000007"
cp -r "$OX/v0_checkpoints/composite_checkpoint/$S" "$ROOT/run_12"
cp -r "$OX/v0_checkpoints/direct_checkpoint/$S" "$ROOT/0000003"
cp -r "$OX/v1_checkpoints/composite_checkpoint/$S" "$ROOT/ckpt_0000020.orbax-checkpoint-tmp-1778718403"
mkdir "$ROOT/ckpt_0000030" # empty: not a step
mkdir -p "$T/native/state"
$PY -c "import numpy as np; np.save('$T/native/state/w.npy', np.arange(6, dtype='<f4'))"
"$CK" save "$ROOT" 5 "$T/native" >/dev/null

# ls: real names, ascending by step; the unfinished save and the empty dir are not steps
names=$("$CK" ls "$ROOT" | awk 'NR > 1 {print $1}' | tr '\n' ' ')
[ "$names" = "0000003 5 ckpt_0000007 run_12 " ] || fail "ls shows '$names'"
"$CK" ls --json "$ROOT" | $PY -c '
import json, sys
rows = json.load(sys.stdin)
got = [(r["step"], r["name"], r["state"]) for r in rows]
want = [(3, "0000003"), (5, "5"), (7, "ckpt_0000007"), (12, "run_12")]
assert got == [w + ("finalized",) for w in want], got
' || fail "ls --json"
[ "$("$CK" cat "$ROOT/ckpt_0000007/state/a")" = "[0 1 2 3 4 5 6 7]" ] || fail "cat ckpt_0000007"
[ "$("$CK" cat "$ROOT/run_12/state/b/c")" = "[1 2 3]" ] || fail "cat run_12"

# the mount: the same names, np.load equals what Orbax saved, latest -> the newest
fs_mount
[ "$(t ls "$MNT" | tr '\n' ' ')" = "0000003 5 ckpt_0000007 latest run_12 " ] ||
	fail "mount ls: $(t ls "$MNT" | tr '\n' ' ')"
[ "$(t readlink "$MNT/latest")" = run_12 ] || fail "latest -> $(t readlink "$MNT/latest")"
t $PY - "$MNT" <<'EOF' || fail "np.load through the mount"
import sys
import numpy as np
mnt = sys.argv[1]
for s, item in (("ckpt_0000007", "state"), ("run_12", "state"), ("0000003", "default"),
                ("latest", "state")):
    assert np.array_equal(np.load(f"{mnt}/{s}/{item}/a.npy"), np.arange(8, dtype=np.int32)), s
    assert np.array_equal(np.load(f"{mnt}/{s}/{item}/b/c.npy"), np.array([1, 2, 3], np.int32)), s
assert np.array_equal(np.load(f"{mnt}/5/state/w.npy"), np.arange(6, dtype=np.float32))
EOF
[ "$(t getfattr --only-values -n user.ckpt.step "$MNT/ckpt_0000007" 2>/dev/null)" = 7 ] ||
	fail "step xattr"
[ "$(t getfattr --only-values -n user.ckpt.format "$MNT/run_12" 2>/dev/null)" = orbax ] ||
	fail "format xattr"
for n in 7 ckpt_7 ckpt_0000020.orbax-checkpoint-tmp-1778718403 ckpt_0000030 12; do
	if t stat "$MNT/$n" >/dev/null 2>&1; then fail "$n shows in the mount"; fi
done

# a new step appears under its real name, a removed one disappears
cp -r "$OX/v1_checkpoints/composite_checkpoint/$S" "$ROOT/run_0000040"
wait_for sh -c "ls '$MNT' | grep -qx run_0000040" || fail "new named step not shown"
[ "$(t readlink "$MNT/latest")" = run_0000040 ] || fail "latest after a new step"
rm -rf "$ROOT/run_12"
wait_for sh -c "! ls '$MNT' | grep -qx run_12" || fail "removed named step still shown"
t cmp "$MNT/run_0000040/state/a.npy" "$MNT/ckpt_0000007/state/a.npy" || fail "new step contents"
fs_umount

# wait, gc and rm know every naming too
[ "$("$CK" wait "$ROOT" --after 12 --timeout 1)" = 40 ] || fail "wait --after 12"
out=$("$CK" gc --keep-latest 2 "$ROOT") || fail "gc: $out"
echo "$out" | grep -qx "deleted step 0000003" || fail "gc output: $out"
echo "$out" | grep -qx "deleted step 5" || fail "gc output: $out"
names=$("$CK" ls "$ROOT" | awk 'NR > 1 && $2 == "finalized" {print $1}' | tr '\n' ' ')
[ "$names" = "ckpt_0000007 run_0000040 " ] || fail "after gc: '$names'"
[ "$("$CK" cat "$ROOT/latest/state/a")" = "[0 1 2 3 4 5 6 7]" ] || fail "cat latest (run_0000040)"
if "$CK" cat "$ROOT" 2>"$T/err"; then fail "cat of a root succeeded"; fi
grep -q "steps ckpt_0000007, run_0000040" "$T/err" || fail "root message: $(cat "$T/err")"
"$CK" rm "$ROOT/ckpt_0000007" || fail "rm ckpt_0000007"
[ ! -e "$ROOT/ckpt_0000007" ] || fail "rm left ckpt_0000007"
if "$CK" rm "$ROOT/ckpt_0000007" 2>"$T/err"; then fail "rm of a removed step succeeded"; fi
grep -q "no step ckpt_0000007" "$T/err" || fail "rm message: $(cat "$T/err")"
echo "orbax_step_names: ok"
