#!/usr/bin/env bash
# cli_pending.sh — pending steps built by hand (mkdir/cp into ROOT/<step>.ckpt-tmp-*/files/,
# no mount): `ckpt ls` shows them as pending (and abandoned saves as saving), cleanup by a
# save keeps them, `ckpt finalize` turns them into steps that restore bit-exact (a clone stub
# included), a bad file fails the finalize and leaves the step pending until fixed, and
# `ckpt rm` removes them (refused while another process holds the lock).
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"

R="$T/root" SRC="$T/src"
$PY - "$SRC" <<'EOF'
import numpy as np, os, sys
d = sys.argv[1]
os.makedirs(d + '/state/params', exist_ok=True)
np.save(d + '/state/params/w.npy', np.arange(600 * 700, dtype='<f4').reshape(600, 700) / 7)
np.save(d + '/state/be.npy', (np.arange(12, dtype='>i8') - 5).reshape(3, 4))
np.save(d + '/state/fo.npy', np.asfortranarray(np.arange(20.0).reshape(4, 5)))
open(d + '/state/step', 'w').write('1000')
open(d + '/state/name', 'w').write('run one')
EOF
run 0 "$CKPT" save "$R" 100 "$SRC"

# pending(STEP): a pending step directory with a copy of $SRC in files/
pending() {
	local dir="$R/$1.ckpt-tmp-test$1"
	mkdir -p "$dir/files"
	cp -r "$SRC/state" "$dir/files/"
	echo "$dir"
}

P200=$(pending 200)
printf '{"custom_metadata": {"who": "cli_pending"}, "init_timestamp_nsecs": 1700000000000000001}' \
	>"$P200/files/_CHECKPOINT_METADATA"
mkdir "$R/300.ckpt-tmp-abandoned" # a save that died: no files/
run 0 "$CKPT" ls "$R"
grep_out '^200 +pending' && grep_out '^300 +saving' && grep_out '^100 +finalized'
run 0 "$CKPT" ls --json "$R"
$PY - "$T/out" <<'EOF' || fail "ls --json: $(cat "$T/out")"
import json, sys
rows = {r["step"]: r["state"] for r in json.load(open(sys.argv[1]))}
assert rows == {100: "finalized", 200: "pending", 300: "saving"}, rows
EOF
pass "ls shows pending steps (files/) apart from abandoned saves"

# a save cleans up the abandoned directory but not the pending step
run 0 "$CKPT" save "$R" 150 "$SRC"
[ -e "$R/300.ckpt-tmp-abandoned" ] && fail "cleanup kept an abandoned save"
[ -d "$P200/files/state" ] || fail "cleanup removed a pending step"
pass "cleanup keeps pending steps"

run 0 "$CKPT" finalize "$R/200"
grep_out 'finalized step 200'
[ -e "$P200" ] && fail "the pending directory is still there"
[ -e "$R/200/files" ] && fail "files/ left in the finalized step"
run 0 "$CKPT" verify "$R/200"
run 0 "$CKPT" meta "$R/200"
grep_out 'cli_pending' && grep_out '1700000000000000001'
run 0 "$CKPT" restore "$R/200" "$T/out200"
$PY - "$SRC/state" "$T/out200/state" <<'EOF' || fail "step 200 differs from its files"
import numpy as np, sys
a, b = sys.argv[1], sys.argv[2]
for f in ['params/w.npy', 'be.npy', 'fo.npy']:
    x, y = np.load(a + '/' + f), np.load(b + '/' + f)
    assert x.dtype.newbyteorder('=') == y.dtype.newbyteorder('=') and x.shape == y.shape, f
    assert (x == y).all(), f
assert open(b + '/step').read() == '1000\n'  # a scalar's file is a line (docs/fs.md)
assert open(b + '/name').read() == 'run one'
EOF
run 0 "$CKPT" finalize "$R/200"
grep_out 'already finalized'
pass "finalize: a step equal to its files, metadata kept, files/ gone"

# a bad file: finalize fails naming it, nothing appears, the step stays pending; fixed, it works
P400=$(pending 400)
truncate -s -16 "$P400/files/state/params/w.npy"
run 1 "$CKPT" finalize "$R/400"
grep_err 'w.npy' && grep_err 'header says float32 \(600, 700\)'
[ -e "$R/400" ] && fail "a failed finalize left $R/400"
[ -e "$P400/ckpt.db" ] && fail "a failed finalize left its store in the pending directory"
cmp -s "$P400/files/state/step" "$SRC/state/step" || fail "files/ changed by a failed finalize"
run 0 "$CKPT" ls "$R"
grep_out '^400 +pending'
cp "$SRC/state/params/w.npy" "$P400/files/state/params/w.npy"
run 0 "$CKPT" finalize "$R/400"
run 0 "$CKPT" verify "$R/400"
pass "finalize of a bad file fails cleanly and can be retried"

# a clone stub: stands for a leaf of step 100
P500=$(pending 500)
rm "$P500/files/state/params/w.npy"
printf '\223CKPTCLONE1\n100\nstate\nparams/w\n' >"$P500/files/state/params/w.npy"
chmod 1644 "$P500/files/state/params/w.npy"
run 0 "$CKPT" finalize "$R/500.ckpt-tmp-test500"
run 0 "$CKPT" get "$R/500/state/params/w" -o "$T/w500.npy"
cmp -s "$T/w500.npy" "$SRC/state/params/w.npy" || fail "the cloned leaf differs from step 100's"
run 0 "$CKPT" verify "$R/500"
pass "finalize of a clone stub"

# rm: refused while another process holds the lock, then removes the pending step
P600=$(pending 600)
exec 9<"$P600" # this shell holds the lock, as a mount would
flock -n 9 || fail "cannot lock $P600"
run 1 "$CKPT" rm "$R/600"
grep_err 'in use'
run 1 "$CKPT" finalize "$R/600"
grep_err 'in use'
exec 9<&-
[ -d "$P600/files" ] || fail "a refused rm removed files"
run 0 "$CKPT" rm "$R/600"
[ -e "$P600" ] && fail "rm left the pending step"
run 1 "$CKPT" finalize "$R/600"
grep_err 'no pending step'
run 1 "$CKPT" rm "$R/600"
run 0 "$CKPT" ls "$R"
grep -q pending "$T/out" && fail "pending steps left: $(cat "$T/out")"
pass "rm of a pending step (EBUSY while locked)"

finish cli_pending
