#!/bin/bash
# Handler plugins (docs/handlers.md): an item saved by a handler written outside the library
# (docs/examples/handler_plugin.c, LinesCheckpointHandler) is listed, described, restored and
# checked by `ckpt` with the plugin loaded (--handler-plugin, CKPT_HANDLER_PATH), and shown,
# read and checked by the mount (-o handler_plugin=); without the plugin its files are still
# shown and copied, unchecked. A plugin that fails to load is an error naming the file.
. "$(dirname "$0")/handlers_lib.sh"

PLUGIN=$B/examples/handler_plugin.so
SAVE=$B/tests/tools/plugin_save
LINESH=example.lines_checkpoint_handler.LinesCheckpointHandler
[ -f "$PLUGIN" ] && [ -x "$SAVE" ] || fail "build $PLUGIN and $SAVE first"
TEXT=$'lr=0.1\nname=run 7\n'
printf '%s' "$TEXT" >"$T/text"

t "$SAVE" "$PLUGIN" "$ROOT" 1 notes "$TEXT" || fail "plugin_save"

# ckpt: listed and restored without the plugin (its files are its keys) ...
t "$CKPT" ls "$ROOT" >"$T/ls" && t "$CKPT" tree "$ROOT/1/notes" >>"$T/ls" || fail "ckpt ls ROOT"
grep -q "notes" "$T/ls" && grep -q "LinesCheckpointHandler" "$T/ls" || fail "ckpt ls: $(cat "$T/ls")"
t "$CKPT" tree "$ROOT/1" >"$T/tree" || fail "ckpt tree"
grep -q "notes/lines.txt" "$T/tree" || fail "ckpt tree: $(cat "$T/tree")"
t "$CKPT" restore "$ROOT/1" "$T/out" >/dev/null || fail "ckpt restore"
cmp "$T/text" "$T/out/notes/lines.txt" || fail "ckpt restore: lines.txt differs"
t "$CKPT" meta "$ROOT/1/notes" >"$T/meta0" || fail "ckpt meta without the plugin"
grep -q "\"handler\": \"$LINESH\"" "$T/meta0" || fail "ckpt meta: $(cat "$T/meta0")"
! grep -q '"metadata"' "$T/meta0" || fail "ckpt meta describes without the plugin: $(cat "$T/meta0")"
# ... and described with it, loaded either way.
t "$CKPT" --handler-plugin "$PLUGIN" meta "$ROOT/1/notes" >"$T/meta1" || fail "ckpt --handler-plugin meta"
grep -q '"metadata": {"entries": 2}' "$T/meta1" || fail "ckpt meta with the plugin: $(cat "$T/meta1")"
CKPT_HANDLER_PATH="$(dirname "$PLUGIN")" t "$CKPT" meta "$ROOT/1/notes" >"$T/meta2" ||
	fail "ckpt meta with CKPT_HANDLER_PATH"
cmp "$T/meta1" "$T/meta2" || fail "CKPT_HANDLER_PATH gave $(cat "$T/meta2")"

# ckpt save checks the item's files with the plugin, not without.
printf 'no equals sign\n' >"$T/out/notes/lines.txt"
CKPT_HANDLER_PATH=$PLUGIN must_fail "lines.txt:1: a line without '='" "$CKPT" save "$ROOT" 2 "$T/out"
[ ! -e "$ROOT/2" ] || fail "a refused ckpt save left step 2"
t "$CKPT" save "$ROOT" 3 "$T/out" >/dev/null || fail "ckpt save without the plugin (unchecked)"

# Plugins that fail to load: errors name the file.
must_fail "/nonexistent/p.so" "$CKPT" --handler-plugin /nonexistent/p.so ls "$ROOT"
CKPT_HANDLER_PATH=$B/tests/plugins/no_init.so must_fail "no_init.so: no function ckpt_handler_plugin_init" \
	"$CKPT" ls "$ROOT"
must_fail "wrong_abi.so" "$CKPT" --handler-plugin "$B/tests/plugins/wrong_abi.so" ls "$ROOT"
st=0
timeout 30 "$B/ckptfs" "$ROOT" "$MNT" -f -o handler_plugin="$B/tests/plugins/no_init.so" \
	>"$T/fs.out" 2>&1 || st=$?
[ "$st" -ne 0 ] && [ "$st" -ne 124 ] && grep -q "no_init.so" "$T/fs.out" ||
	fail "ckptfs with a bad plugin (status $st): $(cat "$T/fs.out")"
! mountpoint -q "$MNT" || fail "ckptfs mounted with a bad plugin"

# The mount: the item's files, read as saved; a pending step's file checked at close.
fs_mount -o handler_plugin="$PLUGIN"
[ "$(t ls "$MNT/1/notes")" = lines.txt ] || fail "MNT/1/notes: $(t ls "$MNT/1/notes")"
t cmp "$T/text" "$MNT/1/notes/lines.txt" || fail "MNT/1/notes/lines.txt differs"
[ "$(xattr "$MNT/1/notes" user.ckpt.handler)" = "$LINESH" ] || fail "user.ckpt.handler of notes"
t mkdir "$MNT/4"
handlers_meta "$MNT/4/_CHECKPOINT_METADATA" notes="$LINESH" || fail "_CHECKPOINT_METADATA of 4"
t mkdir "$MNT/4/notes"
must_fail "Invalid argument" cp "$T/out/notes/lines.txt" "$MNT/4/notes/lines.txt"
grep -q "a line without '='" "$T/ckptfs.log" || fail "the log does not say why: $(tail -5 "$T/ckptfs.log")"
t cp "$T/text" "$MNT/4/notes/lines.txt" || fail "cp of a good lines.txt into step 4"
finalize 4
fs_umount
t "$CKPT" --handler-plugin "$PLUGIN" meta "$ROOT/4/notes" | grep -q '"entries": 2' ||
	fail "step 4 finalized through the mount: $(t "$CKPT" meta "$ROOT/4/notes")"
echo "handlers_plugin: ok"
