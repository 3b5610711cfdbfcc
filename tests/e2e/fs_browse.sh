#!/bin/bash
# ckptfs: browsing a mounted root — ls -R, find, stat, cat, getfattr, readlink,
# command line, read-only refusals.
. "$(dirname "$0")/fslib.sh"

# Command line: --help/--version exit 0, bad arguments exit 2.
"$B/ckptfs" --help | grep -q cache_size || fail "--help"
"$B/ckptfs" --version | grep -q "ckptfs " || fail "--version"
rc=0; "$B/ckptfs" >/dev/null 2>&1 || rc=$?; [ $rc -eq 2 ] || fail "no arguments gave $rc"
rc=0; "$B/ckptfs" "$ROOT" "$MNT" --bogus >/dev/null 2>&1 || rc=$?; [ $rc -eq 2 ] || fail "bad option gave $rc"
rc=0; "$B/ckptfs" "$ROOT" "$MNT" -o cache_size=lots >/dev/null 2>&1 || rc=$?
[ $rc -eq 2 ] || fail "bad cache_size gave $rc"

$PY "$HERE/fs_check.py" gen "$T/src"
"$B/ckpt" save "$ROOT" 100 "$T/src" >/dev/null
cp -r "$T/src" "$T/src2"
echo '{"item_handlers": {"state": "orbax.checkpoint._src.handlers.pytree_checkpoint_handler.PyTreeCheckpointHandler", "extra": "orbax.checkpoint._src.handlers.pytree_checkpoint_handler.PyTreeCheckpointHandler"}, "custom_metadata": {"run": "e2e", "n": 3}}' >"$T/src2/_CHECKPOINT_METADATA"
"$B/ckpt" save "$ROOT" 200 "$T/src2" >/dev/null
mkdir "$ROOT/300.ckpt-tmp-abandoned"
fs_mount -o cache_size=64M

# The mount's read-ahead is raised (from 128 KiB) for large sequential requests.
ra=$($PY -c "import os; d = os.stat('$MNT').st_dev; print(f'/sys/class/bdi/{os.major(d)}:{os.minor(d)}/read_ahead_kb')")
if [ -w "$ra" ]; then
	wait_for test "$(cat "$ra")" = 4096 || fail "read_ahead_kb is $(cat "$ra")"
fi

# The root: steps and latest, never temporary directories.
[ "$(t ls "$MNT" | tr '\n' ' ')" = "100 200 latest " ] || fail "ls root: $(ls "$MNT")"
[ "$(t readlink "$MNT/latest")" = 200 ] || fail "readlink latest"
[ "$(t cat "$MNT/latest/state/step")" = 1000 ] || fail "cat through latest"

# ls -R and find see every file of the source, plus the metadata files.
t ls -R "$MNT/100" >"$T/ls" || fail "ls -R"
grep -qx "_CHECKPOINT_METADATA" "$T/ls" || fail "no _CHECKPOINT_METADATA in ls -R"
(cd "$T/src" && find . -type f | sort) >"$T/want"
(cd "$MNT/100" && t find . -type f ! -name '_*METADATA' ! -regex '\./[^/]*\.safetensors' |
	sort) >"$T/got"
[ -f "$MNT/100/state.safetensors" ] || fail "no state.safetensors beside the item"
diff "$T/want" "$T/got" || fail "find differs from the source"
[ -f "$MNT/100/state/_METADATA" ] || fail "no state/_METADATA"

# stat: sizes equal the source files, modes 0755/0644, stable inodes.
while read -r f; do
	[ "$(t stat -c %s "$MNT/100/$f")" = "$(stat -c %s "$T/src/$f")" ] || fail "size of $f"
done <"$T/want"
[ "$(t stat -c %a "$MNT/100/state/params")" = 755 ] || fail "dir mode (docs/fs.md, Modes)"
[ "$(t stat -c %a "$MNT/100/state/big.npy")" = 644 ] || fail "file mode (docs/fs.md, Modes)"
[ "$(t stat -c %F "$MNT/latest")" = "symbolic link" ] || fail "latest is not a symlink"
i1=$(t stat -c %i "$MNT/100/state/params/dense/kernel.npy")
i2=$(t stat -c %i "$MNT/200/state/params/dense/kernel.npy")
[ "$i1" != "$i2" ] || fail "two steps share an inode"
t find "$MNT" >/dev/null
echo 3 >/proc/sys/vm/drop_caches
[ "$(t stat -c %i "$MNT/100/state/params/dense/kernel.npy")" = "$i1" ] || fail "inode changed"
[ "$(t stat -L -c %i "$MNT/latest")" = "$(t stat -c %i "$MNT/200")" ] || fail "latest inode"
[ "$(t stat -c %Y "$MNT/100/state/big.npy")" -gt 1600000000 ] || fail "mtime"

# cat: scalars and strings as text, metadata as JSON.
[ "$(t cat "$MNT/100/state/lr")" = 0.001 ] || fail "cat lr"
[ "$(t cat "$MNT/100/state/flag")" = True ] || fail "cat flag"
[ "$(t cat "$MNT/100/state/name")" = "hello ckptfs" ] || fail "cat name"
t cat "$MNT/100/_CHECKPOINT_METADATA" | $PY -c '
import json, sys
m = json.load(sys.stdin)
assert "state" in json.dumps(m["item_handlers"]), m' || fail "_CHECKPOINT_METADATA"
t cat "$MNT/100/state/_METADATA" | $PY -c 'import json, sys; json.load(sys.stdin)' ||
	fail "_METADATA is not JSON"

# xattrs: getfattr -d on a step, an item and leaves.
x=$(t getfattr --absolute-names -d "$MNT/100")
echo "$x" | grep -qx 'user.ckpt.state="finalized"' || fail "step state: $x"
echo "$x" | grep -qx 'user.ckpt.step="100"' || fail "step number: $x"
echo "$x" | grep -q '^user.ckpt.commit_time="20' || fail "commit time: $x"
x=$(t getfattr --absolute-names -d "$MNT/200")
echo "$x" | grep -qx 'user.ckpt.custom_metadata="{\\"run\\":\\"e2e\\",\\"n\\":3}"' ||
	fail "step custom metadata: $x"
# commit_time and every mtime in the step are the commit timestamp of the metadata.
t $PY - "$MNT/200" <<'PYEOF' || fail "commit time"
import datetime, json, os, sys
step = sys.argv[1]
ns = json.load(open(f"{step}/_CHECKPOINT_METADATA"))["commit_timestamp_nsecs"]
x = os.getxattr(step, "user.ckpt.commit_time").decode()
t = datetime.datetime.strptime(x[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)
assert abs(t.timestamp() - ns / 1e9) < 1.5, (x, ns)
for p in [step, f"{step}/state/big.npy", f"{step}/state/params"]:
    assert abs(os.stat(p).st_mtime - ns / 1e9) < 1.5, (p, os.stat(p).st_mtime, ns)
PYEOF
x=$(t getfattr --absolute-names -d "$MNT/100/state")
echo "$x" | grep -q '^user.ckpt.handler=".*Handler"' || fail "item handler: $x"
x=$(t getfattr --absolute-names -d "$MNT/100/state/params/dense/kernel.npy")
echo "$x" | grep -qx 'user.ckpt.kind="array"' || fail "leaf kind: $x"
echo "$x" | grep -qx 'user.ckpt.dtype="float32"' || fail "leaf dtype: $x"
echo "$x" | grep -qx 'user.ckpt.shape="\[3, 4\]"' || fail "leaf shape: $x"
echo "$x" | grep -qx 'user.ckpt.raw_size="48"' || fail "leaf raw size: $x"
echo "$x" | grep -q '^user.ckpt.crc32c="[0-9a-f]\{8\}"' || fail "leaf crc: $x"
echo "$x" | grep -q '^user.ckpt.codec=' || fail "leaf codec: $x"
echo "$x" | grep -q '^user.ckpt.stored_size=' || fail "leaf stored size: $x"
x=$(t getfattr --absolute-names -d "$MNT/100/state/dtypes/float64.npy")
echo "$x" | grep -qx 'user.ckpt.dtype="float64"' || fail "float64 dtype: $x"
echo "$x" | grep -qx 'user.ckpt.shape="\[4, 1, 3\]"' || fail "3-d shape: $x"
x=$(t getfattr --absolute-names -d "$MNT/100/state/zero_d/int8.npy")
echo "$x" | grep -qx 'user.ckpt.shape="\[\]"' || fail "0-d shape: $x"
x=$(t getfattr --absolute-names -d "$MNT/100/state/step")
echo "$x" | grep -qx 'user.ckpt.kind="int"' || fail "scalar kind: $x"
# Other names: ENODATA in the namespaces the mount implements (user.*, the ACL names the
# kernel asks for), EOPNOTSUPP in the others; never ENOSYS (which would silence all xattrs).
for n in system.posix_acl_access user.ckpt.nope user.other; do
	x=$(t getfattr -n $n "$MNT/100/state/step" 2>&1 || true)
	echo "$x" | grep -q "No such attribute" || fail "$n is not ENODATA: $x"
done
for n in security.selinux security.capability trusted.x system.nfs4_acl; do
	for f in "$MNT/100/state/step" "$MNT/100" "$MNT"; do
		x=$(t getfattr -n $n "$f" 2>&1 || true)
		echo "$x" | grep -q "Operation not supported" || fail "$n of $f is not EOPNOTSUPP: $x"
	done
done
x=$(t getfattr -n user.ckpt.kind "$MNT/100/state/step") || fail "user.ckpt.kind after EOPNOTSUPP"
echo "$x" | grep -qx 'user.ckpt.kind="int"' || fail "user.ckpt.kind after EOPNOTSUPP: $x"
$PY - "$MNT/100/state/params/dense/kernel.npy" <<'PYEOF' || fail "listxattr/getxattr sizes"
import errno, os, sys
p = sys.argv[1]
names = os.listxattr(p)
assert "user.ckpt.dtype" in names, names
# a too-small buffer is ERANGE (through the raw syscall via ctypes)
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
buf = ctypes.create_string_buffer(2)
n = libc.getxattr(p.encode(), b"user.ckpt.dtype", buf, 2)
assert n == -1 and ctypes.get_errno() == errno.ERANGE, (n, ctypes.get_errno())
n = libc.getxattr(p.encode(), b"user.ckpt.dtype", None, 0)
assert n == len("float32"), n
n = libc.listxattr(p.encode(), buf, 2)
assert n == -1 and ctypes.get_errno() == errno.ERANGE, (n, ctypes.get_errno())
PYEOF

# Finalized steps are read-only: writes are refused (and the root takes only step names).
t touch "$MNT/100/new" 2>/dev/null && fail "create succeeded"
t mkdir "$MNT/100/newitem" 2>/dev/null && fail "mkdir in a finalized step succeeded"
t mkdir "$MNT/notastep" 2>/dev/null && fail "mkdir of a non-step name succeeded"
t setfattr -n user.x -v 1 "$MNT/100" 2>/dev/null && fail "setfattr succeeded"
t sh -c "echo x >>'$MNT/100/state/step'" 2>/dev/null && fail "append succeeded"
t rm "$MNT/100/state/step" 2>/dev/null && fail "rm succeeded"
[ "$(t cat "$MNT/100/state/step")" = 1000 ] || fail "step changed"

# Missing names: ENOENT, also when cached negatively.
t stat "$MNT/100/state/nope" 2>/dev/null && fail "nope exists"
t stat "$MNT/100/state/nope" 2>/dev/null && fail "nope exists (cached)"
t stat "$MNT/999" 2>/dev/null && fail "step 999 exists"

fs_umount
echo "fs_browse: ok"
