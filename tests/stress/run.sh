#!/usr/bin/env bash
# tests/stress/run.sh — the reliability suite (`make stress`; not part of `make check`,
# which runs a short version of each). Every suite prints its trials and failures; the
# run ends with one line per suite and exits 1 if any failed.
#
#   kill -9 storm of `ckpt save`        tests/e2e/cli_crash.sh, CRASH_TRIALS (default 200)
#   kill -9 storm of a manager          tests/e2e/manager_kill_storm.sh, KILL_TRIALS (200)
#   bit flips in every byte of a sealed  tests/unit/index_check_test (every byte; an
#     index (in-process, store level)    unsealed one every 7th, as the baseline)
#   random bit flips of ckpt.db through  tests/e2e/cli_index_check.sh, CKPT_FLIPS (default 2000)
#     `ckpt restore`
#   fault injection at every I/O call    tests/unit/fault_test, every memory point too
#     and every malloc of save, finalize,  (CKPT_FAULT_MEM_STRIDE=1)
#     manager save with deletion, gc
#   hostile steps (FIFOs, symlinks,      tests/e2e/hostile_steps.sh
#     devices, empty keys) via ckpt and the mount
#   cp + immediate finalize under load   tests/e2e/fs_write_release.sh, RELEASE_ROUNDS (400)
#   kill -9 storm of the daemon during   tests/e2e/fs_kill_storm.sh, FS_KILL_TRIALS (default
#     cp into a pending step / finalize    400: 200 during cp, 200 during finalize)
#   readers + writer + gc soak           tests/e2e/fs_soak.sh, SOAK_SECONDS (default 180)
#   bit flips in every byte class of a   tests/e2e/step_flips.sh, STEP_FLIPS (default 1200:
#     step (index, ZSTD/RAW/adopted        200 per class)
#     chunks, unreferenced bytes,
#     pending files) via verify, restore
#     and the mount
#
# Env: B (absolute build directory, default <repo>/build), STRESS_ONLY (names of suites to
# run, default all: crash mgrkill flips cliflips faults hostile release fskill soak
# stepflips).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
B=${B:-$REPO/build}
ONLY=${STRESS_ONLY:-crash mgrkill flips cliflips faults hostile release fskill soak stepflips}
SUMMARY=()
bad=0

# suite NAME TRIALS_DESC CMD...: run CMD, keep its log, record pass/fail.
suite() {
	local name=$1 desc=$2 st=0 log
	shift 2
	case " $ONLY " in *" $name "*) ;; *) return 0 ;; esac
	log=$(mktemp "/tmp/ckpt-stress-$name.XXXXXX")
	echo "== $name: $desc"
	local t0=$EPOCHREALTIME
	"$@" >"$log" 2>&1 || st=$?
	grep -E 'trials|flips|injection points|passed|silent|ok [0-9]+ -|^(class|index|zstd|raw|adopted|unref|pending) ' \
		"$log" | sed 's/^/   /' | tail -n 12
	local secs
	secs=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')
	if [ $st -ne 0 ]; then
		bad=1
		tail -n 20 "$log" | sed 's/^/   | /'
		SUMMARY+=("$name: FAILED ($desc, ${secs}s, log $log)")
	else
		SUMMARY+=("$name: $desc: 0 failures (${secs}s)")
		rm -f "$log"
	fi
}

export B
suite crash "${CRASH_TRIALS:=200} kill -9 trials of ckpt save" \
	env CRASH_TRIALS="$CRASH_TRIALS" bash "$REPO/tests/e2e/cli_crash.sh"
suite mgrkill "${KILL_TRIALS:=200} kill -9 trials of a manager saving and deleting" \
	env KILL_TRIALS="$KILL_TRIALS" bash "$REPO/tests/e2e/manager_kill_storm.sh"
suite flips "one flipped bit in every byte of a sealed ckpt.db" \
	env CKPT_FLIP_STRIDE=1 "$B/tests/unit/index_check_test"
suite cliflips "${CKPT_FLIPS:=2000} random flips of ckpt.db through ckpt restore" \
	env CKPT_FLIPS="$CKPT_FLIPS" bash "$REPO/tests/e2e/cli_index_check.sh"
suite faults "every I/O and memory injection point of 4 paths" \
	env CKPT_FAULT_MEM_STRIDE=1 "$B/tests/unit/fault_test"
suite hostile "hostile steps through ckpt and the mount" \
	bash "$REPO/tests/e2e/hostile_steps.sh"
suite release "${RELEASE_ROUNDS:=400} rounds of cp + immediate finalize under load" \
	env RELEASE_ROUNDS="$RELEASE_ROUNDS" bash "$REPO/tests/e2e/fs_write_release.sh"
suite fskill "${FS_KILL_TRIALS:=400} kill -9 trials of ckptfs during cp and finalize" \
	env FS_KILL_TRIALS="$FS_KILL_TRIALS" bash "$REPO/tests/e2e/fs_kill_storm.sh"
suite soak "${SOAK_SECONDS:=180} s of readers + writer + gc" \
	env SOAK_SECONDS="$SOAK_SECONDS" bash "$REPO/tests/e2e/fs_soak.sh"
suite stepflips "${STEP_FLIPS:=1200} flips over every byte class of a step" \
	env STEP_FLIPS="$STEP_FLIPS" bash "$REPO/tests/e2e/step_flips.sh"

echo
echo "== stress summary"
printf '%s\n' "${SUMMARY[@]}"
exit $bad
