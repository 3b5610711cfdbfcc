#!/bin/bash
# A large item's <item>.safetensors streamed out with cp in bounded daemon
# memory: the daemon's peak RSS grows by less than its chunk cache + 64 MiB
# while 160 MiB are copied, and the copy is the item's data (checked by the
# independent Python reader against the saved arrays).
. "$(dirname "$0")/fslib.sh"
C="$B/ckpt"
$PY - "$T/src" <<'PYEOF'
import os, sys, numpy as np
d = sys.argv[1] + "/big"
os.makedirs(d + "/layers")
rng = np.random.default_rng(3)
for i in range(5):  # 5 x 32 MiB
    np.save("%s/layers/w%d.npy" % (d, i), rng.standard_normal(8 << 20).astype("f4"))
np.save(d + "/bias.npy", np.arange(1000, dtype=">f8"))
PYEOF
"$C" save "$ROOT" 1 "$T/src" --no-compress >/dev/null
# under AddressSanitizer freed memory waits in a quarantine (256 MiB by default): keep it
# small so that the figure is the daemon's own (no effect on other builds)
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=4:thread_local_quarantine_size_kb=64"
fs_mount -o cache_size=16M
rss() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$FS_PID/status"; }
before=$(rss VmRSS)
t ls -l "$MNT/1/big.safetensors" >/dev/null
timeout 120 cp "$MNT/1/big.safetensors" "$T/big.safetensors"
peak=$(rss VmHWM)
grow=$(((peak - before) / 1024))
echo "daemon RSS: ${before} kB before, peak ${peak} kB (+${grow} MiB) for $(($(stat -c %s "$T/big.safetensors") >> 20)) MiB copied"
[ $grow -lt $((16 + 64)) ] || fail "daemon grew by $grow MiB (cache 16 MiB + 64 MiB allowed)"
fs_umount
n=$($PY "$HERE/convert_st.py" check "$T/big.safetensors" "$T/src" big | cut -d' ' -f1)
[ "$n" = 6 ] || fail "expected 6 tensors, got $n"
echo "convert_stream: ok"
