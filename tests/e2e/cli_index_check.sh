#!/usr/bin/env bash
# cli_index_check.sh — the index checksum and the key check, through the CLI:
#  - a fresh step verifies with its index checked; a step as format 1.0 wrote it (no
#    checksum) still opens, restores and verifies, noted "index unchecked";
#  - in such an unchecked step, a renamed `state/_METADATA` or leaf key (what a flipped
#    byte in a key does) fails `ckpt verify` by the key check, naming both sides;
#  - the same rename in a sealed step fails the step's open: verify, restore and cat;
#  - random single-bit flips of a sealed ckpt.db (CKPT_FLIPS, default 120): `ckpt restore`
#    either fails or writes exactly the clean restore (0 silent changes).
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"

SRC="$T/src" R="$T/root"
$PY - "$SRC" <<'PYEOF'
import os, sys, numpy as np
s = f"{sys.argv[1]}/state"
os.makedirs(f"{s}/layer")
np.save(f"{s}/w.npy", np.random.default_rng(5).standard_normal(70_000).astype(np.float32))
np.save(f"{s}/layer/b.npy", np.arange(12, dtype=np.int16))
open(f"{s}/step", "w").write("9")
PYEOF
run 0 "$CKPT" save "$R" 1 "$SRC" --no-compress
run 0 "$CKPT" verify "$R/1"
grep -q 'unchecked' "$T/err" && fail "a fresh step's index is unchecked"
run 0 "$CKPT" restore "$R/1" "$T/clean"
pass "a fresh step verifies with its index checked"

# as1_0 DIR: make DIR's index look as format 1.0 wrote it (no checksum, minor 0), and
# drop its listing (1.0 wrote none; one bound to the old checksum would be refused).
as1_0() { rm -f "$1/ckpt.list"; $PY - "$1/ckpt.db" <<'PYEOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("UPDATE meta SET value = 0 WHERE name = 'format_minor'")
db.execute("PRAGMA application_id = 0")
db.commit(); db.close()
PYEOF
}
# rename DIR OLD NEW: rename a key in DIR's index (and its chunk rows).
rename() { $PY - "$1/ckpt.db" "$2" "$3" <<'PYEOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
old, new = sys.argv[2].encode(), sys.argv[3].encode()
assert db.execute("UPDATE kv SET key = ? WHERE key = ?", (new, old)).rowcount == 1
db.execute("UPDATE chunks SET key = ? WHERE key = ?", (new, old))
db.commit(); db.close()
PYEOF
}
for s in 2 3 4 5; do cp -a "$R/1" "$R/$s"; done
as1_0 "$R/2"
run 0 "$CKPT" verify "$R/2"
grep_err "note: .*/2: index unchecked"
run 0 "$CKPT" restore "$R/2" "$T/r2"
diff -r "$T/clean" "$T/r2" >/dev/null || fail "an unchecked step restores differently"
run 0 "$CKPT" verify --json "$R"
grep_out '"index_unchecked": 1'
pass "a step without an index checksum (format 1.0) opens, restores and verifies, noted"

as1_0 "$R/3"
rename "$R/3" state/_METADATA state/_METADATB
run 1 "$CKPT" verify "$R/3"
grep_out "BAD .*/3: item state: no state/_METADATA"
grep_out "BAD .*/3: key 'state/_METADATB' belongs to no item or leaf"
as1_0 "$R/4"
rename "$R/4" state/w state/x
run 1 "$CKPT" verify "$R/4"
grep_out "BAD .*/4: item state: leaf 'w' has no value"
grep_out "BAD .*/4: key 'state/x' belongs to no item or leaf"
pass "unchecked index: a renamed _METADATA or leaf key fails verify by the key check"

rename "$R/5" state/w state/x # sealed: the checksum fails the step
run 1 "$CKPT" verify "$R/5";  grep_err '/5/ckpt.db: damaged index: CRC32C mismatch'
run 1 "$CKPT" restore "$R/5" "$T/r5"; grep_err 'damaged index'
run 1 "$CKPT" cat "$R/5/state/step"; grep_err 'damaged index'
pass "sealed index: the same rename fails verify, restore and cat at open"

# Random single-bit flips of step 1's sealed ckpt.db through `ckpt restore`.
N=${CKPT_FLIPS:-120}
size=$(stat -c %s "$R/1/ckpt.db")
cp "$R/1/ckpt.db" "$T/db.orig"
silent=0 detected=0 same=0
for i in $(seq "$N"); do
	off=$(( (RANDOM * 32768 + RANDOM) % size )) bit=$((RANDOM % 8))
	$PY -c "
import sys
p, off, bit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(p, 'r+b') as f:
    f.seek(off); b = f.read(1); f.seek(off); f.write(bytes([b[0] ^ (1 << bit)]))
" "$R/1/ckpt.db" "$off" "$bit"
	rm -rf "$T/rf"
	st=0
	timeout 30 "$CKPT" restore "$R/1" "$T/rf" >/dev/null 2>"$T/err" || st=$?
	grep -qE 'AddressSanitizer|runtime error:' "$T/err" && fail "sanitizer report at $off"
	[ "$st" -lt 124 ] || fail "restore crashed or hung after a flip at $off (status $st)"
	if [ "$st" -ne 0 ]; then
		detected=$((detected + 1))
	elif diff -r "$T/clean" "$T/rf" >/dev/null; then
		same=$((same + 1))
	else
		silent=$((silent + 1))
		echo "silent change: bit $bit of byte $off" >&2
	fi
	cp "$T/db.orig" "$R/1/ckpt.db"
done
echo "index flips through ckpt restore: $N trials, $detected detected, $same unchanged, $silent silent"
[ "$silent" -eq 0 ] || fail "$silent silent changes"
pass "random bit flips of a sealed ckpt.db: 0 silent changes through ckpt restore"
finish cli_index_check
