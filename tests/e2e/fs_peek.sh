#!/bin/bash
# ckptfs: peeking at a leaf's .npy header reads at most one chunk from disk, whatever the
# client: head -c, Python's open().read(6), np.lib.format, np.load(mmap_mode='r'); and a
# 4 KiB pread inside a raw chunk reads its 8 KiB blocks, not the chunk (format 1.2). Counted
# as the bytes the mount's steps read from their data files (user.ckpt.bytes_read on the
# mount root, the store's counter) after dropping the page cache; a full read of every leaf
# shows that the counter counts. The daemon's block-layer reads (/proc/PID/io) are printed
# too, but not asserted: they add the kernel's read-ahead in the data files and the
# daemon's own code read back in, which depend on the machine (ROOT's disk read-ahead, a
# DAMON reclaim agent) and made this test fail on unchanged code.
# Byte counts only, no timing. Needs root (drop_caches); skipped otherwise.
. "$(dirname "$0")/fslib.sh"

if ! (sync && echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null || [ ! -r /proc/self/io ]; then
	echo "fs_peek: skipped (cannot drop caches or no /proc/PID/io)"
	exit 0
fi
CHUNK=65536 # chunk size of the step (the CRC unit): a peek may read one, plus 4 KiB
NL=6        # leaves peeked (one more, "warm", is peeked first, uncounted)

# Leaves written by numpy: 5 of 1 MiB noise (incompressible, stored raw), 2 of a
# compressible pattern (stored zstd), 16 chunks each.
$PY - "$T/src" <<'PYEOF'
import os, sys
import numpy as np
d = os.path.join(sys.argv[1], "state")
os.makedirs(d)
rng = np.random.default_rng(5)
for i in range(5):
    np.save(os.path.join(d, f"noise{i}.npy"), rng.normal(0, 0.02, (512, 512)).astype(np.float32))
for i in range(2):
    np.save(os.path.join(d, f"pattern{i}.npy"), (np.arange(256 * 1024) % (7 + i)).astype(np.int32).reshape(1024, 256))
PYEOF
"$B/ckpt" save "$ROOT" 1 "$T/src" --chunk-size $CHUNK >/dev/null
leaves=$(cd "$T/src/state" && ls | sort)
warm=$(echo "$leaves" | head -1)
leaves=$(echo "$leaves" | tail -n +2)
[ "$(echo "$leaves" | wc -l)" -eq $NL ] || fail "expected $NL leaves to peek"

read_bytes() { t getfattr --absolute-names --only-values -n user.ckpt.bytes_read "$MNT"; }
disk_bytes() { awk '/^read_bytes/ { print $2 }' "/proc/$FS_PID/io"; }

# peek NAME CMD...: a fresh mount (no chunk cached in the daemon), the metadata walked,
# the page cache dropped, the daemon's read path run once on the "warm" leaf (its own code
# pages and ROOT's inodes, dropped too, count as its reads), then CMD run in state/;
# prints the bytes the steps read (the block-layer count goes to $T/peek.disk).
peek() {
	local name=$1 a b da db
	shift
	fs_mount -o ro
	t ls -lR "$MNT/1" >/dev/null
	sync
	echo 3 >/proc/sys/vm/drop_caches
	t ls -lR "$MNT/1" >/dev/null
	sleep 1 # the daemon's rescan thread stats ROOT every 0.5 s: let it read the inodes back
	t head -c 10 "$MNT/1/state/$warm" >/dev/null
	a=$(read_bytes)
	da=$(disk_bytes)
	(cd "$MNT/1/state" && t "$@") >"$T/peek.out" || fail "$name failed"
	b=$(read_bytes)
	db=$(disk_bytes)
	fs_umount
	echo "$((db - da))" >"$T/peek.disk"
	echo "$((b - a))"
}

limit=$((NL * (CHUNK + 4096)))
# shellcheck disable=SC2086
check() { # NAME EXPECTED-OUTPUT CMD...
	local name=$1 exp=$2 got
	shift 2
	got=$(peek "$name" "$@")
	[ "$(cat "$T/peek.out")" = "$exp" ] || fail "$name printed $(cat "$T/peek.out"), not $exp"
	echo "  $name: $got bytes for $NL leaves (limit $limit; block layer: $(cat "$T/peek.disk"))"
	[ "$got" -le $limit ] || fail "$name read $got bytes from disk for $NL leaves (> $limit)"
}

# The control first: reading whole leaves reads at least what they store (else the
# counter does not count and the peeks cannot be measured).
stored=0
fs_mount -o ro
for f in $leaves; do
	s=$(t getfattr --absolute-names --only-values -n user.ckpt.stored_size "$MNT/1/state/$f")
	stored=$((stored + s))
done
fs_umount
# shellcheck disable=SC2086
got=$(peek cat sh -c 'cat "$@" | md5sum' sh $leaves)
[ "$(cat "$T/peek.out")" = "$(cd "$T/src/state" && cat $leaves | md5sum)" ] || fail "cat: wrong bytes"
echo "  cat: $got bytes for $NL leaves storing $stored"
if [ "$got" -lt "$stored" ]; then # e.g. ROOT on tmpfs: no block reads to count
	echo "fs_peek: skipped (user.ckpt.bytes_read did not count a full read: $got < $stored)"
	exit 0
fi

magic=$(for f in $leaves; do printf '\x93NUMPY\n'; done)
# shellcheck disable=SC2086
check "head -c 6" "$magic" sh -c 'for f in "$@"; do head -c 6 "$f"; echo; done' sh $leaves
# shellcheck disable=SC2086
check "open().read(6)" "$magic" $PY -c '
import sys
for f in sys.argv[1:]:
    with open(f, "rb") as fh:
        sys.stdout.buffer.write(fh.read(6) + b"\n")' $leaves
shapes=$(for f in $leaves; do case $f in noise*) echo "(512, 512)" ;; *) echo "(1024, 256)" ;; esac; done)
# shellcheck disable=SC2086
check "np.lib.format" "$shapes" $PY -c '
import sys
import numpy as np
for f in sys.argv[1:]:
    with open(f, "rb") as fh:
        np.lib.format.read_magic(fh)
        print(np.lib.format.read_array_header_1_0(fh)[0])' $leaves
# shellcheck disable=SC2086
check "np.load(mmap_mode='r')" "$shapes" $PY -c '
import sys
import numpy as np
for f in sys.argv[1:]:
    print(np.load(f, mmap_mode="r").shape)' $leaves

# A 4 KiB read inside a raw chunk reads the one or two 8 KiB blocks it overlaps (format 1.2
# block CRCs), not its 64 KiB chunk: one read in the middle of each noise leaf.
raw=$(echo "$leaves" | grep noise)
pread4k='
import hashlib, os, sys
h = hashlib.md5()
for f in sys.argv[1:]:
    fd = os.open(f, os.O_RDONLY)
    h.update(os.pread(fd, 4096, (os.fstat(fd).st_size // 2) & ~4095))
    os.close(fd)
print(h.hexdigest())'
# shellcheck disable=SC2086
want=$(cd "$T/src/state" && $PY -c "$pread4k" $raw)
# shellcheck disable=SC2086
got=$(peek "pread 4 KiB" $PY -c "$pread4k" $raw)
[ "$(cat "$T/peek.out")" = "$want" ] || fail "pread 4 KiB: wrong bytes"
nraw=$(echo "$raw" | wc -l)
echo "  pread 4 KiB: $got bytes for $nraw leaves (limit $((nraw * 4 * 8192)), a chunk is $CHUNK)"
[ "$got" -le $((nraw * 4 * 8192)) ] || fail "pread 4 KiB read $got bytes for $nraw leaves"

echo "fs_peek: ok"
