#!/bin/bash
# ckptfs: a corrupted chunk gives EIO for reads touching it and correct bytes
# elsewhere.
. "$(dirname "$0")/fslib.sh"

mkdir -p "$T/src/state"
$PY -c "
import numpy as np
np.save('$T/src/state/noise.npy', np.random.default_rng(1).integers(0, 256, 1 << 20, dtype=np.uint8))
"
"$B/ckpt" save "$ROOT" 7 "$T/src" --chunk-size 65536 --no-compress >/dev/null
data=$(find "$ROOT/7/d" -type f -size +500k | head -n 1)
[ -n "$data" ] || fail "no data file under $ROOT/7/d"
size=$(stat -c %s "$data")
$PY - "$data" $((size / 2)) <<'PYEOF'
import sys
path, off = sys.argv[1], int(sys.argv[2])
with open(path, "r+b") as f:
    f.seek(off)
    b = f.read(1)
    f.seek(off)
    f.write(bytes([b[0] ^ 0xFF]))
PYEOF
# A step whose index is garbage and that has no listing (ckpt.list): its directory gives
# EIO, the others work. With its listing (step 9), it lists and its values give EIO.
"$B/ckpt" save "$ROOT" 8 "$T/src" >/dev/null
head -c 8192 /dev/urandom >"$ROOT/8/ckpt.db"
rm "$ROOT/8/ckpt.list"
"$B/ckpt" save "$ROOT" 9 "$T/src" >/dev/null
head -c 8192 /dev/urandom >"$ROOT/9/ckpt.db"
fs_mount
t ls "$MNT/8" >/dev/null 2>"$T/err" && fail "listing a step with a garbage index succeeded"
grep -q "Input/output error" "$T/err" || fail "garbage index: not EIO: $(cat "$T/err")"
t ls "$MNT" | grep -qx 8 || fail "step 8 is not listed in the root"
t ls "$MNT/9/state" | grep -qx noise.npy || fail "a listed step with a garbage index does not list"
t cat "$MNT/9/state/noise.npy" >/dev/null 2>"$T/err" && fail "reading step 9 succeeded"
grep -q "Input/output error" "$T/err" || fail "garbage index, listed: not EIO: $(cat "$T/err")"

t $PY "$HERE/fs_check.py" chunks "$MNT/7/state/noise.npy" "$T/src/state/noise.npy" 65536 ||
	fail "wrong bytes or misplaced EIO from a corrupt step"
echo 3 >/proc/sys/vm/drop_caches
t cat "$MNT/7/state/noise.npy" >/dev/null 2>"$T/err" && fail "reading it all succeeded"
grep -q "Input/output error" "$T/err" || fail "not EIO: $(cat "$T/err")"
grep -q "noise" "$T/ckptfs.log" || fail "no log line naming the leaf"

fs_umount
echo "fs_corrupt: ok"
