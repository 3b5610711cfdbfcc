#!/bin/bash
# fs_kill_storm.sh — kill -9 of the ckptfs daemon while `cp -r` writes into a pending step
# (even trials) and while a finalize (`setfattr user.ckpt.finalize`) runs (odd trials), at a
# random moment in [0, 1.2 x the operation's measured duration]. After every kill: a lazy
# unmount of the dead mount point, then, before remounting, on disk: the step is either
# still pending (ROOT/S.ckpt-tmp-*/files) or finalized (ROOT/S), never both, and if
# finalized it verifies and holds every byte of the source (no partial step is ever
# visible as finalized); the base step and the previous trial's step verify. Remounted:
# the mount shows the step as pending or finalized accordingly; a pending one is finished
# by copying again and finalizing (the retry), and every file of the step then equals the
# source byte for byte through the mount. FS_KILL_TRIALS (default 6; tests/stress/ runs
# 200). Prints the trials, where the kills landed, and the failures.
. "$(dirname "$0")/fs_write_lib.sh"

N=${FS_KILL_TRIALS:-6}
SRC=$T/src
$PY - "$SRC" <<'PYEOF'
import os, sys, numpy as np
src = sys.argv[1]
os.makedirs(f"{src}/state/layers", exist_ok=True)
np.save(f"{src}/state/w.npy", np.arange(2_000_000, dtype=np.float32))
for i in range(12):
    np.save(f"{src}/state/layers/l{i}.npy", np.random.default_rng(i).standard_normal(40_000))
np.save(f"{src}/state/b.npy", np.arange(10, dtype=np.int64))
PYEOF
FILES=$(cd "$SRC" && find state -type f | sort)
"$CKPT" save "$ROOT" 1 "$SRC" >/dev/null

# same_as_src DIR: every source file equals DIR/file (DIR on the mount: under timeout).
same_as_src() {
	local f
	for f in $FILES; do
		t cmp -s "$SRC/$f" "$1/$f" || return 1
	done
}

kill_daemon() {
	kill -9 "$FS_PID" 2>/dev/null || true
	wait "$FS_PID" 2>/dev/null || true
	FS_PID=
}

# Only once the operation has ended: a `cp -r` still running after the unmount would
# write into the mount point's own directory.
lazy_umount() {
	timeout 10 fusermount3 -u -z "$MNT" 2>/dev/null || timeout 10 umount -l "$MNT" ||
		fail "lazy unmount of $MNT failed"
	[ -z "$(ls -A "$MNT")" ] || fail "files under the unmounted mount point: $(ls -A "$MNT")"
}

# secs START: seconds since START ($EPOCHREALTIME), as a decimal.
secs() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.4f", b - a }'; }

fs_mount
# Calibration: how long a copy and a finalize of this step take here, unkilled.
t mkdir "$MNT/2"
t0=$EPOCHREALTIME
t cp -r "$SRC/state" "$MNT/2/"
cp_time=$(secs "$t0")
t0=$EPOCHREALTIME
finalize 2
fin_time=$(secs "$t0")
same_as_src "$MNT/2" || fail "calibration step 2 differs from the source"
echo "calibration: cp -r ${cp_time}s, finalize ${fin_time}s"

i=0 fails=0 during_cp=0 after_cp=0 during_fin=0 after_fin=0 left_pending=0 left_final=0
report() {
	echo "fs kill storm: $1 trials (kill during cp: $during_cp, cp done before the kill: $after_cp;" \
		"during finalize: $during_fin, finalize done before the kill: $after_fin;" \
		"left pending and retried: $left_pending, left finalized: $left_final), $fails failures"
}
trap 'st=$?; [ $st -eq 0 ] || { fails=1; report "$i of $N"; }; (exit $st); fs_cleanup' EXIT
prev=2
for i in $(seq "$N"); do
	S=$((100 + i))
	t mkdir "$MNT/$S"
	if [ $((i % 2)) = 0 ]; then
		what=cp
		d=$(awk -v m="$cp_time" -v r=$RANDOM 'BEGIN { printf "%.4f", 1.2 * m * r / 32768 }')
		timeout 30 cp -r "$SRC/state" "$MNT/$S/" 2>/dev/null &
	else
		what=finalize
		t cp -r "$SRC/state" "$MNT/$S/"
		d=$(awk -v m="$fin_time" -v r=$RANDOM 'BEGIN { printf "%.4f", 1.2 * m * r / 32768 }')
		timeout 30 setfattr -n user.ckpt.finalize -v 1 "$MNT/$S" 2>/dev/null &
	fi
	opid=$!
	sleep "$d"
	kill_daemon
	st=0
	wait $opid || st=$?
	[ $st -ne 124 ] || fail "trial $i: $what hung after the daemon died"
	lazy_umount
	case $what.$st in
	cp.0) after_cp=$((after_cp + 1)) ;;
	cp.*) during_cp=$((during_cp + 1)) ;;
	finalize.0) after_fin=$((after_fin + 1)) ;;
	*) during_fin=$((during_fin + 1)) ;;
	esac

	# On disk, nothing mounted: pending or finalized, never both; finalized means complete.
	pend=$(find "$ROOT" -maxdepth 1 -name "$S.ckpt-tmp-*" ! -name '*-del-*' | while read -r p; do
		[ -d "$p/files" ] && echo "$p"; done)
	if [ -d "$ROOT/$S" ]; then
		[ -z "$pend" ] || fail "trial $i ($what, ${d}s): step $S is both finalized and pending ($pend)"
		"$CKPT" verify "$ROOT/$S" >"$T/v" 2>&1 || fail "trial $i ($what, ${d}s): finalized step $S does not verify: $(cat "$T/v")"
		"$CKPT" restore "$ROOT/$S" "$T/r" >/dev/null 2>&1 || fail "trial $i: restore of $S failed"
		same_as_src "$T/r" || fail "trial $i ($what, ${d}s): finalized step $S is not the whole source"
		rm -rf "$T/r"
		state=finalized
	else
		[ -n "$pend" ] || fail "trial $i ($what, ${d}s): step $S is neither pending nor finalized"
		[ "$(echo "$pend" | wc -l)" = 1 ] || fail "trial $i: step $S is pending twice: $pend"
		[ "$what.$st" != finalize.0 ] || fail "trial $i: finalize of $S succeeded but no ROOT/$S"
		state=pending
	fi
	for s in 1 $prev; do
		"$CKPT" verify "$ROOT/$s" >"$T/v" 2>&1 || fail "trial $i: earlier step $s does not verify: $(cat "$T/v")"
	done

	# Remounted: the same state; a pending step is finished by a retry.
	fs_mount
	[ "$(xattr "$MNT/$S" user.ckpt.state)" = "$state" ] ||
		fail "trial $i: step $S is $(xattr "$MNT/$S" user.ckpt.state) through the mount, $state on disk"
	if [ $state = pending ]; then
		t cp -r "$SRC/state" "$MNT/$S/"
		finalize "$S"
		left_pending=$((left_pending + 1))
	else
		left_final=$((left_final + 1))
	fi
	same_as_src "$MNT/$S" || fail "trial $i ($what, ${d}s, left $state): step $S differs from the source through the mount"
	"$CKPT" verify "$ROOT/$S" >/dev/null 2>&1 || fail "trial $i: step $S does not verify after the retry"
	# Keep the root small: the base step 1, the calibration step 2 and the last two trials.
	if [ $i -gt 2 ]; then
		"$CKPT" rm "$ROOT/$((S - 2))" >/dev/null || fail "ckpt rm of step $((S - 2))"
	fi
	prev=$S
done
fs_umount
"$CKPT" verify "$ROOT" >/dev/null || fail "the root does not verify at the end"
report "$N"
echo "fs_kill_storm: $N passed, 0 failed"
