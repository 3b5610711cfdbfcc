#!/bin/bash
# ckptfs write side: bad input through cp into a pending step (a truncated .npy, a
# header that lies about the shape, an unknown dtype, not a .npy at all, invalid
# key names): cp fails with a message, the file is absent, the daemon says why,
# nothing of it is stored, the step's other leaves (and a leaf a bad file tried to
# overwrite) are intact, and finalize still works. Finalized steps refuse writes.
. "$(dirname "$0")/fs_write_lib.sh"

np arrays "$T/s100/state"
"$CKPT" save "$ROOT" 100 "$T/s100" >/dev/null
np bad "$T/bad"
printf 'not a numpy file\n' >"$T/bad/text.npy"
W=$T/want/state
mkdir -p "$W"
cp "$T/s100/state/f32.npy" "$T/s100/state/i8.npy" "$W/"
printf '5\n' >"$W/step"

fs_mount
t mkdir "$MNT/300" "$MNT/300/state"
t cp "$W"/*.npy "$MNT/300/state/"
echo_to "$MNT/300/state/step" 5

# Files that do not parse: cp fails, nothing of them stays.
for f in truncated lying unknown text; do
	must_fail "cp:" cp "$T/bad/$f.npy" "$MNT/300/state/$f.npy"
	absent "$MNT/300/state/$f.npy" || fail "$f.npy is still in the step"
	[ -z "$(find "$ROOT" -name "*$f.npy*")" ] || fail "$f.npy left in ROOT: $(find "$ROOT" -name "*$f.npy*")"
	grep -q "$f.npy" "$T/ckptfs.log" || fail "the daemon did not log why $f.npy was refused"
done
# np.save-like writers see the error too (at write or close).
# shellcheck disable=SC2016
must_fail "rror" "$PY" -c 'import sys
with open(sys.argv[1], "wb") as f:
    f.write(open(sys.argv[2], "rb").read())' "$MNT/300/state/py.npy" "$T/bad/truncated.npy"
absent "$MNT/300/state/py.npy" || fail "py.npy is still in the step"
# A bad file over a good leaf loses nothing already saved.
must_fail "cp:" cp "$T/bad/lying.npy" "$MNT/300/state/f32.npy"
# Names that cannot be keys: refused at create.
for name in _reserved.npy %zz.npy _METADATA.npy; do
	must_fail "cp:" cp "$W/f32.npy" "$MNT/300/state/$name"
	absent "$MNT/300/state/$name" || fail "$name exists in the step"
done
must_fail "mkdir:" mkdir "$MNT/300/state/_private"
must_fail "mkdir:" mkdir "$MNT/300/_item"

# The rest of the pending step is intact.
[ "$(t ls "$MNT/300/state" | tr '\n' ' ')" = "f32.npy i8.npy step " ] ||
	fail "pending step holds: $(t ls "$MNT/300/state")"
for f in "$W"/*; do
	t cmp "$f" "$MNT/300/state/${f##*/}" || fail "${f##*/} changed in the pending step"
done
kill -0 "$FS_PID" || fail "ckptfs died"

finalize 300
"$CKPT" restore "$ROOT/300" "$T/out" >/dev/null || fail "ckpt restore ROOT/300"
np check "$T/want" "$T/out" || fail "step 300 is not exactly the good leaves"
"$CKPT" verify "$ROOT/300" >/dev/null || fail "ckpt verify ROOT/300"

# Finalized steps refuse writes.
for s in 100 300; do
	must_fail "Read-only file system" cp "$W/f32.npy" "$MNT/$s/state/new.npy"
done
"$CKPT" verify "$ROOT/100" >/dev/null || fail "ckpt verify ROOT/100"
fs_umount
echo "fs_write_bad: ok"
