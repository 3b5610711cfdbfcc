#!/bin/bash
# The step listing, ckpt.list (docs/format.md "Step listing"):
#  - finalize writes one for a step of every handler kind; an independent reader
#    (step_list.py, from the format page) parses it and finds it equal to the index;
#  - the CLI and the mount show the same step with and without it (ckpt tree, ckpt meta,
#    ckpt restore, ls -lR, sizes, the files' bytes);
#  - the mount lists a step from its listing alone: with garbage in ckpt.db, ls, stat and
#    ls -l of arrays work (their sizes are in the tree) and reading a value fails with
#    EIO, its reason in .ckptfs-errors;
#  - a listing copied from another step, a damaged one, a truncated one: refused with a
#    message naming the file and saying that removing it loses nothing; after rm, the
#    step reads as before; ckpt verify finds a listing whose metadata or tree differs
#    from the store.
. "$(dirname "$0")/handlers_lib.sh"
SL="$HERE/step_list.py"

tool save "$ROOT" 1 || fail "handlers_tool save"
tool save "$ROOT" 2 || fail "handlers_tool save"
[ -f "$ROOT/1/ckpt.list" ] || fail "finalize wrote no ckpt.list: $(ls "$ROOT/1")"
t "$PY" "$SL" check "$ROOT/1" >"$T/out" || fail "the independent reader refused ckpt.list"
grep -q "with trees" "$T/out" || fail "step_list.py: $(cat "$T/out")"
t "$CKPT" verify "$ROOT/1" >/dev/null || fail "verify of a listed step"
echo "ok - finalize writes ckpt.list; an independent reader finds it equal to the index"

# Step 3: step 1 without its listing. Same CLI output, same restore.
cp -a "$ROOT/1" "$ROOT/3"
rm "$ROOT/3/ckpt.list"
for s in 1 3; do
	t "$CKPT" tree "$ROOT/$s" | sed "s|$ROOT/$s|STEP|g" >"$T/tree.$s"
	t "$CKPT" meta "$ROOT/$s/state" >"$T/meta.$s"
	t "$CKPT" restore "$ROOT/$s" "$T/r$s" >/dev/null
done
cmp -s "$T/tree.1" "$T/tree.3" || fail "ckpt tree differs with the listing: $(diff "$T/tree.1" "$T/tree.3" | head)"
cmp -s "$T/meta.1" "$T/meta.3" || fail "ckpt meta differs with the listing"
diff -r "$T/r1" "$T/r3" >/dev/null || fail "ckpt restore differs with the listing"
echo "ok - the CLI shows the same step with and without its listing"

# Step 4: garbage index, intact listing. Step 5: step 2's listing beside step 1's index.
# Step 6: a flipped byte in the listing; step 7: a truncated one.
cp -a "$ROOT/1" "$ROOT/4"
head -c 8192 /dev/urandom >"$ROOT/4/ckpt.db"
cp -a "$ROOT/1" "$ROOT/5"
cp "$ROOT/2/ckpt.list" "$ROOT/5/ckpt.list"
cp -a "$ROOT/1" "$ROOT/6"
"$PY" - "$ROOT/6/ckpt.list" <<'PYEOF'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[len(b) // 2] ^= 0x20
open(p, "wb").write(b)
PYEOF
cp -a "$ROOT/1" "$ROOT/7"
truncate -s 40 "$ROOT/7/ckpt.list"

fs_mount
t ls -lR "$MNT/1" | sed "s|$MNT/1|STEP|; /^total/d" | awk '{ $6 = $7 = $8 = ""; print }' >"$T/ls.1"
t ls -lR "$MNT/3" | sed "s|$MNT/3|STEP|; /^total/d" | awk '{ $6 = $7 = $8 = ""; print }' >"$T/ls.3"
cmp -s "$T/ls.1" "$T/ls.3" || fail "ls -lR differs with the listing: $(diff "$T/ls.1" "$T/ls.3" | head)"
hnp view "$MNT/1" || fail "step 1 through the mount is not what was saved"
t cmp "$MNT/1/state/_METADATA" "$MNT/3/state/_METADATA" || fail "_METADATA differs"
echo "ok - the mount shows the same files with and without the listing"

# Listed from ckpt.list alone: step 4's index is garbage.
t ls "$MNT/4/state" >/dev/null || fail "ls of a listed step with a garbage index failed"
[ "$(t stat -c %s "$MNT/4/state/_METADATA")" = "$(t stat -c %s "$MNT/1/state/_METADATA")" ] ||
	fail "_METADATA size of step 4"
leaf=$(cd "$MNT/1" && t find state -name '*.npy' | head -n 1)
[ -n "$leaf" ] || fail "no leaf in step 1"
# an array's size is in its tree: ls -l of arrays needs no index (docs/fs.md "Node ids")
[ "$(t stat -c %s "$MNT/4/state/params/w.npy")" = "$(t stat -c %s "$MNT/1/state/params/w.npy")" ] ||
	fail "size of an array of step 4"
t ls -l "$MNT/4/state/params" >/dev/null || fail "ls -l of arrays of step 4"
must_fail "Input/output error" cat "$MNT/4/state/step"
must_fail "Input/output error" cat "$MNT/4/$leaf"
t grep -q "4/ckpt.db" "$MNT/.ckptfs-errors" ||
	fail ".ckptfs-errors does not name step 4's index: $(t tail -n 5 "$MNT/.ckptfs-errors")"
must_fail "Input/output error" cat "$MNT/4/state/_METADATA"
echo "ok - the mount lists from ckpt.list alone; reading a value checks the index (EIO)"

must_fail "Input/output error" cat "$MNT/5/$leaf"
t grep -q "5/ckpt.list does not describe .*5/ckpt.db" "$MNT/.ckptfs-errors" ||
	fail "no 'does not describe' in .ckptfs-errors: $(t tail -n 5 "$MNT/.ckptfs-errors")"
must_fail "Input/output error" ls "$MNT/6"
t grep -q "6/ckpt.list: damaged step listing: CRC32C mismatch" "$MNT/.ckptfs-errors" ||
	fail "no CRC message for step 6: $(t tail -n 5 "$MNT/.ckptfs-errors")"
must_fail "Input/output error" ls "$MNT/7"
fs_umount
echo "ok - the mount refuses a foreign, a damaged and a truncated listing, with the reason"

must_fail "5/ckpt.list does not describe" "$CKPT" tree "$ROOT/5"
grep -q "removing ckpt.list makes the step readable" "$T/must.err" || fail "no remedy: $(cat "$T/must.err")"
must_fail "damaged step listing: CRC32C mismatch" "$CKPT" tree "$ROOT/6"
grep -q "removing ckpt.list makes it readable" "$T/must.err" || fail "no remedy: $(cat "$T/must.err")"
must_fail "damaged step listing: the header says" "$CKPT" verify "$ROOT/7"
for s in 5 6 7; do
	rm "$ROOT/$s/ckpt.list"
	t "$CKPT" verify "$ROOT/$s" >/dev/null || fail "step $s without its listing does not verify"
	t "$CKPT" restore "$ROOT/$s" "$T/x$s" >/dev/null
	diff -r "$T/r1" "$T/x$s" >/dev/null || fail "step $s without its listing restores differently"
done
echo "ok - the CLI refuses them naming the file and the remedy; after rm the steps read as before"

# A listing that passes its own checks but disagrees with the store: ckpt verify finds it.
cp -a "$ROOT/1" "$ROOT/8"
t "$PY" "$SL" edit-meta "$ROOT/8"
t "$CKPT" tree "$ROOT/8" >/dev/null || fail "an edited, re-checksummed listing does not open"
st=0
t "$CKPT" verify "$ROOT/8" >"$T/out" 2>&1 || st=$?
[ "$st" -eq 1 ] || fail "verify of step 8: status $st: $(cat "$T/out")"
grep -q "BAD .*8: .*8/ckpt.list: its _CHECKPOINT_METADATA differs" "$T/out" || fail "verify: $(cat "$T/out")"
# Step 9: the listing of a step with another tree, stamped with step 9's index checksum.
mkdir -p "$T/a/state" "$T/b/state"
"$PY" -c "
import numpy as np
np.save('$T/a/state/w.npy', np.zeros(3, np.float32))
np.save('$T/b/state/w.npy', np.zeros(4, np.float32))"
t "$CKPT" save "$ROOT" 9 "$T/a" >/dev/null
t "$CKPT" save "$ROOT" 10 "$T/b" >/dev/null
cp "$ROOT/10/ckpt.list" "$ROOT/9/ckpt.list"
t "$PY" "$SL" restamp "$ROOT/9" "$ROOT/9"
st=0
t "$CKPT" verify "$ROOT/9" >"$T/out" 2>&1 || st=$?
[ "$st" -eq 1 ] || fail "verify of step 9: status $st: $(cat "$T/out")"
grep -q "9/ckpt.list: the tree of item state differs from its _METADATA" "$T/out" ||
	fail "verify: $(cat "$T/out")"
echo "ok - ckpt verify finds a listing whose metadata or tree differs from the store"
