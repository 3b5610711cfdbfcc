#!/usr/bin/python3
"""Benchmark data: an Orbax use_ocdbt=False step (one zarr v2 directory per leaf,
written by python3-zarr as Orbax writes it) under ROOT/1.

  orbax_gen.py ROOT TOTAL_BYTES NLEAVES LEVEL     (LEVEL 0: no compressor)

Leaves are float32 (rows x 1024) with 1024 x 1024 chunks (4 MiB); the data is
N(0,1) rounded to 1/64 so that zstd level 1 has something to do (~0.45 ratio).
With TOTAL_BYTES 0 every leaf is one 4 KiB row: a wide tree for open/list timing.
"""
import json
import os
import sys

import numpy as np
import zarr
from numcodecs import Zstd

root, total, nleaves, level = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
item = os.path.join(root, "1", "state")
os.makedirs(item, exist_ok=True)
rng = np.random.default_rng(5)
per = max(4096, total // nleaves)
rows = max(1, per // 4096)
tree = {}
block = (np.round(rng.standard_normal((rows, 1024)) * 64) / 64).astype("<f4")
for i in range(nleaves):
    keys = ("layers", str(i // 8), "w%d" % (i % 8))
    param = ".".join(keys)
    z = zarr.open_array(os.path.join(item, param), mode="w", shape=block.shape,
                        chunks=(min(rows, 1024), 1024), dtype="<f4",
                        compressor=Zstd(level=level) if level else None)
    z[...] = block
    block = np.roll(block, 1, axis=1)
    tree[str(keys)] = {"key_metadata": [{"key": k, "key_type": 2} for k in keys],
                       "value_metadata": {"value_type": "jax.Array", "skip_deserialize": False}}
with open(os.path.join(item, "_METADATA"), "w") as f:
    json.dump({"tree_metadata": tree, "use_ocdbt": False, "use_zarr3": False}, f)
with open(os.path.join(root, "1", "_CHECKPOINT_METADATA"), "w") as f:
    json.dump({"item_handlers": {"state": "orbax.checkpoint._src.handlers."
                                 "pytree_checkpoint_handler.PyTreeCheckpointHandler"}}, f)
