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

Chapter job builders (:data:`BUILDERS`, ``register``/``get``) express each chapter's loop only
through functions the chapter packages already expose; see :func:`jobs_for`.
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
        return cache.key_for(self.name, self.cache_params(), self.version)

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
                         root=Path(root) if root else None)
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


# --------------------------------------------------------------------------- chapter job builders
BUILDERS: dict[str, Callable[..., list[Job]]] = {}


def register(chapter: str):
    """``@register("ch3")`` on a function ``(profile, seed) -> list[Job]``."""
    def deco(fn):
        BUILDERS[chapter] = fn
        return fn
    return deco


def get(chapter: str) -> Callable[..., list[Job]]:
    if chapter not in BUILDERS:
        raise ValueError(f"no job builder for chapter {chapter!r}; available: {', '.join(sorted(BUILDERS))}")
    return BUILDERS[chapter]


def jobs_for(chapter: str, profile: str = "cpu", seed: int = 0) -> list[Job]:
    """The chapter's expensive loop as independent jobs (see each builder's docstring)."""
    return get(chapter)(profile, seed)


# Job functions: module-level so a worker can import them. Each rebuilds its inputs from the chapter's
# profile config exactly as the notebook does and calls the chapter's own (cached) function, so the
# chapter's cache entry -- the one the notebook reads -- is what the sweep fills. What a job returns is
# small (accuracies, errors): it is the sweep's own cache entry, read back by the next stage's builder.
# tests/test_launch_chapters.py checks, per chapter, that after a sweep the notebook's calls are all hits.
def ch3_zoo_model(profile: str, seed: int, index: int, device: str = "auto") -> dict:
    """Train zoo model ``index`` of the ch3/ch4 zoo via :func:`repro.studies.ch3_ninco.zoo.train_zoo_model` (same world as the notebook)."""
    from repro.core.config import chapter_config, device as pick
    from repro.data.world import make_world
    from repro.studies.ch3_ninco.zoo import train_zoo_model, zoo_entries

    cfg = chapter_config("ch3", profile)
    world = make_world(seed=seed, **cfg["world"])
    entry = zoo_entries(cfg)[index]
    z = train_zoo_model(world, entry, seed=seed, device=pick(device), progress=False)
    return {"name": z.name, "test_acc": float(z.test_acc)}


_INPUTS: dict = {}


def _memo(chapter: str, profile: str, seed: int, variant: str, build: Callable):
    """Inputs shared by a chapter's jobs (data, world), built once per process for the same profile
    config (``variant``: anything else that changes them, e.g. ch5's zoo key): in-process and pool
    sweeps run many jobs per process, a SLURM task runs one."""
    from repro.core.config import chapter_config

    cfg = chapter_config(chapter, profile)
    key = (chapter, profile, seed, variant, json.dumps(cfg, sort_keys=True, default=str), os.environ.get("REPRO_DATA"))
    if key not in _INPUTS:
        _INPUTS.clear()  # one chapter's inputs at a time: they can be large
        _INPUTS[key] = build(cfg)
    return _INPUTS[key]


def _ch5_inputs(profile: str, seed: int, zoo_key: str = "zoo"):
    from repro.studies.ch5_sharpness import experiment as zoo

    def build(cfg):
        cfg = zoo.zoo_config(cfg, zoo_key) if zoo_key != "zoo" else cfg
        z = cfg["zoo"]
        hps = zoo.sample_hparams(z["n_models"], tuple(z["lr_range"]), tuple(z["sam_rhos"]), seed=seed)
        return cfg, zoo.prepare_data(cfg), hps

    return _memo("ch5", profile, seed, zoo_key, build)


def _ch5_entry(profile: str, seed: int, index: int, device: str, zoo_key: str = "zoo"):
    from repro.core.config import device as pick
    from repro.studies.ch5_sharpness import experiment as zoo

    cfg, data, hps = _ch5_inputs(profile, seed, zoo_key)
    dev = pick(device)
    return cfg, data, dev, zoo.train_zoo_model(hps[index], data, dict(cfg["train"]), cfg["zoo"]["arch"],
                                               data["num_classes"], dev, cfg["zoo"].get("arch_kwargs"))


def ch5_zoo_model(profile: str, seed: int, index: int, device: str = "auto", zoo_key: str = "zoo") -> dict:
    """Train ch5 zoo model ``index`` (App. H) via :func:`repro.studies.ch5_sharpness.experiment.train_zoo_model`, the call
    the notebook's ``zoo.train_zoo`` makes for that model (``zoo_key="zoo_vit"``: the ViT zoo)."""
    _, _, _, e = _ch5_entry(profile, seed, index, device, zoo_key)
    return {"index": index, "diverged": bool(e["diverged"]), "train_err": float(e["train_err"]),
            "test_err": float(e["test_err"]), "shift_err": float(e["shift_err"])}


def ch5_sharpness_model(profile: str, seed: int, index: int, device: str = "auto", zoo_key: str = "zoo") -> dict:
    """Sharpness of ch5 zoo model ``index`` on the whole (definition, ρ) grid (Table 3 analogue; Table 4
    for ``zoo_key="zoo_vit"``) via :func:`repro.studies.ch5_sharpness.experiment.sharpness_frame` on ``[entry]``, one
    process (the sweep parallelises)."""
    from repro.studies.ch5_sharpness import experiment as zoo

    cfg, data, dev, e = _ch5_entry(profile, seed, index, device, zoo_key)
    df = zoo.sharpness_frame([e], data, cfg, zoo.rho_grid(cfg), device=dev, seed=seed, progress=False, jobs=1)
    return {"index": index, **{c: float(df[c].iloc[0]) for c in df.columns if "@" in c}}


def ch5_ablation_model(profile: str, seed: int, index: int, device: str = "auto") -> dict:
    """APGD-steps and m ablations (Figs. 30-31) of ch5 zoo model ``index`` via
    :func:`repro.studies.ch5_sharpness.experiment.ablation_frame` on ``[entry]`` (the notebook's definition and ρ)."""
    from repro.sharpness import MAIN_DEFINITION
    from repro.studies.ch5_sharpness import experiment as zoo

    cfg, data, dev, e = _ch5_entry(profile, seed, index, device)
    rho = [r for d, r in zoo.rho_grid(cfg) if d == MAIN_DEFINITION][0]
    steps, ms = zoo.ablation_frame([e], data, cfg, MAIN_DEFINITION, rho, device=dev, seed=seed)
    return {"index": index, "steps": steps.sharpness.tolist(), "m": ms.sharpness.tolist()}


def _ch6_data(profile: str):
    from repro.studies.ch6_samon import experiment as ex

    def build(cfg):
        if profile == "full":
            from repro.data.cifar import make_data_cifar

            return cfg, make_data_cifar(cfg)
        return cfg, ex.make_data(cfg["world"])

    return _memo("ch6", profile, 0, "", build)


def ch6_train_run(profile: str, seed: int, spec: dict, device: str = "auto") -> dict:
    """One ch6 training run via :func:`repro.studies.ch6_samon.experiment.train_run` on the notebook's data."""
    from repro.core.config import device as pick
    from repro.studies.ch6_samon import experiment as ex

    cfg, data = _ch6_data(profile)
    d = {k: v for k, v in data.items() if k != "num_classes"}
    r = ex.train_run(d, cfg["model"], data["num_classes"], cfg["train"], ex.RunSpec(**spec), device=pick(device))
    return {"val_acc": float(r["val_acc"]), "test_acc": float(r["test_acc"]), "train_time": float(r["train_time"])}


def _ch7_world(profile: str, seed: int, device: str):
    from repro.core.config import device as pick
    from repro.studies.ch7_jensun import experiment as X

    # run_unlearning/run_relearning deep-copy world.base, so one world serves every job of a process
    return _memo("ch7", profile, seed, device, lambda cfg: X.build_world(cfg, seed=seed, device=pick(device)))


def ch7_unlearning_run(profile: str, seed: int, method: str, options: Optional[dict] = None,
                       device: str = "auto") -> dict:
    """One ch7 unlearning run: :func:`repro.studies.ch7_jensun.experiment.run_unlearning` with ``options``
    (its keyword arguments: ``lr``, ``loss_kwargs``, ``target``, ``paraphrases``, ``dynamics_every``)."""
    from repro.studies.ch7_jensun import experiment as X

    world = _ch7_world(profile, seed, device)
    r = X.run_unlearning(world, method, seed=seed, **(options or {}))
    return {"method": method, "metrics": {k: float(v) for k, v in r["metrics"].items()
                                          if isinstance(v, (int, float))}}


def ch7_relearning_run(profile: str, seed: int, method: str, multiples: list, device: str = "auto") -> dict:
    """Unlearn k x longer and relearn (Table 3 analogue) via :func:`repro.studies.ch7_jensun.experiment.run_relearning`."""
    from repro.studies.ch7_jensun import experiment as X

    world = _ch7_world(profile, seed, device)
    rows = X.run_relearning(world, method, multiples=tuple(multiples), seed=seed)
    return {"method": method, "rows": [{k: (float(v) if isinstance(v, (int, float)) else v) for k, v in r.items()}
                                       for r in rows]}


def example_job(i: int, n: int = 200, scale: float = 1.0) -> dict:
    """A generic, deterministic job for the tests of this module: a small least-squares fit."""
    import numpy as np

    rng = np.random.default_rng(i)
    X = rng.normal(size=(n, 8))
    w = rng.normal(size=8) * scale
    y = X @ w + 0.01 * rng.normal(size=n)
    w_hat = np.linalg.lstsq(X, y, rcond=None)[0]
    return {"i": i, "w_hat": w_hat, "residual": float(np.linalg.norm(X @ w_hat - y))}


def _results_if_done(jobs: Sequence[Job]) -> Optional[list]:
    """The values of ``jobs`` when every one is cached (a later stage may then be built), else None."""
    if not all(j.done() for j in jobs):
        return None
    return [cache.read_entry(j.path()) for j in jobs]


@register("ch3")
def _ch3_jobs(profile: str, seed: int) -> list[Job]:
    """One job per zoo model of ``repro/profiles/ch3.yaml`` (the zoo ch3 and ch4 share)."""
    from repro.core.config import chapter_config
    from repro.studies.ch3_ninco.zoo import zoo_entries

    cfg = chapter_config("ch3", profile)
    if profile == "full":
        # the ch3/ch4 notebooks stop at profile=full (ImageNet + NINCO features of pretrained checkpoints);
        # the loop there is feature extraction per checkpoint, which the chapter does not expose as a job yet
        raise ValueError("ch3/ch4 have no full-profile sweep yet: their full profile needs per-checkpoint feature "
                         "extraction on ImageNet/NINCO, not exposed by repro.studies.ch3_ninco.zoo; use --profile smoke or cpu")
    entries = zoo_entries(cfg)
    return [Job("repro.launch.runner:ch3_zoo_model", {"profile": profile, "seed": seed, "index": i}, "sweep_ch3_zoo",
                label=f"ch3 zoo {i}: {e.name}") for i, e in enumerate(entries)]


register("ch4")(_ch3_jobs)


@register("ch5")
def _ch5_jobs(profile: str, seed: int) -> list[Job]:
    """Stage 1: one training job per zoo model. Stage 2, once stage 1 is cached, chosen as the notebook
    chooses (:func:`repro.studies.ch5_sharpness.experiment.keep_mask`): one sharpness job per kept model, and one ablation
    job for each of the first ``ablation.n_models`` kept models (non-diverged ones when none is kept).
    A profile with a ``zoo_vit`` (Table 4) gets the same two stages for the ViT zoo."""
    from repro.core.config import chapter_config
    from repro.studies.ch5_sharpness import experiment as zoo

    cfg = chapter_config("ch5", profile)
    jobs = _ch5_zoo_jobs(cfg, profile, seed, "zoo", with_ablation=True)
    if "zoo_vit" in cfg:  # the ViT zoo (Table 4): its own stages, no ablations (as in the notebook)
        jobs += _ch5_zoo_jobs(zoo.zoo_config(cfg, "zoo_vit"), profile, seed, "zoo_vit", with_ablation=False)
    return jobs


def _ch5_zoo_jobs(cfg: dict, profile: str, seed: int, zoo_key: str, with_ablation: bool) -> list[Job]:
    import pandas as pd

    from repro.studies.ch5_sharpness import experiment as zoo

    n = int(cfg["zoo"]["n_models"])
    extra = {} if zoo_key == "zoo" else {"zoo_key": zoo_key}  # keeps the ResNet jobs' cache keys unchanged
    tag = "" if zoo_key == "zoo" else " ViT"
    stage1 = [Job("repro.launch.runner:ch5_zoo_model", {"profile": profile, "seed": seed, "index": i, **extra},
                  "sweep_ch5_zoo", label=f"ch5{tag} zoo {i} (train)") for i in range(n)]
    res = _results_if_done(stage1)
    if res is None:
        return stage1
    kept = [int(i) for i in pd.DataFrame(res).index[zoo.keep_mask(pd.DataFrame(res), cfg["train_err_max"])]]
    pool = kept or [r["index"] for r in res if not r["diverged"]]
    chosen = pool[: int(cfg["ablation"]["n_models"])] if with_ablation else []

    def job(fn: str, name: str, i: int, what: str) -> Job:
        return Job(f"repro.launch.runner:{fn}", {"profile": profile, "seed": seed, "index": i, **extra}, name,
                   label=f"ch5{tag} {what} {i}")

    return (stage1 + [job("ch5_sharpness_model", "sweep_ch5_sharpness", i, "sharpness") for i in kept]
            + [job("ch5_ablation_model", "sweep_ch5_ablation", i, "ablation (steps, m)") for i in chosen])


def _ch6_job(profile: str, seed: int, spec: dict) -> Job:
    s = spec
    label = (f"ch6 {s['method']} {s.get('variant', '')} {s.get('params', '')} rho={s.get('rho', 0)} seed={s['seed']}"
             if s["method"] == "sam" else f"ch6 sgd seed={s['seed']}")
    return Job("repro.launch.runner:ch6_train_run", {"profile": profile, "seed": seed, "spec": spec}, "sweep_ch6_run",
               label=label)


@register("ch6")
def _ch6_jobs(profile: str, seed: int) -> list[Job]:
    """The three stages of :func:`repro.studies.ch6_samon.experiment.run_plan`, one ``train_run`` per job.

    Stage 1: the ρ grid (first seed) of every variant, all and ON, plus SGD on every seed. Stages 2-3
    need the ρ selected on stage 1 (:func:`repro.studies.ch6_samon.experiment.select_rho`), so they are built once
    stage 1 is cached: every variant at its selected ρ on all seeds, then the block-restricted and
    sparse SAM-ON runs at SAM-ON's ρ. ``repro sweep`` runs the stages one after another.
    """
    import pandas as pd

    from repro.core.config import chapter_config
    from repro.studies.ch6_samon import experiment as ex

    cfg = chapter_config("ch6", profile)
    seeds = list(cfg["seeds"])

    def spec(**kw) -> dict:
        return {k: v for k, v in asdict(ex.RunSpec(**kw)).items() if k != "label" or v}

    grid = [ex.RunSpec("sam", v, p, float(r), seeds[0], runtime_mode=(p == "only_norm"))
            for v in cfg["variants"] for p in ("all", "only_norm") for r in cfg["rho_grid"][v][p]]
    stage1 = [_ch6_job(profile, seed, spec(**{k: v for k, v in asdict(s).items() if k != "label"})) for s in grid]
    sgd = [_ch6_job(profile, seed, spec(method="sgd", seed=s)) for s in seeds]
    res = _results_if_done(stage1)
    if res is None:
        return stage1 + sgd
    frame = pd.DataFrame([dict(method="sam", variant=s.variant, mode=s.mode, rho=s.rho, val_acc=100 * r["val_acc"])
                          for s, r in zip(grid, res)])
    best = ex.select_rho(frame)
    later = []
    for v in cfg["variants"]:
        for p, mode in (("all", "all"), ("only_norm", "ON")):
            later += [spec(method="sam", variant=v, params=p, rho=best[(v, mode)], seed=s, runtime_mode=(p == "only_norm"))
                      for s in seeds]
    rho_on = best.get(("sam", "ON"), float(cfg["rho_grid"]["sam"]["only_norm"][0]))
    later += [spec(method="sam", variant="sam", params=ex.block_prefixes(cfg["model"], b), rho=rho_on, seed=s,
                   runtime_mode=True) for b in cfg.get("blocks", []) for s in seeds]
    later += [spec(method="sam", variant="sam", params=sp, rho=rho_on, seed=s) for sp in cfg.get("sparse", [])
              for s in seeds]
    jobs = stage1 + sgd
    seen = {j.key for j in jobs}
    for s in later:
        j = _ch6_job(profile, seed, s)
        if j.key not in seen:  # the selected-ρ run on the first seed is a grid run already
            seen.add(j.key)
            jobs.append(j)
    return jobs


@register("ch7")
def _ch7_jobs(profile: str, seed: int) -> list[Job]:
    """Every unlearning/relearning run of the ch7 notebook, one job each: the chapter's own list
    :func:`repro.studies.ch7_jensun.experiment.run_plan` (Table 1, Fig. 12, Tables 9-10, Fig. 16, Fig. 14)
    plus one relearning job per ``sweeps.relearn_methods`` (Table 3)."""
    from repro.core.config import chapter_config
    from repro.studies.ch7_jensun.experiment import run_plan

    cfg = chapter_config("ch7", profile)
    sw = cfg["sweeps"]
    jobs = [Job("repro.launch.runner:ch7_unlearning_run", {"profile": profile, "seed": seed, "method": m, "options": o},
                "sweep_ch7_unlearn", label=f"ch7 unlearn {m}" + "".join(f" {k}={v}" for k, v in o.items()))
            for m, o in run_plan(cfg)]
    jobs += [Job("repro.launch.runner:ch7_relearning_run", {"profile": profile, "seed": seed, "method": m,
                                                     "multiples": list(sw["relearn_multiples"])},
                 "sweep_ch7_relearn", label=f"ch7 relearn {m} x{list(sw['relearn_multiples'])}")
             for m in sw["relearn_methods"]]
    return jobs


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
