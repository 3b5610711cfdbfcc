#!/usr/bin/python3
"""numpy side of the ckpt CLI end-to-end tests.

  cli_npy.py gen DIR [CHUNK]   write an interchange directory with every dtype and shape
  cli_npy.py check SRC DST     compare a restored directory with the one saved
  cli_npy.py str FILE.npy      print(np.load(FILE)) — what `ckpt cat` must print
  cli_npy.py big DIR N MIB     N float32 leaves of MIB MiB each + one small leaf
  cli_npy.py mlp DIR           the demo's small MLP-like tree
  cli_npy.py catfuzz DIR EXPECT SEED N   N random arrays, what numpy prints for each
"""
import json
import os
import sys

import numpy as np

ML = {  # our documented structured form of the ML dtypes (ckpt/npy.h)
    "bfloat16": np.dtype([("bfloat16", "<u2")]),
    "float8_e4m3fn": np.dtype([("float8_e4m3fn", "u1")]),
    "float8_e5m2": np.dtype([("float8_e5m2", "u1")]),
}
DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
          "float16", "float32", "float64", "complex64", "complex128"]


def rand(rng, dt, shape):
    dt = np.dtype(dt)
    if dt.byteorder == ">":
        return rand(rng, dt.newbyteorder("<"), shape).astype(dt)
    n = int(np.prod(shape))
    if dt.kind == "b":
        return rng.integers(0, 2, n).astype(bool).reshape(shape)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return rng.integers(info.min, info.max, n, dtype=dt, endpoint=True).reshape(shape)
    if dt.kind == "f":
        return (rng.standard_normal(n) * 100).astype(dt).reshape(shape)
    return (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(dt).reshape(shape)


def write(path, data):
    d = os.path.dirname(path)
    if d:
        os.makedirs(d, exist_ok=True)
    if isinstance(data, np.ndarray):
        np.save(path, data)
    else:
        with open(path, "wb") as f:
            f.write(data if isinstance(data, bytes) else data.encode())


def gen(d, chunk):
    rng = np.random.default_rng(12345)
    s = os.path.join(d, "state")
    for dt in DTYPES:
        write(f"{s}/dtypes/{dt}.npy", rand(rng, dt, (3, 4)))
        write(f"{s}/dtypes/be_{dt}.npy", rand(rng, np.dtype(dt).newbyteorder(">"), (2, 3)))
        write(f"{s}/dtypes/f_{dt}.npy", np.asfortranarray(rand(rng, dt, (4, 5))))
        write(f"{s}/zero_d/{dt}.npy", rand(rng, dt, ()))
        write(f"{s}/empty/{dt}.npy", np.zeros((0, 3), dtype=dt))
    for name, dt in ML.items():
        a = np.zeros((2, 5), dtype=dt)
        a[name] = rng.integers(0, 256 if dt.itemsize == 1 else 65536, (2, 5))
        if name == "bfloat16":  # avoid NaN bit patterns, which a cast may canonicalise
            a[name] &= 0x3FFF
        else:
            a[name] &= 0x3F
        write(f"{s}/ml/{name}.npy", a)
    big = (rng.standard_normal(5 * chunk // 4 + 123) * 10).astype(np.float32)
    write(f"{s}/big/f32.npy", big)  # more than several chunks
    write(f"{s}/big/i64_2d.npy", rng.integers(-10**6, 10**6, (700, 600 + chunk // 8 // 700)))
    write(f"{s}/big/fortran_be.npy",
          np.asfortranarray(rand(rng, ">f8", (300, 2 * chunk // 8 // 300 + 7))))
    write(f"{s}/a/b/c/deep.npy", np.arange(24, dtype=np.int16).reshape(2, 3, 4))
    write(f"{s}/special/floats.npy", np.array([0.0, -0.0, 1.5, np.nan, np.inf, -np.inf, 1e-3]))
    write(f"{s}/special/tiny.npy", np.array([1e-10, 2.5e-7, 3.0], dtype=np.float64))
    write(f"{s}/special/ints.npy", np.array([-5, 123456789, 0], dtype=np.int64))
    write(f"{s}/step", "1000")
    write(f"{s}/lr", "0.001")
    write(f"{s}/flag", "True")
    write(f"{s}/a/neg", "-42")
    write(f"{s}/name", "hello, checkpoint")
    write(f"{s}/a/b/note", "nested string")
    write(f"{d}/extra/x.npy", np.linspace(0, 1, 11))
    write(f"{d}/extra/count", "7")


def check(src, dst):
    n = 0
    for dirpath, _, files in os.walk(src):
        for fn in files:
            a_path = os.path.join(dirpath, fn)
            rel = os.path.relpath(a_path, src)
            b_path = os.path.join(dst, rel)
            if not os.path.exists(b_path):
                sys.exit(f"missing in restore: {rel}")
            n += 1
            if fn.endswith(".npy"):
                a, b = np.load(a_path), np.load(b_path)
                le = a.dtype.newbyteorder("<") if a.dtype.byteorder == ">" else a.dtype
                if b.dtype != le or a.shape != b.shape:
                    sys.exit(f"{rel}: {a.dtype}{a.shape} restored as {b.dtype}{b.shape}")
                if np.ascontiguousarray(a.astype(le)).tobytes() != \
                        np.ascontiguousarray(b).tobytes():
                    sys.exit(f"{rel}: values differ")
                if a.dtype.byteorder != ">" and a.flags.c_contiguous and \
                        open(a_path, "rb").read() != open(b_path, "rb").read():
                    sys.exit(f"{rel}: C-order little-endian file not byte-identical")
            elif fn == "_METADATA":
                if json.load(open(a_path)) != json.load(open(b_path)):
                    sys.exit(f"{rel}: the tree metadata changed")
            else:
                ta, tb = open(a_path, "rb").read(), open(b_path, "rb").read()
                if ta.strip() != tb.strip():
                    sys.exit(f"{rel}: {ta[:200]!r} restored as {tb[:200]!r}")
    for dirpath, _, files in os.walk(dst):
        for fn in files:
            rel = os.path.relpath(os.path.join(dirpath, fn), dst)
            if not fn.startswith("_") and not os.path.exists(os.path.join(src, rel)):
                sys.exit(f"extra file in restore: {rel}")
    print(f"{n} files identical")


def big(d, n, mib):
    rng = np.random.default_rng(7)
    os.makedirs(f"{d}/state", exist_ok=True)
    a = rng.integers(0, 2**32, mib << 18, dtype=np.uint32).view(np.float32)
    np.save(f"{d}/state/w0.npy", a)
    for i in range(1, n):  # the same bytes under other names: a hard link is enough
        os.link(f"{d}/state/w0.npy", f"{d}/state/w{i}.npy")
    np.save(f"{d}/state/small.npy", np.arange(100, dtype=np.float32))  # inline in the index
    np.save(f"{d}/state/medium.npy", np.arange(50000, dtype=np.float32))  # in a data file


def write_tree(item_dir, tree, leaf_custom=None):
    """An interchange item with its _METADATA. Nodes: dict, list, tuple, None,
    np.ndarray, int, float, bool, str. leaf_custom: {path tuple: custom metadata}."""
    leaf_custom = leaf_custom or {}
    leaves, containers = {}, {}
    os.makedirs(item_dir, exist_ok=True)

    def key_md(keys):
        return [{"key": k, "key_type": t} for k, t in keys]

    def walk(node, keys):
        path = os.path.join(item_dir, *[k for k, _ in keys])
        label = str(tuple(k for k, _ in keys))
        custom = leaf_custom.get(tuple(k for k, _ in keys))
        if isinstance(node, (dict, list, tuple)):
            typ = {dict: "dict", list: "list", tuple: "tuple"}[type(node)]
            containers[label] = {"type": typ, "key_metadata": key_md(keys)}
            if keys:
                containers[label]["custom_metadata"] = None
                os.makedirs(path, exist_ok=True)
            if not node:
                leaves[label] = {"key_metadata": key_md(keys), "value_metadata": {
                    "value_type": {"dict": "Dict", "list": "List", "tuple": "Tuple"}[typ],
                    "skip_deserialize": True, "custom_metadata": None}}
            items = node.items() if isinstance(node, dict) else enumerate(node)
            for k, v in items:
                walk(v, keys + [(str(k), 2 if isinstance(node, dict) else 1)])
            return
        if node is None:
            vm = {"value_type": "None", "skip_deserialize": True}
        elif isinstance(node, np.ndarray):
            vm = {"value_type": "np.ndarray", "dtype": node.dtype.name,
                  "shape": list(node.shape), "skip_deserialize": False}
            write(path + ".npy", node)
        elif isinstance(node, str):
            vm = {"value_type": "string", "skip_deserialize": False}
            write(path, node)
        else:
            vm = {"value_type": "scalar", "scalar_type": type(node).__name__,
                  "skip_deserialize": False}
            write(path, repr(node))
        vm["custom_metadata"] = custom
        leaves[label] = {"key_metadata": key_md(keys), "value_metadata": vm}

    walk(tree, [])
    with open(os.path.join(item_dir, "_METADATA"), "w") as f:
        json.dump({"tree_metadata": leaves, "containers": containers,
                   "ckptfs_metadata_version": 1, "use_zarr3": False,
                   "custom_metadata": None}, f)


def mlp(d):
    """A small MLP-like training state: params, an optimizer state list, scalars."""
    rng = np.random.default_rng(0)
    params = {"dense": {"kernel": rng.standard_normal((64, 32)).astype(np.float32),
                        "bias": np.zeros(32, np.float32)},
              "out": {"kernel": rng.standard_normal((32, 10)).astype(np.float32),
                      "bias": np.zeros(10, np.float32)}}
    zeros = {k: {n: np.zeros_like(a) for n, a in v.items()} for k, v in params.items()}
    write_tree(os.path.join(d, "state"), {
        "params": params,
        "opt_state": [{"count": np.array(1000, np.int32), "mu": zeros, "nu": zeros}, {}],
        "step": 1000,
        "learning_rate": 0.001,
        "run_name": "mlp-demo",
    })


def catfuzz(d, expect, seed, n):
    """n random arrays (dtypes, shapes, scales, nan/inf) in d/state/ and for each
    expect/NAME.txt holding what print() shows: what `ckpt cat` must print."""
    rng = np.random.default_rng(seed)
    os.makedirs(f"{d}/state", exist_ok=True)
    os.makedirs(expect, exist_ok=True)
    shapes = [(), (1,), (7,), (1001,), (3, 400), (2, 3, 200), (10, 10, 11), (1, 1, 1, 2000),
              (0,), (5, 0), (40, 40), (2, 2)]
    dtypes = ["float16", "float32", "float64", "complex64", "complex128", "int8", "uint8",
              "int16", "uint32", "int64", "uint64", "bool"]
    for i in range(n):
        dt, sh = dtypes[rng.integers(len(dtypes))], shapes[rng.integers(len(shapes))]
        sc = 10.0 ** rng.integers(-12, 25)
        size = int(np.prod(sh))
        if dt[0] in "fc":
            with np.errstate(over="ignore"):
                a = rng.standard_normal(size) * sc
                if dt[0] == "c":
                    a = a + 1j * rng.standard_normal(size) * 10.0 ** rng.integers(-6, 6)
                a = a.astype(dt)
            mode = rng.integers(6)
            if mode == 0 and size > 2:
                a[1], a[-1] = np.nan, -np.inf
            elif mode == 1:
                a = np.round(a, 2)
            elif mode == 2:
                a[:] = 0
            elif mode == 3 and size:
                a.flat[0] = -0.0
        elif dt == "bool":
            a = rng.integers(0, 2, size).astype(bool)
        else:
            info = np.iinfo(dt)
            a = rng.integers(info.min, info.max, size, dtype=dt, endpoint=True)
        a = a.reshape(sh)
        np.save(f"{d}/state/a{i:03d}.npy", a)
        with open(f"{expect}/a{i:03d}.txt", "w") as f:
            print(a, file=f)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "gen":
        gen(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 65536)
    elif cmd == "check":
        check(sys.argv[2], sys.argv[3])
    elif cmd == "str":
        print(np.load(sys.argv[2]))
    elif cmd == "big":
        big(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif cmd == "catfuzz":
        catfuzz(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    elif cmd == "mlp":
        mlp(sys.argv[2])
    else:
        sys.exit(f"unknown command {cmd}")
