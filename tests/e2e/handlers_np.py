#!/usr/bin/python3
"""numpy side of the handler end-to-end tests (handlers_*.sh).

  handlers_np.py handlers FILE ITEM=TYPESTR...  write a _CHECKPOINT_METADATA naming them
  handlers_np.py view STEPDIR           check what handlers_tool save wrote, as files
  handlers_np.py gen DIR EXPECT.npz     numpy generator states as NumpyRandomKey items
                                        leg, legg (has_gauss=1), pcg of DIR; the next
                                        draws of each original into EXPECT.npz
  handlers_np.py check DIR EXPECT.npz   the items' states, set into fresh generators,
                                        give exactly the expected draws
  handlers_np.py check-state ITEM FILE EXPECT.npz   the same for one state file
  handlers_np.py npsave PATH DTYPE SHAPE   np.save(PATH, arange) (errors: message, exit 1)
  handlers_np.py write PATH TEXT        open/write/close (errors: message, exit 1)
  handlers_np.py bad-descriptor IN OUT  IN with Config.name (a string) described as int32
"""
import json
import os
import sys

import numpy as np

NPH = ("orbax.checkpoint._src.handlers.random_key_checkpoint_handler."
       "NumpyRandomKeyCheckpointHandler")
NDRAWS = 1000


def write_text(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def handlers(path, pairs):
    ih = dict(p.split("=", 1) for p in pairs)
    write_text(path, json.dumps({"item_handlers": ih}))


def mt_init(seed):
    key = [seed]
    for i in range(1, 624):
        key.append((1812433253 * (key[-1] ^ (key[-1] >> 30)) + i) & 0xFFFFFFFF)
    return key


def view(d):
    def text(rel):
        with open(os.path.join(d, rel), encoding="utf-8") as f:
            return f.read()

    meta = json.loads(text("meta/metadata"))
    assert meta["big"] == 123456789012345678901234567890, meta
    assert meta["unicode"] == "caf\u00e9" and meta["nested"] == {"x": None, "ok": True}, meta

    pb = text("cfg/proto.pbtxt")
    for want in ["step: -1234567890123", "ADAMW", "seed: 18446744073709551615",
                 "warmup_steps: 18446744073709551615", 'path: "/data/train-*.tfrecord"',
                 "origin: -9223372036854775808", 'key: "y z"', "EVAL", "schedule {"]:
        assert want in pb, f"proto.pbtxt lacks {want!r}:\n{pb}"
    assert "example.Config" in json.dumps(json.loads(text("cfg/descriptor.json")))

    w = np.load(os.path.join(d, "w/checkpoint.npy"))
    assert w.dtype == np.float64 and w.shape == (7, 13), (w.dtype, w.shape)
    assert np.array_equal(w, (np.arange(91) * 0.5 - 3.25).reshape(7, 13)), w
    assert text("s/checkpoint").strip() == "0.001", text("s/checkpoint")

    jk = np.load(os.path.join(d, "jk/jax_random_key.npy"))
    assert jk.dtype == np.uint32 and jk.tolist() == [0, 42], (jk.dtype, jk)
    assert json.loads(text("jk/jax_random_key_metadata")) == {"typed": True,
                                                              "impl": "threefry2x32"}
    jku = np.load(os.path.join(d, "jku/jax_random_key.npy"))
    assert jku.dtype == np.uint32 and jku.tolist() == [[0, 1], [0xFFFFFFFF, 7],
                                                       [123456789, 0x80000000]], jku
    assert json.loads(text("jku/jax_random_key_metadata")) == {"typed": False}

    nk = json.loads(text("nk/np_random_key.json"))
    assert nk == ["MT19937", mt_init(1234), 17, 1, -0.12345678901234566], nk[2:]
    nkp = json.loads(text("nkp/np_random_key.json"))
    assert nkp["state"]["state"] == 198759536914418991882705689078033079226, nkp
    assert nkp["state"]["inc"] == 263843294879837360010514471918415607657, nkp
    np.random.PCG64().state = nkp  # numpy accepts it

    big = np.load(os.path.join(d, "state/params/w.npy"), mmap_mode="r")
    assert big.dtype == np.float32 and big.shape == (1024, 1280), (big.dtype, big.shape)
    assert np.isfinite(big).all() and np.abs(big).max() < 2
    ids = np.load(os.path.join(d, "state/ids.npy"))
    assert ids.tolist() == [0, -1, -2**63, 2**63 - 1, 42, -9000000000], ids
    assert text("state/step").strip() == "1000"
    assert text("state/name") == "run-\u03b1/1", text("state/name")


# ---- numpy generators ----

def states():
    """(item, generator, kind) after a few draws each."""
    leg = np.random.RandomState(5)
    leg.random_sample(3)
    legg = np.random.RandomState(6)
    legg.random_sample(2)
    legg.standard_normal()  # the polar method caches a second gaussian: has_gauss = 1
    assert legg.get_state()[3] == 1
    pcg = np.random.Generator(np.random.PCG64(2024))
    pcg.random(3)
    pcg.integers(0, 2**32, dtype=np.uint32)  # leaves half a word cached: has_uint32 = 1
    assert pcg.bit_generator.state["has_uint32"] == 1
    return [("leg", leg, "legacy"), ("legg", legg, "legacy"), ("pcg", pcg, "pcg")]


def draws(gen):
    """The next draws, of every kind that uses the cached parts of the state."""
    if isinstance(gen, np.random.RandomState):
        return np.concatenate([gen.standard_normal(NDRAWS // 2),
                               gen.random_sample(NDRAWS // 2)])
    return np.concatenate([gen.integers(0, 2**32, NDRAWS // 2, dtype=np.uint32).astype(float),
                           gen.random(NDRAWS // 2)])


def to_json(gen):
    if isinstance(gen, np.random.RandomState):
        name, key, pos, has_gauss, cached = gen.get_state()
        return json.dumps([name, key.tolist(), pos, has_gauss, cached])
    return json.dumps(gen.bit_generator.state)


def from_json(text, kind):
    s = json.loads(text)
    if kind == "legacy":
        assert isinstance(s, list) and len(s) == 5 and len(s[1]) == 624, "not a legacy state"
        g = np.random.RandomState()
        g.set_state((s[0], np.array(s[1], dtype=np.uint32), s[2], s[3], s[4]))
        return g
    assert isinstance(s, dict) and s["bit_generator"] == "PCG64", s
    bg = np.random.PCG64()
    bg.state = s
    return np.random.Generator(bg)


def gen(d, expect):
    os.makedirs(d, exist_ok=True)
    handlers(os.path.join(d, "_CHECKPOINT_METADATA"), [f"{i}={NPH}" for i, _, _ in states()])
    out = {}
    for item, g, _ in states():
        os.makedirs(os.path.join(d, item), exist_ok=True)
        write_text(os.path.join(d, item, "np_random_key.json"), to_json(g))
        out[item] = draws(g)
    np.savez(expect, **out)


def check_state(item, path, expect):
    kind = dict((i, k) for i, _, k in states())[item]
    with open(path, encoding="utf-8") as f:
        text = f.read()
    want = np.load(expect)[item]
    got = draws(from_json(text, kind))
    if not np.array_equal(got, want) or got.tobytes() != want.tobytes():
        sys.exit(f"{item}: the restored state draws differently ({path})")
    # The comparison can fail: one step further along draws differently.
    g = from_json(text, kind)
    draws(g)
    assert not np.array_equal(draws(g)[:10], want[:10])


def check(d, expect):
    for item, _, _ in states():
        check_state(item, os.path.join(d, item, "np_random_key.json"), expect)
    print(f"{len(states())} generators draw the same {NDRAWS} numbers")


def bad_descriptor(src, dst):
    with open(src, encoding="utf-8") as f:
        desc = json.load(f)
    swap = {"string": "int32", "TYPE_STRING": "TYPE_INT32", 9: 5}
    done = []

    def walk(node, in_config):
        if isinstance(node, dict):
            in_config = in_config or node.get("name") in ("Config", "example.Config") or \
                node.get("full_name") == "example.Config"
            if in_config and node.get("name") == "name" and node.get("number", 1) == 1:
                for k in ("type", "kind"):
                    if node.get(k) in swap and not done:
                        node[k] = swap[node[k]]
                        done.append(k)
            for k, v in node.items():
                walk(v, in_config or k == "example.Config")
        elif isinstance(node, list):
            for v in node:
                walk(v, in_config)

    walk(desc, False)
    if not done:
        sys.exit(f"no string field 'name' found in {src}: {json.dumps(desc)[:400]}")
    write_text(dst, json.dumps(desc))


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    try:
        if cmd == "handlers":
            handlers(args[0], args[1:])
        elif cmd == "view":
            view(args[0])
        elif cmd == "gen":
            gen(args[0], args[1])
        elif cmd == "check":
            check(args[0], args[1])
        elif cmd == "check-state":
            check_state(args[0], args[1], args[2])
        elif cmd == "npsave":
            shape = tuple(int(x) for x in args[2].split(",") if x)
            np.save(args[0], np.arange(int(np.prod(shape))).astype(args[1]).reshape(shape))
        elif cmd == "write":
            write_text(args[0], args[1])
        elif cmd == "bad-descriptor":
            bad_descriptor(args[0], args[1])
        else:
            sys.exit(f"unknown command {cmd}")
    except OSError as e:
        sys.exit(f"{cmd}: OSError errno {e.errno}: {e.strerror}")


if __name__ == "__main__":
    main()
