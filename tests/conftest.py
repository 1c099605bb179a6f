import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Tests never touch the user's cache or results; torch stays on few threads (2-core CI): one per worker when
# `make test` runs two pytest-xdist workers (-n 2 --dist loadfile: a module's tests, and so its module-scoped
# fixtures, stay in one worker), so that two busy workers do not oversubscribe the 2 cores.
os.environ.setdefault("OMP_NUM_THREADS", "1" if os.environ.get("PYTEST_XDIST_WORKER") else "2")


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("REPRO_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("REPRO_DATA", str(tmp_path / "data"))
    yield


@pytest.fixture
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def smoke_site(tmp_path_factory):
    """`make -j2 book PROFILE=smoke` into a temporary folder, once per test run.

    Every chapter notebook is executed with papermill from a cold, private cache, two at a time on one
    thread each (the smoke notebooks are mostly interpreter work: 2 jobs take about 3/4 of the time of one
    job with 2 threads), then the book is built. Under pytest-xdist the workers share one build: the first
    that needs it builds it under a file lock, the others wait for it and read its result. Returns a dict with
    the paths, the make command and its environment (for re-runs)."""
    import fcntl
    import json
    import subprocess

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent          # shared by every worker of this run
    tmp, record = base / "smoke_book", base / "smoke_book.json"
    with open(base / "smoke_book.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not record.exists():
            tmp.mkdir(parents=True, exist_ok=True)
            env = dict(os.environ, VIRTUAL_ENV=sys.prefix, REPRO_CACHE=str(tmp / "cache"),
                       REPRO_DATA=str(tmp / "data"), OMP_NUM_THREADS="1")
            env.pop("REPRO_RESULTS", None)
            env.pop("PYTEST_XDIST_WORKER", None)
            args = ["make", "-C", str(ROOT), "-j2", "book", "PROFILE=smoke", f"RESULTS={tmp / 'results'}",
                    f"BOOK_OUT={tmp / 'site'}"]
            r = subprocess.run(args, env=env, capture_output=True, text=True)
            record.write_text(json.dumps({"rc": r.returncode, "log": r.stdout[-6000:] + r.stderr[-6000:],
                                          "args": args, "env": env}))
    rec = json.loads(record.read_text())
    return {**rec, "results": tmp / "results", "html": tmp / "site" / "_build" / "html", "tmp": tmp}


def run_chapter_on_standins(chapter: str, standins: dict, tmp_path: Path, timeout: int) -> Path:
    """`repro run CHAPTER --profile full` in a subprocess, with REPRO_DATA / REPRO_PROFILE_DIR pointing
    at small local stand-ins of the real assets and a private cache; returns the results folder."""
    import subprocess

    env = dict(os.environ, REPRO_DATA=str(standins["data"]), REPRO_PROFILE_DIR=str(standins["profiles"]),
               REPRO_CACHE=str(tmp_path / "cache"))
    out = tmp_path / "results"
    r = subprocess.run([sys.executable, "-m", "repro.cli", "run", chapter, "--profile", "full", "--results", str(out)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    return out


def image_tree(root: Path, classes, n_real: int, n_total: int, rng, size: int = 40, flat: bool = False) -> None:
    """An ImageFolder stand-in: ``root/<class>/`` (or ``root/`` itself when ``flat``) with ``n_real``
    random PNGs and hard links up to ``n_total`` files, so manifests' min_count checks pass cheaply."""
    import numpy as np
    from PIL import Image

    for c in ([None] if flat else classes):
        d = root if flat else root / c
        d.mkdir(parents=True, exist_ok=True)
        for i in range(n_real):
            # a class-dependent mean colour, so a model can tell the ID classes apart a little
            base = rng.integers(0, 256, 3)
            img = np.clip(base + rng.normal(0, 40, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(d / f"img_{i:05d}.png")
        for i in range(n_real, n_total):
            os.link(d / f"img_{i % n_real:05d}.png", d / f"img_{i:05d}.png")
