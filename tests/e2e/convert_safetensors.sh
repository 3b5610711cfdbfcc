#!/bin/bash
# Conversions by copying (issue 18): safetensors and .npz in and out.
#  - files written by an independent Python writer (json + numpy) import, and
#    export back byte-identical; every dtype, nested names, 0-d, empty
#  - <item>.safetensors in the mount: true size in ls -l, xattrs, read by an
#    independent Python reader tensor by tensor, identical to `ckpt export`,
#    random dd ranges, -o safetensors_sep=/
#  - .npz: numpy's np.savez / np.savez_compressed (big-endian, Fortran order,
#    bfloat16, complex) import; exports load with np.load
#  - malformed files: clear error, exit 1, no step left
. "$(dirname "$0")/fslib.sh"
PYS="$HERE/convert_st.py"
C="$B/ckpt"

$PY "$PYS" gen "$T/in"

# safetensors -> step -> safetensors, byte-identical (with and without __metadata__).
"$C" import "$T/in/model.safetensors" "$ROOT" 1 >/dev/null
"$C" export "$ROOT/1" "$T/out1.safetensors"
cmp "$T/in/model.safetensors" "$T/out1.safetensors" || fail "round trip of model.safetensors"
"$C" import "$T/in/flat.safetensors" "$ROOT" 2 --item flat >/dev/null
"$C" export "$ROOT/2/flat" "$T/out2.safetensors"
cmp "$T/in/flat.safetensors" "$T/out2.safetensors" || fail "round trip of flat.safetensors"
# nested names became the tree; the values are the file's (read by the Python reader)
"$C" tree "$ROOT/1" | grep -q "model/model/layers/2/w_bf16 .*bfloat16" || fail "tree of the import"
"$C" restore "$ROOT/1" "$T/r1"
n=$($PY "$PYS" check "$T/out1.safetensors" "$T/r1" model | cut -d' ' -f1)
[ "$n" = 20 ] || fail "expected 20 tensors, got $n"
# --sep none keeps names flat
"$C" import "$T/in/model.safetensors" "$ROOT" 4 --sep none >/dev/null
"$C" tree "$ROOT/4" | grep -q "^model/model.layers.2.w_bf16 " || fail "--sep none"

# An ordinary step (big-endian and Fortran sources, complex, scalars, strings).
"$C" save "$ROOT" 3 "$T/in/src" >/dev/null
"$C" export "$ROOT/3" "$T/s3.safetensors"
out=$($PY "$PYS" check "$T/s3.safetensors" "$T/in/src" state)
[ "${out%% *}" = 4 ] || fail "expected 4 tensors in s3: $out"
echo "$out" | grep -q '"ckpt.left_out": "\[\\"name\\",\\"params/cplx\\",\\"step\\"\]"' ||
	fail "left-out leaves not listed: $out"
echo "$out" | grep -q '"ckpt.step": "3"' || fail "no step in __metadata__: $out"

# .npz out: numpy reads it; in: what numpy writes, stored and deflated.
"$C" export "$ROOT/3/state" "$T/s3.npz" 2>"$T/err"
grep -q "2 scalar or string leaves left out" "$T/err" || fail "npz export did not warn"
[ "$($PY "$PYS" npz "$T/s3.npz" "$T/in/src" state)" = 5 ] || fail "np.load of the export"
$PY - "$T" <<'EOF'
import sys, numpy as np
t = sys.argv[1]
rng = np.random.default_rng(7)
d = {"a.b": rng.standard_normal((5, 6)).astype(">f8"), "a.c": np.arange(10, dtype=">i4"),
     "f": np.asfortranarray(np.arange(12.0).reshape(3, 4)), "big": rng.standard_normal(700_000).astype("f4"),
     "bf": np.arange(6, dtype="<u2").view([("bfloat16", "<u2")]), "cx": np.arange(4, dtype=">c16"),
     "zero_d": np.array(3, dtype="u8")}
np.savez(t + "/plain.npz", **d)
np.savez_compressed(t + "/comp.npz", **d)
EOF
for z in plain comp; do
	"$C" import "$T/$z.npz" "$ROOT" 1$([ $z = plain ] && echo 1 || echo 2) --item m >/dev/null
done
for s in 11 12; do
	"$C" export "$ROOT/$s" "$T/$s.npz"
	$PY - "$T/plain.npz" "$T/$s.npz" <<'EOF' || fail "npz round trip of step $s"
import sys, numpy as np
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
assert sorted(a.files) == sorted(b.files), (a.files, b.files)
for k in a.files:
    assert a[k].shape == b[k].shape and np.array_equal(a[k], b[k]), k
    assert b[k].dtype.byteorder in "<|=", (k, b[k].dtype)
EOF
done
"$C" tree "$ROOT/11" | grep -q "m/a/b .*float64 *(5, 6)" || fail "npz names not split"

# Malformed input: exit 1 with a message naming the file; no step appears.
for f in "$T"/in/bad/*.safetensors "$HERE"/../fuzz/corpus/npz/bad_*.npz; do
	set +e
	"$C" import "$f" "$ROOT" 99 >/dev/null 2>"$T/err"
	rc=$?
	set -e
	[ $rc = 1 ] || fail "import of $f: exit $rc"
	grep -q "$(basename "$f")" "$T/err" || fail "no file name in: $(cat "$T/err")"
	[ ! -e "$ROOT/99" ] || fail "a step was left by $f"
done
[ -z "$(ls "$ROOT" | grep ckpt-tmp || true)" ] || fail "temporary directories left"

# The mount: <item>.safetensors beside each PyTree item.
fs_mount
t ls -l "$MNT/1" "$MNT/3" >"$T/ls"
sz=$(stat -c %s "$T/out1.safetensors")
grep -q " $sz .* model.safetensors" "$T/ls" || fail "ls -l size of model.safetensors: $(cat "$T/ls")"
t getfattr --absolute-names -d "$MNT/3/state.safetensors" >"$T/x"
grep -q 'user.ckpt.kind="safetensors"' "$T/x" || fail "xattr kind: $(cat "$T/x")"
grep -q 'user.ckpt.left_out="3"' "$T/x" || fail "xattr left_out: $(cat "$T/x")"
t cmp "$MNT/1/model.safetensors" "$T/in/model.safetensors" || fail "mounted model.safetensors"
t cmp "$MNT/3/state.safetensors" "$T/s3.safetensors" || fail "mounted state.safetensors"
t $PY "$PYS" check "$MNT/3/state.safetensors" "$T/in/src" state >/dev/null || fail "reader on mount"
echo 3 >/proc/sys/vm/drop_caches
n=0
while read -r off len; do
	a=$(t dd if="$MNT/1/model.safetensors" iflag=skip_bytes,count_bytes skip="$off" \
		count="$len" bs=65536 status=none | md5sum)
	b=$(dd if="$T/in/model.safetensors" iflag=skip_bytes,count_bytes skip="$off" count="$len" \
		bs=65536 status=none | md5sum)
	[ "$a" = "$b" ] || fail "dd at $off+$len"
	n=$((n + 1))
done < <($PY "$PYS" ranges "$T/in/model.safetensors" 30 5)
[ $n = 30 ] || fail "only $n ranges"
t cp "$MNT/1/model.safetensors" "$T/cp.safetensors"
cmp "$T/cp.safetensors" "$T/in/model.safetensors" || fail "cp out of the mount"
fs_umount

# Writing one into a pending step: it becomes an item, checked at close.
fs_mount
mkdir "$MNT/400"
t cp "$T/in/model.safetensors" "$MNT/400/"
t cp "$T/comp.npz" "$MNT/400/weights.npz"
set +e
t cp "$T/in/bad/overlap.safetensors" "$MNT/400/bad.safetensors" 2>"$T/err"
rc=$?
t cp "$HERE/../fuzz/corpus/npz/bad_crc.npz" "$MNT/400/bad2.npz" 2>>"$T/err"
rc2=$?
set -e
[ $rc != 0 ] && [ $rc2 != 0 ] || fail "bad files accepted into a pending step"
grep -q "Invalid argument" "$T/err" || fail "not EINVAL: $(cat "$T/err")"
[ "$(ls "$MNT/400")" = "$(printf 'model.safetensors\nweights.npz')" ] ||
	fail "pending step holds: $(ls "$MNT/400")"
t setfattr -n user.ckpt.finalize -v 1 "$MNT/400"
t cmp "$MNT/400/model.safetensors" "$T/in/model.safetensors" || fail "model after finalize"
"$C" export "$ROOT/400/weights" "$T/w.npz"
$PY - "$T/comp.npz" "$T/w.npz" <<'EOF' || fail "weights.npz through the mount"
import sys, numpy as np
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
assert sorted(a.files) == sorted(b.files)
for k in a.files:
    assert np.array_equal(a[k], b[k]), k
EOF
fs_umount

fs_mount -o safetensors_sep=/
t $PY - "$MNT/1/model.safetensors" <<'EOF' || fail "-o safetensors_sep=/"
import json, struct, sys
b = open(sys.argv[1], "rb").read()
h = json.loads(b[8:8 + struct.unpack("<Q", b[:8])[0]])
assert "model/layers/2/w_bf16" in h and "lm_head/weight" in h, sorted(h)
EOF
fs_umount
# A step Orbax wrote (its own compatibility sample: {'a': arange(8), 'b': {'c': [1, 2, 3]}})
# has the same view; values read by the Python reader.
OX="$HERE/../data/orbax/google-orbax/checkpoint/orbax/checkpoint/experimental/v1/_src/testing/compatibility/checkpoints"
cp -r "$OX/v1_checkpoints/composite_checkpoint/checkpoint_metadata_present/pytree_checkpointable_has_metadata" "$ROOT/500"
fs_mount
t $PY -c "
import sys, numpy as np
sys.path.insert(0, '$HERE')
from convert_st import st_read
meta, ts = st_read('$MNT/500/state.safetensors')
assert meta['ckpt.step'] == '500' and meta['ckpt.item'] == 'state', meta
assert ts['a'][0] == 'I32' and np.frombuffer(ts['a'][2], '<i4').tolist() == list(range(8)), ts['a']
assert np.frombuffer(ts['b.c'][2], '<i4').tolist() == [1, 2, 3], ts['b.c']
" || fail "values of an Orbax step's state.safetensors"
fs_umount
echo "convert_safetensors: ok"
