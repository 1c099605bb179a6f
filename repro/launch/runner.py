"""Independent jobs run in-process, in a process pool, or on SLURM via submitit; results land in the cache.

At paper scale each chapter's expensive loop (train model i of a zoo, extract features of model i,
measure the sharpness of model i, unlearning run j) is a list of *independent* jobs. A
:class:`Job` is a pure function given by import path (``"module:function"``), its keyword
parameters, and a cache name/version. Running a job means::

    repro.core.cache.get_or_compute(job.name, {"fn": job.fn, "params": job.params}, lambda: fn(**params), job.version)

so the value lands in the content-addressed cache wherever it was computed (this process, a pool
worker, a SLURM node sharing ``$REPRO_CACHE``). The notebook then collects results from the cache
and does not care where they came from.

* **Never recomputed**: before anything is submitted, jobs whose cache entry exists are skipped.
* **Retried**: a job that raised, was killed (OOM, ``kill -9``) or was preempted is resubmitted up
  to ``max_retries`` times; on SLURM, submitit's checkpoint/requeue handles preemption and timeouts
  (:class:`_Runner.checkpoint`). A job is idempotent (the cache write is atomic), so a rerun after a
  kill computes the very same value.
* **Status across processes**: every sweep writes ``<results>/sweeps/<sweep>.json`` with the
  submitted job ids, attempts, states and log paths; :func:`status` (``repro sweep CH --status``)
  reads it back, and the cache decides "done".

Executors (``executor=``):

``"local"``     in-process when ``max_parallel == 1`` (default), else a small spawn process pool;
``"submitit"``  ``submitit.AutoExecutor``: SLURM when ``sbatch`` is on the PATH, else submitit's
                ``LocalExecutor`` (subprocesses on this machine);
``"submitit-local"`` always submitit's ``LocalExecutor`` (what the tests use; a dry run of a SLURM sweep);
``"slurm"``     ``submitit.AutoExecutor(cluster="slurm")``; fails clearly without SLURM.

A chapter's jobs come from its study: ``repro/studies/<chapter>_<name>/jobs.py`` defines
``build(profile, seed) -> list[Job]`` and the job functions, built from the plan the notebook runs;
:func:`jobs_for` imports it by the study package's name. This module knows no chapter.
"""
from __future__ import annotations

import concurrent.futures as cf
import importlib
import json
import logging
import multiprocessing as mp
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from repro.core import cache
from repro.core.config import cache_root, results_root

log = logging.getLogger("repro.launch.runner")

EXECUTORS = ("local", "submitit", "submitit-local", "slurm")
STATES = ("done", "running", "failed", "pending")


# --------------------------------------------------------------------------- jobs
@dataclass(frozen=True)
class Job:
    """One independent unit of work: ``fn(**params)`` cached under ``(name, version)``.

    ``fn`` is an import path ``"package.module:function"`` (so a SLURM node can import it; a lambda
    could not be pickled there). ``params`` must hold everything that determines the result and be
    JSON-serialisable (it is written to the jobs file); ``label`` is for display only.
    """

    fn: str
    params: dict
    name: str
    version: str = "1"
    label: str = ""

    def __post_init__(self):
        if not isinstance(self.fn, str) or self.fn.count(":") != 1 or not all(self.fn.split(":")):
            raise ValueError(f"Job.fn must be an import path 'package.module:function', got {self.fn!r}")
        if not isinstance(self.params, dict):
            raise TypeError(f"Job.params must be a dict of keyword arguments, got {type(self.params).__name__}")
        try:
            json.dumps(self.params, sort_keys=True)
        except TypeError as e:
            raise TypeError(f"Job.params must be JSON-serialisable (numbers, strings, lists, dicts) so the jobs "
                            f"file can record them; build large inputs inside the job function ({e})") from None
        cache._safe_name(self.name)

    def cache_params(self) -> dict:
        return {"fn": self.fn, "params": self.params}

    @property
    def key(self) -> str:
        return cache.key_for(self.name, self.cache_params(), self.version, code=self.fn)  # the job function's module

    def path(self, root: Optional[Path] = None) -> Path:
        return cache.entry_path(self.name, self.key, root)

    def done(self, root: Optional[Path] = None) -> bool:
        return self.path(root).exists()

    def display(self) -> str:
        return self.label or f"{self.fn}({', '.join(f'{k}={v!r}' for k, v in sorted(self.params.items()))})"


def resolve(path: str) -> Callable:
    """Import ``"package.module:function"``; clear error when it does not exist."""
    mod_name, _, attr = path.partition(":")
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as e:
        raise ValueError(f"cannot import module {mod_name!r} of job function {path!r}: {e}") from e
    fn = getattr(mod, attr, None)
    if not callable(fn):
        raise ValueError(f"{mod_name!r} has no callable {attr!r} (job function {path!r})")
    return fn


def execute(job: Job, root: Optional[str] = None) -> str:
    """Run one job through the cache (a hit costs nothing) and return its cache key.

    This is what every executor runs on the worker; ``root`` is the cache folder of the submitting
    process, passed explicitly so a worker with another ``$REPRO_CACHE`` still writes to the same place.
    """
    fn = resolve(job.fn)
    cache.get_or_compute(job.name, job.cache_params(), lambda: fn(**job.params), job.version,
                         root=Path(root) if root else None, code=job.fn)
    return job.key


class _Runner:
    """submitit callable with checkpointing: on preemption/timeout SLURM requeues the same job.

    Nothing is saved mid-job: a job is short relative to a SLURM allocation and idempotent, so the
    requeued job simply reruns (a finished job is a cache hit).
    """

    def __init__(self, job: Job, root: str):
        self.job, self.root = job, root

    def __call__(self) -> str:
        return execute(self.job, self.root)

    def checkpoint(self, *args, **kwargs):
        import submitit

        return submitit.helpers.DelayedSubmission(_Runner(self.job, self.root))


# --------------------------------------------------------------------------- jobs file
def jobs_file(sweep: str) -> Path:
    return results_root() / "sweeps" / f"{sweep}.json"


def _load_records(sweep: str) -> dict:
    p = jobs_file(sweep)
    if not p.exists():
        return {}
    try:
        return json.loads(p.read_text()).get("jobs", {})
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"jobs file {p} is unreadable ({e}); delete it to start the sweep's record afresh") from e


def _save_records(sweep: str, records: dict, executor: str, folder: Path) -> None:
    p = jobs_file(sweep)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps({"sweep": sweep, "executor": executor, "log_folder": str(folder),
                               "cache_root": str(cache_root()), "updated": time.time(), "jobs": records},
                              indent=1, sort_keys=True))
    os.replace(tmp, p)  # atomic: `repro sweep --status` in another process never reads half a file


def _record(job: Job) -> dict:
    return {"label": job.display(), "fn": job.fn, "params": job.params, "name": job.name, "version": job.version,
            "state": "pending", "attempts": 0, "job_id": None, "stdout": None, "stderr": None, "error": None}


# --------------------------------------------------------------------------- executors
def _make_submitit(executor: str, folder: Path, *, partition, gpus_per_job, cpus_per_job, mem_gb, timeout_min,
                   max_parallel, slurm_options):
    try:
        import submitit
    except ImportError as e:
        raise RuntimeError(f"executor {executor!r} needs the submitit package: pip install submitit") from e
    if executor == "slurm" and shutil.which("sbatch") is None:
        raise RuntimeError("executor='slurm' but no `sbatch` on the PATH: run on a SLURM login node, or use "
                           "--executor submitit (falls back to local subprocesses) or --executor local")
    cluster = {"slurm": "slurm", "submitit-local": "local"}.get(executor)  # None: submitit auto-detects
    ex = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
    kw: dict[str, Any] = dict(timeout_min=int(timeout_min), cpus_per_task=int(cpus_per_job))
    if gpus_per_job:
        kw["gpus_per_node"] = int(gpus_per_job)
    if mem_gb:
        kw["mem_gb"] = mem_gb
    if ex.cluster == "slurm":
        kw["slurm_array_parallelism"] = int(max_parallel)
        if partition:
            kw["slurm_partition"] = partition
        kw["slurm_additional_parameters"] = dict(slurm_options or {})
    ex.update_parameters(**kw)
    return ex


def _local_job_alive(job_id: str) -> Optional[bool]:
    """LocalExecutor ids are PIDs; ``None`` when the id is not a PID."""
    try:
        pid = int(str(job_id).split("_")[0])
    except ValueError:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_jobs(jobs: Sequence[Job], executor: str = "local", *, max_parallel: int = 1, max_retries: int = 2,
             sweep: str = "sweep", folder: Optional[Path] = None, partition: Optional[str] = None,
             gpus_per_job: int = 0, cpus_per_job: int = 1, mem_gb: Optional[float] = None, timeout_min: int = 60,
             slurm_options: Optional[dict] = None, poll_s: float = 0.5, wait: bool = True,
             return_results: bool = True) -> list:
    """Run ``jobs`` and return their results **in order** (read back from the cache).

    Args:
        executor: ``"local"`` | ``"submitit"`` | ``"submitit-local"`` | ``"slurm"`` (module docstring).
        max_parallel: jobs in flight at once (pool size locally, array parallelism on SLURM).
        max_retries: resubmissions of a job that failed or was killed before it is declared failed.
        sweep: name of the jobs file ``<results>/sweeps/<sweep>.json`` (``repro sweep --status``).
        folder: submitit log folder (default ``<results>/sweeps/<sweep>_logs``).
        partition, gpus_per_job, cpus_per_job, mem_gb, timeout_min, slurm_options: SLURM resources
            (``slurm_options`` is passed as ``slurm_additional_parameters``, e.g. ``{"account": "x"}``).
        wait: ``False`` submits and returns ``[]`` immediately (SLURM: detach, check with ``--status``).
        return_results: ``False`` returns ``[]`` without loading the values (large state dicts).

    Raises:
        RuntimeError listing each failed job with its last error and log path, after all others finished.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    if not isinstance(max_parallel, int) or max_parallel < 1:
        raise ValueError(f"max_parallel must be a positive integer, got {max_parallel!r}")
    if not isinstance(max_retries, int) or max_retries < 0:
        raise ValueError(f"max_retries must be an integer >= 0, got {max_retries!r}")
    jobs = list(jobs)
    for j in jobs:
        if not isinstance(j, Job):
            raise TypeError(f"run_jobs takes repro.launch.runner.Job objects, got {type(j).__name__}")
    root = str(cache_root())
    folder = Path(folder) if folder else results_root() / "sweeps" / f"{sweep}_logs"
    records = _load_records(sweep)
    for j in jobs:
        if j.key not in records:
            records[j.key] = dict(_record(j), order=len(records))  # submission order, for --status listings
        rec = records[j.key]
        if j.done():
            rec["state"] = "done"
    todo = [j for j in jobs if not j.done()]
    for j in todo:
        records[j.key]["run_attempts"] = 0
    log.info("sweep %s: %d jobs, %d cached, %d to run (%s)", sweep, len(jobs), len(jobs) - len(todo), len(todo), executor)
    if todo:
        if executor == "local" and max_parallel == 1:
            _run_inline(todo, records, max_retries, sweep, folder)
        elif executor == "local":
            if gpus_per_job:
                raise ValueError("the local process pool does not assign GPUs (every worker would use GPU 0); on a "
                                 "multi-GPU machine use --executor submitit-local --gpus-per-job 1 --max-parallel N, "
                                 "which gives each job its own GPUs")
            _run_pool(todo, records, max_parallel, max_retries, sweep, folder, poll_s)
        else:
            ex = _make_submitit(executor, folder, partition=partition, gpus_per_job=gpus_per_job,
                                cpus_per_job=cpus_per_job, mem_gb=mem_gb, timeout_min=timeout_min,
                                max_parallel=max_parallel, slurm_options=slurm_options)
            _run_submitit(ex, todo, records, root, max_parallel, max_retries, sweep, folder, poll_s, wait,
                          gpus_per_job=gpus_per_job)
            if not wait:
                _save_records(sweep, records, executor, folder)
                return []
    _save_records(sweep, records, executor, folder)
    failed = [j for j in jobs if records[j.key]["state"] == "failed"]
    if failed:
        lines = [f"  {records[j.key]['label']}: {records[j.key]['error']} (log: {records[j.key]['stderr']})"
                 for j in failed]
        raise RuntimeError(f"{len(failed)} of {len(jobs)} jobs failed after {max_retries} retries; rerun the same "
                           f"sweep to retry only those (finished jobs are cached):\n" + "\n".join(lines))
    if not return_results:
        return []
    return [cache.read_entry(j.path()) for j in jobs]


def _finish(rec: dict, ok: bool, error: Optional[str], max_retries: int) -> bool:
    """Update a record after an attempt; True when the job should be resubmitted."""
    if ok:
        rec.update(state="done", error=None)
        return False
    rec["error"] = error
    if rec.get("run_attempts", rec["attempts"]) <= max_retries:  # retries counted per sweep run
        rec["state"] = "pending"
        return True
    rec["state"] = "failed"
    return False


def _run_inline(todo, records, max_retries, sweep, folder):
    for j in todo:
        rec = records[j.key]
        while True:
            rec.update(state="running", attempts=rec["attempts"] + 1,
                       run_attempts=rec.get("run_attempts", 0) + 1, job_id=f"inline:{os.getpid()}")
            _save_records(sweep, records, "local", folder)
            try:
                execute(j)
                ok, err = True, None
            except Exception as e:  # a job's failure must not stop the sweep; it is reported at the end
                ok, err = False, f"{type(e).__name__}: {e}"
                log.warning("job %s failed (attempt %d): %s", rec["label"], rec["attempts"], err)
            if not _finish(rec, ok, err, max_retries):
                break


def _run_pool(todo, records, max_parallel, max_retries, sweep, folder, poll_s):
    # spawn, not fork: torch with threads is not fork-safe, and spawn is what a cluster node does.
    queue = list(todo)
    ctx = mp.get_context("spawn")
    while queue:
        broken = False
        with cf.ProcessPoolExecutor(max_workers=max_parallel, mp_context=ctx) as pool:
            futs = {}
            for j in queue:
                records[j.key].update(state="running", attempts=records[j.key]["attempts"] + 1,
                                  run_attempts=records[j.key].get("run_attempts", 0) + 1, job_id="pool")
                futs[pool.submit(execute, j, str(cache_root()))] = j
            _save_records(sweep, records, "local", folder)
            queue = []
            for f in cf.as_completed(futs):
                j = futs[f]
                try:
                    f.result()
                    ok, err = True, None
                except cf.process.BrokenProcessPool as e:
                    # a worker died (killed, OOM): every unfinished job of this pool is retried in a fresh pool
                    broken, ok, err = True, False, f"worker process died: {e}"
                except Exception as e:
                    ok, err = False, f"{type(e).__name__}: {e}"
                if not ok and j.done():  # died after its atomic cache write: the result is complete
                    ok = True
                if _finish(records[j.key], ok, err, max_retries):
                    queue.append(j)
            _save_records(sweep, records, "local", folder)
        if broken:
            log.warning("process pool broke; resubmitting %d jobs", len(queue))


def visible_gpu_ids() -> list[int]:
    """GPU indices this process may hand out: ``$CUDA_VISIBLE_DEVICES`` when set, else all CUDA devices."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        try:
            return [int(x) for x in env.split(",") if x.strip()]
        except ValueError:
            raise ValueError(f"CUDA_VISIBLE_DEVICES={env!r} is not a list of integer indices; give indices "
                             "(e.g. 0,1,2,3) so jobs can be pinned to GPUs") from None
    import torch

    return list(range(torch.cuda.device_count()))


def gpu_slots(ids: Sequence[int], gpus_per_job: int) -> list[list[int]]:
    """Disjoint groups of ``gpus_per_job`` GPUs: the jobs that can run at once on one machine."""
    if gpus_per_job < 1:
        raise ValueError(f"gpus_per_job must be >= 1, got {gpus_per_job}")
    slots = [list(ids[i:i + gpus_per_job]) for i in range(0, len(ids) - gpus_per_job + 1, gpus_per_job)]
    if not slots:
        raise RuntimeError(f"--gpus-per-job {gpus_per_job} but this machine shows {len(ids)} GPU(s) "
                           f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}); use fewer per job, "
                           "--gpus-per-job 0 for CPU jobs, or --executor slurm")
    return slots


def _run_submitit(ex, todo, records, root, max_parallel, max_retries, sweep, folder, poll_s, wait, gpus_per_job=0):
    name = "slurm" if ex.cluster == "slurm" else "submitit-local"
    pending = list(todo)
    running: dict = {}
    # LocalExecutor gives every job GPUs 0..k-1; pin each job to its own free group instead
    free = gpu_slots(visible_gpu_ids(), gpus_per_job) if (ex.cluster != "slurm" and gpus_per_job) else None
    if free is not None:
        max_parallel = min(max_parallel, len(free))
    held: dict = {}

    def submit(batch):
        if ex.cluster == "slurm" and len(batch) > 1:
            sjobs = ex.submit_array([_Runner(j, root) for j in batch])  # one array, throttled by SLURM
        elif free is not None:
            sjobs = []
            for j in batch:
                held[j.key] = free.pop(0)
                # AutoExecutor only forwards "setup" to LocalExecutor; visible_gpus is LocalExecutor's own parameter
                getattr(ex, "_executor", ex).update_parameters(visible_gpus=held[j.key])
                sjobs.append(ex.submit(_Runner(j, root)))
        else:
            sjobs = [ex.submit(_Runner(j, root)) for j in batch]
        for j, s in zip(batch, sjobs):
            records[j.key].update(state="running", attempts=records[j.key]["attempts"] + 1,
                                  run_attempts=records[j.key].get("run_attempts", 0) + 1, job_id=str(s.job_id),
                                  stdout=str(s.paths.stdout), stderr=str(s.paths.stderr))
            running[j.key] = (j, s)
        _save_records(sweep, records, name, folder)

    if ex.cluster == "slurm":
        submit(pending)
        pending = []
        if not wait:
            return
    while pending or running:
        if pending and len(running) < max_parallel:
            n = max_parallel - len(running)
            submit(pending[:n])
            pending = pending[n:]
        time.sleep(poll_s)
        for key, (j, s) in list(running.items()):
            if not s.done():
                continue
            del running[key]
            if key in held:
                free.append(held.pop(key))
            if ex.cluster != "slurm" and not s.paths.result_pickle.exists():
                # a local process that ended without a result was killed; submitit would wait ~15 s for it
                ok, err = False, f"job process ended without a result (killed? state {s.state})"
            else:
                try:
                    s.result()
                    ok, err = True, None
                except Exception as e:  # raised in the job, or the job died (UncompletedJobError)
                    ok, err = False, _short_error(e)
            if not ok and j.done():
                ok = True
            if _finish(records[key], ok, err, max_retries):
                log.warning("job %s failed (attempt %d), resubmitting: %s", records[key]["label"],
                            records[key]["attempts"], err)
                pending.append(j)
        _save_records(sweep, records, name, folder)


def _short_error(e: BaseException) -> str:
    """The job's own exception line out of submitit's FailedJobError (which wraps the whole traceback)."""
    text = str(e)
    if "----" in text:
        parts = [p.strip() for p in re.split(r"\n-{5,}\n", text)]
        if len(parts) >= 2 and parts[1]:
            return parts[1].splitlines()[-1]
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return f"{type(e).__name__}: {lines[0] if lines else ''}"


# --------------------------------------------------------------------------- status
def _slurm_state(rec: dict, default: str) -> str:
    """Ask SLURM (through submitit) about a job recorded as running by another process."""
    try:
        import submitit

        folder = Path(rec["stderr"]).parent if rec.get("stderr") else None
        st = submitit.SlurmJob(folder=folder, job_id=str(rec["job_id"])).state
    except Exception:  # no folder, no submitit, or sacct unavailable: keep what the jobs file says
        return default
    if st == "COMPLETED":
        return "failed"  # the entry is written before the job exits: no entry = another cache root or an error
    if st.startswith(("FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL", "DEADLINE")):
        return "failed"
    return "running"


def status(jobs: Sequence[Job], sweep: str = "sweep") -> list[dict]:
    """One row per job: ``label, state (done|running|failed|pending), attempts, job_id, log, error``.

    "done" comes from the cache (the only source of truth for results); the other states from the jobs
    file, with a LocalExecutor job whose process is gone and left no cache entry reported as failed.
    Works from any process that sees the same results and cache folders; the cache is the one the
    sweep wrote to (recorded in the jobs file), not this process's ``$REPRO_CACHE``.
    """
    records = _load_records(sweep)
    root = None
    p = jobs_file(sweep)
    if p.exists():
        recorded = json.loads(p.read_text()).get("cache_root")
        root = Path(recorded) if recorded and Path(recorded).is_dir() else None
    rows = []
    for j in jobs:
        rec = records.get(j.key, _record(j))
        state = rec["state"]
        if j.done(root):
            state = "done"
        elif state == "done":  # recorded done but the entry is gone (cache cleared)
            state = "pending"
        elif state == "running" and rec.get("job_id") and not str(rec["job_id"]).startswith(("inline", "pool")):
            if shutil.which("squeue") is None:
                if _local_job_alive(rec["job_id"]) is False:
                    state = "failed"
            else:
                state = _slurm_state(rec, state)
        rows.append(dict(label=rec.get("label") or j.display(), state=state, attempts=rec.get("attempts", 0),
                         job_id=rec.get("job_id"), log=rec.get("stderr") if state != "done" else None,
                         error=rec.get("error") if state != "done" else None, key=j.key))
    return rows


def format_status(rows: list[dict]) -> str:
    counts = {s: sum(r["state"] == s for r in rows) for s in STATES}
    out = [" ".join(f"{s}={n}" for s, n in counts.items())]
    for r in rows:
        line = f"  [{r['state']:7s}] {r['label']}"
        if r["state"] in ("failed", "running") and r["log"]:
            line += f"   log: {r['log']}"
        if r["state"] == "failed" and r["error"]:
            line += f"   error: {r['error']}"
        out.append(line)
    return "\n".join(out)


def sweeps() -> list[str]:
    """Names of the sweeps with a jobs file under ``<results>/sweeps``."""
    d = results_root() / "sweeps"
    return sorted(p.stem for p in d.glob("*.json")) if d.exists() else []


def recorded_jobs(sweep: str) -> list[Job]:
    """The jobs a sweep's jobs file records (every stage submitted so far), rebuilt without the builder."""
    out = []
    for rec in sorted(_load_records(sweep).values(), key=lambda r: r.get("order", float("inf"))):
        try:
            out.append(Job(rec["fn"], rec["params"], rec["name"], rec.get("version", "1"), rec.get("label", "")))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"jobs file {jobs_file(sweep)} has a malformed record ({e}); delete the file "
                             "to start the sweep's record afresh (the cache keeps every finished result)") from None
    return out


# --------------------------------------------------------------------------- sweep builders
# A chapter's sweep is the ``build(profile, seed) -> list[Job]`` of its study's ``jobs.py``
# (``repro/studies/<chapter>_<name>/jobs.py``), built from the plan the notebook runs. The run layer
# only finds it by the study package's name; it knows nothing of any chapter's loop.
BUILDERS: dict[str, Callable[..., list[Job]]] = {}  # registered in-process (tests, a user's own sweep)


def register(chapter: str):
    """``@register("name")`` on a function ``(profile, seed) -> list[Job]``: a sweep that is not a study's
    ``jobs.py`` (looked up before the studies)."""
    def deco(fn):
        BUILDERS[chapter] = fn
        return fn
    return deco


def study_packages() -> dict[str, str]:
    """Chapter -> study package, read from the packages of :mod:`repro.studies` (``ch5_sharpness`` is
    chapter ``ch5``, ``appendix_related`` is ``appendix``)."""
    import pkgutil

    import repro.studies

    return {m.name.split("_")[0]: m.name for m in pkgutil.iter_modules(repro.studies.__path__) if m.ispkg}


def _has_jobs(package: str) -> bool:
    import repro.studies

    return any((Path(d) / package / "jobs.py").exists() for d in repro.studies.__path__)


def sweep_chapters() -> list[str]:
    """The names ``repro sweep`` accepts: chapters whose study has a ``jobs.py``, plus registered sweeps."""
    return sorted({c for c, p in study_packages().items() if _has_jobs(p)} | set(BUILDERS))


def get(chapter: str) -> Callable[..., list[Job]]:
    """The sweep builder of ``chapter``: a registered one, else ``repro.studies.<package>.jobs:build``."""
    if chapter in BUILDERS:
        return BUILDERS[chapter]
    packages = study_packages()
    if chapter not in packages:
        raise ValueError(f"no job builder for chapter {chapter!r}: not a chapter of repro.studies "
                         f"(chapters: {', '.join(sorted(packages))}); sweeps exist for: {', '.join(sweep_chapters())}")
    module = f"repro.studies.{packages[chapter]}.jobs"
    if not _has_jobs(packages[chapter]):
        raise ValueError(f"no job builder for chapter {chapter!r}: it has no sweep ({module} does not exist; its "
                         f"notebook computes everything in-process with `repro run {chapter}`). Chapters with a "
                         f"sweep: {', '.join(sweep_chapters())}")
    build = getattr(importlib.import_module(module), "build", None)
    if not callable(build):
        raise ValueError(f"{module} has no function build(profile, seed) -> list[Job]; every study's jobs.py "
                         "defines one (repro/studies/__init__.py)")
    return build


def jobs_for(chapter: str, profile: str = "cpu", seed: int = 0) -> list[Job]:
    """The chapter's expensive loop as independent jobs (see its study's ``jobs.build``)."""
    jobs = get(chapter)(profile, seed)
    bad = [type(j).__name__ for j in jobs if not isinstance(j, Job)]
    if bad:
        raise TypeError(f"the sweep builder of {chapter!r} returned {bad[0]} items; it must return a list of "
                        "repro.launch.runner.Job")
    return list(jobs)


def results_if_done(jobs: Sequence[Job]) -> Optional[list]:
    """The values of ``jobs`` when every one is cached (a later stage may then be built), else None."""
    if not all(j.done() for j in jobs):
        return None
    return [cache.read_entry(j.path()) for j in jobs]


# Helpers for the job functions of a study's jobs.py: module-level so a worker can import them. Each
# job rebuilds its inputs from the chapter's profile config exactly as the notebook does and calls the
# study's own (cached) function, so the cache entry the notebook reads is what the sweep fills. What a
# job returns is small (accuracies, errors): the sweep's own cache entry, read back by the next stage.
# tests/test_launch_chapters.py checks, per chapter, that after a sweep the notebook's calls are all hits.
_INPUTS: dict = {}


def memo(chapter: str, profile: str, seed: int, variant: str, build: Callable):
    """Inputs shared by a chapter's jobs (data, world), built once per process for the same profile
    config (``variant``: anything else that changes them, e.g. ch5's zoo key): in-process and pool
    sweeps run many jobs per process, a SLURM task runs one. ``build(cfg)`` makes them."""
    from repro.core.config import chapter_config

    cfg = chapter_config(chapter, profile)
    key = (chapter, profile, seed, variant, json.dumps(cfg, sort_keys=True, default=str), os.environ.get("REPRO_DATA"))
    if key not in _INPUTS:
        _INPUTS.clear()  # one chapter's inputs at a time: they can be large
        _INPUTS[key] = build(cfg)
    return _INPUTS[key]


def example_job(i: int, n: int = 200, scale: float = 1.0) -> dict:
    """A generic, deterministic job for the tests of this module: a small least-squares fit."""
    import numpy as np

    rng = np.random.default_rng(i)
    X = rng.normal(size=(n, 8))
    w = rng.normal(size=8) * scale
    y = X @ w + 0.01 * rng.normal(size=n)
    w_hat = np.linalg.lstsq(X, y, rcond=None)[0]
    return {"i": i, "w_hat": w_hat, "residual": float(np.linalg.norm(X @ w_hat - y))}


def run_chapter(chapter: str, profile: str = "cpu", seed: int = 0, *, sweep: Optional[str] = None,
                wait: bool = True, **kw) -> list[Job]:
    """Run a chapter's jobs stage by stage until no builder unlocks a new job; returns the final job list.

    A builder returns the jobs it can define now (later stages need earlier results, e.g. ch6's
    selected ρ); after each completed stage it is called again. With ``wait=False`` only what is
    known now is submitted -- run the command again later to submit the next stage.
    """
    name = sweep or f"{chapter}_{profile}_seed{seed}"
    seen: set = set()
    while True:
        jobs = jobs_for(chapter, profile, seed)
        keys = {j.key for j in jobs}
        if keys <= seen:
            return jobs
        seen |= keys
        run_jobs(jobs, sweep=name, wait=wait, return_results=False, **kw)
        if not wait:
            return jobs
