#!/bin/bash
# ckptfs write side: the interchange round trip through the mount.
# `cp -r MNT/100 out/ && cp -r out/ MNT/200 && setfattr ... MNT/200` gives a step
# equal to 100: items and handlers, tree structure (list, tuple, None), leaf kinds,
# dtypes, shapes, values, custom metadata and metrics.
. "$(dirname "$0")/fs_write_lib.sh"

np tree "$T/src"
"$CKPT" save "$ROOT" 100 "$T/src" >/dev/null

fs_mount
t cp -r "$MNT/100" "$T/out"
t cp -r "$T/out" "$MNT/200"
[ "$(xattr "$MNT/200" user.ckpt.state)" = pending ] || fail "step 200 is not pending"
finalize 200
[ -f "$ROOT/200/ckpt.db" ] || fail "no step ROOT/200"

"$CKPT" restore "$ROOT/100" "$T/r100" >/dev/null || fail "ckpt restore ROOT/100"
"$CKPT" restore "$ROOT/200" "$T/r200" >/dev/null || fail "ckpt restore ROOT/200"
# Everything equal but the commit time; _METADATA (structure, kinds, dtypes,
# shapes, custom metadata) byte for byte.
diff -r -x _CHECKPOINT_METADATA "$T/r100" "$T/r200" || fail "restored steps 100 and 200 differ"
np cpmeta "$T/r100/_CHECKPOINT_METADATA" "$T/r200/_CHECKPOINT_METADATA" ||
	fail "step metadata of 200 differs"
np check "$T/src" "$T/r200" || fail "step 200 differs from the source"
np cpmeta "$T/src/_CHECKPOINT_METADATA" "$T/r200/_CHECKPOINT_METADATA" ||
	fail "step 200 lost handlers, metrics or custom metadata"
# The structure survived (not just a dict of files).
np structure "$T/r200/state/_METADATA" >"$T/struct" || fail "bad _METADATA in step 200"
for want in "container ('layers',) list" "container ('pair',) tuple" \
	"leaf ('nothing',) None" "leaf ('pair', '1') string" "leaf ('pair', '2') scalar float" \
	"leaf ('step',) scalar int" "leaf ('done',) scalar bool" \
	"leaf ('params', 'w') np.ndarray  {\"frozen\": false, \"init\": \"lecun\"}"; do
	grep -qF "$want" "$T/struct" || fail "step 200 lacks '$want': $(cat "$T/struct")"
done

# The same through the library's own views: meta, tree, xattrs, the mount.
"$CKPT" meta "$ROOT/100" >"$T/m100" && "$CKPT" meta "$ROOT/200" >"$T/m200" || fail "ckpt meta"
np cpmeta "$T/m100" "$T/m200" || fail "ckpt meta of 100 and 200 differ"
"$CKPT" tree --json "$ROOT/100" >"$T/t100" && "$CKPT" tree --json "$ROOT/200" >"$T/t200" ||
	fail "ckpt tree"
np treecmp "$T/t100" "$T/t200" || fail "ckpt tree of 100 and 200 differ"
for item in state metadata; do
	[ "$(xattr "$MNT/100/$item" user.ckpt.handler)" = "$(xattr "$MNT/200/$item" user.ckpt.handler)" ] ||
		fail "handler of item $item differs"
done
[ "$(xattr "$MNT/200" user.ckpt.custom_metadata)" = "$(xattr "$MNT/100" user.ckpt.custom_metadata)" ] ||
	fail "custom metadata xattr differs"
t diff -r -x _CHECKPOINT_METADATA -x '*.safetensors' "$MNT/100" "$MNT/200" || fail "the mount shows 100 and 200 differently"
"$CKPT" verify "$ROOT/200" >/dev/null || fail "ckpt verify ROOT/200"

fs_umount
echo "fs_write_copy: ok"
