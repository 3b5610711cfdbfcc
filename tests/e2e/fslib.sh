# tests/e2e/fslib.sh — helpers for the ckptfs end-to-end tests (source it).
#
# Gives: $T (temp dir), $ROOT (a checkpoint root), $MNT (mount point), $PY
# (the python with numpy), fs_mount/fs_umount, t (timeout 30 for anything
# touching the mount), fail. The EXIT trap unmounts and kills the daemon.
set -euo pipefail
: "${B:?set B to the build directory}"
PY=/usr/bin/python3
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
T=$(mktemp -d /tmp/ckptfs-e2e.XXXXXX)
ROOT=$T/root
MNT=$T/mnt
mkdir -p "$ROOT" "$MNT"
FS_PID=

fs_cleanup() {
	local rc=$?
	fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true
	if [ -n "$FS_PID" ]; then
		kill "$FS_PID" 2>/dev/null || true
		wait "$FS_PID" 2>/dev/null || true
	fi
	if [ $rc -ne 0 ] && [ -s "$T/ckptfs.log" ]; then
		echo "--- ckptfs log" >&2
		tail -n 30 "$T/ckptfs.log" >&2
	fi
	rm -rf "$T"
	exit $rc
}
trap fs_cleanup EXIT

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

t() {
	timeout 30 "$@"
}

# fs_mount [ckptfs options...]: mount $ROOT on $MNT in the foreground, in the
# background of this shell; wait until the mount answers.
fs_mount() {
	"$B/ckptfs" "$ROOT" "$MNT" -f "$@" >>"$T/ckptfs.log" 2>&1 &
	FS_PID=$!
	for _ in $(seq 200); do
		if mountpoint -q "$MNT"; then
			return 0
		fi
		kill -0 "$FS_PID" 2>/dev/null || fail "ckptfs exited: $(cat "$T/ckptfs.log")"
		sleep 0.05
	done
	fail "ckptfs did not mount"
}

fs_umount() {
	t fusermount3 -u "$MNT"
	wait "$FS_PID" || fail "ckptfs exited with an error"
	FS_PID=
}

# wait_for CMD...: retry CMD for up to 10 s (for changes made under ROOT).
wait_for() {
	for _ in $(seq 100); do
		if "$@" 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	return 1
}
