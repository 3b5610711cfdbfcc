#!/usr/bin/env bash
# cli_corrupt.sh — flipped bytes in a data file are caught: `ckpt verify` exits 1 naming
# the leaf, `ckpt get` of it fails with a checksum message naming it, and the other leaves
# still restore correctly. A changed inline value (any change to ckpt.db) fails the step's
# index checksum.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"

SRC="$T/src" R="$T/root"
$PY - "$SRC" <<'PYEOF'
import os, sys, numpy as np
s = f"{sys.argv[1]}/state"
os.makedirs(s)
rng = np.random.default_rng(11)
np.save(f"{s}/big.npy", rng.standard_normal(3_000_000).astype(np.float32))  # ~12 MB, chunked
np.save(f"{s}/small.npy", np.arange(50, dtype=np.int32))                   # inline
np.save(f"{s}/other.npy", np.arange(20, dtype=np.float64))                 # inline
open(f"{s}/step", "w").write("77")
PYEOF
run 0 "$CKPT" save "$R" 1 "$SRC" --no-compress
run 0 "$CKPT" save "$R" 2 "$SRC" --no-compress
run 0 "$CKPT" verify "$R"
pass "two clean steps verify"

# flip KEY: flip bytes at 5 random offsets of the data file inside KEY's chunks (step 1).
$PY - "$R/1" <<'PYEOF' || fail "could not corrupt the data file"
import os, random, sqlite3, sys
d = sys.argv[1]
db = sqlite3.connect(f"file:{d}/ckpt.db?mode=ro", uri=True)
rows = db.execute("SELECT f.name, c.offset, c.stored_len FROM chunks c JOIN files f "
                  "ON f.id = c.file_id WHERE c.key = ?", (b"state/big",)).fetchall()
db.close()
assert len(rows) > 3, rows
rnd = random.Random()
for _ in range(5):
    name, off, n = rnd.choice(rows)
    path = name if os.path.isabs(name) else os.path.join(d, "d", name)
    if not os.path.exists(path):
        path = os.path.join(d, name)
    pos = off + rnd.randrange(n)
    with open(path, "r+b") as f:
        f.seek(pos)
        b = f.read(1)
        f.seek(pos)
        f.write(bytes([b[0] ^ (1 << rnd.randrange(8))]))
    print("flipped", path, pos)
PYEOF
run 1 "$CKPT" verify "$R/1"
grep_out 'BAD .*state/big' && grep_err 'failed verification'
grep -q 'state/small\|state/other\|state/step' "$T/out" && fail "verify blamed a good leaf: $(cat "$T/out")"
run 1 "$CKPT" get "$R/1/state/big" -o "$T/big.npy"
grep_err 'state/big' && grep_err 'checksum|crc'
[ -e "$T/big.npy" ] && fail "get of a corrupt leaf left a file behind"
for leaf in small other; do
	run 0 "$CKPT" get "$R/1/state/$leaf" -o "$T/$leaf.npy"
	cmp "$T/$leaf.npy" "$SRC/state/$leaf.npy" || fail "$leaf differs after corruption of big"
done
run 0 "$CKPT" cat "$R/1/state/step";  grep_out '^77$'
run 0 "$CKPT" verify "$R/2"
pass "flipped data-file bytes: verify and get name state/big, other leaves restore"

# An inline value: flip one byte of state/small's BLOB in step 2's ckpt.db.
$PY - "$R/2/ckpt.db" <<'PYEOF' || fail "could not corrupt the inline value"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
(blob,) = db.execute("SELECT inline FROM kv WHERE key = ?", (b"state/small",)).fetchone()
assert blob is not None and len(blob) > 100, "state/small is not inline"
b = bytearray(blob)
b[len(b) // 2] ^= 0x10
db.execute("UPDATE kv SET inline = ? WHERE key = ?", (bytes(b), b"state/small"))
db.commit()
db.execute("PRAGMA journal_mode=DELETE")
db.close()
PYEOF
# The step's index is sealed with a checksum (docs/format.md, "Index checksum"): any change
# to ckpt.db fails the whole step at open, naming the index, before a row is believed.
run 1 "$CKPT" verify "$R/2"
grep_err 'ckpt.db: damaged index: CRC32C mismatch'
run 1 "$CKPT" get "$R/2/state/small" -o "$T/s2.npy"
grep_err 'ckpt.db: damaged index'
[ -e "$T/s2.npy" ] && fail "get from a damaged index left a file behind"
run 1 "$CKPT" cat "$R/2/state/other"
grep_err 'damaged index'
run 0 "$CKPT" get "$R/1/state/small" -o "$T/s1.npy"
cmp "$T/s1.npy" "$SRC/state/small.npy" || fail "step 1 is hurt by step 2's damaged index"
pass "flipped inline byte: the index checksum fails step 2 as a whole; step 1 still reads"

finish cli_corrupt
