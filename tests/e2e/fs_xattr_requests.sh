#!/bin/bash
# ckptfs: `ls -l` does not cost an xattr request per file. The mount answers EOPNOTSUPP
# for namespaces it does not implement (security.*, trusted.*), which ls remembers per
# device, so ls asks for security.selinux once, not once per file (counted on the client
# side with strace; FUSE requests with perf when the tracepoint is there). user.ckpt.*
# keeps working with getfattr -n and -d afterwards.
. "$(dirname "$0")/fslib.sh"

N=300
$PY - "$T/src" $N <<'PYEOF'
import os, sys
import numpy as np
d = os.path.join(sys.argv[1], "state")
os.makedirs(d)
for i in range(int(sys.argv[2])):
    np.save(os.path.join(d, f"l{i:04d}.npy"), np.full(i % 5 + 1, i, np.float32))
PYEOF
"$B/ckpt" save "$ROOT" 1 "$T/src" >/dev/null
fs_mount -o ro
D=$MNT/1/state

t ls -l "$D" >/dev/null # warm: entries and attributes cached by the kernel
if command -v strace >/dev/null; then
	t strace -f -o "$T/ls.trace" -e trace=getxattr,lgetxattr,fgetxattr ls -l "$D" >/dev/null
	n=$(grep -c 'security\.selinux' "$T/ls.trace" || true)
	echo "  ls -l of $N files: $n security.selinux lookups"
	[ "$n" -le 2 ] || fail "ls -l asked $n files for security.selinux"
else
	echo "  (strace missing: client-side count skipped)"
fi
if command -v perf >/dev/null &&
	perf stat -x, -e fuse:fuse_request_send true >/dev/null 2>&1; then
	n=$(t perf stat -x, -e fuse:fuse_request_send ls -l "$D" 2>&1 >/dev/null |
		awk -F, '/fuse_request_send/ { print $1 }')
	echo "  ls -l of $N files (warm): $n FUSE requests"
	[ "$n" -lt $((N / 4)) ] || fail "ls -l of $N files sent $n requests"
else
	echo "  (perf or its fuse tracepoints missing: request count skipped)"
fi

# user.ckpt.* unchanged, by name and by dump, on every file after the ls
x=$(t getfattr --absolute-names -n user.ckpt.shape "$D/l0007.npy") || fail "getfattr -n"
echo "$x" | grep -qx 'user.ckpt.shape="\[3\]"' || fail "getfattr -n: $x"
n=$(t getfattr --absolute-names -d "$D" -R 2>/dev/null | grep -c '^user.ckpt.dtype="float32"')
[ "$n" -eq $N ] || fail "getfattr -d -R shows dtype on $n of $N files"
x=$(t getfattr --absolute-names -d -m - "$D/l0001.npy") || fail "getfattr -d -m -"
echo "$x" | grep -q '^user.ckpt.kind="array"' || fail "getfattr -d -m -: $x"

fs_umount
echo "fs_xattr_requests: ok"
