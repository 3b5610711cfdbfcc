#!/bin/bash
# ckptfs write side: checkpoint surgery by copy. `cp -r MNT/100 MNT/101`, replace a
# leaf with np.save, `rm -r` the optimizer state, `mv` a key and a subtree, finalize: 101 restores
# with exactly those changes, 100 is unchanged and verifies, and 101 shares 100's
# data files (hard links) instead of copying the 8 MiB leaf.
. "$(dirname "$0")/fs_write_lib.sh"

np surgery "$T/src" 8
"$CKPT" save "$ROOT" 100 "$T/src" >/dev/null
"$CKPT" restore "$ROOT/100" "$T/before" >/dev/null
"$CKPT" tree --json "$ROOT/100" >"$T/t100"

fs_mount
t cp -r "$MNT/100" "$MNT/101"
[ "$(xattr "$MNT/101" user.ckpt.state)" = pending ] || fail "step 101 is not pending"
# The copies read as the originals before any change (clone stubs serve the source).
t cmp "$MNT/100/state/params/big.npy" "$MNT/101/state/params/big.npy" ||
	fail "copied big.npy reads differently"
D=$MNT/101/state
np npsave "$D/params/dense/kernel.npy" 9 float64 5,7
t rm -r "$D/opt_state"
t mv "$D/params/dense/bias.npy" "$D/params/dense/renamed_bias.npy"
t mv "$D/params/out" "$D/params/head"
absent "$D/opt_state" || fail "rm -r opt_state not visible"
absent "$D/params/dense/bias.npy" || fail "mv of bias.npy not visible"
absent "$D/params/out" || fail "mv of params/out not visible"
t cmp "$MNT/100/state/params/dense/bias.npy" "$D/params/dense/renamed_bias.npy" ||
	fail "renamed leaf reads differently"
finalize 101

# The same changes on a plain copy are what 101 must be. Its _METADATA and
# _CHECKPOINT_METADATA are not compared: the structure is checked with ckpt tree.
cp -r "$T/before" "$T/want"
rm "$T/want/_CHECKPOINT_METADATA" "$T/want/state/_METADATA"
np npsave "$T/want/state/params/dense/kernel.npy" 9 float64 5,7
rm -r "$T/want/state/opt_state"
mv "$T/want/state/params/dense/bias.npy" "$T/want/state/params/dense/renamed_bias.npy"
mv "$T/want/state/params/out" "$T/want/state/params/head"
"$CKPT" restore "$ROOT/101" "$T/r101" >/dev/null || fail "ckpt restore ROOT/101"
np check "$T/want" "$T/r101" || fail "step 101 is not step 100 with the changes"
np check "$T/want" "$MNT/101" || fail "step 101 through the mount is not 100 with the changes"
"$CKPT" tree --json "$ROOT/101" >"$T/t101"
np treecmp "$T/t100" "$T/t101" '{"drop": ["state/opt_state"],
	"rename": {"state/params/dense/bias": "state/params/dense/renamed_bias",
		"state/params/out": "state/params/head"},
	"set": {"state/params/dense/kernel": {"dtype": "float64", "shape": [5, 7]}}}' ||
	fail "tree of 101 is not the tree of 100 with the changes"
"$CKPT" verify "$ROOT/101" >/dev/null || fail "ckpt verify ROOT/101"

# 100 is unchanged.
"$CKPT" verify "$ROOT/100" >/dev/null || fail "ckpt verify ROOT/100"
"$CKPT" restore "$ROOT/100" "$T/after" >/dev/null || fail "ckpt restore ROOT/100"
diff -r "$T/before" "$T/after" || fail "step 100 changed"

# Shared, not copied: a data file of 101 is a hard link of one of 100.
shared=$(comm -12 <(stat -c %i "$ROOT"/100/d/* | sort) <(stat -c %i "$ROOT"/101/d/* | sort))
[ -n "$shared" ] || fail "step 101 shares no data file with 100: $(ls -li "$ROOT"/100/d "$ROOT"/101/d)"
fs_umount
echo "fs_write_surgery: ok"
