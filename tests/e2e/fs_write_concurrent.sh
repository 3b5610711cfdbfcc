#!/bin/bash
# ckptfs write side: two writers fill different leaves of one pending step at once
# (cp and dd, several MiB per file, into their own and a shared directory) while
# a reader re-reads a finalized step (page cache dropped before each read, so the
# daemon serves it) and checks its bytes; then the pending step
# holds every file, finalizes, and equals what was written.
. "$(dirname "$0")/fs_write_lib.sh"

mkdir -p "$T/s100/state"
np big "$T/s100/state/big.npy" 6 1
np npsave "$T/s100/state/small.npy" 2 float32 1000
"$CKPT" save "$ROOT" 100 "$T/s100" --chunk-size 65536 >/dev/null

W=$T/want/state
mkdir -p "$W/a" "$W/b"
for i in 0 1 2 3 4 5; do
	np big "$W/a/a$i.npy" $((3 + i)) $((10 + i))
	np big "$W/b/b$i.npy" $((8 - i)) $((20 + i))
done
np npsave "$W/a_top.npy" 3 float64 300,300
np npsave "$W/b_top.npy" 4 int32 500,400

fs_mount
t mkdir "$MNT/200" "$MNT/200/state" "$MNT/200/state/a" "$MNT/200/state/b"

reader() {
	timeout 120 "$PY" "$NP" reread "$MNT/100/state/big.npy" "$T/s100/state/big.npy" "$T/stop" \
		>"$T/nreads"
}
writer_a() {
	for i in 0 1 2 3 4 5; do
		t cp "$W/a/a$i.npy" "$MNT/200/state/a/" || return 1
	done
	t cp "$W/a_top.npy" "$MNT/200/state/"
}
writer_b() {
	for i in 0 1 2 3 4 5; do
		t dd if="$W/b/b$i.npy" of="$MNT/200/state/b/b$i.npy" bs=256k status=none || return 1
	done
	t dd if="$W/b_top.npy" of="$MNT/200/state/b_top.npy" bs=64k status=none
}
reader &
rp=$!
wait_for test -e "$T/stop.started" || fail "the reader did not start"
writer_a &
wa=$!
writer_b &
wb=$!
st=0
wait $wa || st=1
wait $wb || st=$((st + 2))
touch "$T/stop"
wait $rp || fail "the reader of step 100 failed"
[ $st = 0 ] || fail "writer(s) failed: $st"
echo "reads of step 100 during the writes: $(cat "$T/nreads")"

# The pending step holds exactly what was written.
np check "$T/want" "$MNT/200" || fail "the pending step differs from what was written"
finalize 200
np check "$T/want" "$MNT/200" || fail "step 200 differs after finalize"
"$CKPT" verify "$ROOT" >/dev/null || fail "ckpt verify ROOT"
"$CKPT" restore "$ROOT/200" "$T/out" >/dev/null || fail "ckpt restore ROOT/200"
np check "$T/want" "$T/out" || fail "restored step 200 differs"
np check "$T/s100" "$MNT/100" || fail "step 100 differs"
fs_umount
echo "fs_write_concurrent: ok"
