#!/usr/bin/python3
"""Write zarr v2 arrays with python3-zarr (numcodecs Zstd), as Orbax writes them
with use_ocdbt=False, plus the expected contents as NAME.npy (little-endian,
C order) next to each NAME/ directory.  Used by tests/unit/zarr_test.c and the
Orbax e2e tests.  Usage: zarr_make.py OUTDIR
"""
import os
import sys

import numpy as np
import zarr
from numcodecs import Zstd

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(7)


def put(name, a, chunks, compressor=Zstd(level=1), sep=".", fill=None, drop=()):
    z = zarr.open_array(os.path.join(out, name), mode="w", shape=a.shape, chunks=chunks,
                        dtype=a.dtype, compressor=compressor, fill_value=fill,
                        dimension_separator=sep)
    z[...] = a
    for k in drop:  # a chunk that was never written reads as the fill value
        os.unlink(os.path.join(out, name, k))
    want = a.copy()
    np.save(os.path.join(out, name + ".npy"), want.astype(want.dtype.newbyteorder("<")))


put("i32", np.arange(8, dtype="<i4"), (8,))
put("f32_2d_edges", rng.standard_normal((5, 7)).astype("<f4"), (2, 3))
put("f64_3d_slash_raw", rng.standard_normal((4, 5, 6)), (3, 2, 4), compressor=None, sep="/")
put("i32_big_endian", np.arange(10, dtype=">i4") * 1000 - 3, (4,))
put("u8", np.arange(100, dtype="u1"), (33,))
put("i16", np.arange(-50, 50, dtype="<i2"), (7,))
put("bool", rng.standard_normal(17) > 0, (5,))
put("c8", (rng.standard_normal(6) + 1j * rng.standard_normal(6)).astype("<c8"), (4,))
put("c16_big", (rng.standard_normal(6) + 1j * rng.standard_normal(6)).astype(">c16"), (4,))
put("f2", rng.standard_normal((3, 3)).astype("<f2"), (2, 2))
put("u64", np.arange(12, dtype="<u8").reshape(3, 4) * (2**60), (2, 4))
put("scalar", np.array(3.5, dtype="<f8"), ())
put("empty", np.zeros((0, 4), dtype="<f4"), (2, 2))
# chunks 1 and 3 missing: they read as fill_value 42
a = np.arange(20, dtype="<i8")
a[5:10] = 42
a[15:20] = 42
put("missing_chunks", a, (5,), fill=42, drop=("1", "3"))
# a bigger 2-D array for partial reads: 64 chunks of 16 KiB
put("big", rng.standard_normal((256, 512)).astype("<f4"), (32, 128))
