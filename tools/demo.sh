#!/usr/bin/env bash
# demo.sh — the main job on a built-in example: install missing packages, build, write a
# small MLP-like training state with numpy, save it with `ckpt save`, show it with
# `ckpt ls / tree / cat / meta`, and (if ckptfs is built) mount it, read it through the
# mount with ls, cat, getfattr and numpy, and edit it by copying a step within the mount.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${B:-build}
PY=/usr/bin/python3

say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
show() { say "$*"; "$@"; }

make deps
make -j"$(nproc)" B="$B"
CKPT="$B/ckpt"

T=$(mktemp -d /tmp/ckpt-demo.XXXXXX)
MNT="$T/mnt"
FS_PID=
cleanup() {
	if [ -n "$FS_PID" ]; then
		timeout 10 fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true
		kill "$FS_PID" 2>/dev/null || true
		wait "$FS_PID" 2>/dev/null || true
	fi
	rm -rf "$T"
}
trap cleanup EXIT

say "/usr/bin/python3 tests/e2e/cli_npy.py mlp $T/sample   # numpy writes a training state"
$PY tests/e2e/cli_npy.py mlp "$T/sample"
say "a JSON item beside the PyTree: $T/sample/meta/metadata, handlers in _CHECKPOINT_METADATA"
mkdir -p "$T/sample/meta"
echo '{"optimizer": "adam", "lr": 0.001, "loss": NaN}' >"$T/sample/meta/metadata"
P=orbax.checkpoint._src.handlers
printf '{"item_handlers": {"state": "%s", "meta": "%s"}}\n' \
	"$P.pytree_checkpoint_handler.PyTreeCheckpointHandler" \
	"$P.json_checkpoint_handler.JsonCheckpointHandler" >"$T/sample/_CHECKPOINT_METADATA"
(cd "$T/sample" && find . -type f | sort)

ROOT="$T/runs/exp1"
show "$CKPT" save "$ROOT" 100 "$T/sample"
show "$CKPT" save "$ROOT" 200 "$T/sample" --level 3
show "$CKPT" ls "$ROOT"
show "$CKPT" tree "$ROOT/200"
show "$CKPT" cat "$ROOT/200/state/params/dense/kernel"
show "$CKPT" cat "$ROOT/200/state/step"
show "$CKPT" meta "$ROOT/200/state/params/dense/kernel"
show "$CKPT" verify "$ROOT/200"

if [ ! -x "$B/ckptfs" ]; then
	echo "($B/ckptfs is not built: skipping the mount)"
	exit 0
fi
mkdir -p "$MNT"
say "$CKPT mount $ROOT $MNT -f &"
"$CKPT" mount "$ROOT" "$MNT" -f >"$T/ckptfs.log" 2>&1 &
FS_PID=$!
for _ in $(seq 100); do
	mountpoint -q "$MNT" && break
	kill -0 "$FS_PID" 2>/dev/null || { cat "$T/ckptfs.log"; exit 1; }
	sleep 0.1
done
mountpoint -q "$MNT" || { echo "ckptfs did not mount"; exit 1; }
show timeout 30 ls -R "$MNT/200/state"
show timeout 30 cat "$MNT/200/state/step"
echo
show timeout 30 cat "$MNT/200/meta/metadata"
show timeout 30 getfattr -n user.ckpt.handler "$MNT/200/meta"
show timeout 30 getfattr -d "$MNT/200/state/params/dense/kernel.npy"
say "$PY -c 'import numpy as np; a = np.load(\"$MNT/latest/state/params/dense/kernel.npy\"); ...'"
timeout 30 $PY -c 'import numpy as np, sys
a = np.load(sys.argv[1])
print(a.dtype, a.shape, "sum=%.4f" % a.sum())
print(a[:2, :6])' "$MNT/latest/state/params/dense/kernel.npy"

# Writing saves: edit a checkpoint by copying it into a new step (chunks are shared, not
# copied), change a leaf with numpy, finalize with an xattr.
show timeout 60 cp -r "$MNT/200" "$MNT/300"
show timeout 30 getfattr -n user.ckpt.state "$MNT/300"
# A refused change fails with an errno; the reason is kept in the mount.
show timeout 30 mkdir "$MNT/best" || true
show timeout 30 "$CKPT" status "$MNT"
say "$PY -c 'np.save(\"$MNT/300/state/params/dense/bias.npy\", np.ones(...))'"
timeout 30 $PY -c 'import numpy as np, sys
b = np.load(sys.argv[1])
np.save(sys.argv[1], np.ones_like(b))' "$MNT/300/state/params/dense/bias.npy"
show timeout 60 setfattr -n user.ckpt.finalize -v 1 "$MNT/300"
show "$CKPT" ls "$ROOT"
show "$CKPT" cat "$ROOT/300/state/params/dense/bias"
show "$CKPT" diff "$ROOT/200" "$MNT/latest"
show "$CKPT" du "$ROOT"
say "fusermount3 -u $MNT"
timeout 10 fusermount3 -u "$MNT"
wait "$FS_PID" || true
FS_PID=
echo "demo done"
