#!/bin/bash
# ckptfs: steps saved or deleted while mounted appear and disappear; readers of a
# deleted step keep reading correct bytes (or get EIO); kill -9 leaves a mount
# point that fusermount3 -u clears.
. "$(dirname "$0")/fslib.sh"

$PY "$HERE/fs_check.py" gen "$T/src"
"$B/ckpt" save "$ROOT" 1 "$T/src" >/dev/null
fs_mount

[ "$(t ls "$MNT" | tr '\n' ' ')" = "1 latest " ] || fail "ls: $(ls "$MNT")"
t stat "$MNT/2" 2>/dev/null && fail "step 2 before it exists"
"$B/ckpt" save "$ROOT" 2 "$T/src" >/dev/null
wait_for test -d "$MNT/2" || fail "step 2 did not appear"
wait_for test "$(readlink "$MNT/latest")" = 2 || fail "latest is not 2"
t $PY "$HERE/fs_check.py" compare "$MNT/2" "$T/src" || fail "new step differs"

# A reader holding a leaf open while its step is deleted.
mkfifo "$T/fifo"
t $PY "$HERE/fs_check.py" hold "$MNT/2/state/big.npy" "$T/src/state/big.npy" "$T/fifo" \
	>"$T/hold" &
hold=$!
wait_for grep -q opened "$T/hold" || fail "reader did not start"
rm -rf "$ROOT/2"
wait_for test ! -e "$MNT/2" || fail "step 2 did not disappear"
wait_for test "$(readlink "$MNT/latest")" = 1 || fail "latest is not 1 again"
echo 3 >/proc/sys/vm/drop_caches # the rest must come from the daemon, not the page cache
echo go >"$T/fifo"
wait "$hold" || fail "reader of a deleted step got wrong bytes"
grep -qE "^(ok|eio)$" "$T/hold" || fail "reader: $(cat "$T/hold")"
echo "reader of the deleted step: $(tail -n 1 "$T/hold")"

# Saved again under the same number: the new step, not the old one.
mkdir -p "$T/src2/other"
echo 42 >"$T/src2/other/answer"
"$B/ckpt" save "$ROOT" 2 "$T/src2" >/dev/null
wait_for test -e "$MNT/2/other/answer" || fail "re-created step 2 not visible"
[ "$(t cat "$MNT/2/other/answer")" = 42 ] || fail "re-created step 2 content"
t stat "$MNT/2/state" 2>/dev/null && fail "old step 2 content still visible"

# kill -9: the mount point stays until fusermount3 -u clears it.
kill -9 "$FS_PID"
wait "$FS_PID" 2>/dev/null || true
FS_PID=
t ls "$MNT" 2>/dev/null && fail "dead mount still answers"
t fusermount3 -u "$MNT" || fail "fusermount3 -u after kill -9"
mountpoint -q "$MNT" && fail "still mounted"
echo "fs_live: ok"
