#!/usr/bin/env bash
# tests/fuzz/run.sh — long libFuzzer runs of every fuzz target (`make fuzz`, which first
# builds the targets in build-fuzz with clang, libFuzzer, ASan and UBSan). Targets run one
# at a time, single process, under `nice`, each for FUZZ_SECONDS (default 600) or until
# FUZZ_RUNS executions (default 10,000,000), whichever comes first, starting from its
# corpus (tests/fuzz/corpus/NAME, read only). New inputs go to a scratch directory; with
# FUZZ_MERGE=1 those that add coverage are merged into the corpus afterwards. A crash,
# leak, timeout or sanitizer report is kept under FUZZ_OUT (default /tmp/ckpt-fuzz) and
# counted as a finding. Ends with a table: target, executions, seconds, findings.
#
# Env: B (absolute build directory holding the libFuzzer targets), FUZZ_ONLY (names of
# targets, default all), FUZZ_SECONDS, FUZZ_RUNS, FUZZ_MERGE, FUZZ_OUT.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
B=${B:-$REPO/build-fuzz}
SECS=${FUZZ_SECONDS:-600}
RUNS=${FUZZ_RUNS:-10000000}
OUT=${FUZZ_OUT:-/tmp/ckpt-fuzz}
ONLY=${FUZZ_ONLY:-$(cd "$HERE" && ls ./*_fuzzer.c | sed 's|^\./||; s|_fuzzer\.c$||' | tr '\n' ' ')}
mkdir -p "$OUT"
rows=()
total_findings=0

for n in $ONLY; do
	bin=$B/tests/fuzz/${n}_fuzzer
	if [ ! -x "$bin" ]; then
		echo "run.sh: $bin is missing (make fuzz builds it)" >&2
		exit 2
	fi
	work=$OUT/$n.corpus art=$OUT/$n.artifacts/ log=$OUT/$n.log
	rm -rf "$work" "$art"
	mkdir -p "$work" "$art"
	echo "== fuzz $n: up to ${SECS}s or $RUNS executions (log $log)"
	t0=$EPOCHREALTIME
	# -timeout: an input taking 10 s is a hang (a finding); -rss_limit_mb: the default.
	nice -n 10 "$bin" -max_total_time="$SECS" -runs="$RUNS" -timeout=10 \
		-print_final_stats=1 -artifact_prefix="$art" "$work" "$HERE/corpus/$n" >"$log" 2>&1
	st=$?
	secs=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	found=$(find "$art" -type f | wc -l)
	if [ $st -ne 0 ] && [ "$found" -eq 0 ]; then
		found=1 # died without an artifact: still a finding, the log says what
	fi
	total_findings=$((total_findings + found))
	rows+=("$(printf '%-12s %12s %8s %8s' "$n" "${execs:-?}" "$secs" "$found")")
	grep -E '^(==[0-9]+==ERROR|SUMMARY|artifact_prefix|Test unit written)' "$log" | head -n 5
	if [ "${FUZZ_MERGE:-0}" = 1 ] && [ "$found" -eq 0 ]; then
		nice -n 10 "$bin" -merge=1 "$HERE/corpus/$n" "$work" >>"$log" 2>&1
	fi
done

echo
echo "== fuzz summary (executions: libFuzzer's stat::number_of_executed_units)"
printf '%-12s %12s %8s %8s\n' target executions seconds findings
printf '%s\n' "${rows[@]}"
echo "findings: $total_findings (artifacts under $OUT/*.artifacts)"
[ "$total_findings" -eq 0 ]
