#!/bin/bash
# npy_numpy.sh — .npy interop with real numpy (/usr/bin/python3).
#
# numpy writes arrays of every dtype (0-d, empty, 1-D, 3-D, Fortran order,
# big-endian, format versions 2.0 and 3.0, the ML structured dtypes) with the
# C-order little-endian bytes we must get (X.raw) and numpy's own casts of
# some of them (X.cast-DTYPE.raw). The npy unit test binary, run with
# CKPT_NPY_DIR, reads each file, compares, and writes X.out.npy; numpy then
# loads those and checks values, dtype, shape and that the file is byte for
# byte what np.save writes.
set -euo pipefail
B=${B:-build}
T=$B/tests/unit/npy_test
PY=/usr/bin/python3
[ -x "$T" ] || { echo "npy_numpy: $T is not built (make $T)" >&2; exit 1; }
$PY -c 'import numpy' 2>/dev/null || { echo "npy_numpy: SKIP, no numpy in $PY"; exit 0; }
dir=$(mktemp -d /tmp/npy_numpy.XXXXXX)
trap 'rm -rf "$dir"' EXIT

$PY - "$dir" <<'PY'
import sys, warnings
import numpy as np
from numpy.lib import format as F
warnings.simplefilter("ignore")
d = sys.argv[1]
rng = np.random.default_rng(1234)

def save(name, a, version=None, raw=None):
    with open(f"{d}/{name}.npy", "wb") as f:
        F.write_array(f, a, version=version)
    if raw is None:
        raw = np.array(a, dtype=a.dtype.newbyteorder("<"), order="C").tobytes()
    open(f"{d}/{name}.raw", "wb").write(raw)

def values(dt, shape):
    dt = np.dtype(dt)
    if dt.kind == "b":
        return rng.integers(0, 2, shape).astype(dt)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return rng.integers(info.min, info.max, shape, dtype=dt, endpoint=True)
    v = rng.standard_normal(shape) * 10.0 ** rng.integers(-3, 4, shape)
    if dt.kind == "c":
        v = v + 1j * rng.standard_normal(shape)
    return v.astype(dt)

std = ["?", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", "c8", "c16"]
for t in std:
    n = np.dtype(t).name
    save(f"{n}_0d", values(t, ()))
    save(f"{n}_empty", values(t, (0, 3)))
    save(f"{n}_1d", values(t, (7,)))
    save(f"{n}_3d", values(t, (2, 3, 4)))
    save(f"{n}_fortran", np.asfortranarray(values(t, (3, 4, 5))))
    save(f"{n}_big", values(t, (5, 6)).astype(np.dtype(t).newbyteorder(">")))
    save(f"{n}_bigfortran",
         np.asfortranarray(values(t, (4, 33, 2)).astype(np.dtype(t).newbyteorder(">"))))
save("float32_v2", values("f4", (3, 2)), version=(2, 0))
save("int16_v3", values("i2", (4,)), version=(3, 0))

# ML dtypes: one-field structured arrays holding the bits.
for name, st in [("bfloat16", "u2"), ("float8_e4m3fn", "u1"), ("float8_e5m2", "u1")]:
    for order, bo in [("C", "<"), ("F", ">")]:
        bits = np.array(rng.integers(0, 256 ** np.dtype(st).itemsize, (3, 5)), dtype=st)
        a = np.zeros((3, 5), dtype=[(name, bo + st)], order=order)
        a[name] = bits
        save(f"{name}_{order}{'big' if bo == '>' else ''}", a,
             raw=np.array(bits, dtype="<" + st, order="C").tobytes())

# numpy as the oracle for casts (only where numpy's result is defined).
specials = [0.0, -0.0, 1.0, -1.0, 0.5, 1.5, 2.5, -2.5, np.inf, -np.inf, np.nan, 65504.0, 65520.0,
            1e-8, 6e-8, 3e-8, 2.0 ** -24, 2.0 ** -25, 3 * 2.0 ** -25, 1e30, -1e30, 1e300, 1e-300,
            np.finfo(np.float32).max, 3.4028235e38 * 1.0000001, 2.0 ** 24 + 1]
f64 = np.concatenate([np.array(specials),
                      rng.standard_normal(2000) * 10.0 ** rng.integers(-9, 9, 2000)])
save("cast_f64", f64)
for t in ["f2", "f4", "c8", "c16", "?"]:
    open(f"{d}/cast_f64.cast-{np.dtype(t).name}.raw", "wb").write(f64.astype(t).tobytes())
small = np.concatenate([rng.uniform(-100, 100, 500), [0.0, -0.0, 0.99, -0.99, 99.9, -99.9]])
save("cast_small", small)
for t in ["i1", "i2", "i4", "i8", "i1", "f2", "f4", "?"]:
    open(f"{d}/cast_small.cast-{np.dtype(t).name}.raw", "wb").write(small.astype(t).tobytes())
pos = rng.uniform(0, 250, 300)
save("cast_pos", pos)
for t in ["u1", "u2", "u4", "u8"]:
    open(f"{d}/cast_pos.cast-{np.dtype(t).name}.raw", "wb").write(pos.astype(t).tobytes())
f32 = np.concatenate([np.array(specials, "f4"), (rng.standard_normal(2000) *
                      10.0 ** rng.integers(-9, 9, 2000)).astype("f4")])
save("cast_f32", f32)
for t in ["f2", "f8", "c8", "?"]:
    open(f"{d}/cast_f32.cast-{np.dtype(t).name}.raw", "wb").write(f32.astype(t).tobytes())
i64 = np.concatenate([rng.integers(-2 ** 63, 2 ** 63 - 1, 500, dtype="i8"),
                      rng.integers(-70000, 70000, 500, dtype="i8"), [0, 1, -1, 2 ** 24 + 1]])
save("cast_i64", i64)
for t in ["i1", "i2", "i4", "u1", "u2", "u4", "u8", "f4", "f8", "c16", "?"]:
    open(f"{d}/cast_i64.cast-{np.dtype(t).name}.raw", "wb").write(i64.astype(t).tobytes())
u64 = rng.integers(0, 2 ** 64 - 1, 500, dtype="u8", endpoint=True)
save("cast_u64", u64)
for t in ["i1", "i8", "u2", "f4", "f8"]:
    open(f"{d}/cast_u64.cast-{np.dtype(t).name}.raw", "wb").write(u64.astype(t).tobytes())
bits = np.arange(65536, dtype="u2")  # every float16; NaN payloads are not kept (docs/dtypes.md)
f16 = bits[~np.isnan(bits.view("f2")) | (bits & 0x7FFF == 0x7E00)].view("f2")
save("cast_f16", f16)
for t in ["f4", "f8", "c8", "?"]:
    open(f"{d}/cast_f16.cast-{np.dtype(t).name}.raw", "wb").write(f16.astype(t).tobytes())
c128 = values("c16", (300,))
save("cast_c128", c128)
for t in ["f8", "f4", "c8", "?"]:
    open(f"{d}/cast_c128.cast-{np.dtype(t).name}.raw", "wb").write(c128.astype(t).tobytes())
PY

CKPT_NPY_DIR=$dir "$T"

$PY - "$dir" <<'PY'
import sys, io, os, glob
import numpy as np
d = sys.argv[1]
n = 0
for path in sorted(glob.glob(f"{d}/*.npy")):
    if path.endswith(".out.npy"):
        continue
    out = path[:-4] + ".out.npy"
    a = np.load(path)
    b = np.load(out)
    le = a.dtype.newbyteorder("<") if a.dtype.names is None else \
        np.dtype([(a.dtype.names[0], "<" + a.dtype[0].str[1:])])
    want = np.array(a, dtype=le, order="C")
    assert b.dtype == le, (out, b.dtype, le)
    assert b.shape == a.shape, (out, b.shape, a.shape)
    if a.dtype.names is None:
        assert np.array_equal(b, want, equal_nan=a.dtype.kind in "fc"), out
    else:
        assert np.array_equal(b[a.dtype.names[0]], want[a.dtype.names[0]]), out
    buf = io.BytesIO()
    np.save(buf, want)
    assert open(out, "rb").read() == buf.getvalue(), f"{out}: not byte-identical to np.save"
    n += 1
print(f"npy_numpy: numpy loaded {n} files written by ckpt, all byte-identical to np.save")
PY
