#!/bin/bash
# hostile_steps.sh — a step that lies about what its files are never hangs or wanders:
# a data file that is a FIFO, d/ or ckpt.db that is a symlink (to another step, to /dev),
# ckpt.db that is a FIFO, ckpt.list that is a FIFO or a symlink; an Orbax step whose OCDBT data files or _METADATA are FIFOs. `ckpt tree/verify/restore/cat` fail that step (or leaf) with a
# message within seconds, and through a mount `ls -lR` and `cat` of them fail with EIO
# (steps listed from an intact ckpt.list list, and fail every read) while the daemon keeps
# serving the good step. Also: `ckpt ls` of a root holding only an
# empty step directory (a UBSan report once: qsort(NULL, 0)).
#
# Hostile steps are made "unchecked" (their index checksum cleared, as an attacker would,
# docs/format.md "Index checksum"), so what stops them is the open path, not the checksum.
. "$(dirname "$0")/fslib.sh"
CKPT="$B/ckpt"
san='AddressSanitizer|LeakSanitizer|runtime error:|UndefinedBehaviorSanitizer'

# tt STATUS CMD...: run CMD under a 20 s timeout; exit status STATUS (never a hang,
# a signal or a sanitizer report), stderr in $T/err.
tt() {
	local want=$1 st=0
	shift
	timeout 20 "$@" >"$T/out" 2>"$T/err" || st=$?
	[ "$st" -ne 124 ] || fail "hung (killed after 20 s): $*"
	grep -qE "$san" "$T/err" && fail "sanitizer report from $*: $(head -c 2000 "$T/err")"
	[ "$st" -lt 128 ] || fail "killed by signal $((st - 128)): $*"
	[ "$st" -eq "$want" ] || fail "exit status $st (want $want): $* :: $(head -c 500 "$T/err")"
	return 0
}
err_has() { grep -qiE -- "$1" "$T/err" || fail "stderr lacks /$1/: $(head -c 1000 "$T/err")"; }

mkdir -p "$T/src/state"
$PY - "$T/src/state" <<'PYEOF'
import sys, numpy as np
d = sys.argv[1]
np.save(f"{d}/big.npy", np.random.default_rng(3).standard_normal(300_000).astype(np.float32))
np.save(f"{d}/small.npy", np.arange(10, dtype=np.int64))
PYEOF
for s in 1 2 3 4 5 6 9 10; do
	tt 0 "$CKPT" save "$ROOT" $s "$T/src" --no-compress
done
unseal() { $PY -c "
import sqlite3, sys
db = sqlite3.connect(sys.argv[1]); db.execute('PRAGMA application_id = 0'); db.commit(); db.close()
" "$1"; }
datafile() { $PY -c "
import sqlite3, sys
db = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True)
print(db.execute('SELECT name FROM files').fetchone()[0])" "$1"; }

# 2: its data file is a FIFO.
name=$(datafile "$ROOT/2/ckpt.db")
rm "$ROOT/2/d/$name" && mkfifo "$ROOT/2/d/$name"
# 3: d/ is a symlink to another step's d/ (plausible bytes from outside the step).
name3=$(datafile "$ROOT/3/ckpt.db")
rm -rf "$ROOT/3/d" && mkdir "$T/elsewhere" && cp "$ROOT/1/d/"* "$T/elsewhere/$name3" &&
	ln -s "$T/elsewhere" "$ROOT/3/d"
# 4: d/ -> /dev and the files table names "zero" (would read device bytes forever).
unseal "$ROOT/4/ckpt.db"
$PY -c "
import sqlite3, sys
db = sqlite3.connect(sys.argv[1]); db.execute(\"UPDATE files SET name = 'zero'\")
db.execute('PRAGMA application_id = 0'); db.commit(); db.close()" "$ROOT/4/ckpt.db"
rm -rf "$ROOT/4/d" && ln -s /dev "$ROOT/4/d"
# 5: ckpt.db is a symlink to step 1's index.
rm "$ROOT/5/ckpt.db" && ln -s "$ROOT/1/ckpt.db" "$ROOT/5/ckpt.db"
# 6: ckpt.db is a FIFO.
rm "$ROOT/6/ckpt.db" && mkfifo "$ROOT/6/ckpt.db"
# 9: its listing (ckpt.list) is a FIFO; 10: a symlink to step 1's listing.
rm "$ROOT/9/ckpt.list" && mkfifo "$ROOT/9/ckpt.list"
rm "$ROOT/10/ckpt.list" && ln -s "$ROOT/1/ckpt.list" "$ROOT/10/ckpt.list"

# 20, 21: an Orbax step (Orbax's own sample) whose OCDBT data files, or whose
# _METADATA, are FIFOs.
OXS="$HERE/../data/orbax/google-orbax/checkpoint/orbax/checkpoint/experimental/v1/_src/testing/compatibility/checkpoints/v1_checkpoints/composite_checkpoint/checkpoint_metadata_present/pytree_checkpointable_has_metadata"
cp -r "$OXS" "$ROOT/20" && cp -r "$OXS" "$ROOT/21"
for f in "$ROOT"/20/state/d/* "$ROOT"/20/state/ocdbt.process_0/d/*; do rm "$f" && mkfifo "$f"; done
rm "$ROOT/21/state/_METADATA" && mkfifo "$ROOT/21/state/_METADATA"
tt 1 "$CKPT" cat "$ROOT/20/state/a"
tt 1 "$CKPT" verify "$ROOT/20"
tt 1 "$CKPT" restore "$ROOT/20" "$T/out20"
st=0; timeout 20 "$CKPT" tree "$ROOT/21" >/dev/null 2>&1 || st=$?
[ "$st" -ne 124 ] || fail "tree of an Orbax step with a FIFO _METADATA hung"
tt 1 "$CKPT" verify "$ROOT/21"

tt 0 "$CKPT" verify "$ROOT/1"
# A FIFO data file fails the leaves it holds; the step's other leaves read.
tt 0 "$CKPT" cat "$ROOT/2/state/small"			# inline: needs no data file
tt 0 "$CKPT" tree "$ROOT/2"
tt 1 "$CKPT" cat "$ROOT/2/state/big"; err_has 'd/.*refused: a FIFO, not a regular file'
tt 1 "$CKPT" verify "$ROOT/2"; grep -q 'BAD .*state/big' "$T/out" || fail "verify: $(cat "$T/out")"
grep -q 'state/small' "$T/out" && fail "verify blamed state/small"
tt 1 "$CKPT" restore "$ROOT/2" "$T/out2"; err_has 'FIFO'
# A symlinked d/ or ckpt.db, or a FIFO ckpt.db, fails the step as a whole.
for s in 3 4; do
	for cmd in "cat $ROOT/$s/state/small" "cat $ROOT/$s/state/big" "verify $ROOT/$s" \
		"restore $ROOT/$s $T/out$s" "tree $ROOT/$s"; do
		# shellcheck disable=SC2086
		tt 1 "$CKPT" $cmd; err_has "$s/d: refused: a symbolic link, not a directory"
	done
done
tt 1 "$CKPT" verify "$ROOT/5"; err_has 'ckpt.db.*refused: a symbolic link'
tt 1 "$CKPT" cat "$ROOT/5/state/small"; err_has 'symbolic link'
tt 1 "$CKPT" verify "$ROOT/6"; err_has 'ckpt.db.*refused: a FIFO|6. is not in a checkpoint step'
tt 1 "$CKPT" tree "$ROOT/6"; err_has 'FIFO|not in a checkpoint step'
tt 1 "$CKPT" tree "$ROOT/9"; err_has '9/ckpt.list.*refused: a FIFO'
tt 1 "$CKPT" cat "$ROOT/10/state/small"; err_has '10/ckpt.list.*refused: a symbolic link'
tt 1 "$CKPT" verify "$ROOT"   # the whole root: the bad steps are named, the good ones pass
echo "ok 1 - ckpt: FIFO and symlinked data files, d/ and ckpt.db fail their step, never hang"

# The mount: every hostile step fails with EIO, the good one reads, the daemon lives on.
fs_mount
timeout 30 ls -lR "$MNT" >/dev/null 2>"$T/err" && fail "ls -lR of hostile steps succeeded"
st=0; timeout 30 ls -lR "$MNT" >/dev/null 2>&1 || st=$?
[ "$st" -ne 124 ] || fail "ls -lR through the mount hung"
st=0; timeout 20 cat "$MNT/2/state/big.npy" >/dev/null 2>"$T/err" || st=$?
[ "$st" -ne 124 ] || fail "cat of a leaf in a FIFO hung"
[ "$st" -ne 0 ] || fail "cat of a leaf in a FIFO succeeded"
grep -q "Input/output error" "$T/err" || fail "FIFO leaf: not EIO: $(cat "$T/err")"
t cmp "$MNT/2/state/small.npy" "$T/src/state/small.npy" || fail "step 2's inline leaf"
for s in 3 4 5 6 9 10; do
	st=0; timeout 20 ls "$MNT/$s/state" >/dev/null 2>"$T/err" || st=$?
	[ "$st" -ne 124 ] || fail "ls of step $s hung"
	case $s in
	3 | 4 | 5) # listed from ckpt.list (the index is not needed to list); reading fails
		[ "$st" -eq 0 ] || fail "ls of listed step $s: $(cat "$T/err")"
		st=0; timeout 20 cat "$MNT/$s/state/small.npy" >/dev/null 2>"$T/err" || st=$?
		[ "$st" -ne 124 ] || fail "cat in step $s hung"
		[ "$st" -ne 0 ] || fail "cat in step $s succeeded" ;;
	*) [ "$st" -ne 0 ] || fail "ls of step $s succeeded" ;;
	esac
	# a FIFO ckpt.db does not make a step at all (ENOENT); the others are EIO
	grep -qE "Input/output error|No such file" "$T/err" || fail "step $s: $(cat "$T/err")"
done
t cmp "$MNT/1/state/big.npy" "$T/src/state/big.npy" || fail "the good step does not read"
st=0; timeout 20 cat "$MNT/20/state/a.npy" >/dev/null 2>&1 || st=$?
[ "$st" -ne 124 ] || fail "cat of an Orbax leaf in a FIFO hung"
[ "$st" -ne 0 ] || fail "cat of an Orbax leaf in a FIFO succeeded"
mountpoint -q "$MNT" || fail "the daemon died"
fs_umount
echo "ok 2 - mount: hostile steps give EIO, the good step reads, the daemon keeps serving"

# A FIFO among the files of a pending step or of a directory to save: an error, no hang.
mkdir -p "$ROOT/7.ckpt-tmp-hostile/files/state" "$T/src2/state"
cp "$T/src/state/small.npy" "$ROOT/7.ckpt-tmp-hostile/files/state/"
mkfifo "$ROOT/7.ckpt-tmp-hostile/files/state/f.npy" "$T/src2/state/f.npy"
tt 1 "$CKPT" finalize "$ROOT/7"; err_has 'f.npy'
[ -e "$ROOT/7" ] && fail "a pending step with a FIFO was finalized"
tt 1 "$CKPT" save "$ROOT" 8 "$T/src2"; err_has 'f.npy'
[ -e "$ROOT/8" ] && fail "a directory with a FIFO was saved"
echo "ok 3 - a FIFO in a pending step or a saved directory fails finalize and save, no hang"

# ckpt ls of a root whose only entry is an empty step directory, and of an empty root.
mkdir -p "$T/r1/5" "$T/r2"
tt 0 "$CKPT" ls "$T/r1"
tt 0 "$CKPT" ls "$T/r2"
echo "ok 4 - ckpt ls of an empty root and of one holding an empty step directory"
echo "hostile_steps: 4 passed, 0 failed"
