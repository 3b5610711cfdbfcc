#!/bin/bash
# ckptfs: np.load (also mmap) of every leaf equals the source, every dtype, 0-d,
# empty, multi-chunk; dd at random offsets equals the source .npy bytes.
. "$(dirname "$0")/fslib.sh"

$PY "$HERE/fs_check.py" gen "$T/src"
"$B/ckpt" save "$ROOT" 1 "$T/src" --chunk-size 65536 >/dev/null
"$B/ckpt" save "$ROOT" 2 "$T/src" --chunk-size 65536 --no-compress >/dev/null
fs_mount

for s in 1 2; do
	t $PY "$HERE/fs_check.py" compare "$MNT/$s" "$T/src" || fail "compare step $s"
done
echo 3 >/proc/sys/vm/drop_caches

# dd at random offsets and lengths (header, chunk boundaries, the end).
for f in state/big.npy state/noise.npy state/dtypes/complex128.npy; do
	n=0
	while read -r off len; do
		a=$(t dd if="$MNT/1/$f" iflag=skip_bytes,count_bytes skip="$off" count="$len" \
			bs=65536 status=none | md5sum)
		b=$(dd if="$T/src/$f" iflag=skip_bytes,count_bytes skip="$off" count="$len" \
			bs=65536 status=none | md5sum)
		[ "$a" = "$b" ] || fail "dd $f at $off+$len"
		n=$((n + 1))
	done < <($PY "$HERE/fs_check.py" ranges "$T/src/$f" 40 "$n")
	[ $n -eq 40 ] || fail "only $n ranges of $f"
done

fs_umount
echo "fs_numpy: ok"
