#!/bin/bash
# ckptfs: a root of 1,000 steps mounts without opening them; walking them all
# keeps the number of open steps bounded (-o max_open_steps); inodes stay
# stable when a closed step is opened again.
. "$(dirname "$0")/fslib.sh"

mkdir -p "$T/src/state/params"
$PY -c "
import numpy as np
np.save('$T/src/state/params/w.npy', np.arange(12, dtype=np.int32).reshape(3, 4))
open('$T/src/state/step', 'w').write('7')
"
"$B/ckpt" save "$ROOT" 1 "$T/src" >/dev/null
# A finalized step is self-contained: copies of its directory are steps.
$PY -c "
import shutil
for i in range(2, 1001):
    shutil.copytree('$ROOT/1', '$ROOT/%d' % i)
"

fds() {
	ls "/proc/$FS_PID/fd" | wc -l
}

fs_mount -o max_open_steps=4
base=$(fds)
[ "$(t ls "$MNT" | wc -l)" = 1001 ] || fail "ls does not show 1000 steps and latest"
[ "$(t readlink "$MNT/latest")" = 1000 ] || fail "latest"
[ "$(fds)" -le $((base + 2)) ] || fail "ls of the root opened steps ($base -> $(fds) fds)"

i1=$(t stat -c %i "$MNT/3/state/params/w.npy")
n=$(t find "$MNT/" -name w.npy 2>"$T/find.err" | wc -l) || fail "find: $(head -n 5 "$T/find.err")"
[ "$n" = 1000 ] || fail "find sees $n leaves, not 1000: $(head -n 5 "$T/find.err")"
[ "$(t cat "$MNT/999/state/step")" = 7 ] || fail "cat in step 999"
n=$(fds)
[ "$n" -le $((base + 4 * 8)) ] || fail "too many open files after walking all steps: $base -> $n"
echo 3 >/proc/sys/vm/drop_caches
[ "$(t stat -c %i "$MNT/3/state/params/w.npy")" = "$i1" ] || fail "inode changed after reopen"
t $PY -c "
import numpy as np
a = np.load('$MNT/500/state/params/w.npy')
assert (a == np.arange(12, dtype=np.int32).reshape(3, 4)).all()
" || fail "np.load in step 500"

fs_umount
echo "fs_many: ok"
