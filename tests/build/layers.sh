#!/usr/bin/env bash
# No file of core/ includes a header of a layer above its own (core/README.md).
# The table below is the README's, as data: a file or header's layer comes from
# its name (first match wins). A new file that matches nothing fails the check,
# so the map stays complete.
set -euo pipefail
cd "$(dirname "$0")/../.."
layer_of() {
	case "$1" in
	core/util/* | ckpt/common.h | ckpt/error.h | ckpt/sys/error.h | error_private.h | mem.h | \
		crc32c.h | fsutil.h | thread_private.h | jdom.h | bytes.h | buf.h) echo 0 ;;
	core/store*.c | core/chunk_cache.c | core/ocdbt.c | store_private.h | chunk_cache.h | \
		ocdbt.h | ckpt/store.h | ckpt/sys/store_backend.h) echo 1 ;;
	core/dtype.c | core/npy.c | core/tree.c | core/tree_json.c | core/tree_bin.c | core/keyname.c | core/zarr.c | \
		core/msgpack.c | npy_private.h | tree_private.h | zarr.h | msgpack.h | ckpt/dtype.h | ckpt/npy.h | ckpt/tree.h) echo 2 ;;
	core/step.c | core/step_writer.c | core/step_list.c | core/root.c | core/leaf.c | core/clone_stub.c | \
		core/orbax.c | core/multiprocess.c | step_private.h | step_list.h | root_private.h | orbax.h | \
		multiprocess_private.h | ckpt/step.h | ckpt/root.h | ckpt/clone.h | ckpt/multiprocess.h) echo 3 ;;
	core/handler*.c | core/item_format.c | core/pytree*.c | core/composite.c | core/handlers/* | \
		handler_types.h | handler_files.h | item_format.h | pytree_private.h | proto_private.h | \
		ckpt/handler.h | ckpt/sys/handler.h | ckpt/pytree.h | ckpt/composite.h | ckpt/json.h | \
		ckpt/array.h | ckpt/proto.h | ckpt/random_key.h) echo 4 ;;
	core/checkpointer.c | core/async.c | core/interchange*.c | interchange_private.h | \
		core/safetensors.c | core/npz.c | safetensors_private.h | ckpt/safetensors.h | \
		ckpt/npz.h | ckpt/checkpointer.h | ckpt/async.h | ckpt/interchange.h) echo 5 ;;
	core/manager.c | core/preservation.c | core/pending.c | manager_private.h | ckpt/manager.h | \
		ckpt/pending.h) echo 6 ;;
	ckpt/ckpt.h) echo 7 ;;
	*) echo "?" ;;
	esac
}
bad=0
for f in $(find core -name '*.c' -o -name '*.h' | sort); do
	name=$f
	case "$f" in
	core/include/*) name=${f#core/include/} ;;
	core/*.h | core/util/*.h | core/handlers/*.h) name=$(basename "$f") ;;
	esac
	me=$(layer_of "$name")
	if [ "$me" = "?" ]; then
		echo "layers: $f is in no layer: add it to core/README.md and tests/build/layers.sh"
		bad=1
		continue
	fi
	for h in $(grep -oE '^#include "[^"]+"' "$f" | sed 's/#include "//; s/"$//'); do
		hl=$(layer_of "$h")
		if [ "$hl" = "?" ]; then
			echo "layers: $f includes $h, which is in no layer"
			bad=1
		elif [ "$hl" -gt "$me" ]; then
			echo "layers: $f (layer $me) includes $h (layer $hl): an include may not go up"
			bad=1
		fi
	done
done
[ $bad = 0 ] && echo "layers: every include in core/ stays in its layer or goes down"
exit $bad
