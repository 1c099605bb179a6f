"""Faults and bad input at the level a user meets them: a killed chapter run, bad papermill
parameters, an unwritable output folder, a full disk."""
import json
import re
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from repro.book import stage as book
from repro.core import cache

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = book.notebook_paths(ROOT)


# Wall-clock measurements (SAM step times, training times) differ between two runs by nature; every
# other number must be bit-identical. Timing columns and claims about runtime are left out of the check.
WALLCLOCK = re.compile(r"time|wall|sec_per|runtime|speed|(^|_)s$|memory|mem_bytes", re.I)
WALLCLOCK_TEXT = re.compile(r"step time|runtime|wall[- ]clock|seconds|\bspeed|memory", re.I)


def _tables(folder: Path) -> dict[str, pd.DataFrame]:
    out = {}
    for p in sorted(folder.glob("*.csv")):
        df = pd.read_csv(p)
        df = df[[c for c in df.columns if not WALLCLOCK.search(str(c))]]
        if "claim" in df.columns:  # a claim row that quotes a measured time anywhere in its text
            text = df.fillna("").astype(str).agg(" ".join, axis=1)
            df = df[~text.str.contains(WALLCLOCK_TEXT)].reset_index(drop=True)
        out[p.name] = df
    return out


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.skipif(not NOTEBOOKS, reason="no chapter notebooks yet")
def test_killed_chapter_resumes_and_matches_an_uninterrupted_run(smoke_site, tmp_path):
    """SIGKILL a chapter right after its first expensive step was cached; rerunning finishes from the
    cache and gives tables identical to the uninterrupted run of the smoke build (which used its own
    cold cache: this is also the determinism check of two independent runs with the same seed)."""
    assert smoke_site["rc"] == 0, smoke_site["log"]
    # The cheapest chapter of the smoke build keeps this test short.
    timings = json.loads((smoke_site["results"] / "smoke" / "executed" / "timings.json").read_text())
    nb = min(NOTEBOOKS, key=lambda n: timings.get(n.stem, float("inf")))
    ch = book.chapter_of(nb)
    env = dict(smoke_site["env"], REPRO_CACHE=str(tmp_path / "cache"))
    cmd = [sys.executable, "-m", "repro.cli", "run", ch, "--profile", "smoke", "--results", str(tmp_path / "r")]
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and p.poll() is None and not list((tmp_path / "cache").glob("*/*.pt")):
        time.sleep(0.2)
    killed = p.poll() is None
    if killed:
        os.killpg(p.pid, signal.SIGKILL)  # the kernel is a child of papermill: kill the whole group
    p.wait()
    assert killed, "the chapter finished before the test could kill it; it has no cached step"
    assert not (tmp_path / "r" / "smoke" / "executed" / nb.name).exists(), "a killed run must not look finished"
    n_cached = len(list((tmp_path / "cache").glob("*/*.pt")))
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    prov = json.loads((tmp_path / "r" / "smoke" / ch / "provenance.json").read_text())
    assert prov["cache_hits"] >= n_cached >= 1, "the resumed run reuses what the killed run finished"
    ours = _tables(tmp_path / "r" / "smoke" / ch)
    ref = _tables(smoke_site["results"] / "smoke" / ch)
    assert ours.keys() == ref.keys()
    for name in ref:
        pd.testing.assert_frame_equal(ours[name], ref[name], check_exact=True, obj=name)


@pytest.mark.slow
@pytest.mark.skipif(not NOTEBOOKS, reason="no chapter notebooks yet")
@pytest.mark.parametrize("params, expected", [
    ({"profile": "large"}, "allowed values: smoke, cpu, full"),
    ({"profile": "smoke", "seed": -3}, "seed must be a non-negative integer"),
    ({"profile": "smoke", "device": "tpu"}, "unknown device 'tpu'"),
])
def test_bad_papermill_parameters_fail_with_a_clear_message(tmp_path, params, expected):
    import papermill as pm

    with pytest.raises(pm.PapermillExecutionError) as e:
        pm.execute_notebook(str(NOTEBOOKS[0]), str(tmp_path / "out.ipynb"), parameters=params,
                            kernel_name="python3", progress_bar=False, cwd=str(ROOT))
    assert expected in e.value.evalue


def test_unwritable_results_folder_is_reported_by_the_cli(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    if not NOTEBOOKS:
        pytest.skip("no chapter notebooks yet")
    r = subprocess.run([sys.executable, "-m", "repro.cli", "run", book.chapter_of(NOTEBOOKS[0]), "--profile", "smoke",
                        "--results", str(blocker / "sub")], capture_output=True, text=True)
    assert r.returncode == 2
    assert "repro: error: cannot write executed notebooks" in r.stderr and "writable folder" in r.stderr
    assert "Traceback" not in r.stderr


def test_full_disk_gives_a_clear_error_and_keeps_earlier_entries(tmp_path):
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root); the full-disk path is then untested")
    try:
        small = cache.get_or_compute("unit.small", {}, lambda: np.arange(10), root=mnt)
        with pytest.raises(OSError, match="free disk space or set REPRO_CACHE"):
            cache.get_or_compute("unit.big", {}, lambda: np.zeros(1_000_000), root=mnt)
        assert not list(mnt.glob("unit.big/*")), "no partial entry or temp file is left behind"
        np.testing.assert_array_equal(cache.get_or_compute("unit.small", {}, lambda: None, root=mnt), small)
    finally:
        subprocess.run(["umount", str(mnt)])
