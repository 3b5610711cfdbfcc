#!/bin/bash
# Make the seed corpus of store_fuzzer: small real steps (raw chunks, zstd
# chunks, inline values, strings, None) in the fuzzer's input format (4-byte
# LE length, ckpt.db, then the data file bytes), plus damaged variants.
# Usage: B=build bash tests/fuzz/make_store_corpus.sh   (rewrites the corpus)
set -euo pipefail
B=${B:-build}
OUT=tests/fuzz/corpus/store
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
mkdir -p "$OUT"
/usr/bin/python3 - "$T/in" <<'PY'
import numpy as np, os, sys
d = sys.argv[1]
os.makedirs(d + "/state/opt/0", exist_ok=True)
rng = np.random.default_rng(7)
np.save(d + "/state/w.npy", rng.standard_normal(3000).astype(np.float32))  # 12 KB: raw chunks
np.save(d + "/state/z.npy", np.zeros(6000, np.int16))                      # zstd chunks
np.save(d + "/state/opt/0/mu.npy", np.arange(12, dtype=np.float64).reshape(3, 4))
open(d + "/state/step", "w").write("1000")
open(d + "/state/name", "w").write("a string leaf")
PY
"$B/ckpt" save --chunk-size 4096 "$T/root" 1 "$T/in" >/dev/null 2>&1 ||
	"$B/ckpt" save "$T/root" 1 "$T/in" >/dev/null
S=$T/root/1
pack() { # OUT DB DATA
	/usr/bin/python3 -c 'import struct,sys; db=open(sys.argv[2],"rb").read(); data=open(sys.argv[3],"rb").read() if sys.argv[3] else b""
open(sys.argv[1],"wb").write(struct.pack("<I",len(db))+db+data)' "$@"
}
data=$(ls "$S/d" | head -1)
pack "$OUT/seed" "$S/ckpt.db" "$S/d/$data"
pack "$OUT/no_data" "$S/ckpt.db" ""
/usr/bin/python3 - "$OUT" <<'PY'
import struct, sys, random
out = sys.argv[1]
b = open(out + "/seed", "rb").read()
n = struct.unpack("<I", b[:4])[0]
db, data = b[4:4 + n], b[4 + n:]
def put(name, d, x): open(f"{out}/{name}", "wb").write(struct.pack("<I", len(d)) + d + x)
put("data_flip", db, data[:100] + bytes([data[100] ^ 1]) + data[101:])
put("data_short", db, data[: len(data) // 2])
put("db_truncated", db[: len(db) // 2], data)
put("db_header_only", db[:100], data)
r = random.Random(1)
for i in range(6):   # a few bytes of the index changed at random
    d = bytearray(db)
    for _ in range(8):
        d[r.randrange(100, len(d))] = r.randrange(256)
    put(f"db_mutant{i}", bytes(d), data)
PY
# format 1.2: 16 KiB chunks, so the 12 KB raw leaf has block CRCs; damaged variants of them
"$B/ckpt" save --chunk-size 16K "$T/root" 2 "$T/in" >/dev/null
S=$T/root/2
data=$(ls "$S/d" | head -1)
cp "$S/ckpt.db" "$T/b.db"
pack "$OUT/blocks_seed" "$T/b.db" "$S/d/$data"
for case in "short:x'0102'" "zero:zeroblob(8)" "null:NULL" "text:'abcdefgh'"; do
	sqlite3 "$T/b.db" "UPDATE chunks SET blocks = ${case#*:} WHERE blocks IS NOT NULL" 2>/dev/null ||
		/usr/bin/python3 -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute("UPDATE chunks SET blocks = %s WHERE blocks IS NOT NULL" % sys.argv[2]); c.commit()' "$T/b.db" "${case#*:}"
	pack "$OUT/blocks_${case%%:*}" "$T/b.db" "$S/d/$data"
	cp "$S/ckpt.db" "$T/b.db"
done
/usr/bin/python3 - "$OUT" "$S/ckpt.db" "$S/d/$data" <<'PY'
import struct, sys
out, db, data = sys.argv[1], open(sys.argv[2], "rb").read(), open(sys.argv[3], "rb").read()
# a flipped data byte in the second block of the leaf's chunk
i = min(len(data) - 1, 9000)
open(out + "/blocks_data_flip", "wb").write(struct.pack("<I", len(db)) + db + data[:i] + bytes([data[i] ^ 1]) + data[i + 1:])
PY
/usr/bin/python3 "$(dirname "$0")/make_store_tiles_corpus.py" "$OUT" # format 2.0: tiles
ls "$OUT" | wc -l
