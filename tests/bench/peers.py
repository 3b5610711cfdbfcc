#!/usr/bin/python3
"""Data generators and Python peers (np.save/np.load, h5py, zarr) for tests/bench/run.sh.

Every timed command prints one line "elapsed=<seconds> bytes=<n> leaves=<n> sum=<n>":
the timer starts after imports and after loading the input (writers get their arrays in
memory first, as a training job has them) and stops after the output is durable (os.sync()
inside the timed region) or, for readers, after every array is in memory. `sum` is the sum
of the data viewed as uint32 words mod 2**64, computed after the timer, to check that every
reader got the same bytes.

Usage:
  peers.py gen-core DIR TOTAL_BYTES NLEAVES SEED   interchange dir DIR/state/... of .npy
  peers.py gen-small DIR NLEAVES SEED              nested dict of small float32 arrays
                                                   (both print the checksum line of the data)
  peers.py gen-one FILE NBYTES SEED                one float32 N(0, 0.02) .npy
  peers.py gen-pattern FILE NBYTES                 one float32 .npy, a repeated random block
  peers.py gen-bf16 DIR NBYTES NLEAVES             float32 leaves rounded to bfloat16 (zstd ~55%)
  peers.py sum DIR                                 checksum line of the .npy files under DIR
  peers.py save-npy|save-h5|save-zarr SRC DST      timed writers (SRC: dir of .npy)
  peers.py load-npy|load-h5|load-zarr SRC          timed readers
  peers.py mount-read FILE CMD...                  time CMD (a FUSE daemon that returns once
                                                   mounted) + reading FILE through the mount
  peers.py mount-ls DIR CMD...                     time CMD (as mount-read) + listing DIR
  peers.py peek-mmap DIR [PID]                     np.load(mmap_mode='r').shape of every .npy
                                                   under DIR but the first (a warm-up); prints
                                                   elapsed and read_bytes (/proc/PID/io of this
                                                   process + PID, e.g. a FUSE daemon) per leaf
  peers.py warm-memory NBYTES                      write NBYTES of memory and free it (untimed:
                                                   see warm_memory in run.sh)
"""
import os
import sys
import time

import numpy as np

MASK = (1 << 64) - 1


def npy_files(root):
    """Relative paths (without .npy) of every .npy file below root, sorted."""
    out = []
    for d, _, files in os.walk(root):
        for f in files:
            if f.endswith(".npy"):
                out.append(os.path.relpath(os.path.join(d, f[:-4]), root))
    out.sort()
    return out


def words_sum(a):
    b = np.ascontiguousarray(a).view(np.uint8).reshape(-1)
    pad = (-b.size) % 4
    if pad:
        b = np.concatenate([b, np.zeros(pad, np.uint8)])
    return int(b.view(np.uint32).sum(dtype=np.uint64))


def report(t, arrays):
    nbytes = sum(a.nbytes for a in arrays)
    s = 0
    for a in arrays:
        s = (s + words_sum(a)) & MASK
    print(f"elapsed={t:.6f} bytes={nbytes} leaves={len(arrays)} sum={s}")


def gen_core(root, total, nleaves, seed):
    rng = np.random.default_rng(seed)
    arrays = []
    per = max(total // nleaves // 4, 1)
    cols = 1024
    rows = max(per // cols, 1)
    for i in range(nleaves):
        d = os.path.join(root, "state", "params", f"layer_{i // 4:02d}")
        os.makedirs(d, exist_ok=True)
        a = (rng.standard_normal((rows, cols), dtype=np.float32) * np.float32(0.02))
        np.save(os.path.join(d, f"w{i % 4}.npy"), a)
        arrays.append(a)
    report(0.0, arrays)


def gen_small(root, n, seed):
    rng = np.random.default_rng(seed)
    arrays = []
    per_group = 50
    for i in range(n):
        g, s, k = i // (per_group * 20), (i // per_group) % 20, i % per_group
        d = os.path.join(root, "state", f"block_{g:03d}", f"sub_{s:02d}")
        if k == 0:
            os.makedirs(d, exist_ok=True)
        m = int(rng.integers(16, 257))
        a = rng.standard_normal(m, dtype=np.float32) * np.float32(0.02)
        np.save(os.path.join(d, f"leaf_{k:02d}.npy"), a)
        arrays.append(a)
    report(0.0, arrays)


def gen_one(path, nbytes, seed, pattern):
    rng = np.random.default_rng(seed)
    n = max(nbytes // 4, 1)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n,))
    step = 16 << 20
    block = rng.standard_normal(step, dtype=np.float32) * np.float32(0.02)
    for i in range(0, n, step):
        m = min(step, n - i)
        out[i:i + m] = block[:m] if pattern else \
            rng.standard_normal(m, dtype=np.float32) * np.float32(0.02)
    out.flush()
    del out


def gen_bf16(d, nbytes, nleaves):
    """nleaves float32 leaves of N(0,0.02) rounded to bfloat16 (low 16 bits zero, as
    weights trained in bf16 and saved as float32): zstd stores them at ~50-60%."""
    rng = np.random.default_rng(6)
    os.makedirs(d, exist_ok=True)
    n = max(nbytes // 4 // nleaves, 1)
    for k in range(nleaves):
        out = np.lib.format.open_memmap(os.path.join(d, f"w{k:02d}.npy"), mode="w+",
                                        dtype=np.float32, shape=(n,))
        step = 16 << 20
        for i in range(0, n, step):
            m = min(step, n - i)
            a = rng.standard_normal(m, dtype=np.float32) * np.float32(0.02)
            out[i:i + m] = (a.view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32)
        out.flush()
        del out


def load_src(src):
    names = npy_files(src)
    return names, [np.load(os.path.join(src, n + ".npy")) for n in names]


def save_npy(src, dst):
    names, arrays = load_src(src)
    t0 = time.perf_counter()
    made = set()
    for n, a in zip(names, arrays):
        d = os.path.dirname(os.path.join(dst, n))
        if d not in made:
            os.makedirs(d, exist_ok=True)
            made.add(d)
        np.save(os.path.join(dst, n + ".npy"), a)
    os.sync()
    report(time.perf_counter() - t0, arrays)


def save_h5(src, dst):
    import h5py
    names, arrays = load_src(src)
    t0 = time.perf_counter()
    with h5py.File(dst, "w") as f:
        for n, a in zip(names, arrays):
            f.create_dataset(n, data=a)
    os.sync()
    report(time.perf_counter() - t0, arrays)


def zarr_compressor():
    try:
        from numcodecs import Zstd
        return Zstd(level=1)
    except ImportError:
        from numcodecs import Blosc
        return Blosc(cname="zstd", clevel=1)


def save_zarr(src, dst):
    import zarr
    names, arrays = load_src(src)
    comp = zarr_compressor()
    t0 = time.perf_counter()
    g = zarr.open_group(dst, mode="w")
    for n, a in zip(names, arrays):
        g.create_dataset(n, data=a, compressor=comp)
    os.sync()
    report(time.perf_counter() - t0, arrays)


def load_npy(src):
    t0 = time.perf_counter()
    arrays = [np.load(os.path.join(src, n + ".npy")) for n in npy_files(src)]
    report(time.perf_counter() - t0, arrays)


def load_h5(src):
    import h5py
    t0 = time.perf_counter()
    arrays = []
    with h5py.File(src, "r") as f:
        def visit(_, obj):
            if isinstance(obj, h5py.Dataset):
                arrays.append(obj[()])
        f.visititems(visit)
    report(time.perf_counter() - t0, arrays)


def load_zarr(src):
    import zarr
    t0 = time.perf_counter()
    g = zarr.open_group(src, mode="r")
    arrays = []

    def visit(_, obj):
        if isinstance(obj, zarr.Array):
            arrays.append(obj[...])
    g.visititems(visit)
    report(time.perf_counter() - t0, arrays)


def mount_read(path, cmd):
    """Time the mount command plus reading every byte of path (retried until it works)."""
    import subprocess
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    while True:
        try:
            with open(path, "rb", buffering=0) as f:
                while f.read(1 << 20):
                    pass
            break
        except OSError:
            if time.perf_counter() - t0 > 10:
                raise
    print(f"elapsed={time.perf_counter() - t0:.6f}")


def read_bytes(pid):
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            if line.startswith("read_bytes:"):
                return int(line.split()[1])
    return 0


def peek_mmap(src, pid=None):
    """Open every leaf as np.load(mmap_mode='r') does and take its shape: the header only.

    The first leaf is a warm-up, not counted: it faults this process's (and the daemon's)
    code back in after the page cache was dropped, which both sides would pay once."""
    files = [os.path.join(src, f + ".npy") for f in npy_files(src)]
    pids = ["self"] + ([pid] if pid else [])
    np.load(files[0], mmap_mode="r").shape
    files = files[1:]
    b0 = sum(read_bytes(p) for p in pids)
    t0 = time.perf_counter()
    n = 0
    for f in files:
        n += len(np.load(f, mmap_mode="r").shape)
    t = time.perf_counter() - t0
    b = sum(read_bytes(p) for p in pids) - b0
    print(f"elapsed={t:.6f} leaves={len(files)} bytes_per_leaf={b / max(len(files), 1):.0f} ndim={n}")


def mount_ls(path, cmd):
    """Time the mount command plus the first listing of path (retried until it works)."""
    import subprocess
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    while True:
        try:
            n = len(os.listdir(path))
            break
        except OSError:
            if time.perf_counter() - t0 > 10:
                raise
    print(f"elapsed={time.perf_counter() - t0:.6f} entries={n}")


def checksum(src):
    _, arrays = load_src(src)
    report(0.0, arrays)


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    cmd, a = argv[1], argv[2:]
    if cmd == "gen-core":
        gen_core(a[0], int(a[1]), int(a[2]), int(a[3]))
    elif cmd == "gen-small":
        gen_small(a[0], int(a[1]), int(a[2]))
    elif cmd == "gen-one":
        gen_one(a[0], int(a[1]), int(a[2]), False)
    elif cmd == "gen-bf16":
        gen_bf16(a[0], int(a[1]), int(a[2]))
    elif cmd == "gen-pattern":
        gen_one(a[0], int(a[1]), 1, True)
    elif cmd == "mount-read":
        mount_read(a[0], a[1:])
    elif cmd == "sum":
        checksum(a[0])
    elif cmd == "mount-ls":
        mount_ls(a[0], a[1:])
    elif cmd == "peek-mmap":
        peek_mmap(a[0], a[1] if len(a) > 1 else None)
    elif cmd == "warm-memory":
        np.ones(int(a[0]) // 8)
    else:
        fn = {"save-npy": save_npy, "save-h5": save_h5, "save-zarr": save_zarr,
              "load-npy": load_npy, "load-h5": load_h5, "load-zarr": load_zarr}.get(cmd)
        if fn is None:
            sys.exit(__doc__)
        fn(*a)


if __name__ == "__main__":
    main(sys.argv)
