#!/bin/bash
# manager_train.sh — the training example (docs/examples/train.c): a run killed with
# SIGKILL mid-run and resumed from its latest step reaches bit-identical parameters to an
# uninterrupted run; only finalized steps are ever listed, leftovers are cleaned on the next
# open, and the kept steps are the ones the policy (latest 3 + best 2 by loss) implies.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
TRAIN="$B/examples/train"
[ -x "$TRAIN" ] || fail "$TRAIN not built (make $B/examples/train)"
pid=""
trap '{ [ -z "$pid" ] || kill -9 "$pid" 2>/dev/null; } || true; wait; cleanup_tmp' EXIT

# kept_set LOG: the steps "latest 3 + best 2 by loss" keeps among the saves LOG lists
kept_set() {
	$PY - "$1" <<'EOF'
import re, sys
saves = {int(m[1]): float(m[2]) for m in re.finditer(r"^saved step (\d+) loss=(\S+)$",
                                                    open(sys.argv[1]).read(), re.M)}
assert len(saves) >= 5, saves
steps = sorted(saves)
best = sorted(steps, key=lambda s: (saves[s], -s))[:2]
print(" ".join(map(str, sorted(set(steps[-3:]) | set(best)))))
EOF
}
# ls_steps ROOT: the steps `ckpt ls --json` lists, and their states
ls_steps() {
	"$CKPT" ls --json "$1" | $PY -c 'import json, sys
rows = json.load(sys.stdin)
print(" ".join("%d:%s" % (r["step"], r["state"]) for r in rows))'
}

# --- 1. uninterrupted run ---
run 0 "$TRAIN" "$T/a" --params "$T/A.bin"
cp "$T/out" "$T/a.log"
grep_out '^saved step 300 ' && grep_out '^steps=300 '
grep -q restored "$T/a.log" && fail "a fresh root restored something"
want=$(kept_set "$T/a.log")
got=$(ls_steps "$T/a")
[ "$got" = "$(for s in $want; do printf '%s:finalized ' "$s"; done | sed 's/ $//')" ] ||
	fail "uninterrupted run keeps '$got', policy implies '$want'"
# the same policy given to ls marks nothing to delete, and the best step is the lowest loss
run 0 "$CKPT" ls --json "$T/a" --keep-latest 3 --keep-best 2 --metric loss
$PY - "$T/out" "$T/a.log" <<'EOF' || fail "ls with the example's policy: $(cat "$T/out")"
import json, re, sys
rows = json.load(open(sys.argv[1]))
saves = {int(m[1]): float(m[2]) for m in re.finditer(r"^saved step (\d+) loss=(\S+)$",
                                                    open(sys.argv[2]).read(), re.M)}
assert not any(r["to_delete"] for r in rows), rows
best = min(saves, key=lambda s: (saves[s], -s))
assert [r["step"] for r in rows if r["best"]] == [best], (rows, best)
for r in rows: # cJSON prints doubles with 15 digits when they compare equal within 1 ulp
    assert list(r["metrics"]) == ["loss"], r
    assert abs(r["metrics"]["loss"] - saves[r["step"]]) <= 1e-14 * saves[r["step"]], r
EOF
# the checkpointed params of the last step are the final params, bit for bit
run 0 "$CKPT" get "$T/a/300/state/params/dense" -o "$T/a300"
$PY - "$T/a300" "$T/A.bin" <<'EOF' || fail "step 300 params differ from the run's final params"
import numpy as np, sys
k, b = np.load(sys.argv[1] + "/kernel.npy"), np.load(sys.argv[1] + "/bias.npy")
final = np.fromfile(sys.argv[2], dtype=np.float32)
assert k.dtype == np.float32 and k.shape == (64, 16) and b.shape == (16,), (k.shape, b.shape)
assert np.concatenate([k.ravel(), b]).tobytes() == final.tobytes()
EOF
pass "uninterrupted run: kept steps = latest 3 + best 2 by loss; ls --json marks the best"

# --- 2. SIGKILL mid-run, after at least two steps are finalized ---
"$TRAIN" "$T/b" --sleep-ms 10 --params "$T/never.bin" >"$T/b.log" 2>&1 &
pid=$!
for ((i = 0; i < 600; i++)); do
	n=$(find "$T/b" -mindepth 1 -maxdepth 1 -regex '.*/[0-9]+' 2>/dev/null | wc -l) || n=0
	[ "$n" -ge 2 ] && break
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.05
done
sleep 0.$((RANDOM % 10)) # somewhere between saves, or during one
kill -9 "$pid" 2>/dev/null || fail "the run ended before it was killed: $(tail -3 "$T/b.log")"
wait "$pid" 2>/dev/null && fail "the killed run exited 0"
[ -e "$T/never.bin" ] && fail "the killed run got to its end"
grep -q '^steps=' "$T/b.log" && fail "the killed run finished"
got=$(ls_steps "$T/b")
echo "  after SIGKILL: $got"
fin=$(tr ' ' '\n' <<<"$got" | sed -n 's/:finalized$//p')
[ "$(wc -w <<<"$fin")" -ge 2 ] || fail "fewer than 2 finalized steps after the kill: $got"
tr ' ' '\n' <<<"$got" | grep -vE ':(finalized|saving)$' && fail "unexpected states: $got"
for s in $fin; do
	run 0 "$CKPT" verify "$T/b/$s"
done
latest=$(tr ' ' '\n' <<<"$fin" | sort -n | tail -1)
# a save killed in flight leaves its temporary directory; make sure the next open meets one
[ "$(tmp_dirs "$T/b")" -gt 0 ] || { mkdir "$T/b/$((latest + 10)).ckpt-tmp-killed" &&
	echo junk >"$T/b/$((latest + 10)).ckpt-tmp-killed/ckpt.db"; }
pass "killed run: only finalized steps (latest $latest), each verifies"

# --- 3. resume: bit-identical final params, leftovers gone, same kept set ---
run 0 "$TRAIN" "$T/b" --params "$T/B.bin"
cat "$T/out" >>"$T/b.log"
grep_out "^restored step $latest\$"
[ "$(tmp_dirs "$T/b")" = 0 ] || fail "temporary directories left after resuming: $(ls "$T/b")"
cmp "$T/A.bin" "$T/B.bin" || fail "resumed run's final params differ from the uninterrupted run's"
[ "$(ls_steps "$T/b")" = "$(ls_steps "$T/a")" ] ||
	fail "resumed root keeps '$(ls_steps "$T/b")', uninterrupted '$(ls_steps "$T/a")'"
run 0 "$TRAIN" "$T/b" --params "$T/B2.bin" # nothing left to do: restores step 300, saves nothing
grep_out '^restored step 300$' && grep_out '^steps=0 '
grep -q '^saved' "$T/out" && fail "a finished run saved again"
cmp "$T/A.bin" "$T/B2.bin" || fail "params restored from step 300 differ"
pass "resumed from step $latest: final params bit-identical, leftovers removed, same kept steps"

# --- 4. an evaluator waits for the trainer's next step ---
"$TRAIN" "$T/c" --sleep-ms 5 --steps 100 >"$T/c.log" 2>&1 &
pid=$!
run 0 timeout 60 "$CKPT" wait "$T/c" --after 50 --timeout 50
s=$(cat "$T/out")
[ "$s" -gt 50 ] || fail "wait --after 50 printed '$s'"
wait "$pid" || fail "training for the evaluator failed: $(tail -3 "$T/c.log")"
grep -q "^saved step $s " "$T/c.log" || fail "wait printed step $s, which the trainer never saved"
run 1 "$CKPT" wait "$T/c" --after 100 --timeout 0.3
grep_err 'timeout'
pass "ckpt wait --after: a newer step from a running trainer; exit 1 on timeout"

finish manager_train
