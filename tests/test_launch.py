"""repro.launch.runner: sweeps through submitit's LocalExecutor fill the cache, killed jobs are resubmitted,
finished jobs are never recomputed, and the jobs file gives `--status` across processes."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from repro.core import cache
from repro.launch import runner as launch
from repro.launch.runner import Job

HERE = Path(__file__).resolve().parent


def die_once(i: int, marker_dir: str) -> dict:
    """First attempt of each job SIGKILLs its own process mid-way (no Python cleanup, like an OOM kill)."""
    marker = Path(marker_dir) / f"attempt_{i}"
    out = launch.example_job(i)
    if not marker.exists():
        marker.write_text("started")
        os.kill(os.getpid(), signal.SIGKILL)
    return out


def wait_for(i: int, marker: str) -> dict:
    """Stays at work until ``marker`` exists (a job observed while running)."""
    while not Path(marker).exists():
        time.sleep(0.05)
    return launch.example_job(i)


def always_fails(i: int) -> dict:
    raise ValueError(f"bad job {i}")


def count_calls(i: int, counter: str) -> dict:
    with open(counter, "a") as f:
        f.write(f"{i}\n")
    return launch.example_job(i)


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("REPRO_RESULTS", str(tmp_path / "results"))
    # submitit's local workers import the job functions of this file by module name
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return tmp_path


def _same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]))


def test_job_validation():
    with pytest.raises(ValueError, match="import path"):
        Job("repro.launch.runner.example_job", {}, "x")
    with pytest.raises(TypeError, match="JSON"):
        Job("repro.launch.runner:example_job", {"a": object()}, "x")
    with pytest.raises(ValueError, match="executor"):
        launch.run_jobs([], executor="mpi")
    with pytest.raises(ValueError, match="no callable"):
        launch.resolve("repro.launch.runner:nope")
    with pytest.raises(ValueError, match="no job builder"):
        launch.get("ch99")
    a, b = Job("repro.launch.runner:example_job", {"i": 1}, "x"), Job("repro.launch.runner:example_job", {"i": 1}, "x", label="y")
    assert a.key == b.key  # the label is display only
    assert a.key != Job("repro.launch.runner:example_job", {"i": 2}, "x").key


def test_local_inline_caches_and_skips(env):
    counter = env / "calls.txt"
    jobs = [Job("test_launch:count_calls", {"i": i, "counter": str(counter)}, "t_count") for i in range(3)]
    r1 = launch.run_jobs(jobs, sweep="inline")
    assert counter.read_text().split() == ["0", "1", "2"]
    r2 = launch.run_jobs(jobs, sweep="inline")
    assert counter.read_text().split() == ["0", "1", "2"]  # second sweep: all cache hits, nothing recomputed
    for a, b, i in zip(r1, r2, range(3)):
        _same(a, b)
        _same(a, launch.example_job(i))
    assert [r["state"] for r in launch.status(jobs, sweep="inline")] == ["done"] * 3


def test_killed_job_in_process_pool(env):
    markers = env / "markers"
    markers.mkdir()
    jobs = [Job("test_launch:die_once", {"i": i, "marker_dir": str(markers)}, "t_die_pool") for i in range(2)]
    res = launch.run_jobs(jobs, executor="local", max_parallel=2, max_retries=2, sweep="pool")
    for i, r in enumerate(res):
        _same(r, launch.example_job(i))


def test_submitit_sweep_kill_retry_failure_and_status(env):
    """One LocalExecutor sweep (parallel, to pay the worker start-up once per round):
    jobs SIGKILLed mid-way are resubmitted and end identical to a local run and in the cache; a job that
    raises is retried, then reported with its log; a job still at work shows as running with its log;
    `repro sweep --status` in another process reads it all back from the jobs file."""
    pytest.importorskip("submitit")
    markers = env / "markers"
    markers.mkdir()
    good = [Job("test_launch:die_once", {"i": i, "marker_dir": str(markers)}, "t_mixed") for i in range(2)]
    bad = [Job("test_launch:always_fails", {"i": 7}, "t_mixed", label="bad seven")]
    slow = [Job("test_launch:wait_for", {"i": 5, "marker": str(markers / "go")}, "t_mixed", label="slow five")]
    jobs = good + bad + slow
    box: dict = {}

    def sweep():
        try:
            launch.run_jobs(jobs, executor="submitit-local", max_parallel=4, max_retries=1, sweep="mixed", poll_s=0.1)
        except Exception as e:  # noqa: BLE001 -- checked below, in the test's thread
            box["error"] = e

    t = threading.Thread(target=sweep)
    t.start()
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            if launch.jobs_file("mixed").exists():
                row = launch.status(slow, sweep="mixed")[0]
                if row["state"] == "running" and row["log"]:
                    break
            time.sleep(0.2)
        assert row["state"] == "running" and row["job_id"] and row["log"].endswith(".err")
    finally:
        (markers / "go").write_text("go")
        t.join(timeout=180)
    assert not t.is_alive()
    assert isinstance(box.get("error"), RuntimeError) and re.search("bad seven.*bad job 7", str(box["error"]), re.S)
    assert all(j.done() for j in good + slow) and not bad[0].done()
    for i, j in enumerate(good):
        _same(cache.read_entry(j.path()), launch.example_job(i))
    rec = json.loads(launch.jobs_file("mixed").read_text())
    assert rec["executor"] == "submitit-local" and all(v["job_id"] for v in rec["jobs"].values())
    assert sorted(v["attempts"] for v in rec["jobs"].values()) == [1, 2, 2, 2]  # killed once / failed twice / slow
    rows = launch.status(jobs, sweep="mixed")
    assert [r["state"] for r in rows] == ["done", "done", "failed", "done"]
    assert Path(rows[2]["log"]).exists() and "bad job 7" in Path(rows[2]["log"]).read_text()
    # a rerun of the sweep resubmits only the failed job (the finished ones are cache hits)
    with pytest.raises(RuntimeError, match="1 of 4 jobs failed"):
        launch.run_jobs(jobs, executor="local", max_retries=0, sweep="mixed")
    r = subprocess.run([sys.executable, "-m", "repro.cli", "sweep", "--status"], capture_output=True, text=True,
                       env=os.environ)
    assert r.returncode == 1, r.stderr  # not all done
    assert "done=3" in r.stdout and "failed=1" in r.stdout and "bad job 7" in r.stdout and rows[2]["log"] in r.stdout


@launch.register("t_example")
def _example_jobs(profile: str, seed: int) -> list:
    """A two-stage test chapter: stage 2 (i = 10 + sum of stage-1 i) exists once stage 1 is cached."""
    stage1 = [Job("repro.launch.runner:example_job", {"i": i + seed}, "t_example", label=f"example {i}") for i in range(3)]
    res = launch.results_if_done(stage1)
    if res is None:
        return stage1
    return stage1 + [Job("repro.launch.runner:example_job", {"i": 10 + sum(r["i"] for r in res)}, "t_example", label="stage 2")]


def test_sweep_cli(env, capsys, monkeypatch):
    """`repro sweep` is wired into the `repro` command; stages run in order; `--status` with and without a chapter."""
    from repro import cli

    assert cli.main(["sweep", "t_example", "--profile", "smoke", "--status"]) == 1
    out = capsys.readouterr().out
    assert "pending=3" in out and "stage 2" not in out  # stage 2 is unknown until stage 1 is done
    assert cli.main(["sweep", "t_example", "--profile", "smoke"]) == 0
    assert cli.main(["sweep", "t_example", "--profile", "smoke", "--status"]) == 0
    out = capsys.readouterr().out
    assert "done=4" in out and "[done   ] stage 2" in out
    _same(cache.read_entry(_example_jobs("smoke", 0)[-1].path()), launch.example_job(13))
    assert cli.main(["sweep", "--status"]) == 0  # every recorded sweep, rebuilt from its jobs file
    out = capsys.readouterr().out
    assert "t_example_smoke_seed0" in out and "done=4" in out
    monkeypatch.setenv("REPRO_CACHE", str(env / "another_cache"))  # status reads the cache the sweep wrote to
    assert cli.main(["sweep", "--status"]) == 0 and "done=4" in capsys.readouterr().out
    assert cli.main(["sweep", "--profile", "smoke"]) == 2  # a chapter is needed to run
    assert "needs a CHAPTER" in capsys.readouterr().err
    assert cli.main(["sweep", "ch99", "--status"]) == 2
    with pytest.raises(SystemExit):
        cli.main(["sweep", "t_example", "--executor", "mpi"])


def test_status_running_then_pending_after_cache_clear(env):
    jobs = [Job("repro.launch.runner:example_job", {"i": 3}, "t_status")]
    assert launch.status(jobs, sweep="st")[0]["state"] == "pending"
    launch.run_jobs(jobs, sweep="st")
    assert launch.status(jobs, sweep="st")[0]["state"] == "done"
    cache.clear("t_status")
    assert launch.status(jobs, sweep="st")[0]["state"] == "pending"


def test_builders_come_from_the_studies_jobs_modules():
    """Each chapter's sweep is its study's jobs.build; the run layer names no chapter and no job function."""
    import ast
    import importlib

    sweeps = launch.sweep_chapters()
    assert {"ch3", "ch5", "ch6", "ch7"} <= set(sweeps)
    packages = launch.study_packages()
    assert set(packages) == {"ch3", "ch4", "ch5", "ch6", "ch7", "appendix"}
    for ch in sweeps:
        if ch not in packages:
            continue  # registered in-process by a test
        module = importlib.import_module(f"repro.studies.{packages[ch]}.jobs")
        assert launch.get(ch) is module.build
        jobs = launch.jobs_for(ch, "smoke", 0)
        assert jobs and len({j.key for j in jobs}) == len(jobs)
        for j in jobs:
            assert j.fn.startswith(f"repro.studies.{packages[ch]}."), j.fn  # the study's own job functions
            launch.resolve(j.fn)
    for ch in sorted(set(packages) - set(sweeps)):  # a chapter without a sweep says so, with the ones that exist
        with pytest.raises(ValueError, match=r"has no sweep.*jobs does not exist.*ch3, "):
            launch.jobs_for(ch, "smoke", 0)
    with pytest.raises(ValueError, match="not a chapter of repro.studies"):
        launch.jobs_for("ch99", "smoke", 0)
    with pytest.raises(ValueError, match="no full-profile sweep"):  # said, not silently empty
        launch.jobs_for("ch3", "full", 0)
    src = (Path(launch.__file__).read_text() + (Path(launch.__file__).parent / "cli.py").read_text())
    tree = ast.parse(src)
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | {
        n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    assert not [n for n in names if re.match(r"_?ch\d", n)], "the run layer defines chapter-specific code"
    assert "repro.studies.ch" not in src


def visible_gpus_of_job(i: int) -> dict:
    """What a job sees: its CUDA_VISIBLE_DEVICES (no CUDA needed to read it)."""
    time.sleep(1.0)  # overlap with the other job, so two GPU groups are in use at once
    return {"i": i, "cvd": os.environ.get("CUDA_VISIBLE_DEVICES"), "t": time.time()}


def test_gpu_slots_and_local_gpu_pinning(env, monkeypatch):
    """On one multi-GPU machine each submitit-local job gets its own GPU group (not all GPU 0)."""
    pytest.importorskip("submitit")
    assert launch.gpu_slots([0, 1, 2, 3], 2) == [[0, 1], [2, 3]]
    assert launch.gpu_slots([4, 6, 7], 1) == [[4], [6], [7]]
    with pytest.raises(RuntimeError, match="shows 1 GPU"):
        launch.gpu_slots([0], 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert launch.visible_gpu_ids() == [3, 5]
    with pytest.raises(ValueError, match="process pool does not assign GPUs"):
        launch.run_jobs([Job("repro.launch.runner:example_job", {"i": 0}, "t_gpu")], executor="local", max_parallel=2,
                        gpus_per_job=1)
    jobs = [Job("test_launch:visible_gpus_of_job", {"i": i}, "t_gpu") for i in range(3)]
    res = launch.run_jobs(jobs, executor="submitit-local", max_parallel=8, gpus_per_job=1, sweep="gpu", poll_s=0.1)
    assert sorted(r["cvd"] for r in res[:2]) == ["3", "5"]  # the first two ran at once, on different GPUs
    assert res[2]["cvd"] in ("3", "5")  # the third waited for a free GPU (max_parallel capped at 2)
