"""orbax_args.py — an independent writer and reader for tests/e2e/orbax_args.sh.

  gen DIR        write an interchange step: item "state" with _METADATA in
                 Orbax's layout (written here by hand, not by our C code) that
                 carries custom metadata at the top level (the item's), on a
                 container and on a leaf; and _CHECKPOINT_METADATA.
  check DIR      read DIR/state/_METADATA back with json and numpy and check
                 the custom metadata and the values.
  mapped DIR     check an item directory written by `ckpt restore --map`:
                 layers_<i>/{w,b} regrouped as blocks/<i>/{w,b}, head/kernel
                 as output/w, step as global_step; _METADATA says so.
"""
import json
import os
import sys

import numpy as np

ROOT_CM = {"model": "mlp", "version": 3}
PARAMS_CM = {"frozen": True}
LEAF_CM = {"init": "lecun"}


def key(*ks):
    return [{"key": k, "key_type": 2} for k in ks]


def leaf(ks, vm):
    return "(" + ", ".join(repr(k) for k in ks) + ("," if len(ks) == 1 else "") + ")", {
        "key_metadata": key(*ks), "value_metadata": vm}


def arr(a, cm=None):
    return {"value_type": "np.ndarray", "skip_deserialize": False, "dtype": str(a.dtype),
            "shape": list(a.shape), "custom_metadata": cm}


def gen(d):
    st = os.path.join(d, "state")
    os.makedirs(os.path.join(st, "params"), exist_ok=True)
    tm, cont = {}, {}
    w = np.arange(12, dtype=np.float32).reshape(3, 4)
    b = np.linspace(-1, 1, 4).astype(np.float64)
    np.save(os.path.join(st, "params", "w.npy"), w)
    np.save(os.path.join(st, "params", "b.npy"), b)
    for i in range(2):
        os.makedirs(os.path.join(st, "layers_%d" % i), exist_ok=True)
        for n in ("w", "b"):
            a = (np.arange(3, dtype=np.float32) + 10 * i + (n == "b"))
            np.save(os.path.join(st, "layers_%d" % i, n + ".npy"), a)
    os.makedirs(os.path.join(st, "head"), exist_ok=True)
    np.save(os.path.join(st, "head", "kernel.npy"), np.full((2, 2), 7, np.int32))
    with open(os.path.join(st, "step"), "w") as f:
        f.write("42")
    k, v = leaf(["params", "w"], arr(w, LEAF_CM)); tm[k] = v
    k, v = leaf(["params", "b"], arr(b)); tm[k] = v
    for i in range(2):
        for n in ("w", "b"):
            k, v = leaf(["layers_%d" % i, n], arr(np.zeros(3, np.float32))); tm[k] = v
    k, v = leaf(["head", "kernel"], arr(np.zeros((2, 2), np.int32))); tm[k] = v
    k, v = leaf(["step"], {"value_type": "scalar", "skip_deserialize": False,
                           "scalar_type": "int", "custom_metadata": None}); tm[k] = v
    cont["()"] = {"type": "dict", "key_metadata": []}
    cont["('params',)"] = {"type": "dict", "key_metadata": key("params"),
                           "custom_metadata": PARAMS_CM}
    meta = {"tree_metadata": tm, "containers": cont, "ckptfs_metadata_version": 1,
            "use_zarr3": False, "custom_metadata": ROOT_CM}
    with open(os.path.join(st, "_METADATA"), "w") as f:
        json.dump(meta, f)
    with open(os.path.join(d, "_CHECKPOINT_METADATA"), "w") as f:
        json.dump({"item_handlers": {"state": "orbax.checkpoint._src.handlers."
                   "pytree_checkpoint_handler.PyTreeCheckpointHandler"},
                   "custom_metadata": {"run": "r1"}}, f)


def find(meta, *ks):
    for v in meta["tree_metadata"].values():
        if [x["key"] for x in v["key_metadata"]] == list(ks):
            return v
    raise SystemExit("no leaf %r in _METADATA" % (ks,))


def check(d):
    st = os.path.join(d, "state")
    meta = json.load(open(os.path.join(st, "_METADATA")))
    if meta.get("custom_metadata") != ROOT_CM:
        raise SystemExit("item custom metadata: %r" % meta.get("custom_metadata"))
    conts = {tuple(x["key"] for x in c["key_metadata"]): c for c in meta["containers"].values()}
    if conts[("params",)].get("custom_metadata") != PARAMS_CM:
        raise SystemExit("params custom metadata: %r" % conts[("params",)])
    if find(meta, "params", "w")["value_metadata"].get("custom_metadata") != LEAF_CM:
        raise SystemExit("leaf custom metadata lost")
    w = np.load(os.path.join(st, "params", "w.npy"))
    if not np.array_equal(w, np.arange(12, dtype=np.float32).reshape(3, 4)):
        raise SystemExit("params/w differs")


def mapped(d):
    meta = json.load(open(os.path.join(d, "_METADATA")))
    if meta.get("custom_metadata") != ROOT_CM:
        raise SystemExit("mapped item lost its custom metadata")
    for i in range(2):
        for n in ("w", "b"):
            a = np.load(os.path.join(d, "blocks", str(i), n + ".npy"))
            want = np.arange(3, dtype=np.float32) + 10 * i + (n == "b")
            if not np.array_equal(a, want):
                raise SystemExit("blocks/%d/%s differs: %r" % (i, n, a))
            find(meta, "blocks", str(i), n)
    if not np.array_equal(np.load(os.path.join(d, "output", "w.npy")), np.full((2, 2), 7, np.int32)):
        raise SystemExit("output/w differs")
    if open(os.path.join(d, "global_step")).read() != "42\n":  # a scalar's file is a line
        raise SystemExit("global_step differs")
    if find(meta, "params", "w")["value_metadata"].get("custom_metadata") != LEAF_CM:
        raise SystemExit("an unmapped leaf lost its custom metadata")
    for gone in ("layers_0", "head", "step"):
        if os.path.exists(os.path.join(d, gone)):
            raise SystemExit("%s is still there" % gone)


if __name__ == "__main__":
    {"gen": gen, "check": check, "mapped": mapped}[sys.argv[1]](sys.argv[2])
