"""tests/e2e/fs_check.py — numpy side of the ckptfs end-to-end tests.

Run with /usr/bin/python3 (the one with numpy):
  gen DIR                 write an interchange directory (every dtype, 0-d, empty,
                          multi-chunk, scalars, strings, nested dicts)
  compare VIEW DIR        every file of DIR equals the same file under VIEW
                          (np.load, np.load mmap_mode='r', and the raw bytes)
  ranges FILE N SEED      print N random "offset length" pairs within FILE's size,
                          biased to chunk boundaries and the .npy header
  read VIEW ORIG REPEAT   read VIEW REPEAT times in odd-sized pieces, compare to ORIG
  chunks VIEW ORIG CHUNK  read VIEW chunk by chunk (data chunks of CHUNK bytes after
                          the .npy header); wrong bytes fail, EIO must be around one chunk
  hold VIEW ORIG FIFO     open VIEW, read half, wait for a line on FIFO, read the rest;
                          prints "ok" (bytes equal) or "eio"; wrong bytes fail
"""
import errno
import os
import random
import sys

import numpy as np

DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
          "uint64", "float16", "float32", "float64", "complex64", "complex128"]


def arr(rng, dtype, shape):
    n = int(np.prod(shape))
    if dtype == "bool":
        a = rng.integers(0, 2, n).astype(bool)
    elif dtype.startswith("int") or dtype.startswith("uint"):
        info = np.iinfo(dtype)
        a = rng.integers(info.min, info.max, n, dtype=dtype, endpoint=True)
    elif dtype.startswith("complex"):
        a = (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(dtype)
    else:
        a = rng.standard_normal(n).astype(dtype)
    return a.reshape(shape)


def put(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if isinstance(data, np.ndarray):
        np.save(path, data)
    else:
        with open(path, "w") as f:
            f.write(data)


def gen(d):
    rng = np.random.default_rng(42)
    s = os.path.join(d, "state")
    put(f"{s}/params/dense/kernel.npy", arr(rng, "float32", (3, 4)))
    put(f"{s}/params/dense/bias.npy", arr(rng, "float32", (4,)))
    for i, dt in enumerate(DTYPES):
        shape = [(5,), (2, 3), (4, 1, 3)][i % 3]
        put(f"{s}/dtypes/{dt}.npy", arr(rng, dt, shape))
        put(f"{s}/zero_d/{dt}.npy", arr(rng, dt, ()))
    put(f"{s}/empty/rows.npy", np.zeros((0, 3), np.float32))
    put(f"{s}/empty/flat.npy", np.zeros((0,), np.int64))
    put(f"{s}/big.npy", arr(rng, "float64", (300, 1000)))  # 2.4 MB: many chunks
    put(f"{s}/noise.npy", rng.integers(0, 256, 400000, dtype=np.uint8))  # incompressible
    # scalar files are a line of text, as the mount shows them (docs/fs.md)
    put(f"{s}/step", "1000\n")
    put(f"{s}/lr", "0.001\n")
    put(f"{s}/flag", "True\n")
    put(f"{s}/name", "hello ckptfs")
    put(f"{d}/extra/bias.npy", arr(rng, "int32", (7,)))


def same(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def compare(view, d):
    n = 0
    for dirpath, _, files in os.walk(d):
        for f in files:
            orig = os.path.join(dirpath, f)
            rel = os.path.relpath(orig, d)
            mine = os.path.join(view, rel)
            with open(orig, "rb") as a, open(mine, "rb") as b:
                if a.read() != b.read():
                    sys.exit(f"bytes differ: {rel}")
            if f.endswith(".npy"):
                want = np.load(orig)
                if not same(np.load(mine), want):
                    sys.exit(f"np.load differs: {rel}")
                if not same(np.asarray(np.load(mine, mmap_mode="r")), want):
                    sys.exit(f"np.load mmap differs: {rel}")
            n += 1
    if n < 20:
        sys.exit(f"only {n} files compared")
    print(f"compared {n} files")


def ranges(path, count, seed):
    size = os.path.getsize(path)
    rng = random.Random(seed)
    for i in range(count):
        if i % 4 == 0:
            off = rng.randrange(0, min(size, 200))  # inside the .npy header
        elif i % 4 == 1:
            b = rng.randrange(1, max(2, size // 65536 + 1)) * 65536  # across a boundary
            off = max(0, min(size - 1, b - rng.randrange(1, 5000)))
        else:
            off = rng.randrange(0, size)
        length = rng.choice([1, 7, 4096, 65536, 65537, 300000, rng.randrange(1, size)])
        print(off, length)


def read(view, orig, repeat):
    want = open(orig, "rb").read()
    for r in range(repeat):
        got = bytearray()
        with open(view, "rb") as f:
            step = 4096 * (r + 1) + 13
            while True:
                b = f.read(step)
                if not b:
                    break
                got += b
        if bytes(got) != want:
            sys.exit(f"read {r} of {view} differs")


def chunks(view, orig, chunk):
    """Read VIEW range by range. Reads may stop short at a page that needs a bad
    chunk (pages straddle chunk boundaries: the .npy header is not page-sized), but
    every byte returned must be right; the failing ranges must be one bad chunk and
    at most its two neighbours."""
    want = open(orig, "rb").read()
    hdr = len(want) - np.load(orig).nbytes
    ranges_ = [(0, hdr)] + [(o, min(chunk, len(want) - o))
                            for o in range(hdr, len(want), chunk)]
    bad = []
    fd = os.open(view, os.O_RDONLY)
    for i, (off, n) in enumerate(ranges_):
        got = b""
        try:
            while len(got) < n:
                b = os.pread(fd, n - len(got), off + len(got))
                if not b:
                    break
                got += b
        except OSError as e:
            if e.errno != errno.EIO:
                raise
            bad.append(i)
        if got != want[off:off + len(got)] or (i not in bad and len(got) != n):
            sys.exit(f"wrong bytes at {off}+{n}")
    os.close(fd)
    print(f"ranges {len(ranges_)} eio {bad}")
    if not bad or len(bad) > 3 or bad != list(range(bad[0], bad[0] + len(bad))):
        sys.exit(f"expected EIO around one chunk, got {bad}")


def hold(view, orig, fifo):
    want = open(orig, "rb").read()
    half = len(want) // 2
    with open(view, "rb", buffering=0) as f:
        got = f.read(half)
        print("opened", flush=True)
        with open(fifo) as p:
            p.readline()
        try:
            while True:
                b = f.read(1 << 16)
                if not b:
                    break
                got += b
        except OSError as e:
            if e.errno != errno.EIO:
                raise
            print("eio")
            return
    if got != want:
        sys.exit("wrong bytes after the step was deleted")
    print("ok")


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "gen":
        gen(args[0])
    elif cmd == "compare":
        compare(args[0], args[1])
    elif cmd == "ranges":
        ranges(args[0], int(args[1]), int(args[2]))
    elif cmd == "read":
        read(args[0], args[1], int(args[2]))
    elif cmd == "chunks":
        chunks(args[0], args[1], int(args[2]))
    elif cmd == "hold":
        hold(args[0], args[1], args[2])
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
