#!/usr/bin/env bash
# fs_errors.sh — every refusal reaches the user where they look (issue 16): the daemon's
# start checks (missing ROOT, a step as ROOT, bad -o values named, one-line usage, a mount
# point already mounted or not empty), the log (-o log=FILE, a file when there is no
# syslog), and refusals in the mount read back without the daemon's terminal: the root's and
# a pending step's user.ckpt.errors, MNT/.ckptfs-errors and `ckpt status MNT`; mv of a step
# (EPERM, not "subdirectory of itself"), rm -rf of a finalized step (one line with the
# `ckpt rm` hint), setfattr finalize of a finalized step (succeeds, as `ckpt finalize`),
# `ckpt finalize` of a step the mount holds (names setfattr), unmount leaving a step pending.
set -euo pipefail
# shellcheck source=tests/e2e/fs_write_lib.sh
. "$(dirname "$0")/fs_write_lib.sh"
EINVAL="Invalid argument"

mkdir -p "$T/src/state"
"$PY" -c 'import numpy as np, sys; np.save(sys.argv[1], np.arange(12, dtype="<f4"))' \
	"$T/src/state/w.npy"
echo 7 >"$T/src/state/step"
"$CKPT" save "$ROOT" 100 "$T/src" >/dev/null
"$CKPT" save "$ROOT" 200 "$T/src" >/dev/null
REAL_ROOT=$(realpath "$ROOT")

# start_fails STATUS TEXT ARGS...: ckptfs ARGS exits with STATUS, stderr says TEXT
start_fails() {
	local want=$1 text=$2 st=0
	shift 2
	t "$B/ckptfs" "$@" >"$T/start.out" 2>"$T/start.err" || st=$?
	[ "$st" = "$want" ] || fail "ckptfs $* exited $st (want $want): $(cat "$T/start.err")"
	grep -qF -- "$text" "$T/start.err" || fail "ckptfs $*: stderr lacks '$text': $(cat "$T/start.err")"
	[ -n "$FS_PID" ] || ! mountpoint -q "$MNT" || fail "ckptfs $* mounted"
}

# --- start checks: nothing mounts ---
start_fails 1 "$T/nope: no such directory" "$T/nope" "$MNT" -f
start_fails 1 "is a step (it holds ckpt.db), not a checkpoint root; mount the root that holds it: $B/ckptfs $REAL_ROOT MOUNTPOINT" \
	"$ROOT/100" "$MNT" -f
start_fails 1 "not a directory" "$T/src/state/step" "$MNT" -f
start_fails 2 "bad value '12Q' for -o cache_size" "$ROOT" "$MNT" -f -o cache_size=12Q
start_fails 2 "bad value '0' for -o max_open_steps: want a whole number from 1" "$ROOT" "$MNT" -o max_open_steps=0
start_fails 2 "bad value '40' for -o compression_level: want a whole number from 0 to 19" \
	"$ROOT" "$MNT" -o compression_level=40
start_fails 2 "bad value '2ms' for -o spin_us: want a whole number from 0 to 100000" \
	"$ROOT" "$MNT" -o spin_us=2ms
start_fails 2 "need ROOT and MOUNTPOINT" "$ROOT"
start_fails 2 "unknown option" "$ROOT" "$MNT" -f -o bogus
# usage errors print the one-line usage, not the whole help
[ "$(wc -l <"$T/start.err")" -le 3 ] || fail "a usage error printed the whole help: $(cat "$T/start.err")"
grep -q -- "--help for more" "$T/start.err" || fail "no short usage: $(cat "$T/start.err")"
touch "$MNT/hidden-by-mount"
start_fails 1 "is not empty (its files would be hidden while mounted); use an empty directory, or -o nonempty" \
	"$ROOT" "$MNT" -f
fs_mount -o nonempty
fs_umount
rm "$MNT/hidden-by-mount"
"$B/ckptfs" --help >"$T/help" || fail "ckptfs --help"
grep -q "ckpt status MOUNTPOINT" "$T/help" && grep -q -- "-o log=FILE" "$T/help" ||
	fail "ckptfs --help does not say where errors go"

# --- in the background: -o log=FILE; without syslog, a file named at start ---
t "$B/ckptfs" "$ROOT" "$MNT" -o log="$T/daemon.log" 2>"$T/start.err" || fail "ckptfs -o log: $(cat "$T/start.err")"
must_fail "$EINVAL" mkdir "$MNT/best"
[ "$(xattr "$MNT" user.ckpt.log)" = "$T/daemon.log" ] || fail "user.ckpt.log: $(xattr "$MNT" user.ckpt.log)"
t "$CKPT" status "$MNT" | grep -qxF "log:      $T/daemon.log" || fail "ckpt status does not name the log file"
t fusermount3 -u "$MNT"
grep -q "mkdir best: only steps (decimal numbers) can be made at the root" "$T/daemon.log" ||
	fail "-o log=FILE: $(cat "$T/daemon.log")"
if [ ! -e /dev/log ]; then
	mkdir -m 700 "$T/run"
	XDG_RUNTIME_DIR="$T/run" t "$B/ckptfs" "$ROOT" "$MNT" 2>"$T/start.err" || fail "ckptfs: $(cat "$T/start.err")"
	grep -qF "no syslog here (/dev/log): the log goes to $T/run/ckptfs.log" "$T/start.err" ||
		fail "no note of the log file: $(cat "$T/start.err")"
	must_fail "$EINVAL" mkdir "$MNT/best2"
	t fusermount3 -u "$MNT"
	grep -q "mkdir best2: only steps" "$T/run/ckptfs.log" || fail "default log: $(cat "$T/run/ckptfs.log")"
fi

# --- mounted: refusals read back through the mount ---
fs_mount
start_fails 1 "$MNT is already a mount point; unmount it first (fusermount3 -u $MNT)" "$ROOT" "$MNT" -f
mountpoint -q "$MNT" || fail "the refused second mount unmounted the first"
[ "$(grep -c " $MNT " /proc/mounts)" = 1 ] || fail "two mounts stacked on $MNT"

must_fail "$EINVAL" mkdir "$MNT/best"
must_fail "$EINVAL" bash -c 'echo x >"$1"' _ "$MNT/notes.txt"
mkdir "$MNT/300"
must_fail "$EINVAL" bash -c 'echo x >"$1"' _ "$MNT/300/notes.txt"
mkdir "$MNT/300/state"
must_fail "$EINVAL" "$PY" -c 'import numpy as np, sys; np.save(sys.argv[1], np.array(["a"], dtype=object))' \
	"$MNT/300/state/obj.npy"
must_fail "Operation not permitted" mv "$MNT/100" "$MNT/101"
must_fail "Read-only file system" rm -rf "$MNT/100"
t setfattr -n user.ckpt.finalize -v 1 "$MNT/200" || fail "setfattr finalize of a finalized step failed"

t cat "$MNT/.ckptfs-errors" >"$T/errors"
for want in "mkdir best: only steps (decimal numbers) can be made at the root" \
	"create notes.txt: only steps can be made at the root: mkdir MNT/<step number>" \
	"step 300: notes.txt: a step holds only _CHECKPOINT_METADATA, item directories and <item>.safetensors or <item>.npz files" \
	"step 300: state/obj.npy: npy: unsupported dtype '|O' (object arrays) (not saved)" \
	"mv 100 101: steps cannot be renamed" \
	"step 100 is finalized, read-only: delete it with \`ckpt rm $REAL_ROOT/100\`"; do
	grep -qF -- "$want" "$T/errors" || fail "MNT/.ckptfs-errors lacks '$want': $(cat "$T/errors")"
done
# rm -rf refused each of the step's files: one line, counted
[ "$(grep -c "step 100 is finalized, read-only" "$T/errors")" = 1 ] ||
	fail "rm -rf logged more than one line: $(cat "$T/errors")"
grep -q "step 100 is finalized, read-only.* ([0-9]* times)$" "$T/errors" || fail "no count: $(cat "$T/errors")"
xattr "$MNT" user.ckpt.errors | cmp -s - "$T/errors" || fail "user.ckpt.errors of MNT differs from .ckptfs-errors"
[ "$(xattr "$MNT" user.ckpt.root)" = "$REAL_ROOT" ] || fail "user.ckpt.root"
xattr "$MNT/300" user.ckpt.errors >"$T/errors300"
grep -q "state/obj.npy" "$T/errors300" || fail "step 300's errors: $(cat "$T/errors300")"
! grep -q "mkdir best" "$T/errors300" || fail "step 300's errors hold another's: $(cat "$T/errors300")"
! t ls -a "$MNT" | grep -q ckptfs-errors || fail ".ckptfs-errors is listed"

run_ckpt() { t "$CKPT" "$@" >"$T/out" 2>"$T/err"; }
run_ckpt status "$MNT" || fail "ckpt status MNT: $(cat "$T/err")"
grep -qF "log:      stderr" "$T/out" &&
	grep -qF "pending:  300, not finalized" "$T/out" &&
	grep -qF "setfattr -n user.ckpt.finalize -v 1 $MNT/300" "$T/out" &&
	grep -qF "mkdir best: only steps" "$T/out" &&
	grep -qF "steps:    2 finalized, latest 200" "$T/out" || fail "ckpt status MNT: $(cat "$T/out")"
run_ckpt status --json "$MNT" || fail "ckpt status --json MNT"
"$PY" - "$T/out" "$REAL_ROOT" <<'PY' || fail "ckpt status --json: $(cat "$T/out")"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["root"] == sys.argv[2] and s["steps"] == 2 and s["latest"] == 200, s
assert s["log"] == "stderr", s
assert [p["step"] for p in s["pending"]] == [300], s
assert any("obj.npy" in e for e in s["pending"][0]["errors"]), s
assert any("mkdir best" in e for e in s["errors"]), s
PY
run_ckpt status "$ROOT" || fail "ckpt status ROOT: $(cat "$T/err")"
grep -qF "ckpt finalize $ROOT/300" "$T/out" || fail "ckpt status ROOT: $(cat "$T/out")"
st=0
run_ckpt finalize "$ROOT/300" || st=$?
[ "$st" = 1 ] && grep -qF "finalize it there: setfattr -n user.ckpt.finalize -v 1 MNT/300" "$T/err" ||
	fail "ckpt finalize of a mounted pending step: status $st: $(cat "$T/err")"

fs_umount
grep -q "step 300 stays pending" "$T/ckptfs.log" || fail "unmount did not say step 300 stays pending"
echo "fs_errors: ok"
