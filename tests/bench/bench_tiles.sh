# tests/bench/bench_tiles.sh — the data-path rows of the `multiprocess` section
# (docs/bench.md), sourced by tests/bench/run.sh; its section calls bench_tiles.
# Uses run.sh's helpers and variables: row, skip, cold, scaled, say, B, SRC, HERE,
# OUT, T, LOG, COLD. Both figures have absolute goals (issue 17), so their
# baseline column is the goal itself: ratio = goal / ours, >= 1 meets it.

bench_tiles() {
	local bt=$OUT/bench_tiles d line n rows cols br st frac
	# shellcheck disable=SC2046
	if ! cc -std=c11 -D_GNU_SOURCE -O2 -o "$bt" "$HERE/bench_tiles.c" -I "$SRC/core/include" \
		-I "$SRC/core" -I "$SRC/core/util" "$B/libckpt.a" \
		$(pkg-config --libs sqlite3 libzstd libcjson libprotobuf-c) -lm -pthread 2>>"$LOG"; then
		skip "merge / box restore" "cannot build bench_tiles (see $LOG)"
		return
	fi
	# Merging 4 per-process indexes of 10,000 keys each (goal: <= 0.5 s).
	n=$(scaled 10000 100)
	d=$T/tiles-merge
	mkdir -p "$d"
	if line=$("$bt" merge "$d" 4 "$n" 2>>"$LOG"); then
		row "merge 4 x $n-key indexes (goal 0.5 s)" "$(field "$line" elapsed)" 0.5 s 1
	else
		row "merge 4 x $n-key indexes (goal 0.5 s)" FAIL 0.5 s 1
	fi
	rm -rf "$d"
	# A quarter of a 1 GiB float32 array saved as 2 x 2 tiles, restored as a slab of
	# rows after dropping caches: bytes read from data files / stored bytes (goal <= 0.3).
	rows=$(scaled 16384 256)
	cols=16384
	d=$T/tiles-box
	mkdir -p "$d"
	if "$bt" box-write "$d" "$rows" "$cols" >/dev/null 2>>"$LOG"; then
		cold
		if line=$("$bt" box-read "$d" "$rows" "$cols" 2>>"$LOG"); then
			br=$(field "$line" bytes_read)
			st=$(field "$line" stored)
			frac=$(awk -v a="$br" -v b="$st" 'BEGIN { printf "%.4f", a / b }')
			say "  box restore: $br of $st stored bytes read ($frac), $(field "$line" elapsed) s$([ "$COLD" = 1 ] || echo ', caches not dropped')"
			row "1/4 box of $((rows * cols * 4 >> 20)) MiB: read/stored (goal 0.3)" "$frac" 0.3 x 1
		else
			row "1/4 box of $((rows * cols * 4 >> 20)) MiB: read/stored (goal 0.3)" FAIL 0.3 x 1
		fi
	else
		skip "1/4 box restore" "bench_tiles box-write failed (see $LOG)"
	fi
	rm -rf "$d"
}
