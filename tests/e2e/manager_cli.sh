#!/bin/bash
# manager_cli.sh — `ckpt gc`, `ckpt wait` and the policy marks of `ckpt ls` on a root of
# steps with metrics (made with `ckpt save`, metrics from _CHECKPOINT_METADATA). Every
# policy's kept set is checked against an independent Python model of the rules in
# docs/cli.md; --dry-run deletes nothing; gc deletes exactly the rest.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

R=$T/root
mkdir -p "$T/src/state"
$PY -c 'import numpy as np, sys; np.save(sys.argv[1], np.arange(6, dtype=np.float32))' \
	"$T/src/state/w.npy"
# 12 steps 10..120: loss is a fixed permutation, step 50 and 90 have no loss, acc rises
LOSS=(3.5 1.25 7 2 - 0.5 9 4.75 - 0.75 6 1.5)
for i in "${!LOSS[@]}"; do
	s=$(((i + 1) * 10))
	if [ "${LOSS[$i]}" = - ]; then
		printf '{"metrics": {"acc": 0.%02d}}' "$i" >"$T/src/_CHECKPOINT_METADATA"
	else
		printf '{"metrics": {"loss": %s, "acc": 0.%02d}}' "${LOSS[$i]}" "$i" \
			>"$T/src/_CHECKPOINT_METADATA"
	fi
	run 0 "$CKPT" save "$R" "$s" "$T/src"
done

# --- ls: metrics column and --json ---
run 0 "$CKPT" ls "$R"
grep_out '^STEP +STATE +COMMITTED +SIZE +METRICS$'
grep_out '^20 +finalized .* \{"loss":1\.25,"acc":0\.01\}$'
grep_out '^50 +finalized .* \{"acc":0\.04\}$'
grep -q MARK "$T/out" && fail "ls without a policy shows marks: $(cat "$T/out")"
run 0 "$CKPT" ls --json "$R"
$PY - "$T/out" <<'EOF' || fail "ls --json metrics: $(cat "$T/out")"
import json, sys
rows = json.load(open(sys.argv[1]))
assert [r["step"] for r in rows] == list(range(10, 130, 10)), rows
assert rows[1]["metrics"] == {"loss": 1.25, "acc": 0.01}, rows[1]
assert rows[4]["metrics"] == {"acc": 0.04}, rows[4]
assert not any(r["best"] or r["to_delete"] for r in rows), rows
EOF
pass "ls shows each step's metrics (text and --json), no marks without a policy"

# expected kept set of a policy (the rules of docs/cli.md, gc never deletes the newest)
expect() {
	$PY - "$@" <<'EOF'
import sys
LOSS = "3.5 1.25 7 2 - 0.5 9 4.75 - 0.75 6 1.5".split()
steps = list(range(10, 130, 10))
metrics = {s: {"acc": i / 100} for i, s in enumerate(steps)}
for s, l in zip(steps, LOSS):
    if l != "-":
        metrics[s]["loss"] = float(l)
a = sys.argv[1:]
opt = lambda name, d=None: a[a.index(name) + 1] if name in a else d
keep = {steps[-1]}
if opt("--keep-latest"):
    keep |= set(steps[-int(opt("--keep-latest")):])
if opt("--keep-every-steps"):
    keep |= {s for s in steps if s % int(opt("--keep-every-steps")) == 0}
if opt("--keep-every-seconds"):  # one interval only (saved within seconds): the oldest step
    keep |= {steps[0]}
if opt("--keep-best"):
    m, sign = opt("--metric"), -1 if opt("--mode") == "max" else 1
    has = [s for s in steps if m in metrics[s]]
    keep |= set(sorted(has, key=lambda s: (sign * metrics[s][m], -s))[:int(opt("--keep-best"))])
    if "--drop-without-metric" not in a:
        keep |= {s for s in steps if m not in metrics[s]}
print(" ".join(map(str, sorted(keep))))
EOF
}

POLICIES=(
	"--keep-latest 3"
	"--keep-latest 20"
	"--keep-every-steps 40"
	"--keep-every-seconds 3600"
	"--keep-best 3 --metric loss"
	"--keep-best 3 --metric loss --drop-without-metric"
	"--keep-best 2 --metric loss --mode max --drop-without-metric"
	"--keep-best 4 --metric acc --mode max"
	"--keep-latest 2 --keep-every-steps 50 --keep-best 2 --metric loss --drop-without-metric"
)
for pol in "${POLICIES[@]}"; do
	# shellcheck disable=SC2086
	want=$(expect $pol)
	# shellcheck disable=SC2086
	run 0 "$CKPT" gc --json --dry-run "$R" $pol
	got=$($PY -c 'import json, sys; d = json.load(open(sys.argv[1])); assert d["dry_run"]
print(" ".join(map(str, d["kept"])))' "$T/out") || fail "gc --json: $(cat "$T/out")"
	[ "$got" = "$want" ] || fail "gc --dry-run $pol keeps '$got', want '$want'"
	[ "$(ls "$R" | wc -l)" = 12 ] || fail "gc --dry-run $pol deleted steps"
	# shellcheck disable=SC2086
	run 0 "$CKPT" ls --json "$R" $pol
	got=$($PY -c 'import json, sys
print(" ".join(str(r["step"]) for r in json.load(open(sys.argv[1])) if not r["to_delete"]))' \
		"$T/out")
	[ "$got" = "$want" ] || fail "ls $pol marks '$got' as kept, want '$want'"
done
pass "gc --dry-run and ls marks: ${#POLICIES[@]} policies and combinations give the expected kept sets"

# text output of the marks: best by loss (min) is step 60 (loss 0.5)
run 0 "$CKPT" ls "$R" --keep-latest 2 --keep-best 1 --metric loss --drop-without-metric
grep_out '^STEP +STATE +COMMITTED +SIZE +MARK +METRICS$'
grep_out '^60 +finalized .* best +\{"loss":0\.5,'
grep_out '^10 +finalized .* to-delete +\{"loss":3\.5,'
grep_out '^120 +finalized .*[0-9] +\{"loss":1\.5,'
[ "$(grep -c to-delete "$T/out")" = 9 ] || fail "ls marks: $(cat "$T/out")"
run 0 "$CKPT" gc --dry-run "$R" --keep-latest 10
grep_out '^would delete step 10$' && grep_out '^would delete step 20$' && grep_out 'would keep 10 of 12'
pass "ls marks best and to-delete steps in text; gc --dry-run lists what would go"

# --- gc for real, on a copy; temporary directories: abandoned ones go, pending ones stay ---
cp -a "$R" "$T/g"
mkdir "$T/g/130.ckpt-tmp-abandoned" "$T/g/140.ckpt-tmp-pending" "$T/g/140.ckpt-tmp-pending/files"
pol="--keep-latest 2 --keep-every-steps 50 --keep-best 2 --metric loss --drop-without-metric"
# shellcheck disable=SC2086
want=$(expect $pol)
# shellcheck disable=SC2086
run 0 "$CKPT" gc "$T/g" $pol
grep_out '^deleted step 10$' && grep_out "kept $(wc -w <<<"$want") of 12 steps"
got=$(find "$T/g" -mindepth 1 -maxdepth 1 -regex '.*/[0-9]+' -printf '%f\n' | sort -n | xargs)
[ "$got" = "$want" ] || fail "after gc $pol the root holds '$got', want '$want'"
[ -e "$T/g/130.ckpt-tmp-abandoned" ] && fail "gc left an abandoned save's directory"
[ -d "$T/g/140.ckpt-tmp-pending/files" ] || fail "gc removed a pending step"
for s in $want; do run 0 "$CKPT" verify "$T/g/$s"; done
run 0 "$CKPT" gc "$T/g" --keep-latest 1
got=$(find "$T/g" -mindepth 1 -maxdepth 1 -regex '.*/[0-9]+' -printf '%f\n' | xargs)
[ "$got" = 120 ] || fail "gc --keep-latest 1 left '$got'"
run 0 "$CKPT" gc "$T/g" --keep-best 1 --metric loss --drop-without-metric
[ -d "$T/g/120" ] || fail "gc deleted the newest step"
pass "gc deletes exactly what no policy keeps (never the newest), sweeps abandoned saves, keeps pending steps"

# --- usage and errors ---
for args in "" "--keep-latest 2" "$R" "$R --keep-best 2" "$R --keep-latest 0" "$R --keep-latest x" \
	"$R --keep-best 1 --metric loss --mode avg" "$R --metric loss --mode max" \
	"$R --drop-without-metric --keep-latest 1" "$R $R --keep-latest 1" "$R --frobnicate"; do
	# shellcheck disable=SC2086
	run 2 "$CKPT" gc $args
	grep_err 'usage: ckpt gc'
done
run 2 "$CKPT" ls "$R" --keep-best 1
run 2 "$CKPT" wait "$R" --after x
run 2 "$CKPT" wait "$R" --timeout -1
run 2 "$CKPT" wait
run 1 "$CKPT" gc "$T/missing" --keep-latest 1
for c in gc wait ls; do
	run 0 "$CKPT" "$c" --help
	grep_out "^usage: ckpt $c "
done
grep_out 'keep-every-seconds' # ls --help lists the policy options
pass "usage errors exit 2 naming the usage; a missing root exits 1; --help on gc, wait, ls"

# --- wait ---
run 0 "$CKPT" wait "$R"
[ "$(cat "$T/out")" = 120 ] || fail "wait without --after: $(cat "$T/out")"
run 0 "$CKPT" wait --json "$R" --after 110
[ "$(cat "$T/out")" = '{"step": 120}' ] || fail "wait --json: $(cat "$T/out")"
run 1 "$CKPT" wait "$R" --after 120 --timeout 0.2
grep_err 'timeout: no step newer than 120'
(sleep 0.5 && "$CKPT" save "$R" 130 "$T/src" >/dev/null) &
run 0 timeout 60 "$CKPT" wait "$R" --after 120 --timeout 30
wait
[ "$(cat "$T/out")" = 130 ] || fail "wait for a new step printed '$(cat "$T/out")'"
pass "wait: newest step, --json, timeout exit 1, wakes up for a step saved meanwhile"

finish manager_cli
