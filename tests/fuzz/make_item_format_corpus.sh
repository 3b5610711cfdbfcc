#!/bin/bash
# Make the seed corpus of item_format_fuzzer: the items of a real step of all
# handler kinds (tests/tools/handlers_tool save, then ckpt restore), in the
# fuzzer's input format (a byte choosing the handler, then files as
# "name\ncontent\n--\n"), plus damaged variants.
# Usage: B=build bash tests/fuzz/make_item_format_corpus.sh   (rewrites the corpus)
set -euo pipefail
B=${B:-build}
OUT=tests/fuzz/corpus/item_format
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
"$B/tests/tools/handlers_tool" save "$T/root" 1 >/dev/null
"$B/ckpt" restore "$T/root/1" "$T/out" >/dev/null
rm -rf "$OUT"
mkdir -p "$OUT"
/usr/bin/python3 - "$T/out" "$OUT" <<'PY'
import os, sys
src, out = sys.argv[1], sys.argv[2]
kinds = {"meta": 0, "w": 1, "s": 1, "cfg": 2, "jk": 3, "jku": 3, "nk": 4, "nkp": 4}
def pack(kind, files):
    b = bytes([kind])
    for name, data in files:
        b += name.encode() + b"\n" + data + b"\n--\n"
    return b
for item, kind in kinds.items():
    d = os.path.join(src, item)
    files = [(n, open(os.path.join(d, n), "rb").read()) for n in sorted(os.listdir(d))]
    # .npy files: keep the seeds small (header and a little data)
    files = [(n, c[:256]) if n.endswith(".npy") else (n, c) for n, c in files]
    open(os.path.join(out, item), "wb").write(pack(kind, files))
    n, c = files[-1]
    open(os.path.join(out, item + "-cut"), "wb").write(pack(kind, files[:-1] + [(n, c[: len(c) // 2])]))
    open(os.path.join(out, item + "-one"), "wb").write(pack(kind, files[:1]))
PY
ls "$OUT" | wc -l
