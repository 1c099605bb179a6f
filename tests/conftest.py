import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Tests never touch the user's cache or results; torch stays on few threads (2-core CI).
os.environ.setdefault("OMP_NUM_THREADS", "2")


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
    """`make book PROFILE=smoke` into a temporary folder, once per test session.

    Every chapter notebook is executed with papermill from a cold, private cache, then the book is
    built. Returns a dict with the paths, the make command and its environment (for re-runs)."""
    import subprocess

    tmp = tmp_path_factory.mktemp("smoke_book")
    env = dict(os.environ, VIRTUAL_ENV=sys.prefix, REPRO_CACHE=str(tmp / "cache"), REPRO_DATA=str(tmp / "data"))
    env.pop("REPRO_RESULTS", None)
    args = ["make", "-C", str(ROOT), "book", "PROFILE=smoke", f"RESULTS={tmp / 'results'}", f"BOOK_OUT={tmp / 'site'}"]
    r = subprocess.run(args, env=env, capture_output=True, text=True)
    return {"rc": r.returncode, "log": r.stdout[-6000:] + r.stderr[-6000:], "args": args, "env": env,
            "results": tmp / "results", "html": tmp / "site" / "_build" / "html", "tmp": tmp}
