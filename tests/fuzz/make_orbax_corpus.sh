#!/bin/bash
# Make the seed corpora of ocdbt_fuzzer and zarr_fuzzer from the real Orbax and
# TensorStore samples in tests/data/orbax (manifests, B+tree nodes of every
# height, zarr2/zarr3 metadata with real chunks, shard indexes), plus damaged
# variants. Usage: bash tests/fuzz/make_orbax_corpus.sh   (rewrites the corpora)
set -euo pipefail
cd "$(dirname "$0")/../.."
/usr/bin/python3 - <<'PY'
import glob, hashlib, os, struct, sys
sys.path.insert(0, "tests")
import ocdbt_dump as od

def put(d, data):
    os.makedirs(d, exist_ok=True)
    open(os.path.join(d, hashlib.sha1(data).hexdigest()[:16]), "wb").write(data)

O, Z = "tests/fuzz/corpus/ocdbt", "tests/fuzz/corpus/zarr"
dbs = sorted(set(os.path.dirname(p) for p in glob.glob("tests/data/orbax/**/manifest.ocdbt", recursive=True)))
seen = 0
for db in dbs:
    m = open(os.path.join(db, "manifest.ocdbt"), "rb").read()
    for mode in (0, 2):
        put(O, bytes([mode]) + m)
    if seen < 12:
        put(O, bytes([2]) + m[:len(m) // 2] + m[-4:])
    try:
        cfg, versions, _ = od.read_manifest(db)
    except Exception:
        continue
    v = versions[-1] if versions else None
    if not v or v["root"][1] == 2**64 - 1 or v["root"][0] is None:
        continue
    # every node of the tree (walk by hand to get the byte ranges)
    todo = [(v["root"], v["root_height"])]
    while todo:
        (fi, off, ln), h = todo.pop()
        try:
            raw = od.read_range(db, fi, off, ln)
        except OSError:
            continue
        for mode in (1, 3):
            put(O, bytes([mode]) + raw)
        if h > 0:
            r, _ = od.unwrap(raw, "btree")
            r.u8(); files = od.data_file_table(r, fi[1]); n = r.varint()
            od.keys_block(r, n, True)
            todo += [(ref, h - 1) for ref in od.refs(r, n, files)]
    seen += 1
    # zarr metadata with the chunk values stored next to it
    out, stats = [], {"nodes": 0, "node_comp": set()}
    try:
        od.walk_btree(db, v["root"], v["root_height"], b"", out, stats)
    except OSError:
        continue
    vals = {k: (val if kind == "inline" else od.read_range(db, (val[0][0], None), val[1], val[2])) for k, kind, val in out}
    for k, val in vals.items():
        for name, mode in ((b"/.zarray", 0), (b"/zarr.json", 1)):
            if k.endswith(name):
                p = k[: -len(name)]
                chunk = next((c for kk, c in vals.items() if kk.startswith(p + b"/") and kk != k), b"")
                put(Z, bytes([mode]) + val + b"\0" + chunk)
                if mode == 1 and len(chunk) >= 20:
                    put(Z, bytes([2, 1, 1]) + chunk[-20:])
for f in glob.glob("tests/data/orbax/**/.zarray", recursive=True):
    d = os.path.dirname(f)
    c = os.path.join(d, "0")
    put(Z, b"\0" + open(f, "rb").read() + b"\0" + (open(c, "rb").read() if os.path.exists(c) else b""))
print(len(os.listdir(O)), "ocdbt seeds,", len(os.listdir(Z)), "zarr seeds")
PY
# msgpack_fuzzer: the samples' legacy aggregate files, and every kind of leaf (msgpack_fuzzer.c)
/usr/bin/python3 - <<'PY'
import hashlib, glob, os
import msgpack, numpy as np
out = "tests/fuzz/corpus/msgpack"
os.makedirs(out, exist_ok=True)
def put(b):
    open(os.path.join(out, hashlib.sha1(b).hexdigest()[:16]), "wb").write(b)
for f in [p for p in glob.glob("tests/data/orbax/**/checkpoint", recursive=True) if os.path.isfile(p)]:
    b = open(f, "rb").read(); put(b); put(b[: len(b) // 2])
nd = lambda a: msgpack.ExtType(1, msgpack.packb([list(a.shape), a.dtype.name, a.tobytes()]))
put(msgpack.packb({"w": nd(np.arange(6, dtype="<f4").reshape(2, 3)), "lr": 0.125, "n": -7, "ok": True,
                   "s": "adam", "none": None, "opt": {"0": nd(np.array([1, 2], "<i2")), "1": 3},
                   "big": 2**63 - 1, "f32": msgpack.ExtType(3, msgpack.packb([[], "float32", b"\0\0\x80?"]))},
                  use_single_float=False))
put(msgpack.packb({"x": [1, 2]}))
put(msgpack.packb({"c": msgpack.ExtType(2, msgpack.packb([1.0, 2.0]))}))
put(msgpack.packb({"__msgpack_chunked_array__": True}))
put(msgpack.packb({"deep": {"a": {"b": {"c": {"d": 1.5}}}}}, use_single_float=True))
put(msgpack.packb({"p": "PLACEHOLDER://a.b"}))
print(len(os.listdir(out)), "msgpack seeds")
PY
