#!/bin/bash
# ckptfs write side, cases found in review (each failed before its fix):
#  - a leaf removed (rm, or replaced by mv) while an overwrite of it is being written
#    stays removed when the writer closes (the shadow is not put back);
#  - writes through a handle whose overwrite was already put in place (a shell
#    redirection shared by two commands) are checked again at close;
#  - rename checks the content under the new name (text to *.npy or _METADATA, a copied
#    array without .npy), so finalize cannot fail on it later;
#  - what finalize cannot read is refused at close or mkdir: a text leaf over 256 MiB (a
#    3 GiB sparse file), directories deeper than 128 levels in an item;
#  - cp of a leaf to _CHECKPOINT_METADATA copies its bytes (a clone stub there is no JSON);
#  - copy_file_range out of a handle overwriting a clone stub copies the handle's new
#    bytes, not the stub's source;
#  - a finalize that fails after its rename (removing files/ fails) still ends the pending
#    step: a shell sitting in it cannot write into the finalized step's data files.
. "$(dirname "$0")/fs_write_lib.sh"

np arrays "$T/s100/state"
mkdir "$T/s100/notes"
echo '{"custom_metadata": {"from": "a leaf"}}' >"$T/s100/notes/json"
"$CKPT" save "$ROOT" 100 "$T/s100" >/dev/null
A=$T/s100/state/f32.npy
B8=$T/s100/state/i8.npy

fs_mount
t mkdir -p "$MNT/300/state"
S=$MNT/300/state
t cp "$A" "$S/a.npy"
t cp "$A" "$S/b.npy"
t cp "$B8" "$S/c.npy"

# 1. Removed or replaced while an overwrite is written: the writer's close puts nothing back.
t "$PY" - "$S" "$B8" <<'EOF'
import os, sys
d, src = sys.argv[1], open(sys.argv[2], "rb").read()
fd = os.open(d + "/a.npy", os.O_WRONLY | os.O_TRUNC)  # overwrite: a shadow file
os.write(fd, src)
os.unlink(d + "/a.npy")
os.close(fd)
assert not os.path.exists(d + "/a.npy"), "a.npy came back after rm"
want = open(d + "/c.npy", "rb").read()
fd = os.open(d + "/b.npy", os.O_WRONLY | os.O_TRUNC)
os.write(fd, src[:100])
os.rename(d + "/c.npy", d + "/b.npy")
os.close(fd)
assert open(d + "/b.npy", "rb").read() == want, "mv c.npy b.npy was undone by b.npy's writer"
EOF
t cp "$A" "$S/a.npy"
t cp "$A" "$S/c.npy"

# 2. Two commands writing through one redirection over an existing leaf: the second
#    breaks the .npy the first completed; the close fails and no broken file stays.
st=0
# shellcheck disable=SC2016
t bash -c '{ cat "$1"; cat "$1"; } >"$2"' _ "$A" "$S/a.npy" 2>/dev/null || st=$?
[ "$st" -ne 0 ] || fail "two .npy files concatenated over a.npy were accepted"
if [ -e "$S/a.npy" ]; then
	t cmp "$A" "$S/a.npy" || fail "a.npy is neither the old nor a valid leaf"
fi
t cp "$A" "$S/a.npy"

# 3. Renames are checked under the new name.
echo_to "$S/txt" hello
must_fail "mv:" mv "$S/txt" "$S/txt.npy"
must_fail "mv:" mv "$S/txt" "$S/_METADATA"
t test -f "$S/txt" || fail "txt is gone after a refused mv"
t mkdir "$MNT/300/copy"
t cp "$MNT/100/state/f32.npy" "$MNT/300/copy/f32.npy" # a clone stub
[ -k "$(tmp_of 300)/files/copy/f32.npy" ] || fail "cp of a finalized leaf made no clone stub"
must_fail "mv:" mv "$MNT/300/copy/f32.npy" "$MNT/300/copy/f32"
t mv "$MNT/300/copy/f32.npy" "$MNT/300/copy/g.npy"
t mv "$S/txt" "$S/note"
grep -q "rename to state/txt.npy" "$T/ckptfs.log" || fail "the daemon did not log the refused mv"

# 4. What finalize cannot read is refused where the writer sees it.
must_fail "truncate:" truncate -s 3G "$S/sparse"
absent "$S/sparse" || fail "a 3 GiB text leaf stayed in the step"
deep=$S
for _ in $(seq 128); do deep=$deep/d; done
must_fail "mkdir:" mkdir -p "$deep/x"
t rm -r "$S/d"

# 5. A leaf copied to _CHECKPOINT_METADATA: its bytes, read as the step's metadata.
t cp "$MNT/100/notes/json" "$MNT/300/_CHECKPOINT_METADATA"
[ "$(xattr "$MNT/300" user.ckpt.custom_metadata)" = '{"from":"a leaf"}' ] ||
	fail "no custom metadata from a copied _CHECKPOINT_METADATA"

# 6. copy_file_range from a handle that overwrites a clone stub.
t cp "$MNT/100/state/f32.npy" "$MNT/300/copy/s.npy"
t "$PY" - "$MNT/300/copy" "$B8" <<'EOF'
import os, sys
d, new = sys.argv[1], open(sys.argv[2], "rb").read()
fd = os.open(d + "/s.npy", os.O_RDWR | os.O_TRUNC)
os.write(fd, new)
out = os.open(d + "/t.npy", os.O_WRONLY | os.O_CREAT | os.O_EXCL)
assert os.copy_file_range(fd, out, len(new), 0, 0) == len(new)
os.close(out)
os.close(fd)
assert open(d + "/t.npy", "rb").read() == new, "copied the stub's source, not the new bytes"
EOF

finalize 300
[ "$(xattr "$MNT/300" user.ckpt.custom_metadata)" = '{"from":"a leaf"}' ] ||
	fail "step 300 lost its custom metadata"
"$CKPT" verify "$ROOT/300" >/dev/null || fail "ckpt verify ROOT/300"
"$CKPT" restore "$ROOT/300" "$T/out" >/dev/null || fail "ckpt restore ROOT/300"
cmp "$A" "$T/out/state/a.npy" || fail "a.npy differs"
cmp "$B8" "$T/out/state/b.npy" || fail "b.npy differs"
cmp "$A" "$T/out/copy/g.npy" || fail "copy/g.npy differs"
cmp "$B8" "$T/out/copy/s.npy" || fail "copy/s.npy differs"
cmp "$B8" "$T/out/copy/t.npy" || fail "copy/t.npy differs"
[ "$(cat "$T/out/state/note")" = hello ] || fail "note differs"
# shellcheck disable=SC2012
[ "$(ls "$T/out/state" | tr '\n' ' ')" = "_METADATA a.npy b.npy c.npy note " ] ||
	fail "step 300 holds $(ls "$T/out/state")"

# 7. A finalize that fails after its rename (files/ cannot be removed: an immutable
#    directory, where chattr works) ends the pending step all the same.
np big "$T/big.npy" 8 1 # 8 MiB: adopted as a data file of the step
t mkdir -p "$MNT/400/state"
t cp "$T/big.npy" "$MNT/400/state/w.npy"
if chattr +i "$(tmp_of 400)/files/state" 2>/dev/null; then
	cd "$MNT/400/state" || fail "cd $MNT/400/state"
	st=0
	t setfattr -n user.ckpt.finalize -v 1 "$MNT/400" 2>/dev/null || st=$?
	wrote=0
	# shellcheck disable=SC2016
	t "$PY" -c 'import os
fd = os.open("w.npy", os.O_RDWR)
os.pwrite(fd, b"\xff" * 8, 4096)' 2>/dev/null && wrote=1
	cd "$T" || fail "cd $T"
	chattr -i "$ROOT/400/files/state" 2>/dev/null || chattr -i "$(tmp_of 400)/files/state"
	[ "$st" -ne 0 ] || fail "finalize succeeded although files/ could not be removed"
	[ -f "$ROOT/400/ckpt.db" ] || fail "step 400 was not renamed into place"
	[ "$wrote" = 0 ] || fail "a write reached finalized step 400 through its pending inode"
	"$CKPT" verify "$ROOT/400" >/dev/null || fail "ckpt verify ROOT/400"
else
	echo "fs_write_review: chattr +i does not work here, case 5 skipped"
fi
kill -0 "$FS_PID" || fail "ckptfs died"
fs_umount
echo "fs_write_review: ok"
