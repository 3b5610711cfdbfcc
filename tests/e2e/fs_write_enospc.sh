#!/bin/bash
# ckptfs write side: a full disk. ROOT is a 24 MiB tmpfs; copying a 64 MiB .npy into
# a pending step fails with ENOSPC, the leaves written before stay intact, the step
# still finalizes once the failed file is gone, and an earlier step still verifies.
# Setting custom metadata on a full disk fails and keeps _CHECKPOINT_METADATA whole; a
# clone stub that cannot be turned into a real file for lack of space stays a stub.
. "$(dirname "$0")/fs_write_lib.sh"

mount -t tmpfs -o size=24m tmpfs "$ROOT" || fail "cannot mount a tmpfs on $ROOT (root needed)"
# Unmount ckptfs (fslib's trap does it too, later), then the tmpfs, then fslib's cleanup.
enospc_cleanup() {
	local rc=$?
	set +e
	fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true
	if [ -n "$FS_PID" ]; then
		kill "$FS_PID" 2>/dev/null || true
		wait "$FS_PID" 2>/dev/null || true
	fi
	umount "$ROOT" 2>/dev/null || umount -l "$ROOT" || true
	(exit $rc)
	fs_cleanup # uses $? as the exit status
}
trap enospc_cleanup EXIT

np arrays "$T/s100/state"
"$CKPT" save "$ROOT" 100 "$T/s100" >/dev/null
W=$T/want/state
mkdir -p "$W"
np npsave "$W/a.npy" 1 float32 1000
np npsave "$W/b.npy" 2 int8 50,50
printf '12\n' >"$W/step"
np big "$T/big.npy" 64 5 # incompressible, on the real disk
np big "$T/s150/state/w.npy" 6 6
"$CKPT" save "$ROOT" 150 "$T/s150" >/dev/null

fs_mount
t mkdir "$MNT/300" "$MNT/300/state"
t cp "$W"/*.npy "$MNT/300/state/"
echo_to "$MNT/300/state/step" 12
must_fail "No space left on device" cp "$T/big.npy" "$MNT/300/state/big.npy"
must_fail "No space left on device" dd if="$T/big.npy" of="$MNT/300/state/big2.npy" bs=1M
kill -0 "$FS_PID" || fail "ckptfs died"
for f in "$W"/*; do
	t cmp "$f" "$MNT/300/state/${f##*/}" || fail "${f##*/} damaged by the full disk"
done
t rm -f "$MNT/300/state/big.npy" "$MNT/300/state/big2.npy"
meta='{"metrics": {"loss": 1.5}}'
put "$MNT/300/_CHECKPOINT_METADATA" "$meta"
dd if=/dev/zero of="$ROOT/filler" bs=4k 2>/dev/null || true
big=$("$PY" -c 'import json; print(json.dumps({"k%d" % i: "x" * 100 for i in range(500)}))')
must_fail "No space left on device" setfattr -n user.ckpt.custom_metadata -v "$big" "$MNT/300"
rm -f "$ROOT/filler"
[ "$(t cat "$MNT/300/_CHECKPOINT_METADATA")" = "$meta" ] ||
	fail "_CHECKPOINT_METADATA damaged by a full disk"
t rm "$MNT/300/_CHECKPOINT_METADATA"
t cp -r "$MNT/150" "$MNT/151" # clone stubs
dd if=/dev/zero of="$ROOT/filler" bs=4k 2>/dev/null || true
# shellcheck disable=SC2016
must_fail "No space left on device" \
	"$PY" -c 'import sys; open(sys.argv[1], "r+b")' "$MNT/151/state/w.npy"
rm -f "$ROOT/filler"
t cmp "$T/s150/state/w.npy" "$MNT/151/state/w.npy" || fail "a stub was lost to a full disk"
t rm -r "$MNT/151"
finalize 300
"$CKPT" restore "$ROOT/300" "$T/out" >/dev/null || fail "ckpt restore ROOT/300"
np check "$T/want" "$T/out" || fail "step 300 differs"
np check "$T/s100" "$MNT/100" || fail "step 100 differs"
"$CKPT" verify "$ROOT" >/dev/null || fail "ckpt verify ROOT"
fs_umount
echo "fs_write_enospc: ok"
