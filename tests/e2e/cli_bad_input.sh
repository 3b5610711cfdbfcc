#!/usr/bin/env bash
# cli_bad_input.sh — bad .npy files and damaged ckpt.db files give a clear error and exit 1,
# never a crash, and save nothing: no new step, no temporary directory, old steps intact.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"

R="$T/root" GOOD="$T/good"
$PY - "$GOOD" <<'PYEOF'
import os, sys, numpy as np
os.makedirs(f"{sys.argv[1]}/state/sub")
np.save(f"{sys.argv[1]}/state/a.npy", np.arange(1000, dtype=np.float32))
np.save(f"{sys.argv[1]}/state/sub/b.npy", np.ones((3, 3)))
open(f"{sys.argv[1]}/state/step", "w").write("5")
PYEOF
run 0 "$CKPT" save "$R" 1 "$GOOD"
pass "a good step"

# Copies of GOOD, each with one bad file $T/bad_CASE/state/sub/CASE.npy.
$PY - "$GOOD" "$T" <<'PYEOF'
import io, shutil, sys, numpy as np
def header(d):  # a .npy v1.0 header with dict text d
    h = d.encode() + b" " * (63 - (10 + len(d)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(h).to_bytes(2, "little") + h
def hdr(descr, shape):
    return header("{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape))
def npy(a, allow_pickle=False):
    f = io.BytesIO(); np.save(f, a, allow_pickle=allow_pickle); return f.getvalue()
cases = {
    "trunc": npy(np.arange(100, dtype=np.int64))[:-7],
    "hdrshort": npy(np.arange(10))[:30],
    "long": hdr("<i4", "(3,)") + bytes(20),
    "short": hdr("<f8", "(10, 10)") + bytes(80),
    "overflow": hdr("<f8", "(4611686018427387904, 8)") + bytes(8),
    "unicode": npy(np.array(["hello"], dtype="<U5")),
    "object": npy(np.array([{}, 1], dtype=object), True),
    "timedelta": hdr("<m8", "(2,)") + bytes(16),
    "garbage": b"this is not a numpy file at all, just text",
}
for name, data in cases.items():
    d = f"{sys.argv[2]}/bad_{name}"
    shutil.copytree(sys.argv[1], d)
    open(f"{d}/state/sub/{name}.npy", "wb").write(data)
PYEOF

# refused CASE WHAT PATTERN: saving $T/bad_CASE fails cleanly, the message matching PATTERN.
step=10
refused() {
	step=$((step + 1))
	run 1 "$CKPT" save "$R" "$step" "$T/bad_$1"
	grep_err '^ckpt: '
	grep_err "$1\\.npy"
	grep_err "$3"
	msg=$(head -1 "$T/err")
	[ -e "$R/$step" ] && fail "$2: step $step was created"
	[ "$(tmp_dirs "$R")" -eq 0 ] || fail "$2: temporary directory left: $(ls "$R")"
	run 0 "$CKPT" ls "$R"
	grep -q "^$step " "$T/out" && fail "$2: ls shows step $step"
	run 0 "$CKPT" verify "$R/1"
	pass "$2 refused: $msg"
}
refused trunc "truncated .npy" 'trunc|short|length|size'
refused hdrshort "truncated header" 'trunc|short|header'
refused long "data longer than the shape" 'length|size|trailing|long|disagree'
refused short "data shorter than the shape" 'length|size|trunc|short|disagree'
refused overflow "shape whose byte size overflows" 'overflow|too large|too big|shape'
refused unicode "dtype <U5" 'unsupported|dtype'
refused object "dtype |O" 'unsupported|dtype|object'
refused timedelta "dtype <m8" 'unsupported|dtype'
refused garbage "not a .npy at all" 'magic|not a|npy'

# --- damaged ckpt.db files ---
damage() { # damage NAME HOW: a copy of step 1 as ROOT/NAME with its ckpt.db damaged
	cp -a "$R/1" "$R/$1"
	case "$2" in
	garbage) head -c 100000 /dev/urandom >"$R/$1/ckpt.db" ;;
	truncated) truncate -s $(( $(stat -c %s "$R/$1/ckpt.db") / 3 )) "$R/$1/ckpt.db" ;;
	header) printf 'SQLite format 3\0garbage-garbage-garbage' | dd of="$R/$1/ckpt.db" bs=1 seek=0 conv=notrunc status=none
		dd if=/dev/urandom of="$R/$1/ckpt.db" bs=1 seek=16 count=84 conv=notrunc status=none ;;
	empty) : >"$R/$1/ckpt.db" ;;
	esac
}
n=20
for how in garbage truncated header empty; do
	n=$((n + 1))
	damage "$n" "$how"
	for cmd in "tree $R/$n" "verify $R/$n" "meta $R/$n" "cat $R/$n/state/step" "restore $R/$n $T/r$n"; do
		# shellcheck disable=SC2086
		run 1 "$CKPT" $cmd
		grep_err '^ckpt: '
		grep_err 'ckpt\.db|corrupt|damaged|database|malformed|not a|truncat|empty|format'
		msg=$(head -1 "$T/err")
	done
	run 0 "$CKPT" ls "$R"
	run 1 "$CKPT" verify "$R"
	grep_err "$n"
	run 0 "$CKPT" verify "$R/1"
	pass "ckpt.db $how ($msg): clear errors from tree, verify, meta, cat, restore; step 1 intact"
	rm -rf "${R:?}/$n"
done
run 0 "$CKPT" verify "$R"
finish cli_bad_input
