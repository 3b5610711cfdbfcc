"""Tiled variants of store_fuzzer's seed (run by make_store_corpus.sh).

Usage: python3 make_store_tiles_corpus.py CORPUS_DIR
Turns the largest chunked value of CORPUS_DIR/seed into a tiled value of
format 2.0 (docs/format.md, "Tiles"): a 1-D array of bytes whose tiles are its
chunks, one tile each; then writes tiles_seed and lying variants of it.
"""
import os, random, sqlite3, struct, sys, tempfile

out = sys.argv[1]
b = open(os.path.join(out, "seed"), "rb").read()
n = struct.unpack("<I", b[:4])[0]
db, data = b[4:4 + n], b[4 + n:]
SCHEMA = """
CREATE TABLE tiles(key BLOB NOT NULL, t0 INTEGER NOT NULL, source TEXT NOT NULL,
 generation INTEGER NOT NULL, itemsize INTEGER NOT NULL, ndim INTEGER NOT NULL,
 global_shape BLOB NOT NULL, start BLOB NOT NULL, shape BLOB NOT NULL, size INTEGER NOT NULL,
 crc32c INTEGER NOT NULL, chunk_size INTEGER NOT NULL, PRIMARY KEY(key, t0)) WITHOUT ROWID;
CREATE TABLE tile_chunks(key BLOB NOT NULL, t0 INTEGER NOT NULL, idx INTEGER NOT NULL,
 file_id INTEGER NOT NULL, offset INTEGER NOT NULL, stored_len INTEGER NOT NULL,
 raw_len INTEGER NOT NULL, codec INTEGER NOT NULL, crc32c INTEGER NOT NULL,
 PRIMARY KEY(key, t0, idx)) WITHOUT ROWID;
"""


def u64(*v):
    return b"".join(struct.pack("<Q", x) for x in v)


def tiled(lie=None):
    with tempfile.TemporaryDirectory() as t:
        p = os.path.join(t, "ckpt.db")
        open(p, "wb").write(db)
        c = sqlite3.connect(p)
        c.executescript(SCHEMA)
        # The largest value stored in raw chunks: a raw chunk's CRC is its tile's CRC.
        key, size, cs = c.execute(
            "SELECT key, size, chunk_size FROM kv WHERE inline IS NULL AND NOT EXISTS"
            " (SELECT 1 FROM chunks WHERE chunks.key = kv.key AND codec != 0)"
            " ORDER BY size DESC").fetchone()
        for idx, fid, off, stored, raw, codec, crc in c.execute(
                "SELECT idx, file_id, offset, stored_len, raw_len, codec, crc32c FROM chunks"
                " WHERE key = ? ORDER BY idx", (key,)).fetchall():
            t0 = idx * cs
            c.execute("INSERT INTO tiles VALUES(?,?,?,?,?,?,?,?,?,?,?,?)",
                      (key, t0, "ckpt.%d.db" % (idx % 3), 1, 1, 1, u64(size), u64(t0), u64(raw),
                       raw, crc if codec == 0 else 0, cs))
            c.execute("INSERT INTO tile_chunks VALUES(?,?,?,?,?,?,?,?,?)",
                      (key, t0, 0, fid, off, stored, raw, codec, crc))
        c.execute("DELETE FROM chunks WHERE key = ?", (key,))
        c.execute("UPDATE kv SET chunk_size = 0, crc32c = 0 WHERE key = ?", (key,))
        c.execute("UPDATE meta SET value = 2 WHERE name = 'format_major'")
        c.execute("UPDATE meta SET value = 0 WHERE name = 'format_minor'")
        if lie:
            c.execute(lie)
        c.commit()
        c.execute("PRAGMA application_id = 0")
        c.close()
        return open(p, "rb").read()


def put(name, d):
    open(os.path.join(out, name), "wb").write(struct.pack("<I", len(d)) + d + data)


put("tiles_seed", tiled())
lies = {
    "tiles_gap": "DELETE FROM tiles WHERE t0 = (SELECT MAX(t0) FROM tiles)",
    "tiles_overlap": "UPDATE tiles SET shape = x'0020000000000000' WHERE t0 = 0",
    "tiles_ndim": "UPDATE tiles SET ndim = 33",
    "tiles_t0": "UPDATE tiles SET t0 = t0 + 1",
    "tiles_itemsize": "UPDATE tiles SET itemsize = 3",
    "tiles_no_chunks": "DELETE FROM tile_chunks",
    "tiles_global": "UPDATE tiles SET global_shape = x'ffffffffffffff7f'",
}
for name, lie in lies.items():
    put(name, tiled(lie))
r = random.Random(2)
base = tiled()
for i in range(3):
    d = bytearray(base)
    for _ in range(8):
        d[r.randrange(100, len(d))] = r.randrange(256)
    put("tiles_mutant%d" % i, bytes(d))
