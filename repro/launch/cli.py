"""``repro sweep``: run a chapter's expensive loop as independent cached jobs (see :mod:`repro.launch.runner`).

    repro sweep ch5 --profile cpu                                   # in-process, one job after another
    repro sweep ch5 --profile cpu --executor local --max-parallel 2 # small process pool
    repro sweep ch6 --profile full --executor slurm --partition gpu --gpus-per-job 1 --max-parallel 50
    repro sweep ch6 --profile full --status                         # done / running / failed + log paths
    repro sweep --status                                            # every sweep under <results>/sweeps

A chapter's jobs come from its study's ``repro/studies/<chapter>_<name>/jobs.py`` (``build``).
A chapter whose later jobs depend on earlier results (ch5 ablations, ch6 stages 2-3 after the ρ
selection) is run stage by stage; with ``--no-wait`` run the same command again once a stage is
done to submit the next one. ``repro/cli.py`` registers this with ``add_sweep_parser(subparsers)``.
"""
from __future__ import annotations

import argparse

from repro.launch import runner as launch
from repro.core.config import PROFILES


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


def _print_status(name: str, jobs) -> bool:
    rows = launch.status(jobs, sweep=name)
    print(f"sweep {name} ({launch.jobs_file(name)})")
    print(launch.format_status(rows))
    return all(r["state"] == "done" for r in rows)


def _cmd_sweep(args) -> int:
    if args.chapter is None:
        if not args.status:
            raise ValueError(f"repro sweep needs a CHAPTER (one of: {', '.join(launch.sweep_chapters())}); "
                             "only `repro sweep --status` may omit it")
        names = launch.sweeps()
        if not names:
            print(f"no sweeps recorded under {launch.jobs_file('x').parent}")
            return 0
        ok = [_print_status(n, launch.recorded_jobs(n)) for n in names]
        return 0 if all(ok) else 1
    name = args.sweep or sweep_name(args.chapter, args.profile, args.seed)
    if args.status:
        jobs = launch.jobs_for(args.chapter, args.profile, args.seed)
        keys = {j.key for j in jobs}
        jobs += [j for j in launch.recorded_jobs(name) if j.key not in keys]
        return 0 if _print_status(name, jobs) else 1
    jobs = launch.run_chapter(args.chapter, args.profile, args.seed, sweep=name, executor=args.executor,
                              max_parallel=args.max_parallel, max_retries=args.max_retries,
                              partition=args.partition, gpus_per_job=args.gpus_per_job,
                              cpus_per_job=args.cpus_per_job, mem_gb=args.mem_gb, timeout_min=args.timeout_min,
                              slurm_options=_parse_kv(args.slurm_option), wait=not args.no_wait)
    _print_status(name, jobs)
    return 0


def add_sweep_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``repro sweep`` on an ``argparse`` subparsers object; sets ``fn`` to the handler."""
    s = subparsers.add_parser("sweep", help="run a chapter's expensive loop as cached jobs (local, submitit, SLURM)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("chapter", nargs="?", default=None,
                   help=f"one of: {', '.join(launch.sweep_chapters())} (omit with --status: every sweep)")
    s.add_argument("--profile", default="cpu", choices=PROFILES)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--executor", default="local", choices=launch.EXECUTORS,
                   help="local (in-process / process pool), submitit (SLURM if sbatch exists, else local "
                        "subprocesses), slurm")
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
