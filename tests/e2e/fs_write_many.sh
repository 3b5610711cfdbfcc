#!/bin/bash
# ckptfs write side, many files: `cp -r` of 3,000 leaves into a pending step leaves the
# daemon holding few descriptors (each inode the kernel knows in a pending step holds
# one; the kernel is asked to forget a file once its last handle is closed), and the
# step finalizes with every leaf. Without that the daemon held one descriptor per file
# written and a big enough copy ended in EMFILE. A file still open elsewhere is not let
# go (the kernel would show it deleted).
. "$(dirname "$0")/fs_write_lib.sh"

N=3000
for d in $(seq -w 0 29); do
	mkdir -p "$T/src/state/d$d"
	for i in $(seq 0 99); do
		echo "$((10#$d * 100 + i))" >"$T/src/state/d$d/v$i"
	done
done

fs_mount
t mkdir "$MNT/500"
t cp -r "$T/src/state" "$MNT/500/" || fail "cp -r into the pending step failed"
fds() { find "/proc/$FS_PID/fd" -mindepth 1 | wc -l; }
few_fds() { [ "$(fds)" -lt 500 ]; }
wait_for few_fds || fail "the daemon holds $(fds) descriptors after writing $N files"
[ "$(t find "$MNT/500/state" -type f -name 'v*' | wc -l)" = "$N" ] || fail "the pending step lacks files"
# A file still open elsewhere is not let go when a writer closes (the kernel would show
# the reader's file as deleted); once its last handle closes, it is.
t mkdir "$MNT/500/other"
printf 'hello' >"$MNT/500/other/s"
exec 3<"$MNT/500/other/s"
printf ', world' >>"$MNT/500/other/s"
sleep 1 # the invalidation thread would have run by now
case "$(readlink "/proc/$$/fd/3")" in
*deleted*) fail "a reader's open file shows as deleted after a writer closed it" ;;
esac
[ "$(cat <&3)" = "hello, world" ] || fail "the reader reads something else"
exec 3<&-
# Overwritten (O_TRUNC: a shadow file takes the name at the first close, here of a dup),
# then opened by a reader before the writer's last close: the writer's old file is not
# let go under the name that is the reader's file's now.
printf 'old' >"$MNT/500/other/t"
old_ino=$(t stat -c %i "$MNT/500/other/t")
exec 4>"$MNT/500/other/t"
printf 'new' >&4
exec 5>&4
exec 5>&-
# The kernel's entry of the name is invalidated by a thread, after the close returned: an
# open before that still finds the old file (docs/fs.md, "Descriptors"). Wait for the new
# inode number under the name (no timing assumption; under load it can take a while).
replaced() { [ "$(t stat -c %i "$MNT/500/other/t")" != "$old_ino" ]; }
wait_for replaced || fail "the overwrite's shadow never took the name"
exec 3<"$MNT/500/other/t"
exec 4>&-
sleep 1
case "$(readlink "/proc/$$/fd/3")" in
*deleted*) fail "a reader's file shows as deleted after an overwrite's last close" ;;
esac
[ "$(cat <&3)" = new ] || fail "the reader of the overwritten file reads something else"
exec 3<&-
finalize 500
[ "$(t find "$MNT/500/state" -type f -name 'v*' | wc -l)" = "$N" ] || fail "step 500 lacks leaves"
[ "$(t cat "$MNT/500/state/d17/v42")" = 1742 ] || fail "d17/v42 reads $(cat "$MNT/500/state/d17/v42")"
fs_umount
t "$CKPT" verify "$ROOT/500" >/dev/null || fail "step 500 does not verify"
echo "fs_write_many: ok"
