#!/usr/bin/python3
"""Write an Orbax-layout root with use_ocdbt=False steps (one zarr v2 directory
per leaf, as Orbax < 0.5 and use_ocdbt=False write it) with python3-zarr and
numcodecs Zstd, and the expected leaves as EXPECTED/<param>.npy.

  orbax_make_step.py ROOT EXPECTED [BIG_MIB]

ROOT/100/ is a CheckpointManager step (items 'state' PyTree and 'meta' JSON),
ROOT/step_200.orbax-checkpoint-tmp/ an unfinished save (never a step).
"""
import json
import os
import sys

import numpy as np
import zarr
from numcodecs import Zstd

root, expected = sys.argv[1], sys.argv[2]
big_mib = int(sys.argv[3]) if len(sys.argv) > 3 else 1
rng = np.random.default_rng(11)
step = os.path.join(root, "100")
item = os.path.join(step, "state")
os.makedirs(item, exist_ok=True)
os.makedirs(expected, exist_ok=True)
os.makedirs(os.path.join(root, "step_200.orbax-checkpoint-tmp", "state"), exist_ok=True)

rows = max(1, big_mib * (1 << 20) // (512 * 4))
leaves = {
    ("params", "dense", "kernel"): rng.standard_normal((rows, 512)).astype("<f4"),
    ("params", "dense", "bias"): np.arange(512, dtype="<f4") / 7,
    ("params", "embed"): (rng.standard_normal((37, 9)) * 100).astype("<i2"),
    ("opt_state", "0", "mu"): rng.standard_normal((3, 5, 7)).astype(">f8"),
    ("opt_state", "0", "count"): np.array(12345, dtype="<i8"),
    ("flags",): rng.standard_normal(11) > 0,
}
chunks = {("params", "dense", "kernel"): (32, 128), ("params", "embed"): (10, 4),
          ("opt_state", "0", "mu"): (2, 2, 3)}
tree = {}
for keys, a in leaves.items():
    param = ".".join(keys)
    scalar = a.ndim == 0
    z = zarr.open_array(os.path.join(item, param), mode="w", shape=a.shape,
                        chunks=chunks.get(keys, a.shape), dtype=a.dtype, compressor=Zstd(level=1))
    z[...] = a
    np.save(os.path.join(expected, param + ".npy"), a.astype(a.dtype.newbyteorder("<")))
    km = [{"key": k, "key_type": 1 if k.isdigit() else 2} for k in keys]
    vt = "scalar" if scalar else "jax.Array"
    tree[str(tuple(keys))] = {"key_metadata": km,
                              "value_metadata": {"value_type": vt, "skip_deserialize": False}}
# a string leaf and an empty dict
tree["('name',)"] = {"key_metadata": [{"key": "name", "key_type": 2}],
                     "value_metadata": {"value_type": "string", "skip_deserialize": False}}
tree["('empty',)"] = {"key_metadata": [{"key": "empty", "key_type": 2}],
                      "value_metadata": {"value_type": "Dict", "skip_deserialize": True}}
with open(os.path.join(item, "_strings.json"), "w") as f:
    json.dump({"name": "run one"}, f)
with open(os.path.join(item, "_METADATA"), "w") as f:
    json.dump({"tree_metadata": tree, "use_ocdbt": False, "use_zarr3": False,
               "store_array_data_equal_to_fill_value": True, "custom_metadata": None}, f)
os.makedirs(os.path.join(step, "meta"), exist_ok=True)
with open(os.path.join(step, "meta", "metadata"), "w") as f:
    json.dump({"lr": 0.1}, f)
with open(os.path.join(step, "_CHECKPOINT_METADATA"), "w") as f:
    json.dump({"item_handlers": {
        "state": "orbax.checkpoint._src.handlers.pytree_checkpoint_handler.PyTreeCheckpointHandler",
        "meta": "orbax.checkpoint._src.handlers.json_checkpoint_handler.JsonCheckpointHandler"},
        "metrics": {"loss": 0.5}, "performance_metrics": {},
        "init_timestamp_nsecs": 1778718341396223910,
        "commit_timestamp_nsecs": 1778718341620521635, "custom_metadata": {}}, f)
