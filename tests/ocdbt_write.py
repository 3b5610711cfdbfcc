#!/usr/bin/python3
"""A test-only OCDBT writer (TensorStore's format, docs/format.md "Orbax
checkpoints"), to make Orbax-layout steps larger than the samples: zarr3 arrays
with sharding_indexed (several inner chunks per shard, zstd, index crc32c)
inside an OCDBT db whose B+tree has interior nodes with subtree common
prefixes, indirect values, zstd-compressed nodes and leaf nodes in another
directory reached through an inherited data-file prefix. Its output is checked
by the independent reader tests/ocdbt_dump.py in the tests that use it.

  ocdbt_write.py STEP_DIR EXPECTED_DIR TOTAL_BYTES NLEAVES LEVEL [ROWS_PER_INNER]

writes an Orbax step (item "state", use_zarr3) of NLEAVES float32 arrays
(rows x 1024) and EXPECTED_DIR/<param>.npy; LEVEL 0 stores chunks raw. With
ORBAX_FRAMES=DIR every inner chunk's stored bytes are also written to DIR/<param>.<shard>.<i>.zst;
ORBAX_LEAF_ENTRIES (default 8, small to make interior nodes) sets the keys per leaf node.
"""
import json
import os
import struct
import sys

import numpy as np
import zstandard

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ocdbt_dump import crc32c  # noqa: E402  (the oracle's CRC, independent of ours)


def varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def envelope(magic, body, compress=True):
    comp = 1 if compress else 0
    if compress:
        body = zstandard.ZstdCompressor(level=1, write_content_size=False).compress(body)
    head = struct.pack(">I", magic)
    rest = varint(0) + varint(comp) + body
    total = 4 + 8 + len(rest) + 4
    buf = head + struct.pack("<Q", total) + rest
    return buf + struct.pack("<I", crc32c(buf))


def file_table(paths):
    """paths: list of (path, base_len); prefix-compressed as the spec says."""
    out = bytearray(varint(len(paths)))
    prev = b""
    pre = []
    for p, _ in paths:
        n = 0
        while n < min(len(p), len(prev)) and p[n] == prev[n]:
            n += 1
        pre.append(n)
        prev = p
    for n in pre[1:]:
        out += varint(n)
    for (p, _), n in zip(paths, pre):
        out += varint(len(p) - n)
    for _, b in paths:
        out += varint(b)
    for (p, _), n in zip(paths, pre):
        out += p[n:]
    return bytes(out)


def keys_block(keys, cpl=None):
    out = bytearray()
    pre = [0]
    for a, b in zip(keys, keys[1:]):
        n = 0
        while n < min(len(a), len(b)) and a[n] == b[n]:
            n += 1
        pre.append(n)
    for n in pre[1:]:
        out += varint(n)
    for k, n in zip(keys, pre):
        out += varint(len(k) - n)
    if cpl is not None:
        for c in cpl:
            out += varint(c)
    for k, n in zip(keys, pre):
        out += k[n:]
    return bytes(out)


class Db:
    """Values go to d/<main>; leaf nodes to sub/d/<leaf> (reached with base path "sub/")."""

    def __init__(self, root, inline_max=1024, leaf_entries=8):
        self.root, self.inline_max, self.leaf_entries = root, inline_max, leaf_entries
        os.makedirs(os.path.join(root, "d"), exist_ok=True)
        os.makedirs(os.path.join(root, "sub", "d"), exist_ok=True)
        self.main = b"d/" + os.urandom(16).hex().encode()
        self.leaf = b"d/" + os.urandom(16).hex().encode()
        self.f = open(os.path.join(root, self.main.decode()), "wb")
        self.lf = open(os.path.join(root, "sub", self.leaf.decode()), "wb")
        self.kv = {}

    def put(self, key, value):
        self.kv[key] = value

    def _append(self, f, data):
        off = f.tell()
        f.write(data)
        return off, len(data)

    def _leaf_node(self, items, strip, offs):
        """A leaf node of items (indirect values already written at offs[key])."""
        keys = [k[strip:] for k, _ in items]
        body = bytearray([0]) + file_table([(self.leaf, 0)]) + varint(len(items))
        body += keys_block(keys)
        kinds, refs, inl = [], [], bytearray()
        for k, v in items:
            if len(v) <= self.inline_max:
                kinds.append(0)
                inl += v
            else:
                kinds.append(1)
                refs.append(offs[k])
        for _, v in items:
            body += varint(len(v))
        body += bytes(kinds)
        body += b"".join(varint(0) for _ in refs)
        body += b"".join(varint(o) for o in refs)
        body += inl
        return self._append(self.lf, envelope(0x0CDB20DE, bytes(body)))

    def commit(self):
        items = sorted(self.kv.items())
        # as TensorStore does: the values first, then the nodes that point at them
        offs = {k: self._append(self.lf, v)[0] for k, v in items if len(v) > self.inline_max}
        groups = [items[i:i + self.leaf_entries] for i in range(0, len(items), self.leaf_entries)]
        entries = []  # (first key, common prefix len, off, len, nkeys)
        for g in groups:
            cp = os.path.commonprefix([k for k, _ in g])
            off, ln = self._leaf_node(g, len(cp), offs)
            entries.append((g[0][0], len(cp), off, ln, len(g)))
        self.lf.close()
        # root: interior node of height 1 in d/<main>, children in sub/d/<leaf>
        body = bytearray([1]) + file_table([(b"sub/" + self.leaf, 4)]) + varint(len(entries))
        body += keys_block([e[0] for e in entries], [e[1] for e in entries])
        body += b"".join(varint(0) for _ in entries)
        body += b"".join(varint(e[2]) for e in entries)
        body += b"".join(varint(e[3]) for e in entries)
        body += b"".join(varint(e[4]) for e in entries)
        body += b"".join(varint(e[3]) for e in entries)
        body += b"".join(varint(0) for e in entries)
        roff, rlen = self._append(self.f, envelope(0x0CDB20DE, bytes(body)))
        self.f.close()
        m = bytearray(os.urandom(16)) + bytes([0]) + varint(self.inline_max) + varint(1 << 20)
        m += bytes([4]) + varint(1) + struct.pack("<i", 0)
        m += file_table([(self.main, 0)])
        m += varint(1) + varint(1) + bytes([1]) + varint(0) + varint(roff) + varint(rlen)
        m += varint(len(items)) + varint(rlen) + varint(0) + struct.pack("<Q", 1)
        m += varint(0)  # no version nodes
        with open(os.path.join(self.root, "manifest.ocdbt"), "wb") as f:
            f.write(envelope(0x0CDB3A2A, bytes(m)))


FRAMES = os.environ.get("ORBAX_FRAMES")


def zarr3_sharded(param, a, inner_rows, level):
    """zarr.json and the shard values of a 2-D float32 array: one shard per 4 inner chunks."""
    rows, cols = a.shape
    shard_rows = inner_rows * 4
    meta = {"chunk_grid": {"configuration": {"chunk_shape": [shard_rows, cols]}, "name": "regular"},
            "chunk_key_encoding": {"name": "default"},
            "codecs": [{"configuration": {"chunk_shape": [inner_rows, cols],
                                          "codecs": [{"configuration": {"endian": "little"}, "name": "bytes"}]
                                          + ([{"configuration": {"checksum": False, "level": level},
                                               "name": "zstd"}] if level else []),
                                          "index_codecs": [{"configuration": {"endian": "little"}, "name": "bytes"},
                                                           {"name": "crc32c"}]},
                        "name": "sharding_indexed"}],
            "data_type": "float32", "fill_value": 0, "node_type": "array",
            "shape": [rows, cols], "zarr_format": 3}
    out = {param + b"/zarr.json": json.dumps(meta, sort_keys=True).encode()}
    z = zstandard.ZstdCompressor(level=level, write_content_size=False) if level else None
    for s in range((rows + shard_rows - 1) // shard_rows):
        data, index = bytearray(), bytearray()
        for i in range(4):
            r0 = s * shard_rows + i * inner_rows
            if r0 >= rows:
                index += struct.pack("<QQ", 2**64 - 1, 2**64 - 1)  # missing: fill value
                continue
            c = np.zeros((inner_rows, cols), "<f4")  # edge chunks stored full size
            part = a[r0:r0 + inner_rows]
            c[:len(part)] = part
            raw = c.tobytes()
            enc = z.compress(raw) if z else raw
            if FRAMES:  # each inner chunk also as a file, for the benchmark's baselines
                with open(os.path.join(FRAMES, "%s.%d.%d.zst" % (param.decode(), s, i)), "wb") as f:
                    f.write(enc)
            index += struct.pack("<QQ", len(data), len(enc))
            data += enc
        out[param + b"/c/%d/0" % s] = bytes(data + index + struct.pack("<I", crc32c(bytes(index))))
    return out


def main():
    step, expected, total, nleaves, level = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    inner_rows = int(sys.argv[6]) if len(sys.argv) > 6 else 256
    item = os.path.join(step, "state")
    os.makedirs(item, exist_ok=True)
    os.makedirs(expected, exist_ok=True)
    rng = np.random.default_rng(3)
    rows = max(1, total // nleaves // 4096)
    db = Db(item, leaf_entries=int(os.environ.get("ORBAX_LEAF_ENTRIES", "8")))
    tree = {}
    base = (np.round(rng.standard_normal((rows + 7, 1024)) * 64) / 64).astype("<f4")
    for i in range(nleaves):
        keys = ("layers", str(i // 8), "w%d" % (i % 8))
        param = ".".join(keys)
        a = base[i % 7:i % 7 + rows] + np.float32(i)
        for k, v in zarr3_sharded(param.encode(), a, inner_rows, level).items():
            db.put(k, v)
        np.save(os.path.join(expected, param + ".npy"), a)
        tree[str(keys)] = {"key_metadata": [{"key": k, "key_type": 2} for k in keys],
                           "value_metadata": {"value_type": "jax.Array", "skip_deserialize": False}}
    db.commit()
    with open(os.path.join(item, "_METADATA"), "w") as f:
        json.dump({"tree_metadata": tree, "use_ocdbt": True, "use_zarr3": True}, f)
    with open(os.path.join(step, "_CHECKPOINT_METADATA"), "w") as f:
        json.dump({"item_handlers": {"state": "orbax.checkpoint._src.handlers."
                                     "pytree_checkpoint_handler.PyTreeCheckpointHandler"}}, f)


if __name__ == "__main__":
    main()
