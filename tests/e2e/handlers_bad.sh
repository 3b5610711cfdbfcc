#!/bin/bash
# Bad item files are refused. Through the mount, into pending steps whose
# _CHECKPOINT_METADATA names the handlers, the close of each bad file fails with EINVAL
# and the file is gone: invalid JSON, invalid proto text (the log names
# proto.pbtxt:LINE:COLUMN), a JAX key of float32 or with last dimension 3, a NumPy
# legacy state of 623 words, a descriptor.json that contradicts the text. A proto
# written before its descriptor passes its close but not the finalize. `ckpt save` of
# an interchange directory with a bad proto.pbtxt exits 1 naming proto.pbtxt:L:C.
# After each refusal nothing is stored and the good steps still compare equal.
. "$(dirname "$0")/handlers_lib.sh"

tool save "$ROOT" 1 || fail "handlers_tool save 1"
tool save "$ROOT" 2 || fail "handlers_tool save 2"
"$CKPT" restore "$ROOT/1" "$T/good" >/dev/null || fail "ckpt restore ROOT/1"
EINVAL="Invalid argument"

# nothing_stored: no new finalized step, the good ones unchanged.
nothing_stored() {
	[ "$(finalized_steps "$ROOT")" = "1 2" ] || fail "after $1: steps $(finalized_steps "$ROOT")"
	tool compare "$ROOT/1" "$ROOT/2" >/dev/null || fail "after $1: steps 1 and 2 differ"
}
# refused FILE WHAT: FILE was refused at close and is gone.
refused() {
	absent "$1" || fail "$2: the refused file $1 is still there"
	nothing_stored "$2"
}

# The bad proto text: line 3 has a string where an int32 goes.
printf 'name: "bad"\nstep: 5\nbatch_size: "oops"\n' >"$T/bad.pbtxt"

# --- ckpt save of an interchange directory with a bad proto.pbtxt ---
cp -r "$T/good" "$T/badcfg"
cp "$T/bad.pbtxt" "$T/badcfg/cfg/proto.pbtxt"
st=0
"$CKPT" save "$ROOT" 8 "$T/badcfg" >/dev/null 2>"$T/save.err" || st=$?
[ "$st" = 1 ] || fail "ckpt save of a bad proto.pbtxt: exit $st: $(cat "$T/save.err")"
grep -qE 'proto\.pbtxt:3:[0-9]+' "$T/save.err" ||
	fail "ckpt save does not name proto.pbtxt:3:COLUMN: $(cat "$T/save.err")"
[ -z "$(tmp_of 8)" ] || fail "ckpt save left $(tmp_of 8)"
nothing_stored "ckpt save of a bad proto.pbtxt"
# A typed key whose impl disagrees with the data (rbg keys have 4 words, these 2).
cp -r "$T/good" "$T/badjk"
printf '{"typed": true, "impl": "rbg"}' >"$T/badjk/jk/jax_random_key_metadata"
st=0
"$CKPT" save "$ROOT" 8 "$T/badjk" >/dev/null 2>"$T/save.err" || st=$?
[ "$st" = 1 ] || fail "ckpt save of an rbg key of 2 words: exit $st: $(cat "$T/save.err")"
grep -q 'jax_random_key' "$T/save.err" || fail "ckpt save does not name the key: $(cat "$T/save.err")"
nothing_stored "ckpt save of an rbg key of 2 words"
"$CKPT" save "$ROOT" 9 "$T/good" >/dev/null || fail "ckpt save of the good copy"
tool compare "$ROOT/1" "$ROOT/9" >/dev/null || fail "the good copy saved differently"
"$CKPT" rm "$ROOT/9" >/dev/null || fail "ckpt rm ROOT/9"

fs_mount
t mkdir "$MNT/7"
handlers_meta "$MNT/7/_CHECKPOINT_METADATA" meta="$JSONH" cfg="$PROTOH" jk="$JAXH" nk="$NPH" ||
	fail "writing _CHECKPOINT_METADATA of step 7"
t mkdir "$MNT/7/meta" "$MNT/7/cfg" "$MNT/7/jk" "$MNT/7/nk"

# --- invalid JSON: cp and python's close both fail with EINVAL ---
printf '{"epoch": 3,\n "lr": }\n' >"$T/bad.json"
must_fail "$EINVAL" cp "$T/bad.json" "$MNT/7/meta/metadata"
refused "$MNT/7/meta/metadata" "invalid JSON (cp)"
must_fail "errno 22" "$PY" "$HNP" write "$MNT/7/meta/metadata" '[1, 2'
refused "$MNT/7/meta/metadata" "invalid JSON (python)"
grep -q 'metadata' "$T/ckptfs.log" || fail "the daemon log does not name meta/metadata"
t cp "$T/good/meta/metadata" "$MNT/7/meta/metadata" || fail "good JSON refused"

# --- invalid proto text: EINVAL, the log has proto.pbtxt:3:COLUMN ---
t cp "$T/good/cfg/descriptor.json" "$MNT/7/cfg/" || fail "good descriptor.json refused"
must_fail "$EINVAL" cp "$T/bad.pbtxt" "$MNT/7/cfg/proto.pbtxt"
refused "$MNT/7/cfg/proto.pbtxt" "invalid proto text"
grep -qE 'proto\.pbtxt:3:[0-9]+' "$T/ckptfs.log" ||
	fail "the daemon log lacks proto.pbtxt:3:COLUMN: $(tail -n 5 "$T/ckptfs.log")"
t cp "$T/good/cfg/proto.pbtxt" "$MNT/7/cfg/" || fail "good proto.pbtxt refused"

# --- a descriptor.json that contradicts the text (Config.name described as int32) ---
hnp bad-descriptor "$T/good/cfg/descriptor.json" "$T/bad_descriptor.json" ||
	fail "making the bad descriptor"
t mkdir "$MNT/7/cfg2"
handlers_meta "$MNT/7/_CHECKPOINT_METADATA" meta="$JSONH" cfg="$PROTOH" cfg2="$PROTOH" \
	jk="$JAXH" nk="$NPH" || fail "rewriting _CHECKPOINT_METADATA of step 7"
t cp "$T/bad_descriptor.json" "$MNT/7/cfg2/descriptor.json" ||
	fail "a well-formed descriptor.json (name as int32) refused on its own"
must_fail "$EINVAL" cp "$T/good/cfg/proto.pbtxt" "$MNT/7/cfg2/proto.pbtxt"
refused "$MNT/7/cfg2/proto.pbtxt" "a descriptor contradicting the text"
t rm -rf "$MNT/7/cfg2"
handlers_meta "$MNT/7/_CHECKPOINT_METADATA" meta="$JSONH" cfg="$PROTOH" jk="$JAXH" nk="$NPH" ||
	fail "rewriting _CHECKPOINT_METADATA of step 7"

# --- JAX keys: float32, or a last dimension of 3 ---
must_fail "errno 22" "$PY" "$HNP" npsave "$MNT/7/jk/jax_random_key.npy" float32 2
refused "$MNT/7/jk/jax_random_key.npy" "a float32 JAX key"
must_fail "errno 22" "$PY" "$HNP" npsave "$MNT/7/jk/jax_random_key.npy" uint32 4,3
refused "$MNT/7/jk/jax_random_key.npy" "a JAX key with last dimension 3"
t cp "$T/good/jk/jax_random_key.npy" "$T/good/jk/jax_random_key_metadata" "$MNT/7/jk/" ||
	fail "a good JAX key refused"

# --- NumPy legacy state with 623 words ---
"$PY" - "$T/good/nk/np_random_key.json" "$T/nk623.json" <<'EOF' || fail "making nk623"
import json, sys
s = json.load(open(sys.argv[1]))
s[1] = s[1][:623]
json.dump(s, open(sys.argv[2], "w"))
EOF
must_fail "$EINVAL" cp "$T/nk623.json" "$MNT/7/nk/np_random_key.json"
refused "$MNT/7/nk/np_random_key.json" "a legacy state of 623 words"
t cp "$T/good/nk/np_random_key.json" "$MNT/7/nk/" || fail "a good NumPy state refused"

# Step 7 now holds only good files: it finalizes, and equals step 1 in those items.
finalize 7
[ "$(xattr "$MNT/7" user.ckpt.state)" = finalized ] || fail "step 7 is not finalized"
for item in meta cfg jk nk; do
	t diff -r "$MNT/1/$item" "$MNT/7/$item" || fail "item $item of step 7 differs from step 1's"
done

# --- a proto written before its descriptor: accepted at close, refused at finalize ---
t mkdir "$MNT/8"
handlers_meta "$MNT/8/_CHECKPOINT_METADATA" cfg="$PROTOH" || fail "_CHECKPOINT_METADATA of 8"
t mkdir "$MNT/8/cfg"
t cp "$T/bad.pbtxt" "$MNT/8/cfg/proto.pbtxt" || fail "proto.pbtxt without a descriptor refused"
LOGPOS=$(stat -c %s "$T/ckptfs.log")
# (The descriptor may be checked against the text already here; then its close fails.)
t cp "$T/good/cfg/descriptor.json" "$MNT/8/cfg/" 2>/dev/null || true
must_fail "$EINVAL" setfattr -n user.ckpt.finalize -v 1 "$MNT/8"
[ "$(xattr "$MNT/8" user.ckpt.state)" = pending ] || fail "step 8 is not pending after a refused finalize"
tail -c +$((LOGPOS + 1)) "$T/ckptfs.log" | grep -qE 'proto\.pbtxt:3:[0-9]+' ||
	fail "no proto.pbtxt:3:COLUMN in the log for step 8: $(tail -c +$((LOGPOS + 1)) "$T/ckptfs.log")"
[ "$(finalized_steps "$ROOT")" = "1 2 7" ] || fail "steps: $(finalized_steps "$ROOT")"
fs_umount

# ckpt finalize of the pending step 8 (left by the unmount) names proto.pbtxt:3:COLUMN too.
st=0
"$CKPT" finalize "$ROOT/8" >/dev/null 2>"$T/fin.err" || st=$?
[ "$st" = 1 ] || fail "ckpt finalize of step 8: exit $st: $(cat "$T/fin.err")"
if [ -f "$(tmp_of 8)/files/cfg/descriptor.json" ]; then
	grep -qE 'proto\.pbtxt:3:[0-9]+' "$T/fin.err" ||
		fail "ckpt finalize does not name proto.pbtxt:3:COLUMN: $(cat "$T/fin.err")"
else
	grep -q 'descriptor.json' "$T/fin.err" ||
		fail "ckpt finalize does not name the missing descriptor.json: $(cat "$T/fin.err")"
fi
[ -n "$(tmp_of 8)" ] || fail "the refused finalize removed pending step 8"
[ "$(finalized_steps "$ROOT")" = "1 2 7" ] || fail "steps: $(finalized_steps "$ROOT")"
tool compare "$ROOT/1" "$ROOT/2" >/dev/null || fail "steps 1 and 2 differ at the end"
tool compare "$ROOT/1" "$ROOT/7" 2>/dev/null && fail "step 7 (four items) compares equal to step 1"

# A pending step built by hand whose proto item lacks descriptor.json: ckpt finalize says so.
P9=$ROOT/9.ckpt-tmp-byhand
mkdir -p "$P9/files/cfg"
cp "$T/good/cfg/proto.pbtxt" "$P9/files/cfg/"
handlers_meta "$P9/files/_CHECKPOINT_METADATA" cfg="$PROTOH" || fail "_CHECKPOINT_METADATA of 9"
st=0
"$CKPT" finalize "$P9" >/dev/null 2>"$T/fin.err" || st=$?
[ "$st" = 1 ] || fail "ckpt finalize of a proto without descriptor: exit $st: $(cat "$T/fin.err")"
grep -q 'descriptor.json missing' "$T/fin.err" ||
	fail "ckpt finalize does not say descriptor.json is missing: $(cat "$T/fin.err")"
cp "$T/good/cfg/descriptor.json" "$P9/files/cfg/"
"$CKPT" finalize "$P9" >/dev/null || fail "ckpt finalize of step 9 once complete"
tool compare "$ROOT/9" "$ROOT/9" >/dev/null || fail "step 9 does not restore"
[ "$(finalized_steps "$ROOT")" = "1 2 7 9" ] || fail "steps: $(finalized_steps "$ROOT")"
echo "handlers_bad: ok"
