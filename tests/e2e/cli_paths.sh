#!/usr/bin/env bash
# cli_paths.sh — `ckpt` takes the paths users have at hand (issue 16): `latest` for the
# newest step, paths inside a ckptfs mount (MNT/100/state/w.npy, MNT/latest, MNT for a
# root), and a command pointed at the wrong level says what it found and what it expected
# (exit 1): a root where a step is wanted, a step or a plain directory where a root is, the
# parent of a root, a pending step; a missing leaf is named once.
set -euo pipefail
# shellcheck source=tests/e2e/fs_write_lib.sh
. "$(dirname "$0")/fs_write_lib.sh"

mkdir -p "$T/src/state" "$T/plain" "$T/empty"
"$PY" -c 'import numpy as np, sys; np.save(sys.argv[1], np.arange(12, dtype="<f4") / 3)' \
	"$T/src/state/w.npy"
echo 7 >"$T/src/state/step"
"$CKPT" save "$ROOT" 100 "$T/src" >/dev/null
"$PY" -c 'import numpy as np, sys; np.save(sys.argv[1], np.arange(12, dtype="<f4") * 2)' \
	"$T/src/state/w.npy"
"$CKPT" save "$ROOT" 200 "$T/src" >/dev/null
echo hello >"$T/plain/notes.txt"
REAL_ROOT=$(realpath "$ROOT")

# expect STATUS TEXT CMD...: ckpt CMD exits STATUS and its stderr holds TEXT (fixed string)
expect() {
	local want=$1 text=$2 st=0
	shift 2
	t "$CKPT" "$@" >"$T/out" 2>"$T/err" || st=$?
	[ "$st" = "$want" ] || fail "ckpt $* exited $st (want $want): $(cat "$T/err")"
	[ -z "$text" ] || grep -qF -- "$text" "$T/err" || fail "ckpt $*: stderr lacks '$text': $(cat "$T/err")"
}

# --- the wrong level: what was found, what was expected; exit 1, never an empty success ---
expect 1 "ckpt: '$ROOT/100' is a step, not a checkpoint root: its root is $REAL_ROOT" ls "$ROOT/100"
expect 1 "ckpt: '$ROOT/100/state' is inside step $ROOT/100, not a checkpoint root" ls "$ROOT/100/state"
expect 1 "ckpt: '$T/plain' holds no steps (a checkpoint root holds step directories such as 100/ with ckpt.db)" ls "$T/plain"
expect 1 "ckpt: '$T' holds no steps, but holds checkpoint roots such as '$T/root'" ls "$T"
expect 1 "ckpt: $T/nope: no such directory" ls "$T/nope"
expect 1 "ckpt: '$T/plain' holds no steps" gc "$T/plain" --keep-latest 1
expect 0 "" ls "$T/empty" # a root without steps yet
expect 1 "ckpt: '$ROOT' is a checkpoint root (steps 100, 200), not a step: give a step, e.g. $ROOT/200 or $ROOT/latest" tree "$ROOT"
expect 1 "ckpt: '$T' holds checkpoint roots (such as root), not steps: give a step, e.g. $T/root/latest" cat "$T"
expect 1 "ckpt: '$T/plain/notes.txt' is not in a checkpoint step (no directory with ckpt.db on the path; expected ROOT/STEP[/ITEM[/PATH]])" cat "$T/plain/notes.txt"
expect 1 "ckpt: no 'zz' in item 'state' of step $ROOT/100" cat "$ROOT/100/state/zz"
[ "$(cat "$T/err")" = "ckpt: no 'zz' in item 'state' of step $ROOT/100" ] || fail "missing leaf message: $(cat "$T/err")"

# --- latest ---
expect 0 "" cat "$ROOT/latest/state/w"
"$CKPT" cat "$ROOT/200/state/w" | cmp -s - "$T/out" || fail "ROOT/latest is not step 200"
expect 0 "" tree "$ROOT/latest"
"$CKPT" tree "$ROOT/200" | cmp -s - "$T/out" || fail "tree ROOT/latest differs from ROOT/200"
expect 1 "ckpt: '$T/empty/latest/state': no finalized step in $T/empty for \`latest\`" tree "$T/empty/latest/state"

# --- paths inside a mount ---
fs_mount
expect 0 "" ls "$MNT"
"$CKPT" ls "$ROOT" | cmp -s - "$T/out" || fail "ls MNT differs from ls ROOT: $(cat "$T/out")"
expect 0 "" tree "$MNT/100/state"
"$CKPT" tree "$ROOT/100/state" | cmp -s - "$T/out" || fail "tree MNT/100/state: $(cat "$T/out")"
expect 0 "" cat "$MNT/latest/state/w.npy"
"$CKPT" cat "$ROOT/200/state/w" | cmp -s - "$T/out" || fail "cat MNT/latest/state/w.npy: $(cat "$T/out")"
(cd "$T" && t "$CKPT" get "$MNT/100/state/w.npy" -o "$T/w100.npy") || fail "get from the mount"
cmp -s "$T/w100.npy" "$MNT/100/state/w.npy" || fail "get MNT/100/state/w.npy differs from the mount's file"
expect 1 "ckpt: '$MNT/100' is a step, not a checkpoint root: its root is $REAL_ROOT" ls "$MNT/100"
mkdir "$MNT/300"
expect 1 "ckpt: '$MNT/300': step 300 is pending (not finalized yet; \`ckpt\` reads finalized steps): finalize it through the mount with setfattr -n user.ckpt.finalize -v 1 MNT/300" tree "$MNT/300"
expect 1 "step 300 is pending" tree "$ROOT/300"
expect 1 "ckpt: '$MNT/300' is pending step 300, not a checkpoint root: its root is $REAL_ROOT" ls "$MNT/300"
rmdir "$MNT/300"
fs_umount
echo "cli_paths: ok"
