#!/bin/bash
# ckptfs write side: a step built with mkdir, cp x.npy (many dtypes, big-endian,
# Fortran order), np.save straight into the mount, echo (overwritten once), a string
# leaf, an rmdir'd directory and custom metadata set with setfattr is
# pending (not latest) until `setfattr -n user.ckpt.finalize`; after a remount it
# reads back bit-exact with numpy and through `ckpt restore`, verifies, and every
# change to it fails with EROFS.
. "$(dirname "$0")/fs_write_lib.sh"

# A finalized step, so that `latest` exists before 400 does.
np arrays "$T/s100/state"
"$CKPT" save "$ROOT" 100 "$T/s100" >/dev/null

# What step 400 must hold ($T/want is the interchange directory it must equal).
W=$T/want/state
mkdir -p "$W/dtypes" "$W/params/dense"
np arrays "$T/arr"
cp "$T"/arr/*.npy "$W/dtypes/"
np npsave "$W/params/dense/kernel.npy" 1 float32 64,32
np npsave "$W/params/dense/bias.npy" 2 float64 32
np npsave "$W/big.npy" 3 float32 700000 # 2.8 MB: several chunks
printf '1000\n' >"$W/step"
printf '0.001\n' >"$W/lr"
printf 'hello, checkpoint' >"$W/name"

fs_mount
t mkdir "$MNT/400"
[ "$(xattr "$MNT/400" user.ckpt.state)" = pending ] || fail "step 400 is not pending after mkdir"
t mkdir "$MNT/400/state" "$MNT/400/state/dtypes" "$MNT/400/state/params"
t mkdir "$MNT/400/state/params/dense"
t cp "$T"/arr/*.npy "$MNT/400/state/dtypes/"
np npsave "$MNT/400/state/params/dense/kernel.npy" 1 float32 64,32
np npsave "$MNT/400/state/params/dense/bias.npy" 2 float64 32
np npsave "$MNT/400/state/big.npy" 3 float32 700000
echo_to "$MNT/400/state/step" 999
echo_to "$MNT/400/state/step" 1000 # overwritten
t mkdir "$MNT/400/state/scratch"
t rmdir "$MNT/400/state/scratch"
t setfattr -n user.ckpt.custom_metadata -v '{"note": "set by setfattr"}' "$MNT/400"
echo_to "$MNT/400/state/lr" 0.001
put "$MNT/400/state/name" 'hello, checkpoint'

# Pending: readable as written, not latest, not a step in ROOT.
[ "$(t ls "$MNT/400/state/dtypes" | wc -l)" = "$(ls "$T/arr" | wc -l)" ] ||
	fail "pending step lists $(t ls "$MNT/400/state/dtypes")"
t cmp "$W/dtypes/f32.npy" "$MNT/400/state/dtypes/f32.npy" || fail "pending leaf reads wrong"
t cmp "$W/params/dense/kernel.npy" "$MNT/400/state/params/dense/kernel.npy" ||
	fail "np.save'd pending leaf reads wrong"
[ "$(xattr "$MNT/400" user.ckpt.state)" = pending ] || fail "step 400 is no longer pending"
latest_is 100 || fail "latest -> $(t readlink "$MNT/latest"), not 100, while 400 is pending"
[ ! -e "$ROOT/400" ] || fail "ROOT/400 exists before finalize"
[ -n "$(tmp_of 400)" ] || fail "no ROOT/400.ckpt-tmp-* for the pending step"

finalize 400
[ "$(xattr "$MNT/400" user.ckpt.state)" = finalized ] || fail "step 400 is not finalized"
wait_for latest_is 400 || fail "latest -> $(t readlink "$MNT/latest") after finalizing 400"
[ -f "$ROOT/400/ckpt.db" ] || fail "ROOT/400 is not a step"
[ -z "$(tmp_of 400)" ] || fail "finalize left $(tmp_of 400)"

fs_umount
fs_mount

# Bit-exact through the mount (np.load; big-endian and Fortran by value) ...
np check "$T/want" "$MNT/400" || fail "step 400 through the mount differs"
np check "$T/s100" "$MNT/100" || fail "step 100 changed"
# ... and through ckpt restore, with the right leaf kinds.
"$CKPT" restore "$ROOT/400" "$T/out" >/dev/null || fail "ckpt restore ROOT/400"
np check "$T/want" "$T/out" || fail "ckpt restore of step 400 differs"
for kv in step:int lr:float name:string big:array dtypes/be_f8:array; do
	"$CKPT" meta "$ROOT/400/state/${kv%%:*}" >"$T/meta" || fail "ckpt meta ${kv%%:*}"
	grep -q "\"kind\": \"${kv#*:}\"" "$T/meta" || fail "${kv%%:*} is not ${kv#*:}: $(cat "$T/meta")"
done
"$CKPT" verify "$ROOT/400" >/dev/null || fail "ckpt verify ROOT/400"
"$CKPT" meta "$ROOT/400" >"$T/meta" || fail "ckpt meta ROOT/400"
"$PY" -c 'import json, sys; assert json.load(open(sys.argv[1]))["custom_metadata"] == {"note": "set by setfattr"}' "$T/meta" ||
	fail "custom metadata set with setfattr is lost: $(cat "$T/meta")"
[ "$(xattr "$MNT/400/state/dtypes/be_f8.npy" user.ckpt.dtype)" = float64 ] ||
	fail "dtype xattr of be_f8.npy"

# Finalized: every change is refused with EROFS and changes nothing.
ROFS="Read-only file system"
# shellcheck disable=SC2016
must_fail "$ROFS" bash -c 'echo 1 >"$1"' _ "$MNT/400/state/new"
# shellcheck disable=SC2016
must_fail "$ROFS" bash -c 'echo 2 >"$1"' _ "$MNT/400/state/step"
must_fail "$ROFS" cp "$T/arr/f32.npy" "$MNT/400/state/dtypes/more.npy"
must_fail "$ROFS" cp "$T/arr/i8.npy" "$MNT/400/state/dtypes/f32.npy"
must_fail "$ROFS" mkdir "$MNT/400/other"
must_fail "$ROFS" rm "$MNT/400/state/name"
must_fail "$ROFS" rm -r "$MNT/400/state/params"
must_fail "$ROFS" mv "$MNT/400/state/lr" "$MNT/400/state/lr2"
must_fail "$ROFS" truncate -s 0 "$MNT/400/state/big.npy"
must_fail "$ROFS" setfattr -n user.ckpt.custom_metadata -v '{"a": 1}' "$MNT/400"
np check "$T/want" "$MNT/400" || fail "step 400 changed after refused writes"
"$CKPT" verify "$ROOT/400" >/dev/null || fail "ckpt verify ROOT/400 after refused writes"

fs_umount
echo "fs_write_basic: ok"
