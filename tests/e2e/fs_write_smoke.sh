#!/bin/bash
# ckptfs write side, quickly: a pending step made with mkdir/cp/numpy/echo,
# a bad .npy refused, `cp -r` of a finalized step made of clone stubs,
# custom metadata and finalize by setfattr, adoption at remount, -o ro.
. "$(dirname "$0")/fslib.sh"

$PY "$HERE/fs_check.py" gen "$T/src"
"$B/ckpt" save "$ROOT" 100 "$T/src" >/dev/null
fs_mount

# A step from nothing.
t mkdir "$MNT/400" "$MNT/400/state"
[ "$(t getfattr --absolute-names --only-values -n user.ckpt.state "$MNT/400")" = pending ] || fail "400 not pending"
[ "$(readlink "$MNT/latest")" = 100 ] || fail "a pending step became latest"
t cp "$T/src/state/noise.npy" "$MNT/400/state/"
t $PY -c "import numpy as np; np.save('$MNT/400/state/y.npy', np.arange(5, dtype=np.int16))"
echo 1000 >"$MNT/400/state/step"
cmp "$T/src/state/noise.npy" "$MNT/400/state/noise.npy" || fail "noise.npy reads back different"

# Bad input: refused at write (no magic) or close (short), nothing of it stays.
printf 'not numpy' >"$T/text.npy"
head -c 1000 "$T/src/state/noise.npy" >"$T/short.npy"
for f in text short; do
	t cp "$T/$f.npy" "$MNT/400/state/" 2>/dev/null && fail "cp of $f.npy succeeded"
	[ ! -e "$MNT/400/state/$f.npy" ] || fail "$f.npy stayed"
done
# Overwriting a good leaf with a bad file keeps the good one.
t cp "$T/short.npy" "$MNT/400/state/noise.npy" 2>/dev/null && fail "bad overwrite succeeded"
cmp "$T/src/state/noise.npy" "$MNT/400/state/noise.npy" || fail "bad overwrite lost noise.npy"
t mkdir "$MNT/400/state/_x" 2>/dev/null && fail "reserved name accepted"
t mkdir "$MNT/abc" 2>/dev/null && fail "mkdir of a non-step accepted"
t touch "$MNT/100/new" 2>/dev/null && fail "a finalized step accepted a file"

# cp -r of a finalized step: clone stubs (mode S_ISVTX in ROOT), same bytes.
t cp -r "$MNT/100" "$MNT/101"
stubs=$(find "$ROOT"/101.ckpt-tmp-*/files -type f -perm -1000 | wc -l)
[ "$stubs" -gt 10 ] || fail "cp -r made $stubs clone stubs"
t diff -r -x '*.safetensors' "$MNT/100" "$MNT/101" || fail "101 differs from 100"
# Changing a stub turns it into a real file.
echo 7 >"$MNT/101/state/step"
[ "$(t cat "$MNT/101/state/step")" = 7 ] || fail "overwritten stub reads $(cat "$MNT/101/state/step")"

# Metadata and finalize.
t setfattr -n user.ckpt.custom_metadata -v '{"run": "smoke"}' "$MNT/400"
t setfattr -n user.ckpt.custom_metadata -v 'nope' "$MNT/400" 2>/dev/null && fail "bad JSON taken"
# (the pending directory's entry is cached for a second: finalizing must drop it; the
# finalized view's inode differs from the pending one; both show mode 0755, docs/fs.md)
[ "$(t stat -c %a "$MNT/400/state")" = 755 ] || fail "pending state/ mode $(stat -c %a "$MNT/400/state")"
ino_pending=$(t stat -c %i "$MNT/400/state")
t setfattr -n user.ckpt.finalize -v 1 "$MNT/400"
[ "$(t stat -c %a "$MNT/400/state")" = 755 ] || fail "finalized state/ mode $(stat -c %a "$MNT/400/state")"
[ "$(t stat -c %i "$MNT/400/state")" != "$ino_pending" ] || fail "finalized state/ kept the pending inode"
[ "$(t getfattr --absolute-names --only-values -n user.ckpt.state "$MNT/400")" = finalized ] || fail "400 not finalized"
[ "$(t getfattr --absolute-names --only-values -n user.ckpt.custom_metadata "$MNT/400")" = '{"run":"smoke"}' ] ||
	fail "custom metadata lost"
wait_for test "$(readlink "$MNT/latest")" = 400 || fail "latest is not 400"
t $PY -c "import numpy as np; assert (np.load('$MNT/400/state/y.npy') == np.arange(5)).all()" ||
	fail "y.npy wrong after finalize"
[ "$(t cat "$MNT/400/state/step")" = 1000 ] || fail "step wrong after finalize"
t touch "$MNT/400/state/z" 2>/dev/null && fail "finalized 400 accepted a file"

# Unmounted, 101 stays pending; the next mount adopts it; -o ro shows it not.
fs_umount
fs_mount -o ro
[ ! -e "$MNT/101" ] || fail "-o ro shows the pending step"
t mkdir "$MNT/500" 2>/dev/null && fail "-o ro accepted mkdir"
fs_umount
fs_mount
t setfattr -n user.ckpt.finalize -v 1 "$MNT/101"
"$B/ckpt" verify "$ROOT/101" >/dev/null || fail "101 does not verify"
t diff -r -x _CHECKPOINT_METADATA -x step -x '*.safetensors' "$MNT/100" "$MNT/101" || fail "finalized 101 differs"
t rm -r "$MNT/101/state" 2>/dev/null && fail "rm in a finalized step succeeded"
t mkdir "$MNT/600" && t rmdir "$MNT/600"
[ -z "$(ls "$ROOT" | grep '^600')" ] || fail "rmdir left $(ls "$ROOT")"
fs_umount
echo "fs_write_smoke: ok"
