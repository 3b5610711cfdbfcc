"""An independent reader of a step's listing, ckpt.list (docs/format.md, "Step listing").

Written from the format page, not from core/step_list.c, and checked against the
step's sqlite index read with Python's sqlite3:

  step_list.py check STEP          parse STEP/ckpt.list; its header, CRC-32C and
                                   fields; _CHECKPOINT_METADATA equal to the stored
                                   value; its items those of item_handlers; each
                                   _METADATA length the stored one; the keys of the
                                   items without one those of the index; prints a
                                   summary
  step_list.py restamp STEP OTHER  give STEP's listing the index checksum of OTHER's
                                   ckpt.db (a listing that matches no tree)
  step_list.py edit-meta STEP      change a digit of the listed commit timestamp (the
                                   JSON stays valid) and fix the body's CRC
"""
import json
import os
import sqlite3
import struct
import sys

# The pure-Python CRC-32C of the independent OCDBT reader (also written from a spec).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from ocdbt_dump import crc32c  # noqa: E402


def index_crc(step):
    """The index checksum ckpt.db's header records (bytes 60..63, big-endian)."""
    with open(f"{step}/ckpt.db", "rb") as f:
        return struct.unpack(">I", f.read(64)[60:64])[0]


def parse(step):
    raw = open(f"{step}/ckpt.list", "rb").read()
    assert raw[:8] == b"CKPTLIST", "magic"
    version, icrc, body_len, body_crc, zero = struct.unpack("<IIQII", raw[8:32])
    assert version == 1 and zero == 0, (version, zero)
    body = raw[32:]
    assert len(body) == body_len, (len(body), body_len)
    assert crc32c(body) == body_crc, "body CRC"
    p = 0

    def take(n):
        nonlocal p
        assert p + n <= len(body), "runs past the end"
        p += n
        return body[p - n:p]

    meta = take(struct.unpack("<Q", take(8))[0])
    items = {}
    for _ in range(struct.unpack("<I", take(4))[0]):
        name = take(struct.unpack("<I", take(4))[0]).decode()
        has = take(1)[0]
        md_len, tree_len = struct.unpack("<QQ", take(16))
        tree = take(tree_len)
        assert has in (0, 1) and (has or (md_len == 0 and not tree)) and (not has or tree)
        keys = [take(struct.unpack("<I", take(4))[0]) for _ in range(struct.unpack("<I", take(4))[0])]
        assert not (has and keys) and keys == sorted(set(keys)) and all(keys), (name, keys)
        assert name not in items, name
        items[name] = (has, md_len, len(tree), keys)
    assert p == len(body), "trailing bytes"
    return raw, icrc, meta, items


def stored(db, key):
    """(size, bytes or None) of a key of the index; bytes only for inline values."""
    row = db.execute("SELECT size, inline FROM kv WHERE key = ?", (key.encode(),)).fetchone()
    return row


def check(step):
    raw, icrc, meta, items = parse(step)
    assert icrc == index_crc(step), "index checksum"
    db = sqlite3.connect(f"file:{step}/ckpt.db?immutable=1", uri=True)
    size, inline = stored(db, "_CHECKPOINT_METADATA")
    assert inline is not None and bytes(inline) == meta, "_CHECKPOINT_METADATA differs"
    handlers = json.loads(meta)["item_handlers"]
    assert set(handlers) == set(items), (sorted(handlers), sorted(items))
    for name, (has, md_len, tree_len, keys) in sorted(items.items()):
        row = stored(db, f"{name}/_METADATA")
        assert (row is not None) == bool(has), f"{name}: _METADATA presence"
        assert not has or row[0] == md_len, f"{name}: _METADATA length {row[0]} vs {md_len}"
        if not has:  # every key of the item, as the index has them
            p = f"{name}/".encode()
            want = sorted(bytes(k)[len(p):] for (k,) in db.execute("SELECT key FROM kv")
                          if bytes(k).startswith(p) and len(k) > len(p))
            assert keys == want, (name, keys, want)
    print(f"ok {len(raw)} bytes, {len(items)} items, "
          f"{sum(1 for v in items.values() if v[0])} with trees, "
          f"{sum(len(v[3]) for v in items.values())} keys of the others")


def restamp(step, other):
    raw = bytearray(open(f"{step}/ckpt.list", "rb").read())
    raw[12:16] = struct.pack("<I", index_crc(other))
    open(f"{step}/ckpt.list", "wb").write(raw)


def edit_meta(step):
    raw = bytearray(open(f"{step}/ckpt.list", "rb").read())
    i = raw.index(b'"commit_timestamp_nsecs":', 32) + len(b'"commit_timestamp_nsecs":')
    raw[i + 1] = ord("1") if raw[i + 1] != ord("1") else ord("2")
    raw[24:28] = struct.pack("<I", crc32c(bytes(raw[32:])))
    open(f"{step}/ckpt.list", "wb").write(raw)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "check":
        check(sys.argv[2])
    elif cmd == "restamp":
        restamp(sys.argv[2], sys.argv[3])
    elif cmd == "edit-meta":
        edit_meta(sys.argv[2])
    else:
        sys.exit(__doc__)
