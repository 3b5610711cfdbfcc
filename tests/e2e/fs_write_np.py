"""tests/e2e/fs_write_np.py — numpy side of the ckptfs write tests (fs_write_*.sh).

Run with /usr/bin/python3 (the one with numpy):
  arrays DIR             the .npy files of fs_write_basic: float32, int8, bool, complex64,
                         big-endian >f8, Fortran-order, 0-d, empty, float16, uint64
  npsave FILE SEED [DTYPE SHAPE]  np.save a random array straight to FILE (a mount path)
  big FILE MIB SEED      a random (incompressible) float32 .npy of MIB MiB
  tree DIR               interchange dir with a list, a tuple, a None, a string, an int,
                         a float, custom metadata, arrays and a JSON item (fs_write_copy)
  surgery DIR MIB        interchange dir: params with a MIB MiB leaf, an optimizer-state
                         list, a list of arrays, a None
  bad DIR                bad .npy files: truncated.npy, lying.npy (header says fewer
                         elements than the file holds), unknown.npy (descr '<x4')
  check SRC DST          every file of SRC is in DST, equal: .npy by dtype (big-endian
                         as little-endian), shape and values (C-order little-endian ones
                         byte for byte), other files by their stripped text; DST has
                         no other non-'_' files; _METADATA compared as JSON,
                         _CHECKPOINT_METADATA not compared (see cpmeta)
  treecmp A B [RULES]    two `ckpt tree --json` outputs name the same nodes with the same
                         kind, dtype and shape (sizes ignored); RULES (JSON, applied to A
                         first): {"drop": [prefix], "rename": {old: new}, "set": {path:
                         {field: value}}}
  cpmeta A B             two _CHECKPOINT_METADATA files agree but for their timestamps
  structure FILE         an item _METADATA: print its container types and leaf kinds
  reread VIEW ORIG STOP  read VIEW again and again (page cache dropped for it first, odd-
                         sized reads) until the file STOP exists, at least twice; every
                         read must equal ORIG; makes STOP.started after the first read;
                         prints the number of reads
"""
import json
import os
import sys

import numpy as np

from cli_npy import rand, write, write_tree  # shared with the CLI tests


def arrays(d):
    rng = np.random.default_rng(400)
    write(f"{d}/f32.npy", rand(rng, "float32", (33, 17)))
    write(f"{d}/i8.npy", rand(rng, "int8", (5, 6, 7)))
    write(f"{d}/flags.npy", rand(rng, "bool", (100,)))
    write(f"{d}/c64.npy", rand(rng, "complex64", (4, 9)))
    write(f"{d}/be_f8.npy", rand(rng, ">f8", (12, 5)))
    write(f"{d}/fortran.npy", np.asfortranarray(rand(rng, "float32", (20, 30))))
    write(f"{d}/zero_d.npy", rand(rng, "uint16", ()))
    write(f"{d}/empty.npy", np.zeros((0, 3), np.int64))
    write(f"{d}/f16.npy", rand(rng, "float16", (64,)))
    write(f"{d}/u64.npy", rand(rng, "uint64", (3, 3)))


def npsave(path, seed, dtype="float64", shape="50,40"):
    shape = tuple(int(x) for x in shape.split(",") if x)
    np.save(path, rand(np.random.default_rng(seed), dtype, shape))


def big(path, mib, seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2**32, mib << 18, dtype=np.uint32).view(np.float32)
    write(path, a)


PYTREE = "orbax.checkpoint._src.handlers.pytree_checkpoint_handler.PyTreeCheckpointHandler"
JSONH = "orbax.checkpoint._src.handlers.json_checkpoint_handler.JsonCheckpointHandler"


def tree(d):
    rng = np.random.default_rng(100)
    write_tree(f"{d}/state", {
        "params": {"w": rand(rng, "float32", (16, 8)), "b": rand(rng, "float64", (8,))},
        "layers": [rand(rng, "int16", (3,)), {"scale": rand(rng, "float32", ())}, 7],
        "pair": (rand(rng, "uint8", (2, 2)), "tuple-string", 2.5),
        "nothing": None,
        "step": 1000,
        "lr": 0.001,
        "done": False,
        "name": "run-name with spaces",
    }, leaf_custom={("params", "w"): {"init": "lecun", "frozen": False}})
    os.makedirs(f"{d}/metadata", exist_ok=True)
    write(f"{d}/metadata/metadata", json.dumps({"epoch": 3, "notes": "json item"}))
    write(f"{d}/_CHECKPOINT_METADATA", json.dumps({
        "item_handlers": {"state": PYTREE, "metadata": JSONH},
        "metrics": {"loss": 0.25},
        "custom_metadata": {"experiment": "exp1", "seed": 42}}))


def surgery(d, mib):
    rng = np.random.default_rng(101)
    params = {"dense": {"kernel": rand(rng, "float32", (64, 32)),
                        "bias": rand(rng, "float32", (32,))},
              "big": rng.integers(0, 2**32, mib << 18, dtype=np.uint32).view(np.float32),
              "out": {"kernel": rand(rng, "float32", (32, 10))}}
    write_tree(f"{d}/state", {
        "params": params,
        "opt_state": [{"count": np.array(1000, np.int32),
                       "mu": {"dense": rand(rng, "float32", (64, 32))},
                       "nu": {"dense": rand(rng, "float32", (64, 32))}}, {}],
        "layers": [rand(rng, "float32", (8, 8)), rand(rng, "int32", (4,))],
        "empty": None,
        "step": 1000,
        "name": "surgery",
    })


def npy_header(descr, shape):
    h = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, repr(tuple(shape)))
    h = h.encode()
    pad = 64 - (10 + len(h) + 1) % 64
    h += b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + len(h).to_bytes(2, "little") + h


def bad(d):
    os.makedirs(d, exist_ok=True)
    good = npy_header("<f4", (1000,)) + np.arange(1000, dtype="<f4").tobytes()
    write(f"{d}/truncated.npy", good[:len(good) // 2])
    write(f"{d}/lying.npy", npy_header("<f4", (10,)) + np.arange(1000, dtype="<f4").tobytes())
    write(f"{d}/unknown.npy", npy_header("<x4", (10,)) + bytes(40))


def load_le(path):
    a = np.load(path)
    le = a.dtype.newbyteorder("<") if a.dtype.byteorder == ">" else a.dtype
    return a, le


def view_file(top, rel):
    """<item>.safetensors at the top of a step, beside the item's directory."""
    stem = rel[:-len(".safetensors")]
    return "/" not in rel and rel.endswith(".safetensors") and os.path.isdir(os.path.join(top, stem))


def check(src, dst):
    n = 0
    for dirpath, _, files in os.walk(src):
        for fn in files:
            a_path = os.path.join(dirpath, fn)
            rel = os.path.relpath(a_path, src)
            b_path = os.path.join(dst, rel)
            if not os.path.exists(b_path):
                sys.exit(f"missing: {rel}")
            n += 1
            if fn == "_CHECKPOINT_METADATA":
                continue  # timestamps differ: see cpmeta
            if fn == "_METADATA":
                if json.load(open(a_path)) != json.load(open(b_path)):
                    sys.exit(f"{rel}: the tree metadata differs")
            elif fn.endswith(".npy"):
                a, le = load_le(a_path)
                b = np.load(b_path)
                if b.dtype != le or a.shape != b.shape:
                    sys.exit(f"{rel}: {a.dtype}{a.shape} read back as {b.dtype}{b.shape}")
                if np.ascontiguousarray(a.astype(le)).tobytes() != \
                        np.ascontiguousarray(b).tobytes():
                    sys.exit(f"{rel}: values differ")
                if a.dtype.byteorder != ">" and (a.flags.c_contiguous or a.ndim < 2) and \
                        open(a_path, "rb").read() != open(b_path, "rb").read():
                    sys.exit(f"{rel}: C-order little-endian file not byte-identical")
            else:
                ta, tb = open(a_path, "rb").read(), open(b_path, "rb").read()
                if ta.strip() != tb.strip():
                    sys.exit(f"{rel}: {ta[:100]!r} read back as {tb[:100]!r}")
    for dirpath, _, files in os.walk(dst):
        for fn in files:
            rel = os.path.relpath(os.path.join(dirpath, fn), dst)
            if view_file(dst, rel):
                continue  # <item>.safetensors beside <item>/: the mount's view (docs/convert.md)
            if not fn.startswith("_") and not os.path.exists(os.path.join(src, rel)):
                sys.exit(f"extra file: {rel}")
    if n == 0:
        sys.exit("nothing compared")
    print(f"{n} files equal")


def nodes(path, rules=None):
    out = {}
    for e in json.load(open(path)):
        out[e["path"]] = {k: e.get(k) for k in ("kind", "dtype", "shape", "handler")}
    if not rules:
        return out
    for pre in rules.get("drop", []):
        out = {p: v for p, v in out.items() if p != pre and not p.startswith(pre + "/")}
    for old, new in rules.get("rename", {}).items():
        out = {(new + p[len(old):] if p == old or p.startswith(old + "/") else p): v
               for p, v in out.items()}
    for p, fields in rules.get("set", {}).items():
        out.setdefault(p, {"kind": None, "dtype": None, "shape": None, "handler": None})
        out[p].update(fields)
    return out


def treecmp(a, b, rules=None):
    na, nb = nodes(a, json.loads(rules) if rules else None), nodes(b)
    if na != nb:
        for p in sorted(set(na) | set(nb)):
            if na.get(p) != nb.get(p):
                print(f"  {p}: expected {na.get(p)}, got {nb.get(p)}", file=sys.stderr)
        sys.exit("trees differ")
    print(f"{len(na)} nodes equal")


def cpmeta(a, b):
    ja, jb = json.load(open(a)), json.load(open(b))
    for j in (ja, jb):
        for k in ("init_timestamp_nsecs", "commit_timestamp_nsecs"):
            j.pop(k, None)
        if not j.get("performance_metrics"):
            j.pop("performance_metrics", None)
    if ja != jb:
        sys.exit(f"_CHECKPOINT_METADATA differs: {ja} vs {jb}")
    print("checkpoint metadata equal")


def structure(path):
    m = json.load(open(path))
    for label, c in sorted(m["containers"].items()):
        print("container", label, c["type"])
    for label, v in m["tree_metadata"].items():
        vm = v["value_metadata"]
        print("leaf", label, vm["value_type"], vm.get("scalar_type", ""),
              json.dumps(vm.get("custom_metadata"), sort_keys=True))


def reread(view, orig, stop):
    want = open(orig, "rb").read()
    n = 0
    while n < 2 or not os.path.exists(stop):
        fd = os.open(view, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # make the daemon serve it
        got, off, step = bytearray(), 0, 65536 + 4096 * (n % 7) + 13
        while True:
            b = os.pread(fd, step, off)
            if not b:
                break
            got += b
            off += len(b)
        os.close(fd)
        if bytes(got) != want:
            sys.exit(f"read {n} of {view} differs")
        n += 1
        if n == 1:
            open(stop + ".started", "w").close()
    print(n)


def main():
    cmd, a = sys.argv[1], sys.argv[2:]
    if cmd == "arrays":
        arrays(a[0])
    elif cmd == "npsave":
        npsave(a[0], int(a[1]), *a[2:])
    elif cmd == "big":
        big(a[0], int(a[1]), int(a[2]))
    elif cmd == "tree":
        tree(a[0])
    elif cmd == "surgery":
        surgery(a[0], int(a[1]))
    elif cmd == "bad":
        bad(a[0])
    elif cmd == "check":
        check(a[0], a[1])
    elif cmd == "treecmp":
        treecmp(*a)
    elif cmd == "cpmeta":
        cpmeta(a[0], a[1])
    elif cmd == "structure":
        structure(a[0])
    elif cmd == "reread":
        reread(a[0], a[1], a[2])
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
