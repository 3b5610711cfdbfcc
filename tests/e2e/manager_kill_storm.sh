#!/bin/bash
# manager_kill_storm.sh — SIGKILL the training example (a CheckpointManager saving
# asynchronously and deleting what its policy no longer keeps) at random moments, over and
# over, resuming in the same root each time: after every kill `ckpt ls` shows only
# finalized and in-flight steps, every finalized step verifies (checksums and the key
# check), and the run resumes from its latest step. KILL_TRIALS (default 8; tests/stress/
# runs 200).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
TRAIN="$B/examples/train"
[ -x "$TRAIN" ] || fail "$TRAIN not built (make $B/examples/train)"
pid=""
trap '{ [ -z "$pid" ] || kill -9 "$pid" 2>/dev/null; } || true; wait; cleanup_tmp' EXIT
N=${KILL_TRIALS:-8}
R="$T/r0" runs=0 kills=0 finished=0
for i in $(seq "$N"); do
	"$TRAIN" "$R" --sleep-ms 5 --params "$T/p.bin" >"$T/log" 2>&1 &
	pid=$!
	sleep "0.$((RANDOM % 9 + 1))$((RANDOM % 10))"
	if kill -9 "$pid" 2>/dev/null; then
		kills=$((kills + 1))
	fi
	wait "$pid" 2>/dev/null || true
	pid=""
	run 0 "$CKPT" ls "$R"
	awk 'NR > 1 { print $2 }' "$T/out" | grep -vE '^(finalized|saving)$' &&
		fail "trial $i: unexpected states: $(cat "$T/out")"
	if awk 'NR > 1 && $2 == "finalized"' "$T/out" | grep -q .; then
		run 0 "$CKPT" verify "$R"
	fi
	if grep -q '^steps=' "$T/log"; then # the run got to its end: start another root
		finished=$((finished + 1))
		runs=$((runs + 1))
		R="$T/r$runs"
	fi
done
run 0 "$TRAIN" "$R" --params "$T/p.bin"
run 0 "$CKPT" verify "$R"
echo "manager kill storm: $N trials ($kills killed mid-run, $finished ran to the end), 0 failures"
pass "$N SIGKILLs of a manager saving and deleting: only finalized steps, each verifies, resume works"
finish manager_kill_storm
