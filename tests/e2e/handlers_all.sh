#!/bin/bash
# Every handler kind in one composite step (handlers_tool save: PyTree, Json, Array array
# and scalar, Proto, JAX keys typed and untyped, NumPy keys legacy and PCG64): browsed
# through the mount with cat, numpy and getfattr; copied out with cp -r and back in as a
# pending step (finalized with setfattr) and with ckpt save; all three restore equal
# through the library; ckpt restore gives the files cp gave; a partial restore reads only
# the chosen items. Altered copies compare unequal (the comparison can fail).
. "$(dirname "$0")/handlers_lib.sh"

tool save "$ROOT" 1 || fail "handlers_tool save"
tool compare "$ROOT/1" "$ROOT/1" >/dev/null || fail "step 1 does not compare equal to itself"

fs_mount
# The files of each item, as the mount shows them.
for f in meta/metadata cfg/proto.pbtxt cfg/descriptor.json w/checkpoint.npy s/checkpoint \
	jk/jax_random_key.npy jk/jax_random_key_metadata jku/jax_random_key.npy \
	jku/jax_random_key_metadata nk/np_random_key.json nkp/np_random_key.json state/_METADATA; do
	[ -f "$MNT/1/$f" ] || fail "MNT/1/$f missing; step 1 has: $(t find "$MNT/1" | head -40)"
done
t cat "$MNT/1/meta/metadata" | "$PY" -m json.tool >/dev/null || fail "meta/metadata is not JSON"
t grep -q '^step: -1234567890123$' "$MNT/1/cfg/proto.pbtxt" ||
	fail "proto.pbtxt: $(t head -c 1500 "$MNT/1/cfg/proto.pbtxt")"
hnp view "$MNT/1" || fail "step 1 as files (cat, np.load) is not what was saved"
[ "$(xattr "$MNT/1/jk/jax_random_key.npy" user.ckpt.prng_impl)" = threefry2x32 ] ||
	fail "user.ckpt.prng_impl of jk: '$(xattr "$MNT/1/jk/jax_random_key.npy" user.ckpt.prng_impl)'"
t getfattr --absolute-names -d "$MNT/1/jk/jax_random_key.npy" | grep -q 'user.ckpt.prng_impl="threefry2x32"' ||
	fail "getfattr -d of jk/jax_random_key.npy lacks prng_impl"
must_fail "No such attribute" getfattr -n user.ckpt.prng_impl "$MNT/1/jku/jax_random_key.npy"
for kv in state:"$PYTREEH" meta:"$JSONH" w:"$ARRAYH" s:"$ARRAYH" cfg:"$PROTOH" jk:"$JAXH" \
	jku:"$JAXH" nk:"$NPH" nkp:"$NPH"; do
	[ "$(xattr "$MNT/1/${kv%%:*}" user.ckpt.handler)" = "${kv#*:}" ] ||
		fail "handler xattr of ${kv%%:*}: $(xattr "$MNT/1/${kv%%:*}" user.ckpt.handler)"
done

# Out with cp -r, back in through the mount and with ckpt save.
t cp -r "$MNT/1" "$T/out"
hnp view "$T/out" || fail "cp -r MNT/1 gave other files"
t cp -r "$T/out" "$MNT/2"
[ "$(xattr "$MNT/2" user.ckpt.state)" = pending ] || fail "step 2 is not pending"
finalize 2
"$CKPT" save "$ROOT" 3 "$T/out" >/dev/null || fail "ckpt save ROOT 3 of the copied step"
[ "$(finalized_steps "$ROOT")" = "1 2 3" ] || fail "steps: $(finalized_steps "$ROOT")"
tool compare "$ROOT/1" "$ROOT/2" || fail "step 2 (cp -r into the mount) differs from step 1"
tool compare "$ROOT/1" "$ROOT/3" || fail "step 3 (ckpt save) differs from step 1"
"$CKPT" restore "$ROOT/1" "$T/r1" >/dev/null || fail "ckpt restore ROOT/1"
# The keys as the library restores them, after the round trip through the mount.
tool jax-get "$ROOT/2" jk >"$T/jk" || fail "jax-get jk"
[ "$(tr '\n' ';' <"$T/jk")" = "impl threefry2x32;shape 2;dtype uint32;words 0 42;" ] ||
	fail "jax-get jk: $(cat "$T/jk")"
tool jax-get "$ROOT/2" jku >"$T/jku" || fail "jax-get jku"
[ "$(tr '\n' ';' <"$T/jku")" = "impl untyped;shape 3,2;dtype uint32;words 0 1 4294967295 7 123456789 2147483648;" ] ||
	fail "jax-get jku: $(cat "$T/jku")"
must_fail "handler" "$TOOL" jax-get "$ROOT/2" nk
diff -r -x '*.safetensors' "$T/out" "$T/r1" || fail "ckpt restore of step 1 differs from cp -r of it"
"$CKPT" verify "$ROOT/2" >/dev/null || fail "ckpt verify ROOT/2"
wait_for test -d "$MNT/3" || fail "step 3 (saved while mounted) does not appear"
t diff -r -x _CHECKPOINT_METADATA -x '*.safetensors' "$MNT/1" "$MNT/3" || fail "the mount shows steps 1 and 3 differently"

# A partial restore reads only what it restores.
tool subset "$ROOT/1" meta >"$T/sub" || fail "subset meta"
read_bytes() { sed -n 's/^bytes_read //p' "$1"; }
[ "$(read_bytes "$T/sub")" -lt 65536 ] || fail "restoring meta read $(read_bytes "$T/sub") bytes"
grep -qx 'meta value' "$T/sub" || fail "meta not restored: $(cat "$T/sub")"
[ "$(grep -c ' null$' "$T/sub")" = 8 ] || fail "subset meta restored more: $(cat "$T/sub")"
tool subset "$ROOT/1" state nk >"$T/sub" || fail "subset state nk"
[ "$(read_bytes "$T/sub")" -ge $((4 << 20)) ] ||
	fail "restoring state read only $(read_bytes "$T/sub") bytes"
if ! grep -qx 'state value' "$T/sub" || ! grep -qx 'nk value' "$T/sub" ||
	[ "$(grep -c ' null$' "$T/sub")" != 7 ]; then
	fail "subset state nk: $(cat "$T/sub")"
fi
must_fail "nosuch" "$TOOL" subset "$ROOT/1" nosuch

# The comparison can fail: each altered copy differs in one item, which compare names.
alter() { # alter STEP ITEM CMD...: a copy of $T/out changed by CMD, saved as STEP
	rm -rf "$T/alt" && cp -r "$T/out" "$T/alt"
	(cd "$T/alt" && "${@:3}") || fail "altering $2"
	"$CKPT" save "$ROOT" "$1" "$T/alt" >/dev/null || fail "ckpt save of altered $2"
	must_fail "item $2" "$TOOL" compare "$ROOT/1" "$ROOT/$1"
}
alter 10 meta sed -i 's/"lr": 0.001/"lr": 0.002/' meta/metadata
alter 11 cfg sed -i 's/^step: -1234567890123$/step: -1234567890124/' cfg/proto.pbtxt
alter 12 jk "$PY" -c 'import numpy as np; np.save("jk/jax_random_key.npy", np.array([0, 43], np.uint32))'
jset() { # jset FILE PYTHON: edit the JSON document d of FILE
	"$PY" -c 'import json, sys; d = json.load(open(sys.argv[1])); exec(sys.argv[2]); json.dump(d, open(sys.argv[1], "w"))' "$@"
}
alter 13 nk jset nk/np_random_key.json 'd[2] = 18'
alter 14 state "$PY" -c 'import numpy as np; a = np.load("state/ids.npy"); a[4] = 41; np.save("state/ids.npy", a)'
alter 15 jku jset jku/jax_random_key_metadata 'd.update(typed=True, impl="threefry2x32")'
alter 16 nkp jset nkp/np_random_key.json 'd["state"]["inc"] += 2'

# ckpt shows every handler's files: tree (a whole .npy as the array it holds), meta of an
# item (its handler and files) and of a file, cat of a raw .npy (numpy-style) and of text.
"$CKPT" tree "$ROOT/1" >"$T/tree" || fail "ckpt tree ROOT/1"
grep -Eq '^w/checkpoint.npy +array +float64 +\(7, 13\)' "$T/tree" || fail "ckpt tree: $(cat "$T/tree")"
grep -Eq '^jku/jax_random_key.npy +array +uint32 +\(3, 2\)' "$T/tree" || fail "ckpt tree: $(cat "$T/tree")"
"$CKPT" meta "$ROOT/1/jk" | "$PY" -c '
import json, sys
m = json.load(sys.stdin)
assert m["handler"].endswith(".JaxRandomKeyCheckpointHandler"), m
f = m["files"]
assert sorted(f) == ["jax_random_key.npy", "jax_random_key_metadata"], f
assert f["jax_random_key.npy"]["dtype"] == "uint32" and f["jax_random_key.npy"]["shape"] == [2], f
' || fail "ckpt meta ROOT/1/jk"
"$CKPT" meta "$ROOT/1/w/checkpoint.npy" | grep -q '"shape": \[7, 13\]' || fail "ckpt meta of w/checkpoint.npy"
[ "$("$CKPT" cat "$ROOT/1/jku/jax_random_key.npy" | tr -s ' \n' ' ')" = "[[ 0 1] [4294967295 7] [ 123456789 2147483648]] " ] ||
	fail "ckpt cat of a raw .npy: $("$CKPT" cat "$ROOT/1/jku/jax_random_key.npy")"
"$CKPT" cat "$ROOT/1/cfg/proto.pbtxt" | grep -q '^step: -1234567890123$' || fail "ckpt cat proto.pbtxt"

fs_umount
echo "handlers_all: ok"
