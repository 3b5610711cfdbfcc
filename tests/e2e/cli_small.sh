#!/usr/bin/env bash
# cli_small.sh — the smaller surprises of issue 16: `restore` and `get` do not overwrite
# existing output without --force (and nothing is written when they refuse), a metric name
# no step has warns instead of silently marking nothing best, `meta` prints indented JSON
# for steps and items alike with every digit of the metrics kept.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"

R="$T/root" D="$T/d"
mkdir -p "$D/state"
$PY -c 'import numpy as np, sys; np.save(sys.argv[1], np.arange(5, dtype="<i4"))' "$D/state/a.npy"
run 0 "$CKPT" save "$R" 1 "$D" --metric loss=0.30000000000000004
run 0 "$CKPT" save "$R" 2 "$D" --metric loss=0.5

# --- restore / get refuse to overwrite ---
mkdir -p "$T/dst" && echo keep >"$T/dst/mine"
run 1 "$CKPT" restore "$R/1" "$T/dst"
grep_err "^ckpt: $T/dst exists and is not empty \(--force writes into it, replacing the files of the same names\)$"
[ ! -e "$T/dst/state" ] || fail "a refused restore wrote files"
run 0 "$CKPT" restore "$R/1" "$T/dst" --force
[ -f "$T/dst/state/a.npy" ] && [ "$(cat "$T/dst/mine")" = keep ] || fail "restore --force"
run 0 "$CKPT" restore "$R/1" "$T/new" # a new directory needs no --force
(cd "$T" && run 0 "$CKPT" get "$R/1/state/a")
echo changed >"$T/a.npy"
(cd "$T" && run 1 "$CKPT" get "$R/1/state/a")
grep_err "^ckpt: a.npy exists \(--force overwrites it\)$"
[ "$(cat "$T/a.npy")" = changed ] || fail "a refused get overwrote a.npy"
(cd "$T" && run 0 "$CKPT" get -f "$R/1/state/a")
cmp -s "$T/a.npy" "$D/state/a.npy" || fail "get --force did not write the leaf"
pass "restore and get refuse to overwrite without --force"

# --- a metric no step has ---
run 0 "$CKPT" ls "$R" --metric los
grep_err "^ckpt: warning: no step has a number named 'los' in its metrics \(the newest step's metrics: \{\"loss\":0.5\}\)$"
run 0 "$CKPT" ls "$R" --metric loss
grep_out '^1 .*best' && ! grep -q warning "$T/err" || fail "ls --metric loss: $(cat "$T/out" "$T/err")"
run 0 "$CKPT" gc "$R" --keep-best 1 --metric los --dry-run
grep_err "no step has a number named 'los'"
pass "a metric name no step has warns"

# --- meta: indented JSON, digits kept ---
run 0 "$CKPT" meta "$R/1"
[ "$(head -2 "$T/out" | tail -1 | cut -c1-3)" = '  "' ] || fail "meta of a step is not indented: $(head -3 "$T/out")"
$PY - "$T/out" <<'PY' || fail "meta of a step: $(cat "$T/out")"
import json, sys
m = json.load(open(sys.argv[1]))
assert m["metrics"]["loss"] == 0.1 + 0.2, m
PY
grep -q '"loss": 0.30000000000000004' "$T/out" || fail "meta lost digits: $(cat "$T/out")"
run 0 "$CKPT" meta "$R/1/state"
[ "$(sed -n 2p "$T/out" | cut -c1-3)" = '  "' ] || fail "meta of an item is not indented"
$PY -c 'import json, sys; json.load(open(sys.argv[1]))' "$T/out" || fail "meta of an item: not JSON"
pass "meta prints indented JSON for steps and items, every digit kept"
finish cli_small
