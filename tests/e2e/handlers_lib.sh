# shellcheck shell=bash disable=SC2034
# tests/e2e/handlers_lib.sh — helpers of the handler tests (handlers_*.sh; source it).
# Not a test itself (make check skips *lib.sh).
#
# On top of fs_write_lib.sh ($T, $ROOT, $MNT, $PY, $CKPT, fs_mount, fs_umount, t, fail,
# must_fail, xattr, finalize, put, absent):
#   TOOL            tests/tools/handlers_tool (the library side: save, compare, subset, ...)
#   tool ARGS...    runs it under timeout
#   HNP             tests/e2e/handlers_np.py; hnp ARGS... runs it (timeout)
#   JSONH PROTOH ARRAYH JAXH NPH PYTREEH   the handlers' type strings
#   handlers_meta FILE ITEM=TYPESTR...     write a _CHECKPOINT_METADATA naming those handlers
#   finalized_steps ROOT                   the finalized steps of ROOT, space-separated
# shellcheck source=fs_write_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/fs_write_lib.sh"
TOOL="$B/tests/tools/handlers_tool"
HNP="$HERE/handlers_np.py"
[ -x "$TOOL" ] || fail "build $TOOL first (make $TOOL)"

P=orbax.checkpoint._src.handlers
JSONH=$P.json_checkpoint_handler.JsonCheckpointHandler
PROTOH=$P.proto_checkpoint_handler.ProtoCheckpointHandler
ARRAYH=$P.array_checkpoint_handler.ArrayCheckpointHandler
JAXH=$P.random_key_checkpoint_handler.JaxRandomKeyCheckpointHandler
NPH=$P.random_key_checkpoint_handler.NumpyRandomKeyCheckpointHandler
PYTREEH=$P.pytree_checkpoint_handler.PyTreeCheckpointHandler

tool() { timeout 120 "$TOOL" "$@"; }
hnp() { t "$PY" "$HNP" "$@"; }

handlers_meta() {
	local f=$1
	shift
	t "$PY" "$HNP" handlers "$f" "$@"
}

finalized_steps() {
	"$CKPT" ls --json "$1" | "$PY" -c '
import json, sys
print(" ".join(str(r["step"]) for r in json.load(sys.stdin) if r["state"] == "finalized"))'
}
