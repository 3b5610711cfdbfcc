# shellcheck shell=bash
# tests/e2e/fs_write_lib.sh — helpers of the ckptfs write tests (fs_write_*.sh; source it).
# Not a test itself (make check skips *lib.sh).
#
# On top of fslib.sh ($T, $ROOT, $MNT, $PY, fs_mount, fs_umount, t, fail, wait_for):
#   NP                  tests/e2e/fs_write_np.py (the numpy side); np ARGS... runs it (timeout)
#   CKPT                the ckpt binary
#   must_fail TEXT CMD  CMD (under timeout) fails, not by timeout, and its stderr says TEXT
#   xattr PATH NAME     value of an xattr (through the mount)
#   finalize STEP       setfattr -n user.ckpt.finalize -v 1 MNT/STEP
#   put FILE TEXT       printf TEXT into FILE (a shell redirection on the mount)
#   echo_to FILE TEXT   echo TEXT into FILE (same, with echo's newline)
#   absent PATH         PATH does not exist (through the mount; a timeout is not absence)
#   latest_is STEP      MNT/latest points to STEP
#   tmp_of STEP         the pending directories of STEP in ROOT
# shellcheck source=fslib.sh
. "$(dirname "${BASH_SOURCE[0]}")/fslib.sh"
NP="$HERE/fs_write_np.py"
CKPT="$B/ckpt"
[ -x "$CKPT" ] && [ -x "$B/ckptfs" ] || fail "build $B/ckpt and $B/ckptfs first"

np() { t "$PY" "$NP" "$@"; }

must_fail() {
	local want=$1 st=0
	shift
	t "$@" >"$T/must.out" 2>"$T/must.err" || st=$?
	[ "$st" -ne 0 ] || fail "succeeded, should have failed: $*"
	[ "$st" -ne 124 ] || fail "timed out: $*"
	grep -qi -- "$want" "$T/must.err" || fail "'$*' failed (status $st) without '$want': $(head -c 500 "$T/must.err")"
}

xattr() {
	t getfattr --absolute-names --only-values -n "$2" "$1"
}

finalize() {
	t setfattr -n user.ckpt.finalize -v 1 "$MNT/$1" || fail "finalize of step $1 failed"
}

put() {
	# shellcheck disable=SC2016
	t bash -c 'printf "%s" "$2" >"$1"' _ "$1" "$2"
}

echo_to() {
	# shellcheck disable=SC2016
	t bash -c 'echo "$2" >"$1"' _ "$1" "$2"
}

absent() {
	local st=0
	t test -e "$1" || st=$?
	[ "$st" = 1 ]
}

latest_is() {
	[ "$(t readlink "$MNT/latest")" = "$1" ]
}

tmp_of() {
	find "$ROOT" -maxdepth 1 -name "$1.ckpt-tmp-*"
}
