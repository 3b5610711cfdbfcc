#!/bin/bash
# Copies of a step's <item>.safetensors into pending steps are clone stubs
# (ckpt/clone.h, docs/fs.md "Clone stubs"): `cp -r MNT/100 MNT/101` writes no
# data for it; the stub reads as its source; beside its item it is ignored at
# finalize, alone it is imported as an item exactly as its bytes would be
# (through the mount and by `ckpt finalize`); moved where it would not count,
# or copied under another separator, it is refused or copied as bytes.
. "$(dirname "$0")/fslib.sh"

$PY "$HERE/fs_check.py" gen "$T/src"
"$B/ckpt" save "$ROOT" 100 "$T/src" >/dev/null
fs_mount

# What an import of the bytes gives: the reference for the stubs below.
t cp "$MNT/100/state.safetensors" "$T/bytes.safetensors"
"$B/ckpt" import "$T/bytes.safetensors" "$ROOT" 90 --item model >/dev/null

tmpdir() { ls -d "$ROOT/$1".ckpt-tmp-*/files; }
is_stub() { [ -n "$(find "$1" -maxdepth 0 -type f -perm -1000 -size -1024c)" ]; }

# 1. cp -r within the mount: the safetensors file is a stub that reads as its source.
t cp -r "$MNT/100" "$MNT/101"
is_stub "$(tmpdir 101)/state.safetensors" || fail "state.safetensors of 101 is not a clone stub: $(ls -l "$(tmpdir 101)")"
[ "$(t stat -c %s "$MNT/101/state.safetensors")" = "$(stat -c %s "$T/bytes.safetensors")" ] ||
	fail "the stub's size is not its source's"
t cmp "$MNT/101/state.safetensors" "$T/bytes.safetensors" || fail "the stub reads differently from its source"
t dd if="$MNT/101/state.safetensors" of="$T/part" bs=1000 skip=3 count=5 status=none
cmp <(dd if="$T/bytes.safetensors" bs=1000 skip=3 count=5 status=none) "$T/part" || fail "a range of the stub differs"
t setfattr -n user.ckpt.finalize -v 1 "$MNT/101"
"$B/ckpt" verify "$ROOT/101" >/dev/null || fail "101 does not verify"
t diff -r -x _CHECKPOINT_METADATA -x '*.safetensors' "$MNT/100" "$MNT/101" || fail "101 differs from 100"
[ "$(ls "$ROOT/101")" = "$(ls "$ROOT/100")" ] || fail "101 holds other files than 100: $(ls "$ROOT/101")"

# 2. Alone in a step, the stub is the item <name>, as the import of its bytes.
t mkdir "$MNT/102"
t cp "$MNT/100/state.safetensors" "$MNT/102/model.safetensors"
is_stub "$(tmpdir 102)/model.safetensors" || fail "model.safetensors of 102 is not a clone stub"
t setfattr -n user.ckpt.finalize -v 1 "$MNT/102"
t diff -r "$MNT/90/model" "$MNT/102/model" || fail "102/model differs from the import of the bytes"
# ... and, read by an independent safetensors reader (convert_st.py, json + numpy), every
# tensor of the copied bytes is the leaf it names in 102/model, read through the mount.
n=$(t $PY "$HERE/convert_st.py" check "$T/bytes.safetensors" "$MNT/102" model | cut -d' ' -f1)
[ "$n" = "$(t getfattr --absolute-names --only-values -n user.ckpt.tensors "$MNT/100/state.safetensors")" ] ||
	fail "the independent reader checked $n tensors"

# 3. The same finalized by the CLI, with the mount gone.
t mkdir "$MNT/103"
t cp "$MNT/100/state.safetensors" "$MNT/103/model.safetensors"
fs_umount
"$B/ckpt" finalize "$ROOT/103" >/dev/null || fail "ckpt finalize of a step with a stub failed"
fs_mount
t diff -r "$MNT/90/model" "$MNT/103/model" || fail "103/model differs from the import of the bytes"

# 4. Moved where it would not count: refused, the stub stays.
t mkdir "$MNT/104" "$MNT/104/d"
t cp "$MNT/100/state.safetensors" "$MNT/104/m.safetensors"
for to in m.npz d/m.safetensors m; do
	t mv "$MNT/104/m.safetensors" "$MNT/104/$to" 2>/dev/null && fail "moving the stub to $to succeeded"
done
t cmp "$MNT/104/m.safetensors" "$T/bytes.safetensors" || fail "the refused moves changed the stub"
# mv says only "Invalid argument"; the reason is kept where docs/fs.md sends the user.
t cat "$MNT/.ckptfs-errors" | grep -q "rename to d/m.safetensors: .*stands only for a <name>.safetensors at the top" ||
	fail ".ckptfs-errors lacks the reason: $(cat "$MNT/.ckptfs-errors")"
t mv "$MNT/104/m.safetensors" "$MNT/104/n.safetensors" || fail "renaming the stub on top failed"
# Into a subdirectory a copy is bytes (ckpt_pending_check_file would refuse a stub there).
t cp "$MNT/100/state.safetensors" "$MNT/104/d/x.safetensors"
is_stub "$(tmpdir 104)/d/x.safetensors" && fail "a copy inside a directory became a stub"
t cmp "$MNT/104/d/x.safetensors" "$T/bytes.safetensors" || fail "the copy inside d/ differs"
# A write turns the stub into a real file first: the source's bytes, then the write.
t $PY -c "
f = open('$MNT/104/n.safetensors', 'r+b'); f.seek(8); f.write(b'{'); f.close()"
is_stub "$(tmpdir 104)/n.safetensors" && fail "a written stub is still a stub"
t cmp "$(tmpdir 104)/n.safetensors" "$T/bytes.safetensors" || fail "the written stub lost its bytes"
t rm -r "$MNT/104"

# 5. A source step deleted under a lone stub: finalize fails and says why; nothing is lost.
t mkdir "$MNT/105"
t cp "$MNT/101/state.safetensors" "$MNT/105/m.safetensors"
fs_umount
"$B/ckpt" rm "$ROOT/101" >/dev/null
"$B/ckpt" finalize "$ROOT/105" 2>"$T/err" && fail "finalize with the stub's source gone succeeded"
grep -q "m.safetensors" "$T/err" || fail "the error does not name the stub: $(cat "$T/err")"
is_stub "$(tmpdir 105)/m.safetensors" || fail "the failed finalize lost the stub"

# 6. Another separator: the mount's file is not the stub's bytes, so a copy is bytes.
fs_mount -o safetensors_sep=/
t mkdir "$MNT/106"
t cp "$MNT/100/state.safetensors" "$MNT/106/m.safetensors"
is_stub "$(tmpdir 106)/m.safetensors" && fail "a copy under safetensors_sep=/ became a stub"
t cmp "$MNT/100/state.safetensors" "$MNT/106/m.safetensors" || fail "the copy under sep=/ differs"
fs_umount
echo "fs_write_st_copy: ok"
