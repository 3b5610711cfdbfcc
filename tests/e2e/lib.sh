# shellcheck shell=bash
# lib.sh — shared helpers of the ckpt command-line end-to-end tests.
#
# Source it from a test run with `set -euo pipefail`. It sets:
#   B     absolute build directory (default: <repo>/build), binaries $B/ckpt, $B/ckptfs
#   CKPT  the ckpt binary
#   PY    /usr/bin/python3 (the only python with numpy)
#   T     a fresh temporary directory under /tmp, removed at exit
#   E2E   this directory (for the helper python scripts)
E2E=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$E2E/../.." && pwd)
B=${B:-build}
case "$B" in /*) ;; *) B="$REPO/$B" ;; esac
CKPT="$B/ckpt"
PY=/usr/bin/python3
[ -x "$CKPT" ] || { echo "FAIL: $CKPT not built" >&2; exit 1; }
T=$(mktemp -d /tmp/ckpt-e2e.XXXXXX)
NPASS=0
cleanup_tmp() { rm -rf "$T"; }
trap cleanup_tmp EXIT
# Sanitizer reports abort the process (-fno-sanitize-recover) but say so too.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

fail() { echo "FAIL: $*" >&2; [ -s "$T/err" ] && sed 's/^/  stderr: /' "$T/err" >&2; exit 1; }
pass() { NPASS=$((NPASS + 1)); echo "ok $NPASS - $*"; }

# run STATUS CMD...: run CMD with stdout in $T/out and stderr in $T/err, and
# require exit status STATUS; never a signal or a sanitizer report.
run() {
	local want=$1 st=0
	shift
	"$@" >"$T/out" 2>"$T/err" || st=$?
	if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:|UndefinedBehaviorSanitizer' "$T/err"; then
		fail "sanitizer report from: $*"
	fi
	[ "$st" -lt 128 ] || fail "killed by signal $((st - 128)): $*"
	[ "$st" -eq "$want" ] || fail "exit status $st (want $want): $*"
}

# grep_out / grep_err PATTERN: the last run's stdout / stderr matches (ERE, case-insensitive).
grep_out() { grep -qiE -- "$1" "$T/out" || fail "stdout lacks /$1/: $(head -c 2000 "$T/out")"; }
grep_err() { grep -qiE -- "$1" "$T/err" || fail "stderr lacks /$1/: $(head -c 2000 "$T/err")"; }

# tmp_dirs ROOT: how many temporary (pending) directories ROOT holds.
tmp_dirs() { find "$1" -maxdepth 1 -name '*.ckpt-tmp-*' | wc -l; }

# finish NAME: the closing line.
finish() { echo "$1: $NPASS passed, 0 failed"; }
