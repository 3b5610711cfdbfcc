#!/usr/bin/env bash
# cli_inspect.sh — the commands h5ls, git and du users reach for (issue 16), checked
# against numpy: `ckpt diff` (added/removed/changed/differing leaves, differing element
# count and max abs/rel difference, equal without reading, --json, --exit-code, a PATH),
# `ckpt du` (steps sharing data files after a copy through the mount: unique vs shared,
# each file counted once, against os.stat of the files), `ckpt cat --stats` and --header,
# `ckpt tree --depth/--match` with a total and paths past 40 characters, `ckpt help CMD`.
set -euo pipefail
# shellcheck source=tests/e2e/fs_write_lib.sh
. "$(dirname "$0")/fs_write_lib.sh"

# expect STATUS CMD...: ckpt CMD exits STATUS; stdout in $T/out, stderr in $T/err
expect() {
	local want=$1 st=0
	shift
	t "$CKPT" "$@" >"$T/out" 2>"$T/err" || st=$?
	[ "$st" = "$want" ] || fail "ckpt $* exited $st (want $want): $(cat "$T/err")"
}

$PY - "$T" <<'PY'
import numpy as np, os, sys
t = sys.argv[1]
rng = np.random.default_rng(16)
for d in ("a", "b"):
    os.makedirs(f"{t}/{d}/state/params/a_rather_long_module_name/another_level", exist_ok=True)
w = rng.standard_normal((300, 70)).astype("<f4")
w[5, 5] = np.nan
np.save(f"{t}/a/state/params/w.npy", w)
w2 = w.copy(); w2[0, :7] += 0.25; w2[1, 3] = 0; w2[2, 2] = np.nan
np.save(f"{t}/b/state/params/w.npy", w2)
for d in ("a", "b"):
    np.save(f"{t}/{d}/state/params/same.npy", np.arange(1000, dtype="<i8"))
    np.save(f"{t}/{d}/state/params/a_rather_long_module_name/another_level/kernel.npy", np.ones((2, 3), "<f8"))
np.save(f"{t}/a/state/params/gone.npy", np.zeros(3, "<f4"))
np.save(f"{t}/b/state/params/new.npy", np.zeros(3, "<f4"))
np.save(f"{t}/a/state/params/shape.npy", np.zeros(4, "<f4"))
np.save(f"{t}/b/state/params/shape.npy", np.zeros((2, 2), "<f4"))
open(f"{t}/a/state/step", "w").write("100")
open(f"{t}/b/state/step", "w").write("200")
PY
"$CKPT" save "$ROOT" 100 "$T/a" >/dev/null
"$CKPT" save "$ROOT" 200 "$T/b" >/dev/null

# --- diff ---
expect 0 diff "$ROOT/100" "$ROOT/200"
cat >"$T/want" <<'EOF'
removed   state/params/gone: float32 (3,)
added     state/params/new: float32 (3,)
changed   state/params/shape: float32 (4,) -> float32 (2, 2)
differs   state/step: 100 -> 200
2 equal, 2 differ, 1 changed, 1 added, 1 removed
EOF
grep -v "^differs   state/params/w:" "$T/out" | diff - "$T/want" >/dev/null || fail "diff: $(cat "$T/out")"
grep -q "^differs   state/params/w: 9 of 21000 elements differ, max abs nan" "$T/out" || fail "diff of w: $(cat "$T/out")"
expect 0 diff --json "$ROOT/100" "$ROOT/latest"
$PY - "$T/out" "$T" <<'PY' || fail "diff --json against numpy: $(cat "$T/out")"
import json, sys, numpy as np
d = json.load(open(sys.argv[1])); t = sys.argv[2]
a = np.load(f"{t}/a/state/params/w.npy").astype(np.float64)
b = np.load(f"{t}/b/state/params/w.npy").astype(np.float64)
same = (a == b) | (np.isnan(a) & np.isnan(b))
w = {l["path"]: l for l in d["leaves"]}["state/params/w"]
assert w["status"] == "differs" and w["elements"] == a.size, w
assert w["differing"] == int((~same).sum()) == 9, (w, int((~same).sum()))
assert w["max_abs"] is None, w  # NaN on one side only
assert d["equal"] == 2 and d["differs"] == 2 and d["changed"] == 1 and d["added"] == 1 and d["removed"] == 1, d
PY
expect 0 diff "$ROOT/100" "$ROOT/200" state/params/a_rather_long_module_name
grep -qx "1 equal, 0 differ, 0 changed, 0 added, 0 removed" "$T/out" || fail "diff with PATH: $(cat "$T/out")"
expect 0 diff "$ROOT/100" "$ROOT/100" --exit-code
expect 1 diff "$ROOT/100" "$ROOT/200" --exit-code
# max abs/rel against numpy, finite differences only
$PY - "$T" <<'PY'
import numpy as np, os, sys
t = sys.argv[1]
for d, k in (("c", 1.0), ("e", 1.5)):
    os.makedirs(f"{t}/{d}/state", exist_ok=True)
    np.save(f"{t}/{d}/state/x.npy", np.linspace(-2, 2, 5001).astype("<f8") * k)
PY
"$CKPT" save "$ROOT" 300 "$T/c" >/dev/null
"$CKPT" save "$ROOT" 400 "$T/e" >/dev/null
expect 0 diff --json "$ROOT/300" "$ROOT/400"
$PY - "$T/out" "$T" <<'PY' || fail "diff max abs/rel against numpy: $(cat "$T/out")"
import json, sys, numpy as np
d = json.load(open(sys.argv[1]))["leaves"][0]; t = sys.argv[2]
a = np.load(f"{t}/c/state/x.npy"); b = np.load(f"{t}/e/state/x.npy")
assert d["max_abs"] == np.abs(a - b).max(), (d, np.abs(a - b).max())
nz = b != 0
assert d["max_rel"] == (np.abs(a - b)[nz] / np.abs(b[nz])).max(), d
assert d["differing"] == int((a != b).sum()), d
PY

# --- cat --stats / --header ---
expect 0 cat --stats --json "$ROOT/100/state/params/w"
$PY - "$T/out" "$T" <<'PY' || fail "cat --stats against numpy: $(cat "$T/out")"
import json, sys, numpy as np
s = json.load(open(sys.argv[1])); w = np.load(f"{sys.argv[2]}/a/state/params/w.npy").astype(np.float64)
f = w[np.isfinite(w)]
assert s["dtype"] == "float32" and s["shape"] == [300, 70] and s["count"] == w.size, s
assert s["nan"] == 1 and s["inf"] == 0, s
assert s["min"] == f.min() and s["max"] == f.max(), s
assert abs(s["mean"] - f.mean()) <= 1e-12 * max(1, abs(f.mean())), (s["mean"], f.mean())
assert abs(s["std"] - f.std()) <= 1e-12 * f.std(), (s["std"], f.std())
PY
expect 0 cat --stats "$ROOT/100/state/params/w"
head -2 "$T/out" | tr '\n' '|' | grep -qx "float32 (300, 70)|count 21000  nan 1  inf 0|" || fail "cat --stats: $(cat "$T/out")"
expect 0 cat --header "$ROOT/100/state/params/same"
[ "$(head -1 "$T/out")" = "int64 (1000,)" ] || fail "cat --header: $(head -1 "$T/out")"
"$CKPT" cat "$ROOT/100/state/params/same" | cmp -s - <(tail -n +2 "$T/out") || fail "cat --header changed the values"
expect 1 cat --stats "$ROOT/100/state/step"
grep -qF -- "--stats needs an array (this is a int)" "$T/err" || fail "cat --stats of a scalar: $(cat "$T/err")"

# --- tree --depth / --match / total / long paths ---
expect 0 tree --depth 2 "$ROOT/100"
awk 'NR > 1 && $1 != "total" { print $1 }' "$T/out" | tr '\n' ' ' | grep -qx "state state/params state/step " ||
	fail "tree --depth 2: $(cat "$T/out")"
expect 0 tree --match '*kernel*' "$ROOT/100"
L="state/params/a_rather_long_module_name/another_level/kernel"
[ "$(awk 'NR > 1 { print $1 }' "$T/out" | tr '\n' ' ')" = "$L total " ] || fail "tree --match: $(cat "$T/out")"
# columns stay aligned past 40 characters: KIND starts where the header says
hdr=$(head -1 "$T/out")
row=$(sed -n 2p "$T/out")
k=$(awk -v s="$hdr" 'BEGIN { print index(s, "KIND") }')
[ "${row:$((k - 1)):5}" = "array" ] || fail "tree columns break past 40 characters: $(cat "$T/out")"
expect 0 tree --bytes "$ROOT/100/state/params"
total=$(awk '$1 == "total" { print $2 }' "$T/out")
want=$($PY -c 'print(300 * 70 * 4 + 1000 * 8 + 6 * 8 + 3 * 4 + 4 * 4)')
[ "$total" = "$want" ] || fail "tree total $total, want $want: $(cat "$T/out")"

# --- du: a step copied through the mount shares the data files ---
fs_mount
t cp -r "$MNT/100" "$MNT/101"
finalize 101
fs_umount
expect 0 du --json "$ROOT"
$PY - "$T/out" "$ROOT" <<'PY' || fail "du against os.stat: $(cat "$T/out")"
import json, os, sys
d = json.load(open(sys.argv[1])); root = sys.argv[2]
files = {}
for s in os.listdir(root):
    if not s.isdigit(): continue
    for dp, _, fs in os.walk(os.path.join(root, s)):
        for f in fs:
            st = os.lstat(os.path.join(dp, f))
            files.setdefault((st.st_dev, st.st_ino), [st.st_size, set(), st.st_nlink])[1].add(int(s))
rows = {r["step"]: r for r in d["steps"]}
for step, r in rows.items():
    stored = sum(v[0] for v in files.values() if step in v[1])
    unique = sum(v[0] for v in files.values() if v[1] == {step} and v[2] == 1)
    assert r["stored"] == stored and r["unique"] == unique, (step, r, stored, unique)
    assert r["shared"] == stored - unique
assert d["on_disk"] == sum(v[0] for v in files.values()), d
assert rows[101]["shared"] > 0 and rows[101]["shared"] == rows[100]["shared"], rows
assert rows[101]["raw"] == rows[100]["raw"], rows
PY
expect 0 du "$ROOT/101"
[ "$(awk 'NR == 2 { print $1 }' "$T/out")" = 101 ] && [ "$(wc -l <"$T/out")" = 2 ] || fail "du STEP: $(cat "$T/out")"
expect 1 du "$T/a"
grep -qF "holds no steps" "$T/err" || fail "du of a plain directory: $(cat "$T/err")"

# --- help ---
expect 0 help diff
"$CKPT" diff --help | cmp -s - "$T/out" || fail "ckpt help diff differs from ckpt diff --help"
expect 2 help nope
grep -qF "unknown command 'nope'" "$T/err" || fail "ckpt help nope: $(cat "$T/err")"
echo "cli_inspect: ok"
