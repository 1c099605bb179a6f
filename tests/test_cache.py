import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest
import torch

from repro.core import cache


def test_compute_once_then_hit(tmp_path):
    calls = []

    def fn():
        calls.append(1)
        return {"a": np.arange(5), "t": torch.ones(3)}

    v1 = cache.get_or_compute("unit.fn", {"x": 1}, fn, root=tmp_path)
    v2 = cache.get_or_compute("unit.fn", {"x": 1}, fn, root=tmp_path)
    assert len(calls) == 1
    np.testing.assert_array_equal(v1["a"], v2["a"])
    assert torch.equal(v1["t"], v2["t"])
    cache.get_or_compute("unit.fn", {"x": 2}, fn, root=tmp_path)
    cache.get_or_compute("unit.fn", {"x": 1}, fn, version="2", root=tmp_path)
    assert len(calls) == 3


def test_fingerprint_content_not_identity():
    a = np.arange(10.0)
    assert cache.fingerprint(a) == cache.fingerprint(a.copy())
    assert cache.fingerprint(a) != cache.fingerprint(a.astype(np.float32))
    b = a.copy()
    b[3] += 1e-12
    assert cache.fingerprint(a) != cache.fingerprint(b)
    t = torch.arange(6).reshape(2, 3)
    assert cache.fingerprint(t) == cache.fingerprint(t.clone())
    assert cache.fingerprint(t) != cache.fingerprint(t.T.contiguous())  # same bytes count, other shape
    assert cache.fingerprint({"a": 1, "b": 2}) == cache.fingerprint({"b": 2, "a": 1})
    assert cache.fingerprint([1, 2]) != cache.fingerprint((1, 2))
    assert cache.fingerprint(1) != cache.fingerprint(1.0)
    m1, m2 = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    m2.load_state_dict(m1.state_dict())
    assert cache.fingerprint(m1) == cache.fingerprint(m2)
    df = pd.DataFrame({"x": [1, 2]})
    assert cache.fingerprint(df) == cache.fingerprint(df.copy())
    with pytest.raises(TypeError, match="cannot fingerprint"):
        cache.fingerprint(object())


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty"])
def test_corrupt_entry_is_recomputed_never_loaded(tmp_path, damage):
    calls = []

    def fn():
        calls.append(1)
        return np.arange(1000)

    cache.get_or_compute("unit.c", {}, fn, root=tmp_path)
    path = cache.entry_path("unit.c", cache.key_for("unit.c", {}, code=__name__), tmp_path)
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        b = bytearray(data)
        b[-10] ^= 0xFF
        path.write_bytes(bytes(b))
    else:
        path.write_bytes(b"")
    assert path in cache.verify(tmp_path)
    with pytest.raises(cache.CacheCorrupt):
        cache.read_entry(path)
    v = cache.get_or_compute("unit.c", {}, fn, root=tmp_path)
    assert len(calls) == 2
    np.testing.assert_array_equal(v, np.arange(1000))
    assert cache.verify(tmp_path) == []


def test_decorator_keys_on_all_arguments(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_CACHE", str(tmp_path))
    calls = []

    @cache.cached("unit.deco")
    def f(x, scale=2):
        calls.append(x)
        return x * scale

    assert f(3) == 6 and f(3) == 6 and f(x=3, scale=2) == 6
    assert len(calls) == 1
    assert f(3, scale=3) == 9
    assert len(calls) == 2


def test_sigkill_during_write_leaves_no_loadable_entry(tmp_path):
    """A process killed while writing a large entry leaves only a temp file, never a valid entry."""
    script = textwrap.dedent(f"""
        import numpy as np, os, sys, time
        from pathlib import Path
        from repro.core import cache
        root = Path({str(tmp_path)!r})
        real_write = os.fdopen
        def slow_fdopen(fd, mode):
            f = real_write(fd, mode)
            class Slow:
                def write(self, b):
                    mv = memoryview(b)
                    for i in range(0, len(mv), 1 << 16):
                        f.write(mv[i:i + (1 << 16)]); f.flush()
                        if i > (1 << 20):
                            print("WRITING", flush=True); time.sleep(30)
                def __getattr__(self, k): return getattr(f, k)
                def __enter__(self): return self
                def __exit__(self, *a): f.close()
            return Slow()
        os.fdopen = slow_fdopen
        cache.get_or_compute("unit.kill", {{}}, lambda: np.zeros(4_000_000), root=root, code="repro.core.config")
    """)
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    assert "WRITING" in line
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    path = cache.entry_path("unit.kill", cache.key_for("unit.kill", {}, code="repro.core.config"), tmp_path)
    assert not path.exists()
    leftovers = list(path.parent.glob(".tmp-*"))
    assert leftovers, "the killed writer should have left only a temporary file"
    # A rerun computes and stores a valid entry; the leftover temp file is ignored.
    v = cache.get_or_compute("unit.kill", {}, lambda: np.ones(3), root=tmp_path, code="repro.core.config")
    np.testing.assert_array_equal(v, np.ones(3))
    assert cache.read_entry(path).sum() == 3


def test_info_and_clear(tmp_path):
    cache.get_or_compute("a.x", {}, lambda: 1, root=tmp_path)
    cache.get_or_compute("b.y", {"k": 1}, lambda: 2, root=tmp_path)
    rows = {r["name"]: r for r in cache.info(tmp_path)}
    assert rows["a.x"]["entries"] == 1 and rows["b.y"]["entries"] == 1
    assert cache.clear("a.x", root=tmp_path) == 1
    assert [r["name"] for r in cache.info(tmp_path)] == ["b.y"]


def test_bad_names_and_params():
    with pytest.raises(ValueError, match="without slashes"):
        cache.entry_path("a/b", "k")
    with pytest.raises(TypeError, match="params must be a dict"):
        cache.get_or_compute("x", [1], lambda: 1)
