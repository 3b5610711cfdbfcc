#!/bin/bash
# Files out of the mount as a user expects them (issue 16, docs/fs.md "The view"):
# - scalar files are a line of text: `cat` ends with a newline, the size counts it;
#   written through the mount with or without one; `ckpt get`/`cat` agree; `ckpt restore`
#   then `ckpt save` keeps every value exactly;
# - modes 0755/0644: a non-root user (nobody, through -o allow_other) can delete the
#   `cp -r` copy of a step they made, while a change in the step still fails with EROFS
#   and its reason in .ckptfs-errors (shown as the mount's owner: /dev/fuse is root's here).
. "$(dirname "$0")/fslib.sh"

as_user() { setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"; }

# A step with scalars written with and without a final newline, and strings.
mkdir -p "$T/src/state"
printf '1000\n' >"$T/src/state/step"
printf '2.3000000000000003' >"$T/src/state/lr" # no newline, every digit
printf 'True\n' >"$T/src/state/flag"
printf 'hello' >"$T/src/state/name"      # a string: its bytes exactly
printf 'two\nlines\n' >"$T/src/state/note" # a string ending with a newline keeps it
"$B/ckpt" save "$ROOT" 100 "$T/src" >/dev/null
chmod 755 "$T"
mkdir "$T/home"
chown nobody:nogroup "$T/home"
fs_mount -o allow_other

# Scalars: a line of text, the size counts the newline; strings are their bytes.
s=$MNT/100/state
cmp <(printf '1000\n') <(as_user timeout 30 cat "$s/step") || fail "step is not '1000\\n'"
cmp <(printf '2.3000000000000003\n') <(as_user timeout 30 cat "$s/lr") || fail "lr"
[ "$(t stat -c %s "$s/step")" = 5 ] || fail "size of step: $(stat -c %s "$s/step"), want 5"
[ "$(t stat -c %s "$s/flag")" = 5 ] || fail "size of flag"
cmp <(printf 'hello') "$s/name" || fail "a string got a newline"
cmp "$T/src/state/note" "$s/note" || fail "note differs"
[ "$(as_user timeout 30 cat "$s/step" "$s/flag")" = "$(printf '1000\nTrue')" ] ||
	fail "cat of two scalars: $(cat "$s/step" "$s/flag" | od -c)"
cmp <("$B/ckpt" cat "$ROOT/100/state/step") <(printf '1000\n') || fail "ckpt cat printed two newlines"
"$B/ckpt" get "$ROOT/100/state/lr" -o "$T/lr" >/dev/null
cmp "$T/lr" "$s/lr" || fail "ckpt get and the mount disagree"

# Modes: a copy out of the mount belongs to its user, who can delete it.
[ "$(t stat -c %a "$MNT/100/state")" = 755 ] || fail "dir mode $(stat -c %a "$MNT/100/state")"
[ "$(t stat -c %a "$s/step")" = 644 ] || fail "file mode $(stat -c %a "$s/step")"
as_user timeout 60 cp -r "$MNT/100" "$T/home/copy" || fail "cp -r as nobody"
as_user timeout 60 cp -a "$MNT/100" "$T/home/copy-a" || fail "cp -a as nobody"
[ "$(stat -c %U "$T/home/copy/state/step")" = nobody ] || fail "copy not owned by nobody"
as_user rm -r "$T/home/copy" "$T/home/copy-a" 2>"$T/rm.err" ||
	fail "rm -r of a copy out of the mount, as nobody: $(head -n 3 "$T/rm.err")"
[ ! -e "$T/home/copy" ] && [ ! -e "$T/home/copy-a" ] || fail "copies still there"

# The step stays read-only: EROFS (not "Permission denied"), the reason where the user looks.
t sh -c "echo 1 > '$s/step'" 2>"$T/w.err" && fail "a finalized scalar was written"
grep -q "Read-only file system" "$T/w.err" || fail "write: $(cat "$T/w.err") (want EROFS)"
t rm -r "$MNT/100/state" 2>"$T/rm2.err" && fail "rm -r in a finalized step"
grep -q "Read-only file system" "$T/rm2.err" || fail "rm: $(head -n 2 "$T/rm2.err") (want EROFS)"
t cat "$MNT/.ckptfs-errors" | grep -q "step 100 is finalized, read-only" ||
	fail ".ckptfs-errors: $(cat "$MNT/.ckptfs-errors")"
cmp <(printf '1000\n') "$s/step" || fail "step changed"

# Writing scalars through the mount: with or without the newline, the same value.
p=$MNT/200/state
t mkdir -p "$p" || fail "mkdir of a pending step"
t sh -c "printf 7 > '$p/a' && printf '7\n' > '$p/b' && printf ' 2.5 \n' > '$p/c'" ||
	fail "writing scalar files"
t setfattr -n user.ckpt.finalize -v 1 "$MNT/200" || fail "finalize 200"
for f in a b; do
	cmp <(printf '7\n') "$p/$f" || fail "$f reads $(od -c "$p/$f")"
	[ "$("$B/ckpt" cat --header "$ROOT/200/state/$f" | head -n 1)" = int ] || fail "$f is not an int"
done
cmp <(printf '2.5\n') "$p/c" || fail "c reads $(od -c "$p/c")"

# restore -> save keeps every value (and restore writes what the mount shows).
"$B/ckpt" restore "$ROOT/100" "$T/out" >/dev/null
for f in step lr flag name note; do
	cmp "$T/out/state/$f" "$s/$f" || fail "restored $f differs from the mount"
done
"$B/ckpt" save "$ROOT" 101 "$T/out" >/dev/null
"$B/ckpt" diff "$ROOT/100" "$ROOT/101" --exit-code >"$T/diff" || fail "restore+save changed: $(cat "$T/diff")"
# a differing scalar shows both values without the file's newline
cp -r "$T/src" "$T/src2" && printf '7\n' >"$T/src2/state/step"
"$B/ckpt" save "$ROOT" 102 "$T/src2" >/dev/null
"$B/ckpt" diff "$ROOT/100" "$ROOT/102" >"$T/diff2" || true
grep -q "state/step: 1000 -> 7$" "$T/diff2" || fail "diff of a scalar: $(cat "$T/diff2")"
fs_umount
echo "fs_copy_out: ok"
