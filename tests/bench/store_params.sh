#!/bin/bash
# store_params.sh — measure the store's chunk size (docs/format.md, "Choosing
# the parameters"): sequential write of float32 normal data (zstd level 1 with
# the sample heuristic, then level 0), cold sequential read, cold random 4 KiB
# reads without and with the chunk cache; a plain file as the baseline.
#
#   [REPS=3] tests/bench/store_params.sh [SIZE_MIB=1024] [CHUNK_KIB[:FILE_MIB]...]
#
# default runs: 256 KiB, 1 MiB and 4 MiB chunks with 1 GiB data files, and
# 1 MiB chunks with 64 MiB data files ("1 MiB/64"). Each row is the best of
# REPS runs (the machines we run on are shared and noisy).
#
# Runs standalone from the repository root; uses $B/libckpt.a (B=build).
set -euo pipefail
cd "$(dirname "$0")/../.."
B=${B:-build}
SIZE=${1:-1024}
REPS=${REPS:-3}
shift || true
CHUNKS=${*:-256 1024 4096 1024:64}
make -s B="$B" "$B/libckpt.a" >/dev/null
work=$(mktemp -d "${TMPDIR:-/var/tmp}/store_params.XXXXXX")
trap 'rm -rf "$work"' EXIT
cc -O2 -std=c11 -D_GNU_SOURCE -Icore/include -o "$work/store_params" tests/bench/store_params.c \
	"$B/libckpt.a" $(pkg-config --libs sqlite3 libzstd) -pthread -lm
echo "store_params: ${SIZE} MiB of float32 N(0,1), $(nproc) CPUs, best of $REPS, in $work"
for level in 1 0; do
	"$work/store_params" "$work" "$SIZE" "$level" "$REPS" $CHUNKS
done
