#!/bin/bash
# Orbax checkpoints written by Orbax itself (tests/data/orbax: OCDBT + zarr2,
# OCDBT + zarr3 sharded, per-process and merged dbs, a bare PyTreeCheckpointer
# dir) and a use_ocdbt=False root written with python3-zarr, read by
# `ckpt tree/cat/verify/restore` and through the mount (np.load), next to a
# native step in the same root; damaged samples fail with the reason.
. "$(dirname "$0")/fslib.sh"
cd "$HERE/../.."
OX=tests/data/orbax/google-orbax/checkpoint/orbax/checkpoint/experimental/v1/_src/testing/compatibility/checkpoints
CK="$B/ckpt"

# ROOT/100: use_ocdbt=False (python3-zarr); 1, 2, 3: Orbax's own samples; 7: native.
$PY tests/orbax_make_step.py "$ROOT" "$T/exp" 1
cp -r "$OX/v0_checkpoints/composite_checkpoint/checkpoint_metadata_present/pytree_checkpointable_has_metadata" "$ROOT/1"
cp -r "$OX/v1_checkpoints/composite_checkpoint/checkpoint_metadata_present/pytree_checkpointable_has_metadata" "$ROOT/2"
cp -r "$OX/v0_checkpoints/direct_checkpoint/checkpoint_metadata_present/pytree_checkpointable_has_metadata" "$ROOT/3"
# 5: zarr3 sharded (4 inner chunks per shard, edge and missing inner chunks) in an OCDBT db
# of height 1 with indirect values and an inherited data-file prefix (tests/ocdbt_write.py),
# checked first by the independent reader
$PY tests/ocdbt_write.py "$ROOT/5" "$T/exp5" $((3 << 20)) 12 1 16
python3 tests/ocdbt_dump.py "$ROOT/5/state" | grep -c "indirect" | grep -qx 12 || fail "oracle on writer output"
mkdir -p "$T/native/state"
$PY -c "import numpy as np; np.save('$T/native/state/w.npy', np.arange(6, dtype='<f4'))"
"$CK" save "$ROOT" 7 "$T/native" >/dev/null

# ls: the Orbax steps and the native one; the unfinished save is not a step.
steps=$("$CK" ls "$ROOT" | awk 'NR > 1 {print $1}' | tr '\n' ' ')
[ "$steps" = "1 2 3 5 7 100 " ] || fail "ls shows '$steps'"

# cat equals the contents Orbax saved: {'a': arange(8), 'b': {'c': [1, 2, 3]}}
for s in 1/state 2/state 3/default; do
	[ "$("$CK" cat "$ROOT/$s/a")" = "[0 1 2 3 4 5 6 7]" ] || fail "cat $s/a"
	[ "$("$CK" cat "$ROOT/$s/b/c")" = "[1 2 3]" ] || fail "cat $s/b/c"
done
[ "$("$CK" cat "$ROOT/1/metadata/metadata")" = '{"metadata": "json_data"}' ] || fail "json item"
"$CK" tree "$ROOT/2" | grep -q "state/b/c .*int32 .*(3,)" || fail "tree 2"
"$CK" meta "$ROOT/1" | tr -d ' \n' | grep -q '"custom_metadata":{"custom":"meta"}' || fail "meta 1 custom_metadata"
[ "$("$CK" cat "$ROOT/100/state/opt_state/0/count")" = "12345" ] || fail "scalar"
[ "$("$CK" cat "$ROOT/100/state/name")" = "run one" ] || fail "string"
for s in 1 2 3 5 100; do
	"$CK" verify "$ROOT/$s" >/dev/null || fail "verify $s"
done

# restore to .npy files: numpy reads what Orbax / zarr wrote
"$CK" restore "$ROOT/100" "$T/out100"
"$CK" restore "$ROOT/2" "$T/out2"
"$CK" restore "$ROOT/5" "$T/out5"
$PY - "$T/out5/state" "$T/exp5" <<'EOF'
import glob, os, sys
import numpy as np
n = 0
for e in glob.glob(os.path.join(sys.argv[2], "*.npy")):
    got = np.load(os.path.join(sys.argv[1], *os.path.basename(e)[:-4].split(".")) + ".npy")
    assert np.array_equal(got, np.load(e)), e
    n += 1
assert n == 12, n
EOF
$PY - "$T/out100/state" "$T/exp" "$T/out2/state" <<'EOF'
import glob, os, sys
import numpy as np
out, exp, out2 = sys.argv[1:4]
n = 0
for e in glob.glob(os.path.join(exp, "*.npy")):
    param = os.path.basename(e)[:-4]
    want = np.load(e)
    path = os.path.join(out, *param.split("."))
    got = np.load(path + ".npy") if want.ndim else np.array(open(path).read(), dtype=want.dtype)
    assert got.dtype == want.dtype and got.shape == want.shape, (param, got.dtype, want.dtype)
    assert np.array_equal(got, want), param
    n += 1
assert n == 6, n
assert np.array_equal(np.load(os.path.join(out2, "a.npy")), np.arange(8, dtype=np.int32))
assert np.array_equal(np.load(os.path.join(out2, "b", "c.npy")), np.array([1, 2, 3], np.int32))
EOF

# damaged samples: a clear error naming the cause, never a wrong value
bad() { # DIR EXPECTED-MESSAGE
	local out
	if out=$("$CK" verify "$1" 2>&1); then fail "verify of $1 succeeded"; fi
	echo "$out" | grep -q "$2" || fail "verify $1: '$out' does not say '$2'"
}
C=$OX/v0_checkpoints/composite_checkpoint/critical_metadata_alterations
bad "$C/missing_pytree_data_dir_d" "open data file d/.*No such file"
bad "$C/missing_pytree_data_file_manifest.ocdbt" "use_ocdbt but there is no manifest.ocdbt"
cp -r "$ROOT/2" "$T/flip"
node=$(ls "$T/flip/state/d/" | head -1)
printf '\xff' | dd of="$T/flip/state/d/$node" bs=1 seek=20 conv=notrunc status=none
bad "$T/flip" "CRC-32C mismatch"
cp -r "$ROOT/5" "$T/shard"
dfile=$(ls "$T/shard/state/sub/d/")
# the last byte of the first shard value (w0's shard 0) is its index CRC
off=$(python3 tests/ocdbt_dump.py "$T/shard/state" | awk '$1 == "layers.0.w0/c/0/0" { split($4, a, "@"); print a[2] + $3 - 1 }')
$PY -c "f = open('$T/shard/state/sub/d/$dfile', 'r+b'); f.seek($off); b = f.read(1); f.seek($off); f.write(bytes([b[0] ^ 1]))"
bad "$T/shard" "layers.0.w0: chunk c/0/0: shard index: crc32c mismatch"
cp -r "$ROOT/100" "$T/chunk"
printf 'garbage' | dd of="$T/chunk/state/params.dense.kernel/3.1" bs=1 seek=0 conv=notrunc status=none
bad "$T/chunk" "params.dense.kernel: chunk 3.1: zstd"

# the legacy msgpack "checkpoint" aggregate file: Orbax's samples (all leaves in it; some
# as PLACEHOLDER:// to zarr dirs) and one made with python3-msgpack (scalars, a string,
# None, a list) equal what python3-msgpack decodes; damaged ones fail clearly
AGG=tests/data/orbax/google-orbax/checkpoint/orbax/checkpoint/testing
mkdir -p "$T/aggmade"
$PY - "$T/aggmade" <<'EOF'
import json, sys
import msgpack, numpy as np
d = sys.argv[1]
nd = lambda a: msgpack.ExtType(1, msgpack.packb([list(a.shape), a.dtype.name, a.tobytes()]))
tree = {"w": nd(np.arange(6, dtype="<f4").reshape(2, 3)), "lr": 0.125, "n": -7, "ok": True,
        "name": "adam", "none": None, "opt": {"0": nd(np.array([1, 2], "<i2")), "1": 3}}
open(d + "/checkpoint", "wb").write(msgpack.packb(tree))
tm = {}
def add(keys, vt):
    tm[str(tuple(keys))] = {"key_metadata": [{"key": k, "key_type": 1 if k.isdigit() else 2} for k in keys],
                            "value_metadata": {"value_type": vt, "skip_deserialize": True}}
for k, vt in (("w", "np.ndarray"), ("lr", "scalar"), ("n", "scalar"), ("ok", "scalar"),
              ("name", "string"), ("none", "None")):
    add([k], vt)
add(["opt", "0"], "np.ndarray"); add(["opt", "1"], "scalar")
json.dump({"tree_metadata": tm, "use_zarr3": False}, open(d + "/_METADATA", "w"))
EOF
for a in "$AGG/aggregate_all.checkpoint" "$AGG/aggregate_some.checkpoint" "$T/aggmade"; do
	"$CK" verify "$a" >/dev/null || fail "verify $a"
	rm -rf "$T/aggout"
	"$CK" restore "$a" "$T/aggout"
	$PY - "$a" "$T/aggout/default" <<'EOF' || fail "msgpack contents of $a"
import os, sys
import msgpack, numpy as np
src, out = sys.argv[1:3]
def hook(code, data):
    shape, dtype, raw = msgpack.unpackb(data)
    return np.frombuffer(raw, dtype=dtype).reshape(shape)
tree = msgpack.unpackb(open(src + "/checkpoint", "rb").read(), ext_hook=hook)
def walk(t, path):
    for k, v in t.items():
        p = os.path.join(path, k)
        if isinstance(v, dict):
            walk(v, p)
        elif isinstance(v, np.ndarray):
            got = np.load(p + ".npy")
            assert got.dtype == v.dtype and np.array_equal(got, v), p
        elif isinstance(v, str) and v.startswith("PLACEHOLDER://"):
            assert np.load(p + ".npy").size > 0, p
        elif v is None:
            assert not os.path.exists(p), p
        else:
            got = open(p).read()
            # a scalar's file is a line of text (docs/fs.md); a string's is its bytes
            want = {True: "True", False: "False"}.get(v, repr(v)) + "\n" if not isinstance(v, str) else v
            assert got == want, (p, got, want)
walk(tree, out)
EOF
done
cp -r "$T/aggmade" "$T/aggbad"
head -c 40 "$T/aggmade/checkpoint" >"$T/aggbad/checkpoint"
bad "$T/aggbad" "checkpoint: msgpack: truncated"

# import: native steps with the same contents; a failed import leaves no step
"$CK" import "$ROOT/100" "$T/nat" 100 >/dev/null
"$CK" import "$ROOT/2" "$T/nat" 2 >/dev/null
[ "$(ls "$T/nat/100")" = "ckpt.db
ckpt.list
d" ] || fail "imported step is not native (index, listing, data): $(ls "$T/nat/100")"
"$CK" verify "$T/nat/100" >/dev/null || fail "verify imported"
"$CK" restore "$T/nat/100" "$T/nat100"
diff -r -x _CHECKPOINT_METADATA "$T/out100" "$T/nat100" || fail "imported step restores differently"
[ "$("$CK" cat "$T/nat/2/state/b/c")" = "[1 2 3]" ] || fail "imported 2"
if "$CK" import "$T/chunk" "$T/nat" 9 2>/dev/null; then fail "import of a damaged step"; fi
[ ! -e "$T/nat/9" ] || fail "a failed import left a step"
[ -z "$(ls -a "$T/nat" | grep tmp)" ] || fail "a failed import left a temporary directory"

# the mount: every step, np.load equals the expected contents; a damaged chunk is EIO on
# that leaf only
cp -r "$T/chunk" "$ROOT/9"
fs_mount
[ "$(t ls "$MNT" | tr '\n' ' ')" = "1 100 2 3 5 7 9 latest " ] || fail "mount ls: $(t ls "$MNT")"
t $PY - "$MNT" "$T/exp" <<'EOF'
import glob, os, sys
import numpy as np
mnt, exp = sys.argv[1:3]
for e in glob.glob(os.path.join(exp + "5", "*.npy")):
    got = np.load(os.path.join(mnt, "5", "state", *os.path.basename(e)[:-4].split(".")) + ".npy")
    assert np.array_equal(got, np.load(e)), e
for s, item in (("1", "state"), ("2", "state"), ("3", "default")):
    assert np.array_equal(np.load(f"{mnt}/{s}/{item}/a.npy"), np.arange(8, dtype=np.int32)), s
    assert np.array_equal(np.load(f"{mnt}/{s}/{item}/b/c.npy"), np.array([1, 2, 3], np.int32)), s
for e in glob.glob(os.path.join(exp, "*.npy")):
    want = np.load(e)
    if want.ndim == 0:
        continue
    got = np.load(os.path.join(mnt, "100", "state", *os.path.basename(e)[:-4].split(".")) + ".npy")
    assert got.dtype == want.dtype and np.array_equal(got, want), e
    m = np.load(os.path.join(mnt, "100", "state", *os.path.basename(e)[:-4].split(".")) + ".npy",
                mmap_mode="r")
    assert np.array_equal(m[-1], want[-1]), e
assert np.array_equal(np.load(f"{mnt}/7/state/w.npy"), np.arange(6, dtype=np.float32))
EOF
[ "$(t cat "$MNT/100/state/opt_state/0/count")" = "12345" ] || fail "mount scalar"
if out=$(t cat "$MNT/9/state/params/dense/kernel.npy" 2>&1 >/dev/null); then fail "damaged leaf read"; fi
echo "$out" | grep -q "Input/output error" || fail "damaged leaf: '$out'"
grep -q "params.dense.kernel: chunk 3.1: zstd" "$T/ckptfs.log" || fail "no reason in the log"
t cmp "$MNT/9/state/params/dense/bias.npy" "$MNT/100/state/params/dense/bias.npy" ||
	fail "a damaged leaf broke another"
[ "$(t cat "$MNT/1/metadata/metadata")" = '{"metadata": "json_data"}' ] || fail "mount json"
t cat "$MNT/2/_CHECKPOINT_METADATA" | grep -q '"commit_timestamp_nsecs":1778718403065544708' ||
	fail "mount step metadata: $(t cat "$MNT/2/_CHECKPOINT_METADATA")"
[ "$(t getfattr --only-values -n user.ckpt.format "$MNT/2")" = orbax ] || fail "xattr format 2"
[ "$(t getfattr --only-values -n user.ckpt.format "$MNT/7")" = ckpt ] || fail "xattr format 7"
[ "$(t getfattr --only-values -n user.ckpt.dtype "$MNT/100/state/params/embed.npy")" = int16 ] ||
	fail "xattr dtype"
want=$(find "$ROOT/100/state/params.dense.kernel" -type f ! -name .zarray -printf '%s\n' | awk '{ s += $1 } END { print s }')
[ "$(t getfattr --only-values -n user.ckpt.stored_size "$MNT/100/state/params/dense/kernel.npy")" = "$want" ] ||
	fail "stored_size is not the chunk files' $want bytes"
[ "$(t getfattr --only-values -n user.ckpt.codec "$MNT/100/state/params/dense/kernel.npy")" = zstd ] ||
	fail "codec xattr"
# where a leaf's bytes come from: zarr format, codec chain and chunk shape, as the zarr
# metadata says (in the db read by the independent OCDBT reader, tests/ocdbt_dump.py)
for s in 1 2; do
	python3 tests/ocdbt_dump.py "$ROOT/$s/state" --values >"$T/dump$s" || fail "dump $s"
done
$PY - "$T/dump1" "$T/dump2" "$ROOT/100/state/params.dense.kernel/.zarray" >"$T/srcwant" <<'EOF'
import json, re, sys
def meta(dump, key):
    for line in open(dump):
        m = re.match(r"  (\S+)\s+inline\s+\d+\s+(.*)$", line)
        if m and m.group(1) == key:
            return json.loads(m.group(2))
    raise SystemExit("no " + key + " in " + dump)
shape = lambda v: "[" + ", ".join(str(x) for x in v) + "]"
def chain(codecs):
    out = []
    for c in codecs:
        if c["name"] == "sharding_indexed":
            conf = c["configuration"]
            out.append("sharding_indexed(" + chain(conf["codecs"]) + ")")
            if any(i["name"] == "crc32c" for i in conf.get("index_codecs", [])):
                out.append("crc32c-index")
        else:
            out.append(c["name"])
    return ",".join(out)
z2 = meta(sys.argv[1], "a/.zarray")
print("1/state/a.npy", "zarr2", z2["compressor"]["id"], shape(z2["chunks"]), "-", sep="\t")
z3 = meta(sys.argv[2], "a/zarr.json")
sh = z3["codecs"][0]["configuration"]["chunk_shape"]
print("2/state/a.npy", "zarr3", chain(z3["codecs"]),
      shape(z3["chunk_grid"]["configuration"]["chunk_shape"]), shape(sh), sep="\t")
zf = json.load(open(sys.argv[3]))
print("100/state/params/dense/kernel.npy", "zarr2", zf["compressor"]["id"], shape(zf["chunks"]), "-",
      sep="\t")
EOF
[ "$(wc -l <"$T/srcwant")" = 3 ] || fail "expected source lines"
x() { t getfattr --only-values -n "user.ckpt.$1" "$MNT/$2" 2>/dev/null; }
while IFS=$'\t' read -r leaf fmt codec chunks inner; do
	[ "$(x source_format "$leaf")" = "$fmt" ] || fail "$leaf: source_format '$(x source_format "$leaf")', not $fmt"
	[ "$(x zarr_codec "$leaf")" = "$codec" ] || fail "$leaf: zarr_codec '$(x zarr_codec "$leaf")', not $codec"
	[ "$(x chunk_shape "$leaf")" = "$chunks" ] || fail "$leaf: chunk_shape '$(x chunk_shape "$leaf")', not $chunks"
	if [ "$inner" = - ]; then
		[ -z "$(x inner_chunk_shape "$leaf")" ] || fail "$leaf: inner_chunk_shape on an unsharded array"
	else
		[ "$(x inner_chunk_shape "$leaf")" = "$inner" ] ||
			fail "$leaf: inner_chunk_shape '$(x inner_chunk_shape "$leaf")', not $inner"
	fi
	x source "$leaf" | $PY -c "import json, sys; json.load(sys.stdin)" || fail "$leaf: source is not JSON"
	echo "$leaf: $(x source "$leaf")"
done <"$T/srcwant"
x source 100/state/params/dense/kernel.npy | grep -q '"kvstore":"file"' || fail "use_ocdbt=False leaf not from files"
x source 2/state/a.npy | grep -q '"kvstore":"ocdbt"' || fail "OCDBT leaf not from ocdbt"
if t getfattr -n user.ckpt.source "$MNT/7/state/w.npy" >/dev/null 2>&1; then
	fail "a native leaf has a source xattr"
fi
t getfattr -d -m user.ckpt "$MNT/2/state/a.npy" | grep -q "^user.ckpt.zarr_codec=" || fail "zarr_codec not listed"
# writes are refused: Orbax steps are read-only
if t sh -c "echo x > '$MNT/2/state/a.npy'" 2>/dev/null; then fail "write to an Orbax leaf"; fi
fs_umount
echo "orbax_read: ok"
