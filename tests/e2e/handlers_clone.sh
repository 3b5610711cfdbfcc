#!/bin/bash
# A leaf of a PyTree item copied (copy_file_range) into an item of another handler in
# a pending step. Such items hold their files' bytes, so no clone stub is written when
# _CHECKPOINT_METADATA already names the handler: the copy is the leaf's bytes and
# the step finalizes to a readable Array item. When the handler is named only after
# the copy (a stub was written), finalize refuses the stub with a message saying to
# copy again, nothing is stored, and a second copy then finalizes.
. "$(dirname "$0")/handlers_lib.sh"

tool save "$ROOT" 1 || fail "handlers_tool save"
LEAF=$MNT/1/state/params/w.npy
fs_mount

# The handler named first: the copy is bytes, not a stub.
t mkdir "$MNT/5"
handlers_meta "$MNT/5/_CHECKPOINT_METADATA" arr="$ARRAYH" || fail "metadata of step 5"
t mkdir "$MNT/5/arr"
t cp "$LEAF" "$MNT/5/arr/checkpoint.npy" || fail "cp of a leaf into an Array item"
mode=$(t stat -c %A "$MNT/5/arr/checkpoint.npy")
[ "${mode: -1}" != t ] || fail "the copy into an Array item is a clone stub ($mode)"
finalize 5
t "$PY" - "$LEAF" "$MNT/5/arr/checkpoint.npy" <<'PY' || fail "the Array item is not the leaf"
import sys
import numpy as np
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
assert a.dtype == b.dtype and a.shape == b.shape and (a == b).all(), (a.shape, b.shape)
PY
"$CKPT" verify "$ROOT/5" >/dev/null || fail "ckpt verify ROOT/5"

# The handler named after the copy: finalize refuses the stub, then a new copy works.
t mkdir "$MNT/6" "$MNT/6/arr"
t cp "$LEAF" "$MNT/6/arr/checkpoint.npy" || fail "cp of a leaf into step 6"
handlers_meta "$MNT/6/_CHECKPOINT_METADATA" arr="$ARRAYH" || fail "metadata of step 6"
st=0
t setfattr -n user.ckpt.finalize -v 1 "$MNT/6" 2>"$T/fin.err" || st=$?
[ "$st" != 0 ] || fail "step 6 finalized with a clone stub in an Array item"
grep -q "copy it again" "$T/ckptfs.log" || fail "no reason logged: $(tail -5 "$T/ckptfs.log")"
[ "$(finalized_steps "$ROOT")" = "1 5" ] || fail "steps after the refusal: $(finalized_steps "$ROOT")"
t rm "$MNT/6/arr/checkpoint.npy"
t cp "$LEAF" "$MNT/6/arr/checkpoint.npy" || fail "second cp into step 6"
finalize 6
t cmp "$MNT/5/arr/checkpoint.npy" "$MNT/6/arr/checkpoint.npy" || fail "steps 5 and 6 differ"

# A handler this library does not know: its item is stored as its files are. An array
# leaf's stub there is refused (its stored value lacks the .npy header); a string leaf's
# stub is shared (its file is its value).
t mkdir "$MNT/7" "$MNT/7/x"
t cp "$LEAF" "$MNT/7/x/w.npy" || fail "cp of an array leaf into step 7"
t cp "$MNT/1/state/name" "$MNT/7/x/name" || fail "cp of a string leaf into step 7"
handlers_meta "$MNT/7/_CHECKPOINT_METADATA" x=my.module.MyHandler || fail "metadata of step 7"
st=0
t setfattr -n user.ckpt.finalize -v 1 "$MNT/7" 2>"$T/fin.err" || st=$?
[ "$st" != 0 ] || fail "step 7 finalized with an array stub in an unknown handler's item"
[ "$(grep -c "x/w.npy: a copy of leaf state/params/w" "$T/ckptfs.log")" -ge 1 ] ||
	fail "no reason logged for step 7: $(tail -5 "$T/ckptfs.log")"
t rm "$MNT/7/x/w.npy"
t cp "$LEAF" "$MNT/7/x/w.npy" || fail "second cp into step 7"
finalize 7
t cmp "$LEAF" "$MNT/7/x/w.npy" || fail "step 7's w.npy is not the leaf's file"
t cmp "$MNT/1/state/name" "$MNT/7/x/name" || fail "step 7's name is not the leaf's file"
echo "handlers_clone: ok"
