#!/usr/bin/env bash
# cli_roundtrip.sh — every numpy dtype and shape through `ckpt save` and `ckpt restore`,
# and the content of ls / tree / meta / cat / get.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"

SRC="$T/src" R="$T/root"
$PY "$E2E/cli_npy.py" gen "$SRC" 65536

# --- usage and version ---
run 0 "$CKPT" --version;              grep_out '^ckpt [0-9]'
run 0 "$CKPT" --help;                 grep_out 'save' && grep_out 'verify'
run 0 "$CKPT" save --help;            grep_out 'usage: ckpt save ROOT STEP DIR'
run 2 "$CKPT" nosuchcmd;              grep_err 'unknown command'
run 2 "$CKPT" save "$R";              grep_err 'usage'
run 2 "$CKPT" save "$R" notanumber "$SRC"; grep_err 'STEP'
pass "usage, --help, --version, exit 2 on bad usage"

# --- save, restore ---
run 0 "$CKPT" save "$R" 100 "$SRC" --chunk-size 65536
[ -f "$R/100/ckpt.db" ] || fail "no step directory after save"
[ "$(tmp_dirs "$R")" -eq 0 ] || fail "temporary directory left after save"
run 1 "$CKPT" save "$R" 100 "$SRC";   grep_err 'exist'
run 0 "$CKPT" save "$R" 100 "$SRC" --force --chunk-size 65536
run 0 "$CKPT" save "$R" 200 "$SRC" --no-compress --chunk-size 65536
pass "save (and refusing to overwrite without --force)"

for step in 100 200; do
	run 0 "$CKPT" restore "$R/$step" "$T/out$step"
	run 0 "$PY" "$E2E/cli_npy.py" check "$SRC" "$T/out$step"
done
pass "restore: every dtype, 0-d, empty, big, Fortran, big-endian, ML dtypes, scalars, strings"

$PY "$E2E/cli_npy.py" mlp "$T/mlp"      # with a _METADATA: a list, an empty dict, scalars
run 0 "$CKPT" save "$R" 300 "$T/mlp"
run 0 "$CKPT" tree "$R/300"
grep_out '^state/opt_state +list' && grep_out '^state/opt_state/1 +dict'
grep_out '^state/opt_state/0/count +array +int32 +\(\) '
grep_out '^state/learning_rate +float' && grep_out '^state/run_name +string'
run 0 "$CKPT" restore "$R/300" "$T/mlp_out"
run 0 "$PY" "$E2E/cli_npy.py" check "$T/mlp" "$T/mlp_out"
[ -d "$T/mlp_out/state/opt_state/1" ] || fail "empty dict not restored"
run 0 "$CKPT" rm "$R/300"
pass "a tree with _METADATA (list, empty dict, scalar kinds) round-trips"

run 0 "$CKPT" restore "$R/100/state/a" "$T/sub"
find "$T/sub" -name deep.npy | grep -q . || fail "subtree restore lacks deep.npy: $(find "$T/sub")"
find "$T/sub" -name 'f32.npy' | grep -q . && fail "subtree restore holds files outside it"
pass "restore of a subtree"

# --- ls ---
run 0 "$CKPT" ls "$R"
grep_out '^100 +finalized' && grep_out '^200 +finalized'
run 0 "$CKPT" ls --json "$R"
$PY - "$T/out" <<'EOF' || fail "ls --json: $(cat "$T/out")"
import json, sys
rows = json.load(open(sys.argv[1]))
assert [r["step"] for r in rows] == [100, 200], rows
assert all(r["state"] == "finalized" and r["size"] > 1 << 20 for r in rows), rows
assert all(r["commit_time_ns"] > 1.6e18 for r in rows), rows
EOF
mkdir "$R/300.ckpt-tmp-test"
run 0 "$CKPT" ls "$R";                grep_out '^300 +saving'
run 0 "$CKPT" rm "$R/300.ckpt-tmp-test"
[ -e "$R/300.ckpt-tmp-test" ] && fail "rm left the pending directory"
pass "ls (text and --json, pending steps) and rm of a pending directory"

# --- tree ---
run 0 "$CKPT" tree "$R/100"
grep_out '^state/big/f32 +array +float32 +\(82043,\) +328172 '
grep_out '^state/dtypes/be_float64 +array +float64 +\(2, 3\)'
grep_out '^state/step +int'
grep_out '^state/name +string'
grep_out '^extra +item'
run 0 "$CKPT" tree --json "$R/100"
$PY - "$T/out" "$SRC" <<'EOF' || fail "tree --json: $(head -c 3000 "$T/out")"
import json, os, sys, numpy as np
rows = {r["path"]: r for r in json.load(open(sys.argv[1]))}
n = 0
for dirpath, _, files in os.walk(sys.argv[2]):
    for fn in files:
        if not fn.endswith(".npy"):
            continue
        rel = os.path.relpath(os.path.join(dirpath, fn), sys.argv[2])[:-4]
        a = np.load(os.path.join(dirpath, fn))
        r = rows[rel]
        assert r["kind"] == "array" and r["shape"] == list(a.shape), (rel, r)
        assert r["size"] == a.nbytes, (rel, r, a.nbytes)
        assert r["dtype"] in (a.dtype.name, rel.rsplit("/", 1)[1]), (rel, r)
        n += 1
assert n > 70, n
big = rows["state/big/f32"]
assert 0 < big["stored_size"] <= big["size"] + 1024, big
EOF
run 0 "$CKPT" tree "$R/100/state/a"
grep_out '^state/a/b/c/deep +array +int16 +\(2, 3, 4\)'
grep -q 'dtypes' "$T/out" && fail "tree of a subtree lists nodes outside it"
pass "tree (text, --json against numpy, subtree)"

# --- meta ---
run 0 "$CKPT" meta "$R/100"
$PY -c 'import json,sys; d=json.load(open(sys.argv[1])); assert "state" in json.dumps(d)' "$T/out" \
	|| fail "meta of a step: $(cat "$T/out")"
run 0 "$CKPT" meta "$R/100/state"
$PY -c 'import json,sys; json.load(open(sys.argv[1]))' "$T/out" || fail "meta of an item: not JSON"
grep_out 'deep'
run 0 "$CKPT" meta "$R/100/state/big/f32.npy"
$PY - "$T/out" "$SRC/state/big/f32.npy" <<'EOF' || fail "meta of a leaf: $(cat "$T/out")"
import json, sys, numpy as np
m = json.load(open(sys.argv[1]))
a = np.load(sys.argv[2])
assert m["kind"] == "array" and m["dtype"] == "float32" and m["shape"] == list(a.shape), m
assert m["size"] == a.nbytes and m["chunks"] == -(-a.nbytes // 65536), m
assert m["codec"] in ("zstd", "raw") and len(m["crc32c"]) == 8, m
assert m["file_size"] == len(open(sys.argv[2], "rb").read()), m
EOF
pass "meta of a step, an item and a leaf"

# --- cat: exactly what numpy prints ---
for f in dtypes/int8 dtypes/uint64 dtypes/int64 dtypes/bool dtypes/float16 dtypes/float32 \
	dtypes/float64 dtypes/complex64 dtypes/complex128 dtypes/be_float32 dtypes/f_int32 \
	dtypes/f_float64 big/f32 big/i64_2d big/fortran_be a/b/c/deep special/floats \
	special/tiny special/ints empty/float32 zero_d/int32 zero_d/float64 zero_d/bool; do
	run 0 "$CKPT" cat "$R/100/state/$f"
	$PY "$E2E/cli_npy.py" str "$SRC/state/$f.npy" >"$T/want"
	diff -u "$T/want" "$T/out" >"$T/diff" || fail "cat $f differs from numpy: $(cat "$T/diff")"
done
for f in bfloat16 float8_e4m3fn float8_e5m2; do  # no ml_dtypes here: decode the bits
	run 0 "$CKPT" cat "$R/100/state/ml/$f"
	$PY - "$T/out" "$SRC/state/ml/$f.npy" "$f" <<'EOF' || fail "cat ml/$f: $(cat "$T/out")"
import re, sys, numpy as np
got = np.array([float(x) for x in re.findall(r"[-+0-9.e]+|nan|inf", open(sys.argv[1]).read())])
bits = np.load(sys.argv[2])[sys.argv[3]].ravel().astype(np.int64)
# cat prints the shortest decimal that reads back as the same value: within half a unit
# in the last place of the mantissa (mb bits) of the value
mb = 7
if sys.argv[3] == "bfloat16":
    want = (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
else:
    eb, mb = (4, 3) if sys.argv[3] == "float8_e4m3fn" else (5, 2)
    bias = (1 << (eb - 1)) - 1
    e, m = (bits >> mb) & ((1 << eb) - 1), bits & ((1 << mb) - 1)
    want = np.where(e > 0, 2.0 ** (e - bias) * (1 + m / 2**mb), 2.0 ** (1 - bias) * m / 2**mb)
    want = np.where(bits & 0x80, -want, want)
bias = 127 if sys.argv[3] == "bfloat16" else bias
tol = dict(rtol=0.5 * 2.0**-mb, atol=0.5 * 2.0**(1 - bias - mb))  # half an ulp (subnormals too)
assert got.shape == want.shape and np.allclose(got, want, **tol), (got, want)
EOF
done
seed=${CATFUZZ_SEED:-1}
"$PY" "$E2E/cli_npy.py" catfuzz "$T/fuzz" "$T/fuzz_expect" "$seed" 80 2>/dev/null
run 0 "$CKPT" save "$R" 500 "$T/fuzz"
for f in "$T"/fuzz_expect/*.txt; do
	n=$(basename "$f" .txt)
	run 0 "$CKPT" cat "$R/500/state/$n"
	cmp -s "$f" "$T/out" || fail "cat of random array $n (CATFUZZ_SEED=$seed) differs from numpy: $(diff "$f" "$T/out" | head -20)"
done
run 0 "$CKPT" rm "$R/500"
run 0 "$CKPT" cat "$R/100/state/step";  [ "$(cat "$T/out")" = 1000 ] || fail "cat step: $(cat "$T/out")"
run 0 "$CKPT" cat "$R/100/state/name";  grep_out '^hello, checkpoint$'
run 1 "$CKPT" cat "$R/100/state/a";     grep_err 'not a leaf'
run 1 "$CKPT" cat "$R/100/state/nope";  grep_err 'nope'
pass "cat prints arrays exactly like numpy (summarised, all dtypes, 80 random arrays), scalars, strings"

# --- get ---
(cd "$T" && run 0 "$CKPT" get "$R/100/state/big/f32") 
cmp "$T/f32.npy" "$SRC/state/big/f32.npy" || fail "get: default file differs"
run 0 "$CKPT" get "$R/100/state/dtypes/int16.npy" -o "$T/x.npy"
cmp "$T/x.npy" "$SRC/state/dtypes/int16.npy" || fail "get -o differs"
"$CKPT" get "$R/100/state/a/b/c/deep" -o - >"$T/stdout.npy"
cmp "$T/stdout.npy" "$SRC/state/a/b/c/deep.npy" || fail "get -o - differs"
run 0 "$CKPT" get "$R/100/state/lr" -o "$T/lr"
[ "$(cat "$T/lr")" = 0.001 ] || fail "get of a scalar: $(cat "$T/lr")"
run 0 "$CKPT" get "$R/100/state/a/b" -o "$T/getdir"
find "$T/getdir" -name deep.npy | grep -q . || fail "get of a subtree: $(find "$T/getdir")"
run 1 "$CKPT" get "$R/100/state/missing" -o "$T/m";  grep_err 'missing'
[ -e "$T/m" ] && fail "get of a missing leaf created a file"
pass "get of a leaf (default name, -o FILE, -o -), a scalar and a subtree"

# --- on a terminal: human sizes and progress bars (script(1) gives a pty) ---
if command -v script >/dev/null; then
	script -qec "'$CKPT' ls '$R'; '$CKPT' ls --bytes '$R'; '$CKPT' verify '$R/100'; '$CKPT' save '$R' 400 '$SRC'" /dev/null >"$T/tty" </dev/null \
		|| fail "commands on a pty: $(cat "$T/tty")"
	grep -qE '^100 +finalized .* [0-9.]+ MiB' "$T/tty" || fail "no human size on a tty: $(cat "$T/tty")"
	grep -qE '^100 +finalized .* [0-9]{6,}' "$T/tty" || fail "--bytes ignored on a tty: $(cat "$T/tty")"
	grep -qE 'verify \[#+\] 100%' "$T/tty" || fail "no verify progress bar: $(cat "$T/tty")"
	grep -qE 'save \[#+\] 100%' "$T/tty" || fail "no save progress bar: $(cat "$T/tty")"
	run 0 "$CKPT" rm "$R/400"
	pass "on a terminal: human sizes (and --bytes), progress bars"
fi

# --- verify, rm ---
run 0 "$CKPT" verify "$R/100";        grep_out '^ok: '
run 0 "$CKPT" verify --json "$R"
$PY -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["ok"] and d["bad"] == 0 and d["values"] > 100, d' "$T/out" \
	|| fail "verify --json: $(cat "$T/out")"
run 0 "$CKPT" rm "$R/200"
[ -e "$R/200" ] && fail "rm left step 200"
run 0 "$CKPT" ls --json "$R"
$PY -c 'import json,sys; assert [r["step"] for r in json.load(open(sys.argv[1]))] == [100]' "$T/out" \
	|| fail "ls after rm: $(cat "$T/out")"
run 1 "$CKPT" rm "$R/200";            grep_err 'no step'
pass "verify (step, root, --json) and rm"

finish cli_roundtrip
