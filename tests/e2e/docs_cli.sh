#!/usr/bin/env bash
# docs_cli.sh — docs/cli.md agrees with the program (issue 16): every `$ ckpt ...` example
# of the page is run, on a fresh copy of a fixture shaped like the examples (runs/exp1 with
# steps and metrics, runs/big, runs/bad with a flipped byte, runs/copied sharing data after
# a copy through a mount, sample/ and messy/), and must exit as the page shows (1 when the
# page shows a "ckpt: " line, else 0) with the first output line starting with the same
# word (or, for a JSON example, the same keys). Examples on a mount point (/mnt/...) are
# covered by the fs tests and the one of a hand-damaged index (runs/bad/2) by
# cli_index_check.sh; they are skipped here.
set -euo pipefail
# shellcheck source=tests/e2e/fs_write_lib.sh
. "$(dirname "$0")/fs_write_lib.sh"
DOC="$HERE/../../docs/cli.md"
F="$T/fixture"
mkdir -p "$F"
cd "$F"
$PY - <<'PY'
import numpy as np, os
def tree(d, k, step):
    os.makedirs(f"{d}/state/params/dense", exist_ok=True)
    os.makedirs(f"{d}/state/opt_state/0", exist_ok=True)
    np.save(f"{d}/state/params/dense/kernel.npy", np.random.default_rng(0).standard_normal((64, 32)).astype("<f4") * k)
    np.save(f"{d}/state/opt_state/0/count.npy", np.array(1000, dtype="<i4"))
    open(f"{d}/state/step", "w").write(str(step))
    open(f"{d}/state/run_name", "w").write("exp1-run")
tree("sample", 1, 1000)
tree("later", 1.5, 1100)
tree("messy", 1, 1000)
open("messy/README.txt", "w").write("notes\n")
open("messy/state/_private", "w").write("x\n")
os.makedirs("big/state", exist_ok=True)
np.save("big/state/w.npy", np.random.default_rng(0).standard_normal(1 << 20).astype("<f4"))
os.makedirs("bad/state", exist_ok=True)
np.save("bad/state/big.npy", np.arange(1 << 20, dtype="<f8"))
PY
for s in 200 240 280 290; do
	"$CKPT" save runs/exp1 "$s" sample/ --metric "loss=0.000$((s / 10))1" >/dev/null
done
"$CKPT" save runs/exp1 310 later/ --metric loss=0.0008 >/dev/null
"$CKPT" save runs/big 1 big/ >/dev/null
"$CKPT" save -n runs/bad 1 bad/ >/dev/null
data=$(find runs/bad/1/d -type f | head -1)
printf '\xff' | dd of="$data" bs=1 seek=4214211 conv=notrunc status=none
"$CKPT" save -n runs/copied 100 big/ >/dev/null
ROOT="$F/runs/copied"
fs_mount
t cp -r "$MNT/100" "$MNT/101"
finalize 101
fs_umount
cd "$T"

$PY - "$DOC" "$CKPT" "$F" "$T/run" <<'PY'
import json, os, re, shlex, shutil, subprocess, sys
doc, ckpt, fixture, run = sys.argv[1:]
examples, lines, in_block = [], open(doc).read().split("\n"), False
for i, line in enumerate(lines):
    if line.startswith("```"):
        in_block = not in_block
        continue
    if in_block and line.startswith("$ ckpt "):
        out = []
        for nxt in lines[i + 1:]:
            if nxt.startswith("$ ") or nxt.startswith("```"):
                break
            out.append(nxt)
        examples.append((i + 1, line[2:], out))
assert len(examples) >= 25, f"only {len(examples)} examples found in {doc}"
ran = 0
for lineno, cmd, want in examples:
    # a mount point, or a hand-damaged index (runs/bad/2: tests/e2e/cli_index_check.sh)
    if "/mnt/" in cmd or "runs/bad/2" in cmd:
        continue
    shutil.rmtree(run, ignore_errors=True)
    shutil.copytree(fixture, run, symlinks=True)
    argv = shlex.split(cmd)
    p = subprocess.run([ckpt] + argv[1:], cwd=run, capture_output=True, text=True, timeout=120)
    status = 1 if any(l.startswith("ckpt: ") for l in want) else 0
    got = (p.stdout + p.stderr).split("\n")
    where = f"docs/cli.md:{lineno}: {cmd}"
    assert p.returncode == status, f"{where}: exit {p.returncode}, the page shows {status}\n{p.stdout}{p.stderr}"
    if not want:
        ran += 1
        continue
    text = "\n".join(want)
    try:
        doc_json = json.loads(text)
    except ValueError:
        doc_json = None
    if isinstance(doc_json, dict):
        got_json = json.loads(p.stdout)
        assert set(got_json) == set(doc_json), f"{where}: keys {sorted(got_json)} vs the page's {sorted(doc_json)}"
    else:
        w0 = want[0].split()[0] if want[0].split() else ""
        first = got[0].split()[0] if got[0].split() else ""
        assert first == w0, f"{where}: first output {got[0]!r}, the page shows {want[0]!r}"
    ran += 1
print(f"docs_cli: {ran} examples of docs/cli.md ran as documented")
PY
