"""``repro sweep``: run a chapter's expensive loop as independent cached jobs (see :mod:`repro.launch`).

    repro sweep ch3 --profile cpu                                   # in-process (default)
    repro sweep ch3 --executor local --max-parallel 2               # small process pool
    repro sweep ch3 --profile full --executor slurm --partition gpu --gpus-per-job 1 --max-parallel 50
    repro sweep ch3 --profile full --status                         # done / running / failed + log paths

The lead's ``repro/cli.py`` registers it with ``add_sweep_parser(subparsers)``.
"""
from __future__ import annotations

import argparse

from . import launch
from .config import PROFILES


def _parse_kv(items) -> dict:
    out = {}
    for it in items or []:
        if "=" not in it:
            raise ValueError(f"--slurm-option expects KEY=VALUE (e.g. account=myproj), got {it!r}")
        k, v = it.split("=", 1)
        out[k] = v
    return out


def sweep_name(chapter: str, profile: str, seed: int) -> str:
    return f"{chapter}_{profile}_seed{seed}"


def _cmd_sweep(args) -> int:
    jobs = launch.jobs_for(args.chapter, args.profile, args.seed)
    name = args.sweep or sweep_name(args.chapter, args.profile, args.seed)
    if args.status:
        rows = launch.status(jobs, sweep=name)
        print(f"sweep {name} ({launch.jobs_file(name)})")
        print(launch.format_status(rows))
        return 0 if all(r["state"] == "done" for r in rows) else 1
    launch.run_jobs(jobs, executor=args.executor, max_parallel=args.max_parallel, max_retries=args.max_retries,
                    sweep=name, partition=args.partition, gpus_per_job=args.gpus_per_job,
                    cpus_per_job=args.cpus_per_job, mem_gb=args.mem_gb, timeout_min=args.timeout_min,
                    slurm_options=_parse_kv(args.slurm_option), wait=not args.no_wait, return_results=False)
    rows = launch.status(jobs, sweep=name)
    print(launch.format_status(rows))
    return 0


def add_sweep_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``repro sweep`` on an ``argparse`` subparsers object; sets ``fn`` to the handler."""
    s = subparsers.add_parser("sweep", help="run a chapter's expensive loop as cached jobs (local, submitit, SLURM)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("chapter", help=f"one of: {', '.join(sorted(launch.BUILDERS))}")
    s.add_argument("--profile", default="cpu", choices=PROFILES)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--executor", default="local", choices=launch.EXECUTORS)
    s.add_argument("--partition", default=None, help="SLURM partition")
    s.add_argument("--gpus-per-job", type=int, default=0,
                   help="GPUs per job (SLURM gpus_per_node; 0 = CPU job). Paper-scale sweeps: 1")
    s.add_argument("--cpus-per-job", type=int, default=4)
    s.add_argument("--mem-gb", type=float, default=None)
    s.add_argument("--timeout-min", type=int, default=240)
    s.add_argument("--max-parallel", type=int, default=1, help="jobs in flight (pool size / SLURM array parallelism)")
    s.add_argument("--max-retries", type=int, default=2)
    s.add_argument("--slurm-option", action="append", metavar="KEY=VALUE",
                   help="extra sbatch option, repeatable (e.g. account=myproj, qos=normal)")
    s.add_argument("--sweep", default=None, help="jobs-file name (default CHAPTER_PROFILE_seedSEED)")
    s.add_argument("--no-wait", action="store_true", help="SLURM: submit and return; check with --status")
    s.add_argument("--status", action="store_true", help="show done / running / failed with log paths")
    s.set_defaults(fn=_cmd_sweep)
    return s


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="repro")
    add_sweep_parser(p.add_subparsers(dest="cmd", required=True))
    args = p.parse_args(argv)
    return int(args.fn(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
