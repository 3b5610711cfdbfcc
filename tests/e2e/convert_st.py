#!/usr/bin/python3
"""tests/e2e/convert_st.py — safetensors in Python (json + numpy only), written
from the format's description, independent of the C code.

  gen DIR                   write reference inputs into DIR: model.safetensors
                            (every dtype, nested names, 0-d, empty, big-endian
                            sources converted, __metadata__), flat.safetensors
                            (no __metadata__), an interchange dir src/ and
                            bad/*.safetensors (malformed files)
  check FILE SRCDIR ITEM    read FILE with this reader; every tensor equals the
                            leaf SRCDIR/ITEM/<path>.npy it names; prints count
  npz NPZ SRCDIR ITEM       np.load(NPZ): every array equals its source leaf
  ranges FILE N SEED        N random (offset, length) pairs for dd
"""
import json
import os
import random
import struct
import sys
import zipfile

import numpy as np

# The reference writer's order: dtypes by this rank, descending, then names.
RANK = ["BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16",
        "I32", "U32", "F32", "F64", "I64", "U64"]
NP = {"BOOL": "?", "U8": "<u1", "I8": "<i1", "I16": "<i2", "U16": "<u2",
      "F16": "<f2", "I32": "<i4", "U32": "<u4", "F32": "<f4", "F64": "<f8",
      "I64": "<i8", "U64": "<u8", "BF16": "<u2", "F8_E4M3": "<u1", "F8_E5M2": "<u1"}


def st_bytes(tensors, metadata=None):
    """tensors: {name: (dtype, shape, raw little-endian bytes)} -> file bytes,
    as safetensors' serialize() lays it out."""
    order = sorted(tensors, key=lambda n: (-RANK.index(tensors[n][0]), n.encode()))
    hdr, data, at = {}, [], 0
    if metadata is not None:
        hdr["__metadata__"] = metadata
    for n in order:
        dt, shape, raw = tensors[n]
        hdr[n] = {"dtype": dt, "shape": list(shape), "data_offsets": [at, at + len(raw)]}
        data.append(raw)
        at += len(raw)
    js = json.dumps(hdr, separators=(",", ":"), ensure_ascii=False).encode()
    js += b" " * ((8 - len(js) % 8) % 8)
    return struct.pack("<Q", len(js)) + js + b"".join(data)


def st_read(path):
    """-> (metadata or None, {name: (dtype, shape, raw bytes)}), checking the layout."""
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    hdr = json.loads(buf[8:8 + n].decode())
    assert (8 + n) % 8 == 0, "header not padded to 8"
    base = 8 + n
    meta = hdr.pop("__metadata__", None)
    out, spans = {}, []
    for name, t in hdr.items():
        b, e = t["data_offsets"]
        spans.append((b, e))
        out[name] = (t["dtype"], tuple(t["shape"]), buf[base + b:base + e])
    spans.sort()
    at = 0
    for b, e in spans:
        assert b == at, "tensors do not tile the data"
        at = e
    assert base + at == len(buf), "file length disagrees with the header"
    return meta, out


def leaf_bytes(npy_path):
    """The leaf's data as little-endian C-order bytes (ML dtypes: their bits)."""
    a = np.load(npy_path)
    if a.dtype.names:  # bfloat16 / float8 as a one-field structured dtype
        a = a[a.dtype.names[0]]
    return np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()


def rnd(rng, dt, shape):
    n = int(np.prod(shape)) if shape else 1
    if dt == "BOOL":
        return (rng.integers(0, 2, n) == 1).astype("?").tobytes()
    if dt.startswith("F") and dt in ("F16", "F32", "F64"):
        return rng.standard_normal(n).astype(NP[dt]).tobytes()
    return rng.integers(0, 250, n).astype(NP[dt]).tobytes()


def gen(d):
    rng = np.random.default_rng(18)
    os.makedirs(d + "/bad", exist_ok=True)
    t = {}
    for i, dt in enumerate(RANK):
        t["model.layers.%d.w_%s" % (i % 3, dt.lower())] = (dt, (3, 5), rnd(rng, dt, (3, 5)))
    t["model.embed.weight"] = ("F32", (64, 33), rnd(rng, "F32", (64, 33)))
    t["model.scalar"] = ("F64", (), rnd(rng, "F64", ()))
    t["model.empty"] = ("I32", (0, 4), b"")
    t["lm_head.weight"] = ("BF16", (7, 9), rnd(rng, "BF16", (7, 9)))
    t["big"] = ("F32", (300, 1000), rnd(rng, "F32", (300, 1000)))
    with open(d + "/model.safetensors", "wb") as f:
        f.write(st_bytes(t, {"format": "pt", "note": "ünïcode \"q\""}))
    with open(d + "/flat.safetensors", "wb") as f:
        f.write(st_bytes({"a": ("I64", (4,), rnd(rng, "I64", (4,))),
                          "b": ("U8", (3,), rnd(rng, "U8", (3,)))}))
    # An interchange directory with what safetensors cannot hold.
    s = d + "/src/state"
    os.makedirs(s + "/params/dense", exist_ok=True)
    np.save(s + "/params/dense/kernel.npy", rng.standard_normal((16, 8)).astype(">f4"))
    np.save(s + "/params/dense/bias.npy", np.arange(8, dtype=np.int16))
    np.save(s + "/params/zero_d.npy", np.array(2.5, dtype=np.float64))
    np.save(s + "/params/cplx.npy", np.arange(3, dtype=np.complex64))
    np.save(s + "/params/fortran.npy", np.asfortranarray(np.arange(12, dtype=np.int32).reshape(3, 4)))
    with open(s + "/step", "w") as f:
        f.write("100")
    with open(s + "/name", "w") as f:
        f.write("run-one")
    # Malformed inputs: each must be refused with a message.
    good = st_bytes({"x": ("F32", (2,), b"\0" * 8), "y": ("U8", (4,), b"\1" * 4)})
    (n,) = struct.unpack("<Q", good[:8])
    hdr = json.loads(good[8:8 + n])

    def remake(h, data=good[8 + n:]):
        js = json.dumps(h, separators=(",", ":")).encode()
        return struct.pack("<Q", len(js)) + js + data

    bad = {
        "short": good[:5],
        "hugelen": struct.pack("<Q", 1 << 40) + good[8:],
        "notjson": struct.pack("<Q", 8) + b"{oops!!!" + good[8 + n:],
        "overlap": remake({**hdr, "y": {**hdr["y"], "data_offsets": [4, 8]}}),
        "gap": remake({**hdr, "y": {**hdr["y"], "data_offsets": [9, 13]}}, good[8 + n:] + b"\0"),
        "outofrange": remake({**hdr, "y": {**hdr["y"], "data_offsets": [8, 100]}}),
        "shape": remake({**hdr, "x": {**hdr["x"], "shape": [3]}}),
        "truncated": good[:-2],
        "trailing": good + b"\0\0\0\0",
        "dtype": remake({**hdr, "x": {**hdr["x"], "dtype": "F7"}}),
        "prefix": remake({"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
                          "a.b": {"dtype": "U8", "shape": [8], "data_offsets": [4, 12]}},
                         good[8 + n:]),
    }
    for k, v in bad.items():
        with open("%s/bad/%s.safetensors" % (d, k), "wb") as f:
            f.write(v)


def check(path, srcdir, item):
    """Every tensor of FILE equals the leaf it names in SRCDIR/ITEM."""
    meta, ts = st_read(path)
    n = 0
    for name, (dt, shape, raw) in ts.items():
        leaf = os.path.join(srcdir, item, *name.split(".")) + ".npy"
        a = np.load(leaf)
        if a.dtype.names:
            a = a[a.dtype.names[0]]
        assert tuple(a.shape) == shape, (name, a.shape, shape)
        assert np.dtype(NP[dt]).itemsize == a.dtype.itemsize, (name, dt, a.dtype)
        assert raw == leaf_bytes(leaf), "tensor %s differs" % name
        n += 1
    print(n, json.dumps(meta, sort_keys=True))


def check_npz(path, srcdir, item):
    """np.load(NPZ): every array equals (bit for bit) the leaf its name gives;
    every entry is dated 1980-01-01 00:00:00 in the central directory and in
    its local header (docs/convert.md: reproducible exports)."""
    raw = open(path, "rb").read()
    for info in zipfile.ZipFile(path).infolist():
        assert info.date_time == (1980, 1, 1, 0, 0, 0), (info.filename, info.date_time)
        local = struct.unpack_from("<HH", raw, info.header_offset + 10)
        assert local == (0, 0x21), (info.filename, "local header time/date", local)
    z = np.load(path)
    n = 0
    for name in z.files:
        leaf = os.path.join(srcdir, item, *name.split(".")) + ".npy"
        a, b = z[name], np.load(leaf)
        assert a.shape == b.shape, (name, a.shape, b.shape)
        assert a.dtype == b.dtype.newbyteorder("<") or a.dtype == b.dtype, (name, a.dtype, b.dtype)
        le = lambda x: np.ascontiguousarray(x).astype(x.dtype.newbyteorder("<")).tobytes()
        assert le(a) == le(b), "array %s differs" % name
        n += 1
    print(n)


def ranges(path, count, seed):
    size = os.path.getsize(path)
    rng = random.Random(int(seed))
    for _ in range(int(count)):
        off = rng.randrange(size)
        print(off, rng.randrange(1, min(size - off, 3 << 20) + 1))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "gen":
        gen(sys.argv[2])
    elif cmd == "check":
        check(*sys.argv[2:5])
    elif cmd == "npz":
        check_npz(*sys.argv[2:5])
    elif cmd == "ranges":
        ranges(*sys.argv[2:5])
    else:
        sys.exit("unknown command " + cmd)
