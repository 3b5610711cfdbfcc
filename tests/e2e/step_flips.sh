#!/bin/bash
# step_flips.sh — one flipped bit in every byte class of a step, read three ways: `ckpt
# verify`, `ckpt restore` (compared with a clean restore) and through the mount (every file
# compared with the clean step's). STEP_FLIPS flips (default 40; tests/stress/ runs 1200),
# round robin over the classes, each at a random byte and bit of its class:
#   index      any byte of ckpt.db (the index checksum covers the whole file)
#   zstd       a byte inside a ZSTD chunk of a data file (the chunk's CRC-32C)
#   raw        a byte inside a RAW chunk of a data file, written by a save (chunk CRC)
#   adopted    a byte inside a RAW chunk of an adopted data file (a .npy a finalize linked
#              into d/: its payload)
#   unref      a byte of a data file referenced by no chunk (the adopted .npy's header):
#              provably harmless, no reader reads it (docs/format.md invariant 6)
#   pending    a byte of a pending step's files/ (.npy header or payload, _METADATA,
#              _CHECKPOINT_METADATA, a scalar): these are the step's input, not stored data,
#              so nothing can check them; `ckpt finalize` must either refuse (with a
#              message, the step left pending) or store exactly what numpy reads from the
#              files, and the step verifies.
# Classes index/zstd/raw/adopted must be detected: verify fails, restore fails, and no read
# through the mount returns other bytes than the clean step's (a read that fails is EIO).
# unref must be harmless: everything succeeds with the clean bytes. 0 silent changes: no path
# ever succeeds with changed bytes. Prints flips per class, how each was caught, failures.
. "$(dirname "$0")/fs_write_lib.sh"

NFLIP=${STEP_FLIPS:-40}
SRC=$T/src
$PY - "$SRC" <<'PYEOF'
import json, os, sys, numpy as np
s = f"{sys.argv[1]}/state"
os.makedirs(f"{s}/layer")
np.save(f"{s}/z.npy", np.arange(200_000, dtype=np.int64))  # compresses: ZSTD chunks
np.save(f"{s}/r.npy", np.random.default_rng(3).standard_normal(100_000).astype(np.float32))  # RAW
np.save(f"{s}/layer/b.npy", np.arange(12, dtype=np.int16))  # inline in the index
open(f"{s}/step", "w").write("9")
json.dump({"custom_metadata": {"run": "flips"}}, open(f"{sys.argv[1]}/_CHECKPOINT_METADATA", "w"))
PYEOF
"$CKPT" save "$ROOT" 1 "$SRC" >/dev/null
# Step 2: finalized from a pending step; its big .npy (>= 4 chunks) is adopted as a data file.
P=$T/pend
mkdir -p "$P/files/state"
$PY - "$P/files" <<'PYEOF'
import json, sys, numpy as np
np.save(f"{sys.argv[1]}/state/big.npy", np.random.default_rng(4).standard_normal(300_000).astype(np.float32))
np.save(f"{sys.argv[1]}/state/small.npy", np.arange(5000, dtype=np.int32))
open(f"{sys.argv[1]}/state/lr", "w").write("0.5")
json.dump({"custom_metadata": {"who": "flips"}}, open(f"{sys.argv[1]}/_CHECKPOINT_METADATA", "w"))
PYEOF
cp -a "$P" "$ROOT/2.ckpt-tmp-flips"
"$CKPT" finalize "$ROOT/2" >/dev/null
for s in 1 2; do
	"$CKPT" verify "$ROOT/$s" >/dev/null || fail "clean step $s does not verify"
	"$CKPT" restore "$ROOT/$s" "$T/clean$s" >/dev/null
done
cp "$T/clean2/state/_METADATA" "$P/files/state/" # pending flips reach a _METADATA too

# Found by this suite: a flipped bit that breaks the UTF-8 of a key of _CHECKPOINT_METADATA
# ("custom_met\xe1data") was read by cJSON as another key, so the step silently lost its
# custom metadata. Such a file is not JSON (Python's json refuses it): finalize, save and a
# close through the mount refuse it, naming the file.
badcm() { printf '{"custom_met\xe1data": {"who": "flips"}}' >"$1"; }
cp -a "$P" "$ROOT/3.ckpt-tmp-utf8"
badcm "$ROOT/3.ckpt-tmp-utf8/files/_CHECKPOINT_METADATA"
! "$CKPT" finalize "$ROOT/3" >/dev/null 2>"$T/err" || fail "finalize accepted a _CHECKPOINT_METADATA that is not UTF-8"
grep -q '_CHECKPOINT_METADATA.*not UTF-8' "$T/err" || fail "finalize's message: $(cat "$T/err")"
[ -d "$ROOT/3.ckpt-tmp-utf8/files" ] || fail "a refused finalize did not leave step 3 pending"
rm -rf "$ROOT/3.ckpt-tmp-utf8"
cp -a "$P/files" "$T/utf8" && badcm "$T/utf8/_CHECKPOINT_METADATA"
! "$CKPT" save "$ROOT" 3 "$T/utf8" >/dev/null 2>"$T/err" || fail "ckpt save accepted a _CHECKPOINT_METADATA that is not UTF-8"
grep -q '_CHECKPOINT_METADATA' "$T/err" || fail "ckpt save's message: $(cat "$T/err")"
[ ! -e "$ROOT/3" ] || fail "a refused save left step 3"

# The byte classes of the two clean steps: "class step file start end" per range.
$PY - "$ROOT" >"$T/ranges" <<'PYEOF'
import os, sqlite3, sys
root = sys.argv[1]
for step in (1, 2):
    d = f"{root}/{step}"
    print("index", step, "ckpt.db", 0, os.path.getsize(f"{d}/ckpt.db"))
    db = sqlite3.connect(f"file:{d}/ckpt.db?immutable=1", uri=True)
    files = dict(db.execute("SELECT id, name FROM files"))
    for fid, name in files.items():
        size = os.path.getsize(f"{d}/d/{name}")
        rows = sorted(db.execute("SELECT offset, stored_len, codec FROM chunks WHERE file_id = ?", (fid,)))
        pos = 0
        for off, n, codec in rows:
            if off > pos:
                print("unref", step, f"d/{name}", pos, off)
            cls = "zstd" if codec == 1 else ("adopted" if step == 2 else "raw")
            print(cls, step, f"d/{name}", off, off + n)
            pos = max(pos, off + n)
        if pos < size:
            print("unref", step, f"d/{name}", pos, size)
PYEOF
CLASSES="index zstd raw adopted unref pending"
for c in $CLASSES; do
	[ "$c" = pending ] || grep -q "^$c " "$T/ranges" || fail "no byte of class $c in the test steps: $(cat "$T/ranges")"
done

# flip_file FILE START END: flip one random bit of one random byte in [START, END) of FILE;
# prints the offset.
flip_file() {
	$PY - "$@" <<'PYEOF'
import random, sys
path, start, end = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
off = random.randrange(start, end)
with open(path, "r+b") as f:
    f.seek(off)
    b = f.read(1)[0]
    f.seek(off)
    f.write(bytes([b ^ (1 << random.randrange(8))]))
print(off)
PYEOF
}

declare -A n_flips n_verify n_restore n_mount n_harmless n_refused n_recorded
for c in $CLASSES; do
	n_flips[$c]=0 n_verify[$c]=0 n_restore[$c]=0 n_mount[$c]=0 n_harmless[$c]=0 n_refused[$c]=0 n_recorded[$c]=0
done
silent=0

# mount_read K SRCSTEP: compare every file of MNT/SRCSTEP with MNT/K; prints "same",
# "error" (some read failed, the rest equal) or "changed FILE" (a read succeeded with other
# bytes: silent).
mount_read() {
	local f st res=same
	while read -r f; do
		st=0
		case $f in
		*.safetensors) # names its step in the header: compare all but that
			if t cat "$MNT/$1/$f" >"$T/st" 2>/dev/null; then
				st_same "$T/st" "$T/clean$2.$(basename "$f")" || st=$?
			else
				st=2
			fi ;;
		*) t cmp -s "$MNT/$2/$f" "$MNT/$1/$f" 2>/dev/null || st=$? ;;
		esac
		case $st in
		0) ;;
		1) echo "changed $f"; return ;;
		*) res=error ;;
		esac
	done <"$T/files$2"
	echo $res
}

# st_same A B: two safetensors files equal but for the step number in the header (0), or
# not (1).
st_same() {
	$PY - "$1" "$2" <<'PYEOF'
import json, struct, sys
def parts(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    h.get("__metadata__", {}).pop("ckpt.step", None)
    return h, b[8 + n:]
sys.exit(0 if parts(sys.argv[1]) == parts(sys.argv[2]) else 1)
PYEOF
}

fs_mount
t mkdir "$MNT/4"
badcm "$T/badcm"
! t cp "$T/badcm" "$MNT/4/_CHECKPOINT_METADATA" 2>/dev/null ||
	fail "the mount accepted a _CHECKPOINT_METADATA that is not UTF-8"
absent "$MNT/4/_CHECKPOINT_METADATA" || fail "the refused _CHECKPOINT_METADATA stayed"
t rmdir "$MNT/4" 2>/dev/null || true
for s in 1 2; do
	t find "$MNT/$s" -type f -printf '%P\n' | sort >"$T/files$s"
	for f in $(grep '\.safetensors$' "$T/files$s"); do
		t cat "$MNT/$s/$f" >"$T/clean$s.$(basename "$f")"
	done
done

k=1000
i=0
while [ $i -lt "$NFLIP" ]; do
	# A batch: up to 12 flipped copies renamed into ROOT at once, then read.
	batch=()
	for _ in $(seq 12); do
		[ $i -lt "$NFLIP" ] || break
		c=$(echo $CLASSES | cut -d' ' -f$((i % 6 + 1)))
		i=$((i + 1)) k=$((k + 1))
		if [ "$c" = pending ]; then
			batch+=("$c $k - - -")
			continue
		fi
		read -r _ s file start end < <(grep "^$c " "$T/ranges" | shuf -n 1)
		cp -a "$ROOT/$s" "$T/stage"
		off=$(flip_file "$T/stage/$file" "$start" "$end")
		mv "$T/stage" "$ROOT/$k"
		batch+=("$c $k $s $file $off")
	done
	last=$(for b in "${batch[@]}"; do echo "$b"; done | awk '$1 != "pending" { k = $2 } END { print k }')
	[ -z "$last" ] || wait_for t test -e "$MNT/$last" || fail "step $last did not appear on the mount"
	for b in "${batch[@]}"; do
		read -r c k s file off <<<"$b"
		n_flips[$c]=$((${n_flips[$c]} + 1))
		if [ "$c" = pending ]; then
			# A flip in a pending step's input files, then ckpt finalize.
			pf=$(find "$P/files" -type f -printf '%P\n' | shuf -n 1)
			rm -rf "$T/pstage" && cp -a "$P" "$T/pstage"
			off=$(flip_file "$T/pstage/files/$pf" 0 "$(stat -c %s "$T/pstage/files/$pf")")
			rm -rf "$T/pflip" && cp -a "$T/pstage/files" "$T/pflip"
			mv "$T/pstage" "$T/proot.ckpt-tmp" 2>/dev/null || true
			rm -rf "$T/proot" && mkdir "$T/proot" && mv "$T/proot.ckpt-tmp" "$T/proot/$k.ckpt-tmp-flip"
			st=0
			"$CKPT" finalize "$T/proot/$k" >"$T/out" 2>"$T/err" || st=$?
			if [ $st != 0 ]; then
				[ $st = 1 ] && [ -s "$T/err" ] || fail "pending flip $pf@$off: finalize status $st without a message"
				[ -d "$T/proot/$k.ckpt-tmp-flip/files" ] || fail "pending flip $pf@$off: a refused finalize did not leave the step pending"
				n_refused[$c]=$((${n_refused[$c]} + 1))
				continue
			fi
			"$CKPT" verify "$T/proot/$k" >/dev/null 2>&1 || fail "pending flip $pf@$off: the finalized step does not verify"
			rm -rf "$T/pr" && "$CKPT" restore "$T/proot/$k" "$T/pr" >/dev/null 2>&1 ||
				fail "pending flip $pf@$off: the finalized step does not restore"
			# What numpy reads from the flipped files is what the step holds.
			$PY - "$T/pflip" "$T/pr" "$pf" <<'PYEOF' >"$T/pcmp" 2>&1 || { silent=$((silent + 1)); fail "pending flip $pf@$off: $(cat "$T/pcmp")"; }
import json, os, sys, numpy as np
flipped, restored, changed = sys.argv[1:]
for dirpath, _, names in os.walk(flipped):
    for n in names:
        rel = os.path.relpath(os.path.join(dirpath, n), flipped)
        a, b = os.path.join(flipped, rel), os.path.join(restored, rel)
        if rel.endswith(".npy"):
            x, y = np.load(a), np.load(b)
            assert x.dtype == y.dtype and x.shape == y.shape, f"{rel}: {x.dtype}{x.shape} stored as {y.dtype}{y.shape}"
            assert x.tobytes() == y.tobytes(), f"{rel}: values differ"
        elif n == "_CHECKPOINT_METADATA":
            x, y = json.load(open(a)), json.load(open(b))
            assert x.get("custom_metadata") in (y.get("custom_metadata"), None), f"custom_metadata {x} stored as {y}"
        elif n != "_METADATA":  # its keys are byte strings (ckpt/tree.h): hints files override
            x, y = open(a, "rb").read(), open(b, "rb").read()
            if x != y:
                assert float(x) == float(y), f"{rel}: {x!r} stored as {y!r}"
PYEOF
			n_recorded[$c]=$((${n_recorded[$c]} + 1))
			continue
		fi
		vst=0 rst=0
		"$CKPT" verify "$ROOT/$k" >/dev/null 2>&1 || vst=$?
		rm -rf "$T/r"
		"$CKPT" restore "$ROOT/$k" "$T/r" >/dev/null 2>&1 || rst=$?
		if [ $rst = 0 ] && ! diff -r "$T/r" "$T/clean$s" >/dev/null; then
			silent=$((silent + 1))
			fail "$c flip $s/$file@$off: ckpt restore succeeded with changed bytes"
		fi
		m=$(mount_read "$k" "$s")
		case $m in changed*)
			silent=$((silent + 1))
			fail "$c flip $s/$file@$off: a read through the mount returned changed bytes (${m#changed })" ;;
		esac
		[ $vst = 0 ] || n_verify[$c]=$((${n_verify[$c]} + 1))
		[ $rst = 0 ] || n_restore[$c]=$((${n_restore[$c]} + 1))
		[ "$m" = same ] || n_mount[$c]=$((${n_mount[$c]} + 1))
		if [ "$c" = unref ]; then
			[ $vst = 0 ] && [ $rst = 0 ] && [ "$m" = same ] ||
				fail "unref flip $s/$file@$off: a byte no chunk references changed a result (verify $vst, restore $rst, mount $m)"
			n_harmless[$c]=$((${n_harmless[$c]} + 1))
		else
			[ $vst != 0 ] && [ $rst != 0 ] ||
				fail "$c flip $s/$file@$off: not detected (verify $vst, restore $rst, mount $m)"
		fi
		rm -rf "${ROOT:?}/$k"
	done
done
fs_umount
echo "class     flips  verify-failed  restore-failed  mount-EIO  harmless  finalize-refused  finalize-recorded"
for c in $CLASSES; do
	printf '%-9s %5d  %13d  %14d  %9d  %8d  %16d  %17d\n' "$c" "${n_flips[$c]}" "${n_verify[$c]}" \
		"${n_restore[$c]}" "${n_mount[$c]}" "${n_harmless[$c]}" "${n_refused[$c]}" "${n_recorded[$c]}"
done
echo "step flips: $NFLIP flips over $(echo $CLASSES | wc -w) byte classes, $silent silent, 0 failures"
echo "step_flips: 1 passed, 0 failed"
