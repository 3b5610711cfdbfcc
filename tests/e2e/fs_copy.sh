#!/bin/bash
# ckptfs: `cp -r MNT/STEP dir/` is an interchange directory: it equals what
# `ckpt restore` writes, and `ckpt save` of it gives an equivalent step.
. "$(dirname "$0")/fslib.sh"

$PY "$HERE/fs_check.py" gen "$T/src"
"$B/ckpt" save "$ROOT" 10 "$T/src" --chunk-size 65536 >/dev/null
fs_mount -o ro

t cp -r "$MNT/10" "$T/copy"
"$B/ckpt" restore "$ROOT/10" "$T/restored"
diff -r -x '*.safetensors' "$T/copy" "$T/restored" || fail "cp -r differs from ckpt restore"
$PY "$HERE/fs_check.py" compare "$T/copy" "$T/src" || fail "copy differs from the source"

# Saved again (while mounted), the copy is an equivalent step; it appears.
"$B/ckpt" save "$ROOT" 11 "$T/copy" >/dev/null
wait_for test -d "$MNT/11/state" || fail "step 11 did not appear"
t cp -r "$MNT/11" "$T/copy11"
diff -r -x _CHECKPOINT_METADATA -x '*.safetensors' "$T/copy" "$T/copy11" || fail "re-saved step differs"
for f in "$T"/copy/state/dtypes/*.npy; do
	a=$(t getfattr --absolute-names --only-values -n user.ckpt.crc32c "$MNT/10/state/dtypes/${f##*/}")
	b=$(t getfattr --absolute-names --only-values -n user.ckpt.crc32c "$MNT/11/state/dtypes/${f##*/}")
	[ "$a" = "$b" ] || fail "crc32c of ${f##*/}: $a vs $b"
done

fs_umount
echo "fs_copy: ok"
