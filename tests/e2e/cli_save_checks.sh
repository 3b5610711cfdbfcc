#!/usr/bin/env bash
# cli_save_checks.sh — `ckpt save` never drops anything silently (issue 16): paths a step
# cannot hold (a top-level file, a '_' name in an item: the mount's rule) fail the save,
# listed with their reasons, and nothing is saved; --skip-extra saves without them with a
# note; hidden files (.DS_Store) are left out with a note; an unknown _CHECKPOINT_METADATA
# key is refused; metrics written by Python's json (2.3000000000000003 = 0.1 + 2.2) and given
# with --metric/--metrics keep every digit (Python reads them back bit-exact from `ckpt meta`
# and `ckpt ls --json`); "already exists" names --force.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"

R="$T/root" D="$T/d"
mkdir -p "$D/state/sub"
$PY - "$D" <<'PY'
import json, sys, numpy as np
d = sys.argv[1]
np.save(d + "/state/w.npy", np.arange(6, dtype="<f8") / 3)
np.save(d + "/state/sub/b.npy", np.arange(3, dtype="<i4"))
json.dump({"metrics": {"loss": 0.1 + 2.2, "acc": 1 / 3}}, open(d + "/_CHECKPOINT_METADATA", "w"))
PY
echo "notes" >"$D/README.txt"
echo "x" >"$D/state/_private"
touch "$D/.DS_Store" "$D/state/.DS_Store"

run 1 "$CKPT" save "$R" 1 "$D"
grep_err "^ckpt: nothing saved: 2 paths in $D cannot be part of a step \(move them out, or --skip-extra saves without them\):$"
grep_err "^  README.txt: a step holds only _CHECKPOINT_METADATA, item directories and <item>.safetensors or <item>.npz files$"
grep_err "^  state/_private: names starting with '_' are reserved"
[ ! -e "$R/1" ] || fail "a refused save left step 1"
pass "paths a step cannot hold fail the save, listed"

run 0 "$CKPT" save "$R" 1 "$D" --skip-extra
grep_err "^ckpt: note: not saved \(--skip-extra\):$"
grep_err "^  README.txt: "
grep_err "^ckpt: note: hidden files not saved: .DS_Store, state/.DS_Store$"
run 0 "$CKPT" tree --json "$R/1"
$PY - "$T/out" <<'PY' || fail "tree of the saved step: $(cat "$T/out")"
import json, sys
paths = sorted(r["path"] for r in json.load(open(sys.argv[1])))
assert paths == ["state", "state/sub", "state/sub/b", "state/w"], paths
PY
pass "--skip-extra saves the rest with a note; hidden files left out with a note"

rm "$D/README.txt" "$D/state/_private"
run 0 "$CKPT" save "$R" 2 "$D"
grep_err "hidden files not saved"
run 1 "$CKPT" save "$R" 2 "$D"
grep_err "^ckpt: step $R/2 already exists \(--force replaces it\)$"
pass "hidden files alone do not fail a save; already exists names --force"

run 0 "$CKPT" save "$R" 3 "$D" --metric lr=0.30000000000000004 --metric tag=best --metrics '{"acc": 0.1, "n": [1, 2]}'
run 0 "$CKPT" meta "$R/2"
cp "$T/out" "$T/meta2"
run 0 "$CKPT" meta "$R/3"
cp "$T/out" "$T/meta3"
run 0 "$CKPT" ls --json "$R"
$PY - "$T/meta2" "$T/meta3" "$T/out" <<'PY' || fail "metrics lost digits: $(cat "$T/meta2" "$T/meta3" "$T/out")"
import json, sys
m2 = json.load(open(sys.argv[1]))["metrics"]
m3 = json.load(open(sys.argv[2]))["metrics"]
ls = {r["step"]: r["metrics"] for r in json.load(open(sys.argv[3]))}
assert m2 == {"loss": 0.1 + 2.2, "acc": 1 / 3}, m2
assert m2["loss"] == 2.3000000000000003 and repr(m2["loss"]) == "2.3000000000000003"
assert m3 == {"loss": 0.1 + 2.2, "acc": 0.1, "n": [1, 2], "lr": 0.1 + 0.2, "tag": "best"}, m3
assert ls[2] == m2 and ls[3] == m3, ls
PY
run 0 "$CKPT" ls "$R"
grep_out '"loss":2.3000000000000003'
pass "metrics keep every digit (file, --metric, --metrics; meta, ls, ls --json)"

run 2 "$CKPT" save "$R" 4 "$D" --metric lr
grep_err "bad value 'lr' for option --metric"
run 1 "$CKPT" save "$R" 4 "$D" --metrics '[1]'
grep_err "^ckpt: --metrics: not a JSON object: \[1\]$"
printf '{"metrics": {"a": 1}, "loss": 1.5}' >"$D/_CHECKPOINT_METADATA"
run 1 "$CKPT" save "$R" 4 "$D"
grep_err "^ckpt: $D/_CHECKPOINT_METADATA: a step does not keep the key 'loss' \(nothing saved\); put it in \"metrics\""
[ ! -e "$R/4" ] || fail "a refused save left step 4"
pass "bad --metric/--metrics and unknown _CHECKPOINT_METADATA keys refused, nothing saved"
finish cli_save_checks
