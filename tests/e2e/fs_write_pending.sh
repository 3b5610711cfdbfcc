#!/bin/bash
# ckptfs write side: pending steps survive an unmount. A remount shows them pending
# with their files and can add to them; `ckpt ls` lists them as pending; offline,
# `ckpt finalize ROOT/400` finishes one and `ckpt rm ROOT/500` drops the other.
# A mount with -o ro refuses every write with EROFS.
. "$(dirname "$0")/fs_write_lib.sh"

np arrays "$T/s100/state"
"$CKPT" save "$ROOT" 100 "$T/s100" >/dev/null

W=$T/want/state
mkdir -p "$W"
np arrays "$W"
printf '7\n' >"$W/step"
printf '3\n' >"$W/more"

fs_mount
t mkdir "$MNT/400" "$MNT/400/state" "$MNT/500" "$MNT/500/state"
t cp "$W"/*.npy "$MNT/400/state/"
echo_to "$MNT/400/state/step" 7
put "$MNT/500/state/x" 1
fs_umount

# Unmounted: both pending in ROOT, neither a step.
"$CKPT" ls "$ROOT" >"$T/ls" || fail "ckpt ls"
grep -Eq '^400[[:space:]]+pending' "$T/ls" || fail "ckpt ls does not show 400 pending: $(cat "$T/ls")"
grep -Eq '^500[[:space:]]+pending' "$T/ls" || fail "ckpt ls does not show 500 pending: $(cat "$T/ls")"
[ ! -e "$ROOT/400" ] && [ ! -e "$ROOT/500" ] || fail "a pending step has its final name"
[ -n "$(tmp_of 400)" ] && [ -n "$(tmp_of 500)" ] || fail "pending directories are gone"

# Remounted: still pending, files as written, and writable.
fs_mount
for s in 400 500; do
	[ "$(xattr "$MNT/$s" user.ckpt.state)" = pending ] || fail "step $s is not pending after remount"
done
latest_is 100 || fail "latest is not 100"
for f in "$W"/*.npy; do
	t cmp "$f" "$MNT/400/state/${f##*/}" || fail "pending ${f##*/} differs after remount"
done
[ "$(t cat "$MNT/400/state/step")" = 7 ] || fail "pending step leaf reads '$(t cat "$MNT/400/state/step")'"
[ "$(t cat "$MNT/500/state/x")" = 1 ] || fail "pending leaf of 500 lost"
echo_to "$MNT/400/state/more" 3
fs_umount

# Offline: ckpt finalize and ckpt rm.
"$CKPT" finalize "$ROOT/400" >"$T/out" 2>&1 || fail "ckpt finalize ROOT/400: $(cat "$T/out")"
[ -f "$ROOT/400/ckpt.db" ] || fail "ckpt finalize made no step 400"
[ -z "$(tmp_of 400)" ] || fail "ckpt finalize left $(tmp_of 400)"
"$CKPT" verify "$ROOT/400" >/dev/null || fail "ckpt verify ROOT/400"
"$CKPT" restore "$ROOT/400" "$T/out400" >/dev/null || fail "ckpt restore ROOT/400"
np check "$T/want" "$T/out400" || fail "finalized step 400 differs"
"$CKPT" rm "$ROOT/500" >/dev/null 2>"$T/err" || fail "ckpt rm ROOT/500: $(cat "$T/err")"
[ -z "$(tmp_of 500)" ] && [ ! -e "$ROOT/500" ] || fail "ckpt rm left step 500"
"$CKPT" ls "$ROOT" >"$T/ls" || fail "ckpt ls"
grep -Eq '^400[[:space:]]+finalized' "$T/ls" || fail "400 is not finalized: $(cat "$T/ls")"
! grep -Eq '^500[[:space:]]' "$T/ls" || fail "500 still listed: $(cat "$T/ls")"
"$CKPT" verify "$ROOT/100" >/dev/null || fail "ckpt verify ROOT/100"

# -o ro: the new step is there, no write is allowed.
fs_mount -o ro
latest_is 400 || fail "latest -> $(t readlink "$MNT/latest"), not 400"
[ "$(t ls "$MNT")" = "$(printf '100\n400\nlatest')" ] || fail "root lists: $(t ls "$MNT")"
np check "$T/want" "$MNT/400" || fail "step 400 through the mount differs"
ROFS="Read-only file system"
must_fail "$ROFS" mkdir "$MNT/600"
# shellcheck disable=SC2016
must_fail "$ROFS" bash -c 'echo 1 >"$1"' _ "$MNT/400/state/new"
must_fail "$ROFS" setfattr -n user.ckpt.finalize -v 1 "$MNT/400"
[ -z "$(tmp_of 600)" ] || fail "mkdir on a ro mount made a pending step"
fs_umount
echo "fs_write_pending: ok"
