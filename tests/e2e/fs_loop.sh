#!/bin/bash
# ckptfs's session loop (fs/loop.c): eight readers at once get the right arrays with the
# default spinning workers, with -o spin_us=0, one worker, four workers spinning long and
# single-threaded (-s); SIGTERM and SIGHUP end the daemon and unmount within seconds; a
# mount left idle after reads uses no CPU (a worker spins only right after a request).
. "$(dirname "$0")/fslib.sh"

$PY - "$T/src" <<'PYEOF'
import os, sys
import numpy as np
d = os.path.join(sys.argv[1], "state")
os.makedirs(d)
rng = np.random.default_rng(3)
for i in range(8):
    np.save(os.path.join(d, f"w{i}.npy"), rng.standard_normal((512, 1024)).astype(np.float32))
PYEOF
"$B/ckpt" save "$ROOT" 1 "$T/src" >/dev/null

check_reads() { # every leaf by eight threads at once, and a header peek of each
	t $PY - "$MNT/1/state" "$T/src/state" <<'PYEOF'
import os, sys
from concurrent.futures import ThreadPoolExecutor
import numpy as np
mnt, src = sys.argv[1], sys.argv[2]
names = sorted(os.listdir(src))
def same(n):
    a = np.load(os.path.join(mnt, n))
    return np.array_equal(a, np.load(os.path.join(src, n))) and \
        np.load(os.path.join(mnt, n), mmap_mode="r").shape == a.shape
with ThreadPoolExecutor(8) as ex:
    ok = list(ex.map(same, names * 2))
sys.exit(0 if all(ok) and len(ok) == 16 else 1)
PYEOF
}

for opts in "" "-o spin_us=0" "-o max_threads=1" "-o spin_us=100000,max_threads=4" "-s"; do
	# shellcheck disable=SC2086
	fs_mount $opts
	check_reads || fail "reads through a mount with '$opts' returned wrong arrays"
	fs_umount
done

# idle after reads: CPU ticks of the daemon over two seconds (a stuck spinner: ~200)
fs_mount
check_reads || fail "reads failed"
sleep 0.5
ticks() { awk '{ print $14 + $15 }' "/proc/$FS_PID/stat"; }
a=$(ticks)
sleep 2
b=$(ticks)
echo "  idle: $((b - a)) ticks of CPU in 2 s"
[ $((b - a)) -lt 50 ] || fail "an idle mount used $((b - a)) ticks of CPU in 2 s"
fs_umount

# (not SIGINT: a script's background jobs start with SIGINT ignored, and libfuse keeps
# an ignored signal ignored)
for sig in TERM HUP; do
	fs_mount
	check_reads || fail "reads failed"
	kill -s $sig "$FS_PID"
	for _ in $(seq 100); do
		kill -0 "$FS_PID" 2>/dev/null || break
		sleep 0.05
	done
	kill -0 "$FS_PID" 2>/dev/null && fail "ckptfs still runs 5 s after SIG$sig"
	wait "$FS_PID" || fail "ckptfs exited with an error after SIG$sig"
	FS_PID=
	mountpoint -q "$MNT" && fail "still mounted after SIG$sig"
done
echo "fs_loop: ok"
