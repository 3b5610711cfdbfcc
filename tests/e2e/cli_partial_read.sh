#!/usr/bin/env bash
# cli_partial_read.sh — reading one small leaf of a >= 1 GiB checkpoint reads only that leaf:
# `ckpt get --io-stats` reports the process's rchar and the store's data-file bytes read.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"

SRC="$T/src" R="$T/root"
$PY "$E2E/cli_npy.py" big "$SRC" 4 256      # 4 float32 leaves of 256 MiB + state/small.npy
run 0 "$CKPT" save "$R" 1 "$SRC" --no-compress
rm -rf "$SRC"
total=$(du -sb "$R/1" | cut -f1)
[ "$total" -ge $((1 << 30)) ] || fail "checkpoint is only $total bytes"
pass "saved a checkpoint of $total bytes"

run 0 "$CKPT" get --io-stats "$R/1/state/small" -o "$T/small.npy"
$PY -c 'import numpy as np,sys; a=np.load(sys.argv[1]); assert (a == np.arange(100, dtype=np.float32)).all()' \
	"$T/small.npy" || fail "small leaf restored wrong"
line=$(grep '^io-stats:' "$T/err") || fail "no io-stats line: $(cat "$T/err")"
rchar=$(sed -n 's/.*rchar=\([0-9]*\).*/\1/p' <<<"$line")
bread=$(sed -n 's/.*bytes_read=\([0-9]*\).*/\1/p' <<<"$line")
leaf=$(stat -c %s "$T/small.npy")
index=$(stat -c %s "$R/1/ckpt.db")
bound=$((leaf + index + (1 << 20)))
echo "# get small leaf: rchar=$rchar bytes_read=$bread (leaf $leaf B, index $index B, bound $bound B, checkpoint $total B)"
[ -n "$rchar" ] && [ -n "$bread" ] || fail "unparsable io-stats: $line"
[ "$rchar" -gt 0 ] || fail "rchar is 0: /proc/self/io unreadable?"
[ "$rchar" -lt "$bound" ] || fail "rchar $rchar >= bound $bound"
[ "$bread" -lt "$bound" ] || fail "store bytes_read $bread >= bound $bound"
pass "get of the small leaf read $rchar bytes (bound $bound) of $total"

# A leaf stored in the data files (not inline): only its chunk is read.
run 0 "$CKPT" get --io-stats "$R/1/state/medium" -o "$T/medium.npy"
rchar=$(sed -n 's/.*rchar=\([0-9]*\).*/\1/p' "$T/err")
bread=$(sed -n 's/.*bytes_read=\([0-9]*\).*/\1/p' "$T/err")
leaf=$(stat -c %s "$T/medium.npy")
bound=$((leaf + index + (1 << 20)))
[ "$bread" -gt 0 ] || fail "medium leaf read no data-file bytes: is it inline?"
[ "$rchar" -lt "$bound" ] && [ "$bread" -lt "$bound" ] || fail "medium leaf: rchar=$rchar bytes_read=$bread >= $bound"
pass "get of a $leaf-byte leaf in a data file: rchar=$rchar bytes_read=$bread (bound $bound)"

# cat of a big leaf reads only the chunks holding the printed elements (first and last).
run 0 "$CKPT" meta "$R/1/state/w2"
chunk=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["chunk_size"])' "$T/out")
run 0 "$CKPT" --io-stats cat "$R/1/state/w2"
grep_out '\.\.\.'
rchar=$(sed -n 's/.*rchar=\([0-9]*\).*/\1/p' "$T/err")
bound=$((2 * chunk + index + (1 << 20)))
[ "$rchar" -lt "$bound" ] || fail "cat of a 256 MiB leaf read $rchar bytes (bound $bound)"
pass "cat of a 256 MiB leaf read $rchar bytes (bound $bound: two $chunk-byte chunks)"

finish cli_partial_read
