#!/bin/bash
# fs_soak.sh — readers + a writer + gc on one root for SOAK_SECONDS (default 8; tests/stress/
# runs 180). The writer saves step after step, alternately with `ckpt save` and through the
# mount (mkdir, cp -r, setfattr finalize), each step one of 4 known contents (step mod 4), and
# after each save `ckpt gc --keep-latest 3` deletes the old ones. Readers pick a random step
# among the last 5 the writer finished (some already deleted) and read it:
#   - SOAK_CAT (default 2) readers: `cat MNT/S/state/w.npy`, compared with cmp;
#   - one numpy reader: np.load of MNT/S/state/w.npy and MNT/S/state/b.npy, compared;
#   - one ckpt reader: `ckpt get ROOT/S/state/w -o -` compared byte for byte, and `ckpt cat`
#     of ROOT/S/state/b and MNT/S/state/w compared with the text of the known step.
# A read that succeeds must return the known bytes (0 wrong bytes); a read that fails is
# fine only if the step is gone (deleted by gc meanwhile: "vanished"). At the end every
# remaining step verifies. Prints reads, bytes read, vanished reads and failures.
. "$(dirname "$0")/fs_write_lib.sh"

SECS=${SOAK_SECONDS:-8}
NCAT=${SOAK_CAT:-2}
REF=$T/ref
$PY - "$T/src" <<'PYEOF'
import os, sys, numpy as np
for k in range(4):
    d = f"{sys.argv[1]}/{k}/state"
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(k)
    np.save(f"{d}/w.npy", rng.standard_normal(1_000_000).astype(np.float32))
    np.save(f"{d}/b.npy", np.arange(1000, dtype=np.int64) * (k + 1))
PYEOF
for k in 0 1 2 3; do
	"$CKPT" save "$REF" "$k" "$T/src/$k" >/dev/null
	mkdir -p "$T/cat/$k"
	"$CKPT" cat "$REF/$k/state/w" >"$T/cat/$k/w.cat"
	"$CKPT" cat "$REF/$k/state/b" >"$T/cat/$k/b.cat"
done
fs_mount
: >"$T/ready"
STOP=$T/stop
deadline=$(($(date +%s) + SECS))

writer() {
	local s=0
	while [ ! -e "$STOP" ]; do
		s=$((s + 1))
		if [ $((s % 2)) = 0 ]; then
			"$CKPT" save "$ROOT" "$s" "$T/src/$((s % 4))" >/dev/null || { echo "save $s failed"; return 1; }
			# Readers are given a step once the mount shows it (its rescan is not instant).
			wait_for t test -f "$MNT/$s/state/w.npy" || { echo "step $s never appeared on the mount"; return 1; }
		else
			t mkdir "$MNT/$s" && t cp -r "$T/src/$((s % 4))/state" "$MNT/$s/" &&
				t setfattr -n user.ckpt.finalize -v 1 "$MNT/$s" || { echo "mount save $s failed"; return 1; }
			wait_for test "$(xattr "$MNT/$s" user.ckpt.state)" = finalized ||
				{ echo "step $s not finalized through the mount"; return 1; }
		fi
		echo "$s" >>"$T/ready"
		"$CKPT" gc "$ROOT" --keep-latest 3 >/dev/null || { echo "gc after $s failed"; return 1; }
	done
	echo "writer: $s steps"
}

# pick: a random step among the last 5 finished (empty if none yet).
pick() {
	tail -n 5 "$T/ready" | shuf -n 1
}

# judge ID S STATUS WHAT: a failed read is fine if step S is gone; counts in $T/ID.*.
judge() {
	if [ "$3" = 0 ]; then
		echo 1 >>"$T/$1.ok"
	elif [ -d "$ROOT/$2" ]; then
		echo "reader $1: $4 of step $2 failed (status $3) while the step exists" >>"$T/$1.fail"
	else
		echo 1 >>"$T/$1.vanished"
	fi
}

# compare ID S GOT WANT: GOT must equal WANT; wrong bytes are counted and fail.
compare() {
	local n
	if ! cmp -s "$3" "$4"; then
		n=$(cmp -l "$3" "$4" 2>/dev/null | wc -l)
		echo "reader $1: step $2: $(basename "$4"): $n wrong bytes (sizes $(stat -c %s "$3") vs $(stat -c %s "$4"))" >>"$T/$1.fail"
		return 1
	fi
	stat -c %s "$3" >>"$T/$1.bytes"
}

# read_loop ID READ: READ ID S for a random finished step S, over and over until stopped.
read_loop() {
	local s
	while [ ! -e "$STOP" ]; do
		s=$(pick)
		[ -n "$s" ] || { sleep 0.05; continue; }
		"$2" "$1" "$s"
	done
}

# read_one ID S WANT WHAT CMD...: run CMD (a read of step S) into $T/ID.out, judge it, and
# compare what it returned with WANT.
read_one() {
	local id=$1 s=$2 want=$3 what=$4 st=0
	shift 4
	timeout 30 "$@" >"$T/$id.out" 2>/dev/null || st=$?
	judge "$id" "$s" $st "$what"
	[ $st != 0 ] || compare "$id" "$s" "$T/$id.out" "$want" || true
}

cat_read() {
	read_one "$1" "$2" "$T/src/$(($2 % 4))/state/w.npy" "cat MNT/$2/state/w.npy" \
		cat "$MNT/$2/state/w.npy"
}

ckpt_read() {
	local k=$(($2 % 4))
	read_one "$1" "$2" "$T/src/$k/state/w.npy" "ckpt get ROOT/$2/state/w" \
		"$CKPT" get "$ROOT/$2/state/w" -o -
	read_one "$1" "$2" "$T/cat/$k/b.cat" "ckpt cat ROOT/$2/state/b" "$CKPT" cat "$ROOT/$2/state/b"
	read_one "$1" "$2" "$T/cat/$k/w.cat" "ckpt cat MNT/$2/state/w" "$CKPT" cat "$MNT/$2/state/w"
}

numpy_reader() {
	timeout $((SECS + 120)) "$PY" - "$1" "$T" "$MNT" "$ROOT" "$STOP" <<'PYEOF'
import os, random, sys, numpy as np
ident, T, MNT, ROOT, STOP = sys.argv[1:]
want = {k: (np.load(f"{T}/src/{k}/state/w.npy"), np.load(f"{T}/src/{k}/state/b.npy")) for k in range(4)}
ok = vanished = nbytes = 0
fails = []
while not os.path.exists(STOP):
    with open(f"{T}/ready") as f:
        steps = f.read().split()[-5:]
    if not steps:
        continue
    s = int(random.choice(steps))
    try:
        w = np.load(f"{MNT}/{s}/state/w.npy")
        b = np.load(f"{MNT}/{s}/state/b.npy")
    except (OSError, ValueError) as e:
        if os.path.isdir(f"{ROOT}/{s}"):
            fails.append(f"reader {ident}: np.load of step {s} failed while it exists: {e}")
        else:
            vanished += 1
        continue
    ww, wb = want[s % 4]
    if w.dtype != ww.dtype or w.shape != ww.shape or b.shape != wb.shape:
        fails.append(f"reader {ident}: step {s}: dtype/shape differ")
        continue
    bad = int(np.count_nonzero(w.view(np.uint8) != ww.view(np.uint8))) + \
        int(np.count_nonzero(b.view(np.uint8) != wb.view(np.uint8)))
    if bad:
        fails.append(f"reader {ident}: step {s}: {bad} wrong bytes")
        continue
    ok += 1
    nbytes += w.nbytes + b.nbytes
with open(f"{T}/{ident}.ok", "w") as f:
    f.write("1\n" * ok)
with open(f"{T}/{ident}.bytes", "w") as f:
    f.write(f"{nbytes}\n")
with open(f"{T}/{ident}.vanished", "w") as f:
    f.write("1\n" * vanished)
if fails:
    with open(f"{T}/{ident}.fail", "w") as f:
        f.write("\n".join(fails) + "\n")
PYEOF
}

pids=()
writer >"$T/writer.log" 2>&1 &
wpid=$!
for r in $(seq "$NCAT"); do
	read_loop "cat$r" cat_read &
	pids+=($!)
done
read_loop ckpt ckpt_read &
pids+=($!)
numpy_reader numpy &
pids+=($!)
while [ "$(date +%s)" -lt "$deadline" ] && kill -0 $wpid 2>/dev/null; do
	sleep 1
done
touch "$STOP"
wst=0
wait $wpid || wst=$?
for p in "${pids[@]}"; do
	wait "$p" || fail "a reader exited with an error"
done
[ $wst = 0 ] || fail "writer: $(cat "$T/writer.log")"

sum() { { cat "$T"/*."$1" 2>/dev/null || true; } | awk '{ s += $1 } END { printf "%.0f", s }'; }
reads=$(sum ok) bytes=$(sum bytes) vanished=$(sum vanished)
nfail=$({ cat "$T"/*.fail 2>/dev/null || true; } | wc -l)
echo "$(cat "$T/writer.log"); readers: $NCAT cat, 1 numpy, 1 ckpt (get + cat)"
echo "soak: ${SECS}s, $reads reads ($reads trials), $bytes bytes read, $vanished reads of steps gc deleted meanwhile, $nfail failures"
[ "$nfail" = 0 ] || fail "$(head -n 20 "$T"/*.fail)"
[ "$reads" -gt 0 ] || fail "no read succeeded"
"$CKPT" verify "$ROOT" >/dev/null || fail "the steps left do not verify"
fs_umount
echo "fs_soak: 1 passed, 0 failed"
