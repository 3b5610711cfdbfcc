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

# Requests by inode number for nodes the reopened step has not made yet: a
# directory held open across the LRU closing its step, its entries dropped
# from the kernel's caches (docs/fs.md "Node ids": found through the parent).
t $PY -c "
import os
step = '$MNT/3/state'
ino = os.stat(step + '/params/w.npy').st_ino
params = os.open(step + '/params', os.O_RDONLY)
item = os.open(step, os.O_RDONLY)
for i in range(10, 30):  # max_open_steps=4: step 3 is closed
    os.listdir('$MNT/%d/state/params' % i)
open('/proc/sys/vm/drop_caches', 'w').write('3')
assert os.listdir(params) == ['w.npy'], os.listdir(params)
assert os.stat('w.npy', dir_fd=params).st_ino == ino
for i in range(10, 30):
    os.listdir('$MNT/%d/state' % i)
open('/proc/sys/vm/drop_caches', 'w').write('3')
assert sorted(os.listdir(item)) == ['_METADATA', 'params', 'step'], os.listdir(item)
assert os.stat('_METADATA', dir_fd=item).st_size > 0
with open(os.open('params/w.npy', os.O_RDONLY, dir_fd=item), 'rb') as f:
    assert f.read(6) == b'\\x93NUMPY'
" || fail "a directory held open across its step's reopening"

fs_umount
echo "fs_many: ok"
