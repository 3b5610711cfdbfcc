#!/bin/bash
# ckptfs: 8 reader processes at once, on different and identical leaves.
. "$(dirname "$0")/fslib.sh"

$PY "$HERE/fs_check.py" gen "$T/src"
"$B/ckpt" save "$ROOT" 5 "$T/src" --chunk-size 65536 >/dev/null
fs_mount -o cache_size=1M

files=(state/big.npy state/big.npy state/big.npy state/noise.npy state/noise.npy
	state/dtypes/float64.npy state/params/dense/kernel.npy state/step)
pids=()
for i in "${!files[@]}"; do
	f=${files[$i]}
	t $PY "$HERE/fs_check.py" read "$MNT/5/$f" "$T/src/$f" 3 &
	pids+=($!)
done
for p in "${pids[@]}"; do
	wait "$p" || fail "a reader got wrong bytes or failed"
done

fs_umount
echo "fs_concurrent: ok"
