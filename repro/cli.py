"""The ``repro`` command.

    repro list                                   chapters, profiles and what each needs
    repro run ch5 --profile cpu [--seed 0] [--device auto]   execute one chapter (or `all`)
    repro book --profile cpu                     stage executed chapters and build the book
    repro data list | check NAME | fetch NAME    external assets (full profile)
    repro run ch3 --no-release                   recompute what the release store would provide
    repro cache info | verify [--strict] | clear [NAME] [--stale]   the content-addressed cache:
                                                 per family current vs stale (made by code that changed)
    repro release ch3 --profile cpu [--device cpu]   run the chapter and release its expensive entries
    repro release --list | --check               released artifacts; --check fails on stale or damaged ones
    repro sweep ch5 --executor local|submitit|slurm [--partition P --gpus-per-job 1 --max-parallel 50]
    repro sweep [ch5] --status                   done / running / failed jobs with log paths
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from repro.book import stage as book
from repro.core import cache, release
from repro.core.config import PROFILES, chapter_config, results_root
from repro.data import manifests


def _cmd_list(args) -> int:
    print("profiles: " + ", ".join(PROFILES) + "   (smoke: tests; cpu: default small-scale book; full: paper scale, CUDA + datasets)")
    for nb in book.notebook_paths():
        ch = book.chapter_of(nb)
        needs = sorted({n for m in manifests.all_manifests() for n in [m.name] if ch in m.used_by})
        try:
            cfg = chapter_config(ch, "cpu")
            keys = ", ".join(sorted(cfg)[:6])
        except ValueError as e:
            keys = f"(no profile: {e})"
        print(f"{ch:9s} {nb.name:32s} full profile needs: {', '.join(needs) or 'nothing external'}")
        print(f"{'':9s} cpu parameters: {keys}{' ...' if len(keys) > 60 else ''}")
    return 0


def _no_release(args) -> None:
    # the kernel papermill starts inherits the environment, so this reaches the notebook's cache lookups
    if getattr(args, "no_release", False):
        os.environ[release.NO_RELEASE_ENV] = "1"


def _cmd_run(args) -> int:
    _no_release(args)
    nbs = book.notebook_paths() if args.chapter == "all" else [book.find_notebook(args.chapter)]
    results = Path(args.results) if args.results else None
    for nb in nbs:
        book.execute(nb, args.profile, seed=args.seed, device=args.device, results=results)
    return 0


def _cmd_book(args) -> int:
    results = Path(args.results) if args.results else results_root()
    stage_dir = Path(args.stage) if args.stage else Path("book/_build/stage")
    out = Path(args.out) if args.out else Path("book")
    _no_release(args)
    if args.execute:
        for nb in book.notebook_paths():
            if not book.executed_path(nb, args.profile, results).exists():
                book.execute(nb, args.profile, results=results)
    book.stage(args.profile, stage_dir, results, allow_mixed=args.allow_mixed_seeds)
    html = book.build(stage_dir, out)
    print(f"[repro] book built: {html.resolve()}/index.html\n"
          f"        open it with: python -m http.server -d {html} 8000  (then http://localhost:8000)")
    return 0


def _cmd_data(args) -> int:
    if args.action == "list":
        for m in manifests.all_manifests():
            state = "present" if m.present() else "missing"
            print(f"{m.name:22s} {state:8s} {m.kind:12s} {m.location}   ({m.title})")
        return 0
    if not args.name:
        print(f"repro data {args.action} needs a NAME; one of: {', '.join(manifests.list_names())}", file=sys.stderr)
        return 2
    if args.action == "check":
        info = manifests.check(args.name)
        print(info)
        return 0 if info["present"] else 1
    if args.action == "fetch":
        print(manifests.fetch(args.name))
        return 0
    return 2


def _cmd_cache(args) -> int:
    if args.action == "info":
        rows = cache.info()
        print(f"{'family':36s} {'entries':>7s} {'current':>7s} {'stale':>6s} {'corrupt':>7s} {'MB':>10s}")
        for r in rows:
            print(f"{r['name']:36s} {r['entries']:7d} {r['current']:7d} {r['stale']:6d} {r['corrupt']:7d} {r['bytes'] / 1e6:10.1f}")
        tot = {k: sum(r[k] for r in rows) for k in ("entries", "current", "stale", "corrupt", "bytes")}
        print(f"{'total':36s} {tot['entries']:7d} {tot['current']:7d} {tot['stale']:6d} {tot['corrupt']:7d} {tot['bytes'] / 1e6:10.1f}")
        if tot["stale"]:
            print("stale entries were made by code that has changed since; they are never loaded "
                  "(`repro cache verify` lists them, `repro cache clear --stale` removes them)")
        return 0
    if args.action == "clear":
        print(f"removed {cache.clear(args.name, stale_only=args.stale)} {'stale ' if args.stale else ''}entries")
        return 0
    if args.action == "verify":
        bad = cache.verify()
        for p in bad:
            print(f"corrupt: {p}")
        old = [e for e in cache.stale() if args.name in (None, e["name"])]
        for e in old:
            print(f"stale:   {e['name']}/{e['path'].name[:16]}  {e['why']}")
        print(f"{len(bad)} corrupt entries, {len(old)} stale entries"
              + (f" ({sum(e['bytes'] for e in old) / 1e6:.1f} MB; never loaded; `repro cache clear --stale` removes them)" if old else ""))
        # corrupt entries fail; stale ones are harmless (their keys cannot match) unless --strict
        return 1 if bad or (args.strict and old) else 0
    return 2


def _cmd_release(args) -> int:
    if args.list:
        rows = release.describe()
        for r in rows:
            print(f"{r['chapter']:9s} {r['profile']:6s} #{r['release']:<3d} built {r['built']} in {r['build_seconds']:.0f} s "
                  f"(entries: {r['compute_seconds']:.0f} s of compute), "
                  f"{r['entries']} entries, {r['MB']} MB")
        print(f"{len(rows)} releases in {release.store_root()}")
        return 0
    if args.check:
        problems = release.check()
        for p in problems:
            print(p)
        print(f"{len(problems)} problems in {release.store_root()}")
        return 1 if problems else 0
    if not args.chapter:
        print("repro release needs a CHAPTER (e.g. `repro release ch3 --profile cpu`), or --list / --check", file=sys.stderr)
        return 2
    nb = book.find_notebook(args.chapter)
    chapter = book.chapter_of(nb)

    def runner():
        import tempfile

        if args.work:  # keep the executed notebook, tables and claims of the release run beside its cache
            book.execute(nb, args.profile, seed=args.seed, device=args.device, results=Path(args.work) / "results")
            return
        with tempfile.TemporaryDirectory(prefix="repro-release-results-") as res:
            book.execute(nb, args.profile, seed=args.seed, device=args.device, results=Path(res))

    cmd = f"repro release {chapter} --profile {args.profile} --seed {args.seed} --device {args.device}"
    m = release.build(chapter, args.profile, runner, seed=args.seed, device=args.device, command=cmd,
                      work_dir=args.work)
    print(f"[repro] released {chapter}/{args.profile} #{m['release']}: {len(m['entries'])} entries, "
          f"{m['total_bytes'] / 1e6:.1f} MB, built in {m['build_seconds']:.0f} s -> {release.store_root() / chapter / args.profile}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="repro", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="chapters, profiles and what each needs").set_defaults(fn=_cmd_list)

    r = sub.add_parser("run", help="execute chapter notebook(s) with papermill")
    r.add_argument("chapter", help="ch3 | ch4 | ... | all")
    r.add_argument("--profile", default="cpu", choices=PROFILES)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    r.add_argument("--results", default=None, help="results root (default $REPRO_RESULTS or ./results)")
    r.add_argument("--no-release", action="store_true", help="ignore the release store: compute what it would provide")
    r.set_defaults(fn=_cmd_run)

    b = sub.add_parser("book", help="stage executed chapters and build the Jupyter Book")
    b.add_argument("--profile", default="cpu", choices=PROFILES)
    b.add_argument("--results", default=None)
    b.add_argument("--stage", default=None, help="staging folder (default book/_build/stage)")
    b.add_argument("--out", default=None, help="jupyter-book --path-output (default book -> book/_build/html)")
    b.add_argument("--execute", action="store_true", help="execute chapters that have no executed notebook yet")
    b.add_argument("--no-release", action="store_true", help="with --execute: ignore the release store")
    b.add_argument("--allow-mixed-seeds", action="store_true",
                   help="stage chapters executed with different seeds (the summary shows each chapter's seed)")
    b.set_defaults(fn=_cmd_book)

    d = sub.add_parser("data", help="external assets described by data_manifests/*.yaml")
    d.add_argument("action", choices=("list", "check", "fetch"))
    d.add_argument("name", nargs="?")
    d.set_defaults(fn=_cmd_data)

    c = sub.add_parser("cache", help="inspect or clear the content-addressed cache")
    c.add_argument("action", choices=("info", "clear", "verify"))
    c.add_argument("name", nargs="?")
    c.add_argument("--stale", action="store_true", help="clear: only entries made by code that has changed since")
    c.add_argument("--strict", action="store_true", help="verify: exit 1 on stale entries too (default: corrupt only)")
    c.set_defaults(fn=_cmd_cache)

    rl = sub.add_parser("release", help="release a chapter's expensive cache entries into the versioned store")
    rl.add_argument("chapter", nargs="?", help="ch3 | ch4 | ... (see releases/families.yaml)")
    rl.add_argument("--profile", default="cpu", choices=PROFILES)
    rl.add_argument("--seed", type=int, default=0)
    rl.add_argument("--device", default="cpu", help="cpu (default: bit-reproducible) | auto | cuda | cuda:N")
    rl.add_argument("--work", default=None, help="persistent working folder (kept): its cache/ lets a killed release rerun with "
                    "the same --work resume where it stopped, its results/ keeps the run's executed notebook and "
                    "tables (default: a temporary folder, removed afterwards)")
    rl.add_argument("--list", action="store_true", help="list the releases in the store")
    rl.add_argument("--check", action="store_true", help="exit 1 when a release is stale, missing or damaged")
    rl.set_defaults(fn=_cmd_release)

    from repro.launch.cli import add_sweep_parser

    add_sweep_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args) or 0)
    except (ValueError, OSError, manifests.ManifestError, RuntimeError) as e:
        print(f"repro: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
