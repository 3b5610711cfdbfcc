#!/bin/bash
# tests/bench/run.sh — ckptfs benchmarks, run by `make bench` (env B=<abs build dir>).
#
# Every row compares our figure with a baseline measured in the same run:
#   name | ours | baseline | ratio | goal | ok
# All figures are "lower is better" (seconds, MiB), so ratio = baseline / ours and
# ratio > 1 always means ckptfs is better. goal is the minimum ratio we aim for
# ("-": context only). See docs/bench.md for what each benchmark does.
#
# Env: BENCH_SCALE (default 1; 0.1 for a quick run) scales every size and count;
#      BENCH_TMP (default /tmp) holds the temporary data (removed at exit);
#      BENCH_ONLY (default "core small steps rss fuse meta peek write manager orbax convert
#      multiprocess") picks sections;
#      ("cli": ckpt diff and cat --stats against numpy, only when asked for);
#      BENCH_BUDGET (default 660): seconds after which remaining sections are skipped.
# Results go to stdout and to $B/bench/results.txt.
set -uo pipefail # no -e: a failed benchmark is reported as FAIL and the others still run

: "${B:?run as: B=<abs build dir> bash tests/bench/run.sh (or make bench)}"
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
SCALE=${BENCH_SCALE:-1}
ONLY=${BENCH_ONLY:-core small steps rss fuse zread meta peek write manager orbax convert multiprocess}
BUDGET=${BENCH_BUDGET:-660} # seconds after which the remaining sections are skipped
PY=/usr/bin/python3
PEERS="$HERE/peers.py"
OUT="$B/bench"
mkdir -p "$OUT"
T=$(mktemp -d "${BENCH_TMP:-/tmp}/ckptfs-bench.XXXXXX") || exit 1
ROWS="$T/rows.txt"
LOG="$OUT/bench.log" # stderr of every benchmarked command
: >"$LOG"
: >"$ROWS"
START=$EPOCHREALTIME
MOUNTS=()

cleanup() {
	local m p
	for m in "${MOUNTS[@]}"; do
		mountpoint -q "$m" && { timeout 20 fusermount3 -u "$m" || umount -l "$m"; }
	done
	for p in $(jobs -p); do kill "$p" 2>/dev/null; done # daemons still running, if any
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- helpers ----

say() { printf '%s\n' "$*" >&2; }
section() {
	printf '\n== %s  [t=%ss]\n' "$*" "$(awk -v a="$START" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')"
}

# scaled N: int(N * SCALE), at least $2 (default 1)
scaled() { awk -v n="$1" -v s="$SCALE" -v m="${2:-1}" 'BEGIN { v = int(n * s); printf "%.0f\n", (v < m ? m : v) }'; }

COLD=1
if ! (sync && echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null; then
	COLD=0
	say "warning: cannot drop caches (not root?): 'cold' figures are warm"
fi
cold() { sync; [ "$COLD" = 1 ] && echo 3 >/proc/sys/vm/drop_caches; }
# Write NBYTES of memory and free it, untimed, just before a timed step that fills as
# much page cache. On this VM memory freed a while ago costs seconds per GiB on first use
# (the host backs it again); without this, whichever step runs first pays for it, ours
# or the baseline's (docs/bench.md, "Method").
warm_memory() { $PY "$PEERS" warm-memory "$1" 2>>"$LOG" || true; }

# elapsed seconds of a command (stdout discarded); prints FAIL if it fails
tm() {
	local t0=$EPOCHREALTIME rc
	"$@" >/dev/null 2>>"$LOG"
	rc=$?
	if [ "$rc" != 0 ]; then
		say "  FAILED ($rc): $*"
		[ "$rc" = 124 ] && echo TIMEOUT || echo FAIL
		return 1
	fi
	awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.6f", b - a }'
}

# key=value field of a peers.py / bench_restore line
field() { sed -n "s/.*\\b$2=\\([^ ]*\\).*/\\1/p" <<<"$1"; }

# run a timed reader (peers.py load-* or bench_restore) and check its bytes and sum
# against the expected line $1; prints the elapsed seconds, FAIL or BAD
reader() {
	local exp=$1 line
	shift
	if ! line=$("$@" 2>>"$LOG"); then
		say "  FAILED: $*"
		echo FAIL
		return
	fi
	if [ "$(field "$line" bytes) $(field "$line" sum)" != \
		"$(field "$exp" bytes) $(field "$exp" sum)" ]; then
		say "  WRONG DATA from $*: got '$line', expected '$exp'"
		echo BAD
		return
	fi
	field "$line" elapsed
}

# A restore timed twice (each "cold" run after dropping caches), the faster counts. On this
# kind of VM the first process to touch memory freed a moment ago (by a big save, copy or
# the previous reader) can pay seconds per GiB for the host backing it again; the second
# run gets memory the first just freed. Every reader, ours and the baselines, gets this.
restore_twice() { # cold|warm EXP CMD...
	local tag=$1 a b
	shift
	[ "$tag" = cold ] && cold
	a=$(reader "$@")
	[ "$tag" = cold ] && cold
	b=$(reader "$@")
	[[ $a =~ ^[0-9.]+$ ]] || { echo "$a"; return; } # a failure or wrong data shows
	[[ $b =~ ^[0-9.]+$ ]] || { echo "$b"; return; }
	awk -v a="$a" -v b="$b" 'BEGIN { print (b + 0 < a + 0) ? b : a }'
}

# a timed writer (peers.py save-*): prints its elapsed seconds or FAIL
writer() {
	local line
	sync
	if ! line=$("$@" 2>>"$LOG"); then
		say "  FAILED: $*"
		echo FAIL
		return
	fi
	field "$line" elapsed
}

# row NAME OURS BASELINE UNIT [GOAL]: one result line (ratio = baseline/ours)
row() {
	awk -v n="$1" -v o="$2" -v b="$3" -v u="$4" -v g="${5:--}" '
	function num(x) { return x ~ /^[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?$/ }
	function fmt(x) { return num(x) ? sprintf("%.4g %s", x, u) : (x == "" ? "n/a" : x) }
	BEGIN {
		r = "n/a"; ok = "-"
		if (num(o) && num(b) && o > 0) {
			r = sprintf("%.2f", b / o)
			if (g != "-") ok = (b / o >= g) ? "ok" : "MISS"
		}
		printf "%-50s %13s %13s %7s %6s %s\n", n, fmt(o), fmt(b), r, (g == "-" ? "-" : ">=" g), ok
	}' | tee -a "$ROWS"
}
skip() { printf '%-50s skipped: %s\n' "$1" "$2" | tee -a "$ROWS"; }
header() {
	printf '%-50s %13s %13s %7s %6s %s\n' benchmark ours baseline ratio goal ok
	printf '%s\n' "(ratio = baseline/ours for times and RSS: >1 means ckptfs is better)"
}

# peak RSS (KiB) of a command via /usr/bin/time, else by polling VmHWM; prints
# "seconds kib" or FAIL
timed_rss() {
	local t0=$EPOCHREALTIME kib pid hwm
	if [ -x /usr/bin/time ]; then
		/usr/bin/time -f %M -o "$T/rss.out" "$@" >/dev/null 2>>"$LOG" || { echo FAIL; return; }
		kib=$(tail -1 "$T/rss.out")
	else
		"$@" >/dev/null 2>>"$LOG" &
		pid=$!
		kib=0
		while kill -0 "$pid" 2>/dev/null; do
			hwm=$(awk '/^VmHWM/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
			[ -n "$hwm" ] && [ "$hwm" -gt "$kib" ] && kib=$hwm
			sleep 0.02
		done
		wait "$pid" || { echo FAIL; return; }
	fi
	awk -v a="$t0" -v b="$EPOCHREALTIME" -v k="$kib" 'BEGIN { printf "%.6f %d", b - a, k }'
}

# a ckpt save with its input warm (the Python writers get their arrays from memory)
ckpt_save() { # ROOT STEP DIR [opts...] -> "seconds kib" or FAIL
	find "$3" -type f -exec cat {} + >/dev/null
	sync
	timed_rss "$B/ckpt" save "$@"
}

# FUSE mounts, daemon in the foreground in the background so that we know its pid
mount_fs() { # KIND(ckptfs|squashfs) SOURCE MNT [opts...]
	local kind=$1 src=$2 mnt=$3 i
	shift 3
	mkdir -p "$mnt"
	if [ "$kind" = ckptfs ]; then
		"$B/ckptfs" -f "$src" "$mnt" "$@" 2>>"$LOG" &
	else
		squashfuse_ll -f "$src" "$mnt" "$@" 2>>"$LOG" &
	fi
	MPID=$!
	MOUNTS+=("$mnt")
	for ((i = 0; i < 200; i++)); do
		mountpoint -q "$mnt" && return 0
		kill -0 "$MPID" 2>/dev/null || break
		sleep 0.05
	done
	say "  cannot mount $kind $src on $mnt"
	return 1
}
umount_fs() { # MNT
	timeout 20 fusermount3 -u "$1" 2>>"$LOG" || umount -l "$1"
	wait "$MPID" 2>/dev/null
}

ddread() { timeout 300 dd if="$1" of=/dev/null bs=1M; }

# random 4 KiB reads at the same offsets for every target: fio if installed, else a
# Python pread loop. Prints "seconds-for-NREADS reads-done" or FAIL. fio stops after
# RAND_MAX_S seconds; the time for NREADS is then extrapolated from the rate of the
# reads done (said on stderr). A warm run repeats the first DONE reads of the cold one.
RAND_MAX_S=${BENCH_RAND_MAX_S:-20}
randread() { # FILE NREADS [warm DONE]
	local f=$1 n=$2 inval=1 todo=$2 line
	[ "${3:-}" = warm ] && inval=0 todo=${4:-$2}
	if command -v fio >/dev/null; then
		line=$(timeout 300 fio --name=rr --filename="$f" --readonly --rw=randread --bs=4k \
			--ioengine=psync --number_ios="$todo" --randrepeat=1 --randseed=7 \
			--norandommap --invalidate="$inval" --size="$(stat -c %s "$f")" \
			--runtime="$RAND_MAX_S" --output-format=json 2>>"$LOG") || { echo FAIL; return; }
		$PY -c 'import json, sys
r = json.load(sys.stdin)["jobs"][0]["read"]
n, done = int(sys.argv[1]), r["total_ios"]
if done < n:
    print("  %s: %d of %d reads done; time extrapolated" % (sys.argv[2], done, n),
          file=sys.stderr)
print("%.6f %d" % (n / r["iops"], done) if r["iops"] > 0 else "FAIL")' "$n" "$f" <<<"$line"
	else
		timeout 300 $PY - "$f" "$n" <<-'EOF' 2>>"$LOG" || echo FAIL
			import os, random, sys, time
			f, n = sys.argv[1], int(sys.argv[2])
			fd = os.open(f, os.O_RDONLY)
			size = os.fstat(fd).st_size
			rnd = random.Random(7)
			offs = [rnd.randrange(0, max(size - 4096, 1)) & ~4095 for _ in range(n)]
			t0 = time.perf_counter()
			for o in offs:
			    os.pread(fd, 4096, o)
			print("%.6f %d" % (time.perf_counter() - t0, n))
		EOF
	fi
}

# ---- tools ----

have_ckpt=0
[ -x "$B/ckpt" ] && have_ckpt=1
have_fs=0
[ -x "$B/ckptfs" ] && [ -e /dev/fuse ] && command -v fusermount3 >/dev/null && have_fs=1
# the C helpers, built against the library of this build
RESTORE="" SAVE=""
if [ -f "$B/libckpt.a" ]; then
	for p in bench_restore bench_save; do
		# shellcheck disable=SC2046
		if cc -std=c11 -D_GNU_SOURCE -O2 -o "$OUT/$p" "$HERE/$p.c" -I "$SRC/core/include" \
			"$B/libckpt.a" $(pkg-config --libs sqlite3 libzstd libcjson libprotobuf-c) \
			-lm -pthread 2>>"$LOG"; then
			[ $p = bench_restore ] && RESTORE="$OUT/$p" || SAVE="$OUT/$p"
		else
			say "warning: cannot build $p (see $LOG)"
		fi
	done
fi

# make a step for the mount benchmarks: ckpt save, else (noted) the library via bench_save
make_step() { # ROOT STEP DIR [--no-compress]
	"$B/ckpt" save "$@" >/dev/null 2>>"$LOG" && return 0
	[ -n "$SAVE" ] && "$SAVE" "$@" >/dev/null 2>>"$LOG" &&
		say "  note: ckpt save failed; step $1/$2 made with bench_save" && return 0
	return 1
}

printf 'ckptfs benchmarks  %s  scale=%s  %s cores  tmp=%s (%s)\n' "$(date -u '+%F %T UTC')" \
	"$SCALE" "$(nproc)" "$T" "$(df -h --output=fstype,avail "$T" | tail -1 | xargs)"
[ "$have_ckpt" = 1 ] || say "note: $B/ckpt missing: ckpt rows are skipped"
header

# ---- (a) 1 GiB of float32 in 64 leaves ----
bench_core() {
	local size gib in=$T/core/in exp s rss lib npy h5 zarr dd tag c npy_files
	size=$(scaled $((1 << 30)) $((64 << 12)))
	gib=$(awk -v s="$size" 'BEGIN { printf "%.3gGiB", s / 2^30 }')
	section "(a) $gib float32 N(0,0.02) in 64 leaves"
	exp=$($PY "$PEERS" gen-core "$in" "$size" 64 1) || { skip "core" "data generation failed"; return; }
	size=$(field "$exp" bytes)

	# saves; each writer's time includes making its output durable
	npy=$(writer $PY "$PEERS" save-npy "$in" "$T/core/npy")
	h5=$(writer $PY "$PEERS" save-h5 "$in" "$T/core/data.h5")
	zarr=$(writer $PY "$PEERS" save-zarr "$in" "$T/core/zarr")
	sync
	dd=$(tm dd if=/dev/zero of="$T/core/dd" bs=1M count=$((size >> 20)) conv=fdatasync)
	rm -f "$T/core/dd"
	if [ "$have_ckpt" = 1 ]; then
		read -r s rss <<<"$(ckpt_save "$T/core/root" 1 "$in")"
	else
		s="skipped" rss=""
	fi
	lib=skipped
	[ -n "$SAVE" ] && lib=$(writer "$SAVE" "$T/core/lib" 1 "$in")
	rm -rf "$T/core/lib"
	# restores need a step even if ckpt save is broken
	[ -d "$T/core/root/1" ] || make_step "$T/core/root" 1 "$in"
	row "save $gib/64: ckpt save vs dd (disk limit)" "$s" "$dd" s 0.8
	row "save $gib/64: ckpt save vs np.save+sync" "$s" "$npy" s 1
	row "save $gib/64: ckpt save vs h5py+sync" "$s" "$h5" s 1
	row "save $gib/64: ckpt save vs zarr(zstd)+sync" "$s" "$zarr" s 1
	row "save $gib/64: library (from memory) vs np.save+sync" "$lib" "$npy" s 1
	row "save $gib/64: library (from memory) vs dd" "$lib" "$dd" s 0.8
	row "save $gib/64: ckpt save peak RSS vs data+256MiB" \
		"$(awk -v k="$rss" 'BEGIN { if (k > 0) printf "%.1f", k / 1024 }')" \
		"$(awk -v s="$size" 'BEGIN { printf "%.1f", s / 2^20 + 256 }')" MiB 1
	[ "$have_ckpt" = 1 ] && [ -d "$T/core/root/1" ] &&
		row "disk usage $gib/64: ckpt vs .npy files" \
			"$(du -sm "$T/core/root/1" | cut -f1)" "$(du -sm "$T/core/npy" | cut -f1)" MiB
	[ -d "$T/core/zarr" ] && [ -d "$T/core/root/1" ] &&
		row "disk usage $gib/64: ckpt vs zarr(zstd)" \
			"$(du -sm "$T/core/root/1" | cut -f1)" "$(du -sm "$T/core/zarr" | cut -f1)" MiB

	# restores into memory, cold then warm
	mapfile -t npy_files < <(find "$T/core/npy" -name '*.npy' | sort)
	for tag in cold warm; do
		if [ -n "$RESTORE" ] && [ -d "$T/core/root/1" ]; then
			s=$(restore_twice $tag "$exp" "$RESTORE" "$T/core/root/1")
		else
			s="skipped"
		fi
		npy=$(restore_twice $tag "$exp" $PY "$PEERS" load-npy "$T/core/npy")
		h5=$(restore_twice $tag "$exp" $PY "$PEERS" load-h5 "$T/core/data.h5")
		zarr=$(restore_twice $tag "$exp" $PY "$PEERS" load-zarr "$T/core/zarr")
		[ "$tag" = cold ] && cold
		c=$(tm cat "${npy_files[@]}")
		row "restore $gib/64 $tag: ckpt vs np.load" "$s" "$npy" s 1
		row "restore $gib/64 $tag: ckpt vs h5py" "$s" "$h5" s 1
		row "restore $gib/64 $tag: ckpt vs zarr(zstd)" "$s" "$zarr" s 1
		row "restore $gib/64 $tag: ckpt vs cat .npy (seq read)" "$s" "$c" s
	done

	# ckpt restore to a directory of .npy files vs cp -r of the .npy files (cold, +sync)
	if [ "$have_ckpt" = 1 ] && [ -d "$T/core/root/1" ]; then
		cold
		# shellcheck disable=SC2016
		s=$(tm bash -c '"$1" restore "$2" "$3" && sync' _ "$B/ckpt" "$T/core/root/1" "$T/core/out")
		cold
		# shellcheck disable=SC2016
		c=$(tm bash -c 'cp -r "$1" "$2" && sync' _ "$T/core/npy" "$T/core/cp")
		row "ckpt restore to dir $gib/64 cold vs cp -r .npy" "$s" "$c" s
	fi
	rm -rf "$T/core"
}

# ---- (b) 20,000 small leaves ----
bench_small() {
	local n in=$T/small/in exp s rss lib npy h5 zarr tag
	n=$(scaled 20000 100)
	section "(b) $n small float32 leaves (16-256 elements) in a nested dict"
	exp=$($PY "$PEERS" gen-small "$in" "$n" 2) || { skip "small" "data generation failed"; return; }
	npy=$(writer $PY "$PEERS" save-npy "$in" "$T/small/npy")
	h5=$(writer $PY "$PEERS" save-h5 "$in" "$T/small/data.h5")
	zarr=$(writer $PY "$PEERS" save-zarr "$in" "$T/small/zarr")
	if [ "$have_ckpt" = 1 ]; then
		read -r s rss <<<"$(ckpt_save "$T/small/root" 1 "$in")"
	else
		s="skipped"
	fi
	lib=skipped
	[ -n "$SAVE" ] && lib=$(writer "$SAVE" "$T/small/lib" 1 "$in")
	rm -rf "$T/small/lib"
	[ -d "$T/small/root/1" ] || make_step "$T/small/root" 1 "$in"
	row "save $n small: ckpt save vs np.save+sync" "$s" "$npy" s 1
	row "save $n small: ckpt save vs h5py+sync" "$s" "$h5" s 1
	row "save $n small: ckpt save vs zarr(zstd)+sync" "$s" "$zarr" s 1
	row "save $n small: library (from memory) vs np.save+sync" "$lib" "$npy" s 1
	for tag in cold warm; do
		if [ -n "$RESTORE" ] && [ -d "$T/small/root/1" ]; then
			[ "$tag" = cold ] && cold
			s=$(reader "$exp" "$RESTORE" "$T/small/root/1")
		else
			s="skipped"
		fi
		[ "$tag" = cold ] && cold
		npy=$(reader "$exp" $PY "$PEERS" load-npy "$T/small/npy")
		[ "$tag" = cold ] && cold
		h5=$(reader "$exp" $PY "$PEERS" load-h5 "$T/small/data.h5")
		[ "$tag" = cold ] && cold
		zarr=$(reader "$exp" $PY "$PEERS" load-zarr "$T/small/zarr")
		row "restore $n small $tag: ckpt vs np.load" "$s" "$npy" s 1
		row "restore $n small $tag: ckpt vs h5py" "$s" "$h5" s 1
		row "restore $n small $tag: ckpt vs zarr(zstd)" "$s" "$zarr" s 1
	done
	# the cost of Orbax's restore args (warm): shaped by a target, renamed by a regex
	if [ -n "$RESTORE" ] && [ -d "$T/small/root/1" ]; then
		s=$(reader "$exp" "$RESTORE" "$T/small/root/1")
		local tg rn
		tg=$(reader "$exp" "$RESTORE" "$T/small/root/1" target)
		rn=$(reader "$exp" "$RESTORE" "$T/small/root/1" rename)
		row "restore $n small warm: with a target vs none" "$tg" "$s" s
		row "restore $n small warm: every leaf renamed by a regex vs none" "$rn" "$s" s
	fi
	rm -rf "$T/small"
}

# ---- FUSE: sequential and random reads of one big leaf ----
bench_fuse() {
	local size gib in=$T/fuse/in leaf=state/w.npy m=$T/fuse/mnt tag nr t ndone
	local -A seq rnd
	size=$(scaled $((1 << 30)) $((1 << 20)))
	gib=$(awk -v s="$size" 'BEGIN { printf "%.3gGiB", s / 2^30 }')
	nr=$(scaled 20000 1000)
	section "FUSE: one $gib float32 leaf, sequential dd bs=1M and $nr random 4 KiB reads"
	mkdir -p "$in/state"
	$PY "$PEERS" gen-one "$in/$leaf" "$size" 3 || { skip "fuse" "data generation failed"; return; }
	make_step "$T/fuse/root" 1 "$in" || { skip "fuse" "ckpt save failed"; return; }
	mksquashfs "$in" "$T/fuse/img" -comp zstd -b 131072 -noappend -quiet -no-progress \
		>/dev/null 2>>"$LOG" || say "  mksquashfs failed"

	for kind in plain ckptfs squashfs; do
		for mode in seq rand; do
			# a fresh mount for each run, so no daemon cache survives from the last one
			local f
			case $kind in
			plain) f=$in/$leaf ;;
			ckptfs) mount_fs ckptfs "$T/fuse/root" "$m" -o ro || continue; f=$m/1/$leaf ;;
			squashfs) mount_fs squashfs "$T/fuse/img" "$m" || continue; f=$m/$leaf ;;
			esac
			cold
			if [ "$mode" = seq ]; then
				warm_memory $((size * 5 / 2)) # ckptfs caches the data file too
				seq[$kind.cold]=$(tm ddread "$f")
				seq[$kind.warm]=$(tm ddread "$f")
			else
				read -r t ndone <<<"$(randread "$f" "$nr")"
				rnd[$kind.cold]=$t
				read -r t ndone <<<"$(randread "$f" "$nr" warm "${ndone:-$nr}")"
				rnd[$kind.warm]=$t
			fi
			[ "$kind" = plain ] || umount_fs "$m"
		done
	done
	for tag in cold warm; do
		row "seq read $gib $tag: ckptfs vs plain file" "${seq[ckptfs.$tag]:-}" "${seq[plain.$tag]:-}" s 0.7
		row "seq read $gib $tag: ckptfs vs squashfuse_ll" "${seq[ckptfs.$tag]:-}" "${seq[squashfs.$tag]:-}" s 3
	done
	for tag in cold warm; do
		row "rand 4KiB x$nr $tag: ckptfs vs squashfuse_ll" "${rnd[ckptfs.$tag]:-}" "${rnd[squashfs.$tag]:-}" s 2.5
		row "rand 4KiB x$nr $tag: ckptfs vs plain file" "${rnd[ckptfs.$tag]:-}" "${rnd[plain.$tag]:-}" s
	done
	rm -rf "$T/fuse"
}

# ---- FUSE: cold sequential read of a compressed step ----
# The limit is the slower of the disk (cold cat of the step's data files) and zstd -d on
# two cores (two processes decoding halves of the same data compressed
# at zstd -3, from page cache). docs/fs.md: why the daemon needs no decode-ahead for this.
bench_zread() {
	local size gib in=$T/zread/in m=$T/zread/mnt f ours disk zd lim files
	size=$(scaled $((1 << 30)) $((8 << 20)))
	gib=$(awk -v s="$size" 'BEGIN { printf "%.3gGiB", s / 2^30 }')
	section "FUSE: cold cat of a $gib step of 8 bfloat16-valued float32 leaves (zstd-compressed)"
	$PY "$PEERS" gen-bf16 "$in/state" "$size" 8 || { skip "zread" "data generation failed"; return; }
	make_step "$T/zread/root" 1 "$in" || { skip "zread" "ckpt save failed"; return; }
	mapfile -t files < <(find "$T/zread/root/1" -type f -size +1M | sort)
	# the same bytes, zstd -3 in two halves
	cat "$in"/state/*.npy | split -b $(((size / 2 + 4095) / 4096 * 4096)) - "$T/zread/half."
	for f in "$T"/zread/half.??; do
		zstd -q -3 --rm "$f" -o "$f.zst" 2>>"$LOG" || { skip "zread" "zstd failed"; return; }
	done
	say "  stored $(du -cb "${files[@]}" | tail -1 | cut -f1) of $(du -cb "$in"/state/*.npy | tail -1 | cut -f1) bytes"
	cat "$T"/zread/half.*.zst >/dev/null
	# shellcheck disable=SC2016
	zd=$(tm bash -c 'for f; do zstd -q -d -c "$f" >/dev/null & done; wait' _ "$T"/zread/half.*.zst)
	cold
	disk=$(tm cat "${files[@]}")
	mount_fs ckptfs "$T/zread/root" "$m" -o ro || { skip "zread" "mount failed"; return; }
	cold
	warm_memory $((size * 2))
	# shellcheck disable=SC2016
	ours=$(tm bash -c 'cat "$1"/1/state/*.npy' _ "$m")
	umount_fs "$m"
	lim=$(awk -v a="$disk" -v b="$zd" 'BEGIN { if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/) print (a > b ? a : b); else print "FAIL" }')
	say "  disk $disk s, zstd -d x2 $zd s"
	row "zread $gib cold cat: ckptfs vs min(disk, 2x zstd -d)" "$ours" "$lim" s 0.7
	rm -rf "$T/zread"
}

# ---- FUSE: metadata of 50,000 leaves ----
# the second of two runs (warm); if the first took over 30 s, that one (keeps the budget)
second() {
	local t
	t=$(tm "$@")
	if [ "$t" = FAIL ] || awk -v t="$t" 'BEGIN { exit !(t > 30) }'; then
		say "  note: first run of '$*' took ${t}s: not repeated"
		echo "$t"
		return
	fi
	tm "$@"
}

bench_meta() {
	local n in=$T/meta/in m=$T/meta/mnt cmd
	local -A r
	n=$(scaled 50000 100)
	section "FUSE: ls -lR and getfattr -d -R over $n leaves (warm: second of two runs)"
	$PY "$PEERS" gen-small "$in" "$n" 4 >/dev/null || { skip "meta" "data generation failed"; return; }
	make_step "$T/meta/root" 1 "$in" || { skip "meta" "ckpt save failed"; return; }
	# the item's _METADATA into its tree (what opening the step costs) against cJSON alone
	local bt=$T/bench_tree line
	# shellcheck disable=SC2046
	if cc -std=c11 -D_GNU_SOURCE -O2 -o "$bt" "$HERE/bench_tree.c" -I "$SRC/core/include" \
		"$B/libckpt.a" $(pkg-config --libs sqlite3 libzstd libcjson libprotobuf-c zlib) -lm \
		-pthread 2>>"$LOG" && line=$("$bt" "$T/meta/root/1" state 2>>"$LOG"); then
		say "  _METADATA: $(field "$line" bytes) bytes, $(field "$line" leaves) leaves"
		row "_METADATA $n leaves -> tree: vs cJSON parse alone" "$(field "$line" ours)" \
			"$(field "$line" cjson)" s 1
		row "step $n leaves open listed + tree: vs _METADATA -> tree" \
			"$(field "$line" listed)" "$(field "$line" ours)" s
	else
		skip "_METADATA -> tree" "bench_tree failed (see $LOG)"
	fi
	mount_fs ckptfs "$T/meta/root" "$m" -o ro || { skip "meta" "mount failed"; return; }
	# Fair baseline: the plain files carry the same user.* xattrs as the mount shows.
	$PY - "$m/1" "$in" <<'PYEOF' || { skip "meta" "copying xattrs failed"; return; }
import os, sys
src, dst = sys.argv[1], sys.argv[2]
for dp, dn, fn in os.walk(src):
    for name in dn + fn:
        s = os.path.join(dp, name)
        d = os.path.join(dst, os.path.relpath(s, src))
        if os.path.lexists(d):
            for k in os.listxattr(s):
                os.setxattr(d, k, os.getxattr(s, k))
PYEOF
	for cmd in "ls -lR" "getfattr -d -R"; do
		# shellcheck disable=SC2086
		r[ckptfs.$cmd]=$(second timeout 60 $cmd "$m/1")
		# shellcheck disable=SC2086
		r[plain.$cmd]=$(second $cmd "$in")
	done
	umount_fs "$m"
	# squashfuse_ll serving the same files with the same user.* xattrs (mksquashfs keeps them)
	if mksquashfs "$in" "$T/meta/img" -comp zstd -b 131072 -xattrs -noappend -quiet \
		-no-progress >/dev/null 2>>"$LOG" && mount_fs squashfs "$T/meta/img" "$m"; then
		for cmd in "ls -lR" "getfattr -d -R"; do
			# shellcheck disable=SC2086
			r[squashfs.$cmd]=$(second timeout 60 $cmd "$m")
		done
		umount_fs "$m"
	fi
	row "ls -lR $n leaves warm: ckptfs vs plain" "${r[ckptfs.ls -lR]}" "${r[plain.ls -lR]}" s 0.9
	row "ls -lR $n leaves warm: ckptfs vs squashfuse_ll" "${r[ckptfs.ls -lR]}" \
		"${r[squashfs.ls -lR]:-}" s
	row "getfattr -d -R $n leaves warm: ckptfs vs plain+xattrs" "${r[ckptfs.getfattr -d -R]}" \
		"${r[plain.getfattr -d -R]}" s
	row "getfattr -d -R $n leaves warm: ckptfs vs squashfuse_ll" "${r[ckptfs.getfattr -d -R]}" \
		"${r[squashfs.getfattr -d -R]:-}" s 0.8
	# mount + first listing of the step (cold): both daemons return once mounted
	local ours="" sq="" a b
	for _ in 1 2; do
		cold
		MOUNTS+=("$m")
		a=$(writer timeout 30 $PY "$PEERS" mount-ls "$m/1/state" "$B/ckptfs" "$T/meta/root" "$m" -o ro)
		timeout 20 fusermount3 -u "$m" 2>>"$LOG"
		cold
		b=$(writer timeout 30 $PY "$PEERS" mount-ls "$m/state" squashfuse_ll "$T/meta/img" "$m")
		timeout 20 fusermount3 -u "$m" 2>>"$LOG"
		ours+="$a " sq+="$b "
	done
	row "mount+ls $n-leaf step cold: vs squashfuse_ll" \
		"$(min_of $ours)" "$(min_of $sq)" s 0.33
	rm -rf "$T/meta"
}

# the smallest of its numeric arguments (FAIL if none)
min_of() { printf '%s\n' "$@" | awk '/^[0-9.]+$/ && (m == "" || $1 < m) { m = $1 } END { print (m == "" ? "FAIL" : m) }'; }

# ---- FUSE: peeking at every leaf with numpy ----
# np.load(mmap_mode='r').shape of every leaf (reads the .npy header only), cold: after
# dropping the page cache, on a fresh mount. Bytes are what the block layer read for the
# reader and the daemon (/proc/PID/io read_bytes), per leaf; the first leaf is a warm-up
# for both sides, not counted (it faults code back in, and opens the step in the mount).
bench_peek() {
	local spec n size in=$T/peek/in root=$T/peek/root m=$T/peek/mnt pl ours chunk=262144
	for spec in "64 $((1 << 30))" "10000 $((512 << 20))"; do
		read -r n size <<<"$spec"
		n=$(scaled "$n" 8)
		size=$(scaled "$size" $((n << 16)))
		section "peek: np.load(mmap_mode='r') of each of $n leaves ($((size >> 20)) MiB), cold"
		$PY "$PEERS" gen-core "$in" "$size" "$n" 11 >/dev/null ||
			{ skip "peek $n" "data generation failed"; continue; }
		make_step "$root" 1 "$in" || { skip "peek $n" "ckpt save failed"; rm -rf "$T/peek"; continue; }
		cold
		pl=$(timeout 300 $PY "$PEERS" peek-mmap "$in" 2>>"$LOG")
		if mount_fs ckptfs "$root" "$m" -o ro; then
			cold
			sleep 1 # the daemon's rescan thread re-reads ROOT's inode every 0.5 s
			ours=$(timeout 300 $PY "$PEERS" peek-mmap "$m/1" "$MPID" 2>>"$LOG")
			umount_fs "$m"
		fi
		row "peek $n leaves cold: time vs plain .npy" "$(field "${ours:-}" elapsed)" \
			"$(field "$pl" elapsed)" s 0.5
		row "peek $n leaves cold: bytes/leaf vs 1 chunk+4KiB" "$(field "${ours:-}" bytes_per_leaf)" \
			$((chunk + 4096)) B 1
		row "peek $n leaves cold: bytes/leaf vs plain .npy" "$(field "${ours:-}" bytes_per_leaf)" \
			"$(field "$pl" bytes_per_leaf)" B
		rm -rf "$T/peek"
	done
}

# ---- FUSE: mount a root of 1,000 steps and read one leaf of the newest ----
bench_steps() {
	local n root=$T/steps/root m=$T/steps/mnt leaf i tag ours sq
	n=$(scaled 1000 2)
	section "FUSE: mount a root of $n steps + read one leaf of the newest"
	$PY "$PEERS" gen-small "$T/steps/in" 8 5 >/dev/null || { skip "steps" "data generation failed"; return; }
	leaf=$(cd "$T/steps/in" && find . -name '*.npy' | sort | head -1)
	leaf=${leaf#./}
	make_step "$root" 1 "$T/steps/in" || { skip "steps" "ckpt save failed"; return; }
	for ((i = 2; i <= n; i++)); do cp -a "$root/1" "$root/$i"; done
	# the baseline: the same steps as plain interchange directories in a squashfs image
	mkdir -p "$T/steps/plain"
	for ((i = 1; i <= n; i++)); do cp -al "$T/steps/in" "$T/steps/plain/$i"; done
	mksquashfs "$T/steps/plain" "$T/steps/img" -comp zstd -b 131072 -noappend -quiet \
		-no-progress >/dev/null 2>>"$LOG"
	mkdir -p "$m"
	for tag in cold warm; do
		# both daemons return once mounted; the time ends when the leaf is read
		[ "$tag" = cold ] && cold
		MOUNTS+=("$m")
		ours=$(writer timeout 30 $PY "$PEERS" mount-read "$m/latest/$leaf" "$B/ckptfs" "$root" "$m")
		timeout 20 fusermount3 -u "$m" 2>>"$LOG"
		[ "$tag" = cold ] && cold
		sq=$(writer timeout 30 $PY "$PEERS" mount-read "$m/$n/$leaf" squashfuse_ll "$T/steps/img" "$m")
		timeout 20 fusermount3 -u "$m" 2>>"$LOG"
		row "mount $n steps + read newest $tag: vs squashfuse_ll" "$ours" "$sq" s
		row "mount $n steps + read newest $tag: vs goal 0.2 s" "$ours" 0.2 s 1
	done
	rm -rf "$T/steps"
}

# ---- FUSE: daemon peak RSS while reading a 4 GiB leaf ----
bench_rss() {
	local size gib in=$T/rss/in m=$T/rss/mnt cache kib kib2 opts=()
	size=$(scaled $((4 << 30)) $((1 << 20)))
	gib=$(awk -v s="$size" 'BEGIN { printf "%.3gGiB", s / 2^30 }')
	section "FUSE: ckptfs peak RSS while cat-ing a $gib leaf (saved --no-compress)"
	mkdir -p "$in/state"
	$PY "$PEERS" gen-pattern "$in/state/big.npy" "$size" || { skip "rss" "data generation failed"; return; }
	make_step "$T/rss/root" 1 "$in" --no-compress ||
		{ skip "rss" "ckpt save failed"; return; }
	rm -rf "$in"
	# the cache size: BENCH_CKPTFS_CACHE (bytes) passed as -o cache_size=, else 256 MiB
	cache=${BENCH_CKPTFS_CACHE:-$((256 << 20))}
	opts=(-o "ro,cache_size=$cache")
	mount_fs ckptfs "$T/rss/root" "$m" "${opts[@]}" || { skip "rss" "mount failed"; return; }
	if timeout 300 cat "$m/1/state/big.npy" >/dev/null 2>>"$LOG"; then
		kib=$(awk '/^VmHWM/ { print $2 }' "/proc/$MPID/status")
	else
		kib=FAIL
	fi
	# the same leaf through the item's safetensors file (docs/convert.md), same daemon
	if timeout 300 cp "$m/1/state.safetensors" /dev/null 2>>"$LOG"; then
		kib2=$(awk '/^VmHWM/ { print $2 }' "/proc/$MPID/status")
	else
		kib2=FAIL
	fi
	umount_fs "$m"
	row "ckptfs peak RSS cat $gib vs cache+64MiB" \
		"$(awk -v k="$kib" 'BEGIN { if (k > 0) printf "%.1f", k / 1024; else print "FAIL" }')" \
		"$(awk -v c="$cache" 'BEGIN { printf "%.1f", c / 2^20 + 64 }')" MiB 1
	row "ckptfs peak RSS, then cp $gib .safetensors out" \
		"$(awk -v k="$kib2" 'BEGIN { if (k > 0) printf "%.1f", k / 1024; else print "FAIL" }')" \
		"$(awk -v c="$cache" 'BEGIN { printf "%.1f", c / 2^20 + 64 }')" MiB 1
	rm -rf "$T/rss"
}

# ---- FUSE write side: cp into a pending step, cp -r within the mount, daemon RSS ----
# the daemon's VmRSS and VmHWM in KiB ("rss hwm")
daemon_mem() { awk '/^VmRSS/ { r = $2 } /^VmHWM/ { h = $2 } END { print r + 0, h + 0 }' "/proc/$1/status"; }

# stream a float32 .npy of $2 bytes into file $1 with 1 MiB sequential writes (a random
# 16 MiB block repeated: each 1 MiB chunk is as incompressible as fresh random data)
npy_stream() {
	$PY - "$1" "$2" <<-'EOF'
		import sys
		import numpy as np
		path, nbytes = sys.argv[1], int(sys.argv[2]) // 4 * 4
		block = np.random.default_rng(9).standard_normal(4 << 20, dtype=np.float32).tobytes()
		with open(path, "wb", buffering=0) as f:
		    np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False,
		                                              "shape": (nbytes // 4,)})
		    done = 0
		    while done < nbytes:
		        for i in range(0, len(block), 1 << 20):
		            n = min(1 << 20, nbytes - done)
		            if n <= 0:
		                break
		            f.write(block[i:i + n])
		            done += n
	EOF
}

kib_mib() { awk -v k="$1" 'BEGIN { if (k ~ /^[0-9]+$/) printf "%.1f", k / 1024; else print "FAIL" }'; }

bench_write() {
	local size gib big bgib in=$T/write/in m=$T/write/mnt root=$T/write/root plain=$T/write/plain
	local base ours fin cpr cprd cprf idle rss hwm peak pid kib fkib=FAIL
	size=$(scaled $((1 << 30)) $((1 << 20)))
	gib=$(awk -v s="$size" 'BEGIN { printf "%.3gGiB", s / 2^30 }')
	big=$(scaled $((4 << 30)) $((4 << 20)))
	bgib=$(awk -v s="$big" 'BEGIN { printf "%.3gGiB", s / 2^30 }')
	section "FUSE write: cp of a $gib .npy into a pending step, cp -r of a $gib step, RSS writing $bgib"
	mkdir -p "$in" "$plain" "$root"
	$PY "$PEERS" gen-one "$in/w.npy" "$size" 3 || { skip "write" "data generation failed"; return; }
	mount_fs ckptfs "$root" "$m" || { skip "write" "mount failed"; return; }

	# (1) cp of one .npy: onto the disk, then into a pending step (source warm, both + sync);
	# two rounds, the faster of each counts (as restore_twice: fresh page cache costs the
	# first writer after a big free on this VM); the second step is then finalized
	cat "$in/w.npy" >/dev/null
	local r t
	base="" ours=""
	for r in 1 2; do
		sync
		warm_memory $((size * 5 / 2))
		# shellcheck disable=SC2016
		t=$(tm bash -c 'cp "$1" "$2" && sync' _ "$in/w.npy" "$plain/w.npy")
		faster "$t" "$base" && base=$t
		rm -f "$plain/w.npy"
		sync
		if timeout 20 mkdir "$m/$r" "$m/$r/state" 2>>"$LOG"; then
			warm_memory $((size * 5 / 2))
			# shellcheck disable=SC2016
			t=$(tm timeout 300 bash -c 'cp "$1" "$2" && sync' _ "$in/w.npy" "$m/$r/state/w.npy")
		else
			t=FAIL
		fi
		[[ $t =~ ^[0-9.]+$ ]] || { ours=$t; break; }
		faster "$t" "$ours" && ours=$t
	done
	fin=FAIL
	[[ $ours =~ ^[0-9.]+$ ]] && fin=$(tm timeout 300 setfattr -n user.ckpt.finalize -v 1 "$m/2")
	row "cp $gib .npy: into a pending step vs onto disk" "$ours" "$base" s 0.7
	row "finalize of that step vs the cp onto disk" "$fin" "$base" s
	rm -rf "$in"

	# (1b) cp -r of many small leaves into a pending step vs onto the disk (both + sync):
	# per-file request costs (context, no goal)
	local n small=$T/write/small
	n=$(scaled 10000 100)
	if $PY "$PEERS" gen-small "$small" "$n" 4 >/dev/null && timeout 20 mkdir "$m/3"; then
		sync
		# shellcheck disable=SC2016
		base=$(tm bash -c 'cp -r "$1" "$2" && sync' _ "$small/state" "$plain/state")
		# shellcheck disable=SC2016
		ours=$(tm timeout 300 bash -c 'cp -r "$1" "$2" && sync' _ "$small/state" "$m/3/state")
		row "cp -r $n small leaves: into a pending step vs onto disk" "$ours" "$base" s
	else
		skip "cp -r $n small leaves" "data generation or mkdir failed"
	fi
	rm -rf "$small" "$plain/state"

	# (2) cp -r of a step (8 large leaves + 200 small) within the mount vs on disk, cold
	if $PY "$PEERS" gen-core "$in" "$size" 8 4 >/dev/null &&
		$PY "$PEERS" gen-small "$in" 200 5 >/dev/null && make_step "$root" 100 "$in" && wait_step "$m/100"; then
		cold
		# shellcheck disable=SC2016
		cprd=$(tm bash -c 'cp -r "$1" "$2" && sync' _ "$in" "$plain/step")
		rm -rf "$plain/step"
		cold
		# shellcheck disable=SC2016
		cpr=$(tm timeout 300 bash -c 'cp -r "$1" "$2" && sync' _ "$m/100" "$m/101")
		cprf=$(tm timeout 300 setfattr -n user.ckpt.finalize -v 1 "$m/101")
		[ -d "$root/101" ] && ! timeout 300 "$B/ckpt" verify "$root/101" >/dev/null 2>>"$LOG" &&
			say "  step 101 (cp -r) does not verify" && cpr=BAD
		row "cp -r $gib step: within the mount vs on disk" "$cpr" "$cprd" s 2
		row "cp -r+finalize $gib step: mount vs on disk" \
			"$(awk -v a="$cpr" -v b="$cprf" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) print a + b; else print "FAIL" }')" \
			"$cprd" s
	else
		skip "cp -r $gib step" "data generation or ckpt save failed"
	fi
	umount_fs "$m"
	rm -rf "$in" "$plain" "$root"
	mkdir -p "$root"

	# (3) daemon memory while writing a big file into a pending step (fresh mount)
	mount_fs ckptfs "$root" "$m" || { skip "write rss" "mount failed"; return; }
	pid=$MPID
	timeout 20 ls "$m" >/dev/null
	read -r idle _ <<<"$(daemon_mem "$pid")"
	peak=$idle
	if timeout 20 mkdir "$m/2" "$m/2/state" 2>>"$LOG"; then
		npy_stream "$m/2/state/big.npy" "$big" 2>>"$LOG" &
		local wp=$!
		while kill -0 "$wp" 2>/dev/null; do
			read -r rss _ <<<"$(daemon_mem "$pid")"
			[ "$rss" -gt "$peak" ] && peak=$rss
			sleep 0.05
		done
		if wait "$wp"; then
			read -r rss hwm <<<"$(daemon_mem "$pid")"
			[ "$hwm" -gt "$peak" ] && peak=$hwm
			kib=$((peak - idle))
			# then the finalize of that step (in the daemon too)
			if timeout 300 setfattr -n user.ckpt.finalize -v 1 "$m/2" 2>>"$LOG"; then
				read -r rss hwm <<<"$(daemon_mem "$pid")"
				fkib=$((hwm - idle))
			fi
		else
			say "  writing $bgib into the mount failed"
			kib=FAIL
		fi
	else
		kib=FAIL
	fi
	umount_fs "$m"
	row "ckptfs RSS writing $bgib: peak-idle vs 128 MiB" "$(kib_mib "$kib")" 128 MiB 1
	row "ckptfs RSS + finalize: peak-idle vs 128 MiB" "$(kib_mib "$fkib")" 128 MiB
	say "  daemon idle RSS $((idle / 1024)) MiB, peak $((peak / 1024)) MiB"
	rm -rf "$T/write"
}

# ---- manager: async save blocking, memory cap, training with checkpoints (issue 6) ----
# mode_field OUTPUT MODE N FIELD: FIELD of the Nth "mode=MODE" line of bench_async's output
mode_field() {
	awk -v m="mode=$2" -v n="$3" -v f="$4=" '$1 == m && ++k == n {
		for (i = 2; i <= NF; i++) if (index($i, f) == 1) print substr($i, length(f) + 1) }' <<<"$1"
}

# faster A B: is A a number and smaller than B (or B empty)?
faster() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "" && (b == "" || a + 0 < b + 0)) }'; }

bench_manager() {
	local mib big in out ba=$OUT/bench_async train=$B/examples/train line sync c1 c2 cr bo
	local hwm st nock ck ckw
	mib=$(scaled 1024 16)
	big=$(scaled 2048 32)
	in=$(scaled 8192 256)
	out=4096
	section "manager: async save of ${mib} MiB; ${big} MiB with a 256 MiB cap; training ${in}x${out}"
	mkdir -p "$T/mgr"
	# shellcheck disable=SC2046
	if ! cc -std=c11 -D_GNU_SOURCE -O2 -o "$ba" "$HERE/bench_async.c" -I "$SRC/core/include" \
		"$B/libckpt.a" $(pkg-config --libs sqlite3 libzstd libcjson libprotobuf-c) -lm -pthread \
		2>>"$LOG"; then
		skip "async save" "cannot build bench_async (see $LOG)"
		ba=""
	fi
	if [ -n "$ba" ]; then
		# sync, then copy (first: snapshot buffers are fresh memory), three more copies
		# (buffers reused: the median counts, single blocks vary 2-4x on this VM), borrow
		sync
		line=$("$ba" "$T/mgr/async" --mib "$mib" --modes sync,copy,copy,copy,copy,borrow \
			2>>"$LOG") || { say "  bench_async failed"; line=""; }
		sync=$(mode_field "$line" sync 1 elapsed)
		c1=$(mode_field "$line" copy 1 block)
		c2=$(for k in 2 3 4; do mode_field "$line" copy $k block; done | sort -g | sed -n 2p)
		bo=$(mode_field "$line" borrow 1 block)
		row "async save ${mib}MiB: first copy block, no reserve vs sync" "${c1:-FAIL}" "${sync:-FAIL}" s
		# a first copy-mode save 1 s after ckpt_async_reserve has written its memory, as a
		# training loop does it (reserve at its start, save steps later), in a process of
		# its own: memory the process above freed would be cheap to reuse
		line=$("$ba" "$T/mgr/async" --mib "$mib" --modes reserved --reserve-wait 1 \
			2>>"$LOG") || line=""
		cr=$(mode_field "$line" reserved 1 block)
		say "  reserving ${mib} MiB took $(mode_field "$line" reserved 1 reserve) s"
		row "async save ${mib}MiB: first copy block after reserve vs sync" "${cr:-FAIL}" "${sync:-FAIL}" s 10
		row "async save ${mib}MiB: copy block, buffers reused (median of 3) vs sync" "${c2:-FAIL}" "${sync:-FAIL}" s 10
		# a block under bench_async's 1 ms resolution counts as 1 ms
		[ "$bo" = 0.000 ] && bo=0.001
		row "async save ${mib}MiB: borrow-mode block vs sync save" "${bo:-FAIL}" "${sync:-FAIL}" s 10
		# memory: one borrow-mode save per process, so VmHWM is this save's peak
		line=$("$ba" "$T/mgr/big" --mib "$big" --cap-mib 256 --modes borrow 2>>"$LOG") || line=""
		hwm=$(sed -n 's/.*vmhwm_mib=\([0-9]*\).*/\1/p' <<<"$line")
		st=$(sed -n 's/.*state_mib=\([0-9]*\).*/\1/p' <<<"$line")
		row "async save ${big}MiB cap 256MiB: peak RSS vs state+300MiB" "${hwm:-FAIL}" \
			"$([ -n "$st" ] && echo $((st + 300)))" MiB 1
		rm -rf "$T/mgr/async" "$T/mgr/big"
	fi
	if [ ! -x "$train" ]; then
		skip "training loop" "$train missing (make $train)"
		return
	fi
	# 45 steps, a save every 10 (10..40 overlap the next steps) and the last (45, forced);
	# the loop's time includes the saves' blocking; final_wait is the last save's tail.
	# Three runs of each, alternating, the fastest of each counts (a noisy 2-core VM).
	# The background save gets one compression thread: the other core trains.
	local r l best_nock="" best_ck="" best_line="" size=""
	local -a targs=(--steps 45 --in "$in" --out "$out" --batch 4 --save-threads 1)
	for r in 1 2 3; do
		sync
		l=$("$train" --no-checkpoint "${targs[@]}" 2>>"$LOG") || l=""
		nock=$(field "$l" elapsed)
		faster "$nock" "$best_nock" && best_nock=$nock
		rm -rf "$T/mgr/train"
		sync
		l=$("$train" "$T/mgr/train" "${targs[@]}" 2>>"$LOG" | tail -1) || l=""
		ck=$(field "$l" elapsed)
		say "  run $r: without checkpoints ${nock:-FAIL} s; with: ${l:-FAIL}"
		faster "$ck" "$best_ck" && best_ck=$ck best_line=$l
		[ -d "$T/mgr/train/40" ] && size=$(du -sm "$T/mgr/train/40" | cut -f1)
	done
	nock=$best_nock ck=$best_ck line=$best_line
	ckw=$(awk -v a="$ck" -v b="$(field "$line" final_wait_s)" 'BEGIN { if (a > 0) print a + b; else print "FAIL" }')
	say "  checkpoint size: ${size:-?} MiB"
	row "train 45 steps: ckpt every 10 (async) vs none" "${ck:-FAIL}" "${nock:-FAIL}" s 0.95
	row "train 45 steps: + wait for last save vs none" "$ckw" "${nock:-FAIL}" s
	row "train 45 steps: time blocked in saves vs loop" "$(field "$line" save_block_s)" "${ck:-FAIL}" s
	rm -rf "$T/mgr"
}

# ---- several processes writing one step (issue 17) ----
. "$HERE/bench_tiles.sh" # bench_tiles: the merge and box-restore rows

bench_multiprocess() {
	local bm=$OUT/bench_mp mib n=4 r l h multi="" single="" hwm="" shard="" t
	mib=$(scaled 1024 64)
	section "multiprocess: $n processes writing $((mib / n)) MiB each of one ${mib} MiB array vs one process; merge; 1/4 box"
	# shellcheck disable=SC2046
	if ! cc -std=c11 -D_GNU_SOURCE -O2 -o "$bm" "$HERE/bench_mp.c" -I "$SRC/core/include" \
		"$B/libckpt.a" $(pkg-config --libs sqlite3 libzstd libcjson libprotobuf-c) -lm -pthread \
		2>>"$LOG"; then
		skip "multi-process save" "cannot build bench_mp (see $LOG)"
	else
		# two runs of each, alternating, the faster counts (a noisy 2-core VM); both from
		# the start of the save to the rename, the merge included
		for r in 1 2; do
			rm -rf "$T/mp"
			warm_memory $((mib << 20))
			cold
			l=$("$bm" multi "$T/mp" "$mib" "$n" 2>>"$LOG") || l=""
			t=$(field "$l" elapsed)
			faster "$t" "$multi" && multi=$t
			h=$(field "$l" max_hwm_mib)
			[ -n "$h" ] && { [ -z "$hwm" ] || [ "$h" -gt "$hwm" ]; } && hwm=$h
			shard=$(field "$l" shard_mib)
			rm -rf "$T/mp"
			warm_memory $((mib << 20))
			cold
			l=$("$bm" single "$T/mp" "$mib" 2>>"$LOG") || l=""
			t=$(field "$l" elapsed)
			faster "$t" "$single" && single=$t
			say "  run $r: $n processes ${multi:-FAIL} s, one process ${single:-FAIL} s (best so far)"
		done
		rm -rf "$T/mp"
		row "save ${mib}MiB: $n processes x $((mib / n))MiB vs one process" "${multi:-FAIL}" "${single:-FAIL}" s 1.0
		# a writer holds its shard plus what any save holds (the same cap as the async rows)
		row "save ${mib}MiB: writer peak RSS vs shard+300MiB" "${hwm:-FAIL}" \
			"$([ -n "$shard" ] && echo $((shard + 300)))" MiB 1
	fi
	bench_tiles
}

# ---- conversions by copying (issue 18): <item>.safetensors, ckpt import/export ----
bench_convert() {
	local size gib in=$T/conv/in m=$T/conv/mnt cache kib plain=$T/conv/plain.safetensors a b
	size=$(scaled $((1 << 30)) $((1 << 20)))
	gib=$(awk -v s="$size" 'BEGIN { printf "%.3gGiB", s / 2^30 }')
	section "convert: a $gib item as safetensors (8 float32 leaves): mount, export, import"
	mkdir -p "$in/state/layers"
	for i in 0 1 2 3 4 5 6 7; do
		$PY "$PEERS" gen-one "$in/state/layers/w$i.npy" $((size / 8)) "$i" ||
			{ skip "convert" "data generation failed"; return; }
	done
	make_step "$T/conv/root" 1 "$in" || { skip "convert" "ckpt save failed"; return; }
	# the same bytes as a plain file on the same disk (the baseline of the reads)
	"$B/ckpt" export "$T/conv/root/1" "$plain" 2>>"$LOG" || { skip "convert" "export failed"; return; }
	cache=$((256 << 20))
	mount_fs ckptfs "$T/conv/root" "$m" -o "ro,cache_size=$cache" || { skip "convert" "mount failed"; return; }
	cold
	warm_memory $((size * 5 / 2))
	a=$(tm cat "$m/1/state.safetensors")
	kib=$(awk '/^VmHWM/ { print $2 }' "/proc/$MPID/status")
	cold
	b=$(tm cat "$plain")
	row "cat $gib state.safetensors cold: mount vs plain file" "$a" "$b" s 0.7
	cold
	a=$(tm cp "$m/1/state.safetensors" "$T/conv/cp1.safetensors")
	rm -f "$T/conv/cp1.safetensors"
	cold
	b=$(tm cp "$plain" "$T/conv/cp2.safetensors")
	rm -f "$T/conv/cp2.safetensors"
	row "cp $gib state.safetensors cold: mount vs plain file" "$a" "$b" s
	cold
	b=$(tm cat "$m"/1/state/layers/w*.npy)
	cold
	a=$(tm cat "$m/1/state.safetensors")
	row "cat $gib cold: state.safetensors vs the leaves' .npy (mount)" "$a" "$b" s
	umount_fs "$m"
	row "ckptfs peak RSS cat $gib .safetensors vs cache+64MiB" \
		"$(awk -v k="$kib" 'BEGIN { if (k > 0) printf "%.1f", k / 1024; else print "FAIL" }')" \
		"$(awk -v c="$cache" 'BEGIN { printf "%.1f", c / 2^20 + 64 }')" MiB 1
	cold
	a=$(tm "$B/ckpt" export "$T/conv/root/1" "$T/conv/e.safetensors")
	rm -f "$T/conv/e.safetensors"
	cold
	b=$(tm cp "$plain" "$T/conv/cp3.safetensors")
	rm -f "$T/conv/cp3.safetensors"
	row "ckpt export $gib vs cp of the plain file, cold" "$a" "$b" s
	# import vs save of the same tensors as .npy files, inputs warm for both
	cat "$plain" >/dev/null
	a=$(tm "$B/ckpt" import "$plain" "$T/conv/root" 2 --item state)
	find "$in" -type f -exec cat {} + >/dev/null
	b=$(tm "$B/ckpt" save "$T/conv/root" 3 "$in")
	row "ckpt import $gib safetensors vs ckpt save of .npy" "$a" "$b" s 0.8
	rm -rf "$T/conv"
}

# wait until a step saved under a mounted root shows in the mount (the root is re-read
# every 0.5 s)
wait_step() {
	local i
	for ((i = 0; i < 100; i++)); do
		timeout 5 test -d "$1" && return 0
		sleep 0.1
	done
	return 1
}

# ---- Orbax checkpoints (use_ocdbt=False zarr layout from python3-zarr) ----
# bytes a process read from disk (its /proc io read_bytes)
proc_read() { awk '/^read_bytes/ { print $2 }' "/proc/$1/io"; }

bench_orbax() {
	local size nl gib o=$T/orbax t_ours t_zstd t_cat leaf mnt=$T/orbax/mnt pid before after stored
	size=$(scaled $((1 << 30)) $((1 << 24)))
	nl=64
	gib=$(awk -v s="$size" 'BEGIN { printf "%.3gGiB", s / 2^30 }')
	section "Orbax: $gib item of $nl float32 leaves, zarr3 sharded (1 MiB inner chunks) in OCDBT (tests/ocdbt_write.py), 10,000-leaf tree"
	mkdir -p "$o/frames" "$o/nof"
	# one leaf node (ORBAX_LEAF_ENTRIES), as Orbax's 100 MB node limit gives
	ORBAX_LEAF_ENTRIES=1000000 ORBAX_FRAMES=$o/frames $PY "$SRC/tests/ocdbt_write.py" "$o/z/1" "$o/exp" "$size" "$nl" 1 256 2>>"$LOG" &&
		ORBAX_LEAF_ENTRIES=1000000 $PY "$SRC/tests/ocdbt_write.py" "$o/raw/1" "$o/exp" "$size" "$nl" 0 256 2>>"$LOG" ||
		{ skip "orbax" "data generation failed"; return; }
	rm -rf "$o/exp"
	# restore to .npy files vs zstd -d of the same frames on both cores (the decode limit)
	find "$o/frames" -type f | sort >"$o/frames.txt"
	split -n l/2 "$o/frames.txt" "$o/half."
	# both write their output as files on the same file system (a restore writes .npy files)
	mkdir -p "$o/zout"
	cold
	t_zstd=$(tm sh -c "xargs zstd -dq --output-dir-flat '$o/zout' <'$o/half.aa' & xargs zstd -dq --output-dir-flat '$o/zout' <'$o/half.ab'; wait; sync")
	rm -rf "$o/zout" "$o/out"; cold
	t_ours=$(tm sh -c "'$B/ckpt' restore '$o/z/1' '$o/out' && sync")
	row "orbax restore $gib zstd: ckpt restore vs zstd -d x2 (to files)" "$t_ours" "$t_zstd" s 0.8
	rm -rf "$o/out"
	cold
	t_cat=$(tm sh -c "cp -r '$o/raw/1/state/sub/d' '$o/rawcopy' && sync")
	rm -rf "$o/rawcopy"; cold
	t_ours=$(tm sh -c "'$B/ckpt' restore '$o/raw/1' '$o/out' && sync")
	row "orbax restore $gib raw: ckpt restore vs cp of the data files" "$t_ours" "$t_cat" s 0.7
	rm -rf "$o/out" "$o/raw"
	# through the mount: cat of one leaf reads about its stored bytes; a 4 KiB read one inner chunk
	if [ "$have_fs" = 1 ] && mount_fs ckptfs "$o/z" "$mnt" -o ro; then
		pid=$MPID
		stored=$(cat "$o/frames"/layers.0.w0.* | wc -c)
		ls "$mnt/1/state/layers/0" >/dev/null # open the step first: its metadata is not the leaf's
		cold
		before=$(proc_read "$pid")
		timeout 300 cat "$mnt/1/state/layers/0/w0.npy" >/dev/null
		after=$(proc_read "$pid")
		row "orbax mount: cat one leaf, disk MiB vs stored MiB" \
			"$(awk -v a="$before" -v b="$after" 'BEGIN { print (b - a) / 2^20 }')" \
			"$(awk -v s="$stored" 'BEGIN { print s / 2^20 }')" MiB 0.91
		umount_fs "$mnt"
		if mount_fs ckptfs "$o/z" "$mnt" -o ro; then
			pid=$MPID
			ls "$mnt/1/state/layers/3" >/dev/null
			cold
			before=$(proc_read "$pid")
			timeout 60 dd if="$mnt/1/state/layers/3/w5.npy" of=/dev/null bs=4096 count=1 \
				skip=100 status=none
			after=$(proc_read "$pid")
			row "orbax mount: 4 KiB read, disk KiB vs one inner chunk" \
				"$(awk -v a="$before" -v b="$after" 'BEGIN { print (b - a) / 1024 }')" \
				"$(stat -c %s "$o/frames/layers.3.w5.0.0.zst" | awk '{ print $1 / 1024 }')" KiB 0.9
			umount_fs "$mnt"
		fi
	else
		skip "orbax mount" "ckptfs missing or mount failed"
	fi
	rm -rf "$o/z" "$o/frames"
	# open + list a 10,000-leaf Orbax step (OCDBT) vs reading its db files with cat
	n=$(scaled 10000 100)
	ORBAX_LEAF_ENTRIES=1000000 $PY "$SRC/tests/ocdbt_write.py" "$o/wide/1" "$o/wexp" $((n * 4096)) "$n" 1 1 2>>"$LOG" ||
		{ skip "orbax wide" "data generation failed"; return; }
	find "$o/wide/1" -type f >"$o/metafiles"
	cold
	t_cat=$(tm sh -c "xargs cat <'$o/metafiles' >/dev/null") # all of it, chunks included
	cold
	t_ours=$(tm "$B/ckpt" tree "$o/wide/1")
	row "orbax open+tree $n leaves (goal <= 0.5 s): vs cat of its files" "$t_ours" "$t_cat" s
	rm -rf "$o"
}

# ---- ckpt diff and cat --stats of big leaves (BENCH_ONLY=cli; not in the default list) ----
bench_cli() {
	local n d=$T/cli a b
	n=$(scaled 67108864 65536) # float32 elements: 256 MiB at scale 1
	section "ckpt diff / cat --stats of two $((n * 4 >> 20)) MiB float32 leaves vs numpy (warm)"
	mkdir -p "$d/a/state" "$d/b/state"
	$PY - "$d" "$n" <<'PYEOF' || { skip "cli" "data generation failed"; return; }
import numpy as np, sys
d, n = sys.argv[1], int(sys.argv[2])
x = np.random.default_rng(1).standard_normal(n, dtype=np.float32)
np.save(f"{d}/a/state/w.npy", x)
x[::1000] += 1
np.save(f"{d}/b/state/w.npy", x)
PYEOF
	make_step "$d/root" 1 "$d/a" --no-compress && make_step "$d/root" 2 "$d/b" --no-compress ||
		{ skip "cli" "ckpt save failed"; return; }
	a=$(tm "$B/ckpt" diff "$d/root/1" "$d/root/2")
	a=$(tm "$B/ckpt" diff "$d/root/1" "$d/root/2") # the second run: warm
	# numpy as a user types it: in the arrays' own dtype
	b=$(tm $PY -c 'import numpy as np, sys
a = np.load(sys.argv[1]); b = np.load(sys.argv[2])
d = np.abs(a - b); nz = b != 0
print(int((a != b).sum()), d.max(), (d[nz] / np.abs(b[nz])).max())' "$d/a/state/w.npy" "$d/b/state/w.npy")
	row "ckpt diff of $((n * 4 >> 20)) MiB leaves vs numpy" "$a" "$b" s
	a=$(tm "$B/ckpt" cat --stats "$d/root/1/state/w")
	b=$(tm $PY -c 'import numpy as np, sys
a = np.load(sys.argv[1]); f = a[np.isfinite(a)]
print(f.size, f.min(), f.max(), f.mean(dtype=np.float64), f.std(dtype=np.float64))' "$d/a/state/w.npy")
	row "ckpt cat --stats of $((n * 4 >> 20)) MiB vs numpy" "$a" "$b" s
	rm -rf "$d"
}

for s in $ONLY; do
	# keep `make bench` under its 15 minutes even when something is slow
	if awk -v a="$START" -v b="$EPOCHREALTIME" -v m="$BUDGET" 'BEGIN { exit !(b - a > m) }'; then
		section "$s"
		skip "$s" "over the time budget of ${BUDGET}s (BENCH_BUDGET)"
		continue
	fi
	case $s in
	core | small | manager | orbax | cli | multiprocess) "bench_$s" ;;
	fuse | zread | meta | steps | rss | write | peek | convert)
		if [ "$have_fs" = 1 ]; then
			"bench_$s"
		else
			section "FUSE ($s)"
			skip "$s" "$B/ckptfs missing, or no /dev/fuse or fusermount3"
		fi
		;;
	*) say "unknown section $s" ;;
	esac
done

total=$(awk -v a="$START" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')
{
	printf 'ckptfs benchmark summary  %s  scale=%s  %s cores  git %s  total %ss\n' \
		"$(date -u '+%F %T UTC')" "$SCALE" "$(nproc)" \
		"$(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo '?')" "$total"
	header
	cat "$ROWS"
	printf 'goals met: %s, missed: %s\n' "$(grep -c ' ok$' "$ROWS")" "$(grep -c ' MISS$' "$ROWS")"
} >"$OUT/results.txt"
printf '\n== summary (also in %s)\n' "$OUT/results.txt"
cat "$OUT/results.txt"
