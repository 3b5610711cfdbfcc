#!/usr/bin/env bash
# orbax_args.sh — what Orbax's handler reference promises, through ckpt and the
# mount: custom metadata (the item's, a container's, a leaf's, written by an
# independent Python writer) kept by `ckpt save`, `ckpt restore`, a second
# `ckpt save` and `cp -r` through the mount, shown by `ckpt meta` and as xattrs;
# `ckpt restore --map` renames and regroups a model's leaves.
set -euo pipefail
# shellcheck source=tests/e2e/fslib.sh
. "$(dirname "$0")/fslib.sh"
E2E=$(cd "$(dirname "$0")" && pwd)
CKPT="$B/ckpt"
O="$E2E/orbax_args.py"

$PY "$O" gen "$T/src"
"$CKPT" save "$ROOT" 1 "$T/src" >/dev/null || fail "ckpt save"
"$CKPT" meta "$ROOT/1/state" >"$T/meta" || fail "ckpt meta of the item"
# ckpt meta indents: compare without the layout
tr -d ' \n' <"$T/meta" | grep -q '"model":"mlp"' || fail "ckpt meta lacks the item's custom metadata: $(cat "$T/meta")"
tr -d ' \n' <"$T/meta" | grep -q '"frozen":true' || fail "ckpt meta lacks the container's custom metadata"
"$CKPT" meta "$ROOT/1/state/params/w" >"$T/meta" || fail "ckpt meta of a leaf"
grep -q '"custom_metadata": {"init":"lecun"}' "$T/meta" || fail "leaf meta: $(cat "$T/meta")"
echo "ok 1 - ckpt save keeps the item's, a container's and a leaf's custom metadata (ckpt meta)"

"$CKPT" restore "$ROOT/1" "$T/r1" >/dev/null || fail "ckpt restore"
$PY "$O" check "$T/r1" || fail "restored _METADATA (read by python)"
"$CKPT" save "$ROOT" 2 "$T/r1" >/dev/null || fail "ckpt save of the restored directory"
"$CKPT" restore "$ROOT/2" "$T/r2" >/dev/null || fail "ckpt restore of step 2"
$PY "$O" check "$T/r2" || fail "second round trip"
echo "ok 2 - ckpt restore -> ckpt save -> ckpt restore keeps it (checked by python)"

fs_mount
v=$(t getfattr --absolute-names --only-values -n user.ckpt.custom_metadata "$MNT/1/state") || fail "item xattr"
[ "$v" = '{"model":"mlp","version":3}' ] || fail "item xattr is '$v'"
v=$(t getfattr --absolute-names --only-values -n user.ckpt.custom_metadata "$MNT/1/state/params") || fail "dir xattr"
[ "$v" = '{"frozen":true}' ] || fail "container xattr is '$v'"
v=$(t getfattr --absolute-names --only-values -n user.ckpt.custom_metadata "$MNT/1/state/params/w.npy") ||
	fail "leaf xattr"
[ "$v" = '{"init":"lecun"}' ] || fail "leaf xattr is '$v'"
echo "ok 3 - the mount shows them as user.ckpt.custom_metadata (item, directory, leaf)"

t cp -r "$MNT/1" "$T/cp1"
$PY "$O" check "$T/cp1" || fail "cp -r out of the mount"
t cp -r "$T/cp1" "$MNT/3"
t setfattr -n user.ckpt.finalize -v 1 "$MNT/3" || fail "finalize of step 3"
"$CKPT" restore "$ROOT/3" "$T/r3" >/dev/null || fail "ckpt restore of step 3"
$PY "$O" check "$T/r3" || fail "cp -r through the mount lost custom metadata"
echo "ok 4 - cp -r out of and into the mount keeps them"
fs_umount

# --map: the model renamed and regrouped
"$CKPT" restore "$ROOT/1/state" "$T/m/state" --map-regex 'layers_([0-9]+)/(w|b)=blocks/\1/\2' \
	--map head/kernel=output/w --map step=global_step >/dev/null 2>"$T/err" ||
	fail "ckpt restore --map: $(cat "$T/err")"
$PY "$O" mapped "$T/m/state" || fail "mapped restore (read by python)"
"$CKPT" save "$ROOT" 4 "$T/m" >/dev/null || fail "ckpt save of the mapped directory"
"$CKPT" tree "$ROOT/4" >"$T/tree" || fail "ckpt tree"
grep -qE '^state/blocks/1/w +array +float32' "$T/tree" || fail "step 4 lacks blocks/1/w: $(cat "$T/tree")"
grep -qE '^state/global_step +int' "$T/tree" || fail "step 4 lacks global_step"
"$CKPT" restore "$ROOT/1/state" "$T/d/state" --map-regex 'layers_.*=' --drop-unmapped \
	--map 'head/kernel=k' >/dev/null || fail "--drop-unmapped"
[ -f "$T/d/state/k.npy" ] && [ ! -e "$T/d/state/params" ] && [ ! -e "$T/d/state/layers_0" ] ||
	fail "--drop-unmapped wrote: $(cd "$T/d/state" && find .)"
st=0
"$CKPT" restore "$ROOT/1/state" "$T/x" --map-regex 'layers_[0-9]/w=w' >/dev/null 2>"$T/err" || st=$?
[ "$st" -eq 1 ] && grep -q "renamed to 'w'" "$T/err" || fail "a clash: status $st, $(cat "$T/err")"
st=0
"$CKPT" restore "$ROOT/1/state" "$T/x" --map nodelimiter >/dev/null 2>"$T/err" || st=$?
[ "$st" -eq 2 ] || fail "--map without '=': status $st"
st=0
"$CKPT" restore "$ROOT/1/state/params" "$T/x" --map a=b >/dev/null 2>"$T/err" || st=$?
[ "$st" -eq 1 ] && grep -q "whole PyTree item" "$T/err" || fail "--map on a subtree: $st"
echo "ok 5 - ckpt restore --map / --map-regex / --drop-unmapped regroup a model; errors are clear"
echo "orbax_args: 5 passed, 0 failed"
