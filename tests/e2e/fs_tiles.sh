#!/bin/bash
# A step whose leaves were saved as tiles (sharded leaves, format 2.0) reads as
# ordinary arrays everywhere: ckpt verify, ckpt cat, ckpt restore, and np.load
# (also mmap and dd of byte ranges) through the mount.
. "$(dirname "$0")/fslib.sh"

"$B/tests/tools/tiles_step" "$ROOT" 1 || fail "tiles_step"
$PY - "$T/ref" <<'PYEOF'
import os, sys, numpy as np
d = sys.argv[1] + "/state"; os.makedirs(d)
r, c = np.meshgrid(np.arange(300), np.arange(500), indexing="ij")
np.save(d + "/w.npy", (r * 1000 + c).astype(np.float32))
np.save(d + "/v.npy", (3 * np.arange(1000) - 7).astype(np.int16))
PYEOF
"$B/ckpt" verify "$ROOT/1" >"$T/out" 2>&1 || fail "verify: $(cat "$T/out")"
"$B/ckpt" cat "$ROOT/1/state/v" --header >"$T/cat" || fail "cat"
grep -q 'int16' "$T/cat" && grep -q -- '-7' "$T/cat" && grep -q '2990' "$T/cat" ||
	fail "cat: $(head -3 "$T/cat")"
"$B/ckpt" restore "$ROOT/1/state" "$T/restored" >/dev/null || fail "restore"
for f in w v; do
	cmp "$T/restored/$f.npy" "$T/ref/state/$f.npy" || fail "restored $f.npy differs"
done
echo "ok - verify, cat and restore of a tiled step"

fs_mount
for f in w v; do
	t $PY - "$MNT/1/state/$f.npy" "$T/ref/state/$f.npy" <<'PYEOF' || fail "np.load $f"
import sys, numpy as np
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
assert a.dtype == b.dtype and a.shape == b.shape and (a == b).all()
m = np.load(sys.argv[1], mmap_mode="r")
assert (m[123:201, 370:390] == b[123:201, 370:390]).all() if b.ndim == 2 else (m[390:660] == b[390:660]).all()
PYEOF
done
for spec in "0 200" "130 4001" "77777 123456" "599000 128"; do
	set -- $spec
	a=$(t dd if="$MNT/1/state/w.npy" iflag=skip_bytes,count_bytes skip="$1" count="$2" status=none | md5sum)
	b=$(dd if="$T/ref/state/w.npy" iflag=skip_bytes,count_bytes skip="$1" count="$2" status=none | md5sum)
	[ "$a" = "$b" ] || fail "dd of w.npy at $1+$2"
done
fs_umount
echo "ok - the mount shows tiled leaves as .npy files, bit-exact"
