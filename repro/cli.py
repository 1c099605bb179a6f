"""The ``repro`` command.

    repro list                                   chapters, profiles and what each needs
    repro run ch5 --profile cpu [--seed 0] [--device auto]   execute one chapter (or `all`)
    repro book --profile cpu                     stage executed chapters and build the book
    repro data list | check NAME | fetch NAME    external assets (full profile)
    repro cache info | clear [NAME] | verify     the content-addressed cache
    repro sweep ch5 --executor local|submitit|slurm [--partition P --gpus-per-job 1 --max-parallel 50]
    repro sweep [ch5] --status                   done / running / failed jobs with log paths
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from repro.book import stage as book
from repro.core import cache
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


def _cmd_run(args) -> int:
    nbs = book.notebook_paths() if args.chapter == "all" else [book.find_notebook(args.chapter)]
    results = Path(args.results) if args.results else None
    for nb in nbs:
        book.execute(nb, args.profile, seed=args.seed, device=args.device, results=results)
    return 0


def _cmd_book(args) -> int:
    results = Path(args.results) if args.results else results_root()
    stage_dir = Path(args.stage) if args.stage else Path("book/_build/stage")
    out = Path(args.out) if args.out else Path("book")
    if args.execute:
        for nb in book.notebook_paths():
            if not book.executed_path(nb, args.profile, results).exists():
                book.execute(nb, args.profile, results=results)
    book.stage(args.profile, stage_dir, results)
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
        total = sum(r["bytes"] for r in rows)
        for r in rows:
            print(f"{r['name']:40s} {r['entries']:5d} entries {r['bytes'] / 1e6:10.1f} MB")
        print(f"{'total':40s} {sum(r['entries'] for r in rows):5d} entries {total / 1e6:10.1f} MB")
        return 0
    if args.action == "clear":
        print(f"removed {cache.clear(args.name)} entries")
        return 0
    if args.action == "verify":
        bad = cache.verify()
        for p in bad:
            print(f"corrupt: {p}")
        print(f"{len(bad)} corrupt entries")
        return 1 if bad else 0
    return 2


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
    r.set_defaults(fn=_cmd_run)

    b = sub.add_parser("book", help="stage executed chapters and build the Jupyter Book")
    b.add_argument("--profile", default="cpu", choices=PROFILES)
    b.add_argument("--results", default=None)
    b.add_argument("--stage", default=None, help="staging folder (default book/_build/stage)")
    b.add_argument("--out", default=None, help="jupyter-book --path-output (default book -> book/_build/html)")
    b.add_argument("--execute", action="store_true", help="execute chapters that have no executed notebook yet")
    b.set_defaults(fn=_cmd_book)

    d = sub.add_parser("data", help="external assets described by data_manifests/*.yaml")
    d.add_argument("action", choices=("list", "check", "fetch"))
    d.add_argument("name", nargs="?")
    d.set_defaults(fn=_cmd_data)

    c = sub.add_parser("cache", help="inspect or clear the content-addressed cache")
    c.add_argument("action", choices=("info", "clear", "verify"))
    c.add_argument("name", nargs="?")
    c.set_defaults(fn=_cmd_cache)

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
