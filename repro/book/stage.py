"""Execute chapter notebooks with papermill and build the Jupyter Book (1.x) from their outputs.

The book builder never executes notebooks (``execute_notebooks: off``). Instead:

1. :func:`execute` runs ``notebooks/<stem>.ipynb`` with papermill into
   ``<results>/<profile>/executed/<stem>.ipynb`` (written to a temporary name and renamed, so a
   killed run leaves the previous executed notebook intact; the expensive steps inside are cached,
   so the rerun resumes where it stopped);
2. :func:`stage` copies ``book/`` sources and the executed notebooks into a staging folder
   (files are only rewritten when their content changed, so Sphinx rebuilds only what changed)
   and generates the reproduction-summary page from every chapter's ``claims.csv``;
3. :func:`build` runs ``jupyter-book build`` on the staging folder.
"""
from __future__ import annotations

import filecmp
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from repro.core.config import PROFILES, chapter_sort_key, check_profile, project_root, results_root

BOOK_SRC_FILES = ("_config.yml", "_toc.yml", "references.bib")


def notebook_paths(root: Path | None = None) -> list[Path]:
    root = Path(root or project_root())
    return sorted((root / "notebooks").glob("*.ipynb"), key=lambda p: chapter_sort_key(p.stem))


def chapter_of(nb: Path) -> str:
    """``notebooks/ch3_ninco.ipynb`` -> ``ch3`` (the profile file and results folder name)."""
    return Path(nb).stem.split("_")[0]


def find_notebook(chapter: str, root: Path | None = None) -> Path:
    for nb in notebook_paths(root):
        if chapter in (chapter_of(nb), nb.stem):
            return nb
    known = ", ".join(chapter_of(n) for n in notebook_paths(root))
    raise ValueError(f"no notebook for chapter {chapter!r}; available: {known or '(none)'}")


def executed_path(nb: Path, profile: str, results: Path | None = None) -> Path:
    return Path(results or results_root()) / profile / "executed" / f"{Path(nb).stem}.ipynb"


def execute(nb: Path, profile: str, seed: int = 0, device: str = "auto", results: Path | None = None,
            log_progress: bool = True) -> Path:
    """Run one chapter notebook with papermill; returns the executed notebook's path."""
    import papermill as pm

    check_profile(profile)
    out = executed_path(nb, profile, results)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        probe = out.parent / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise OSError(f"cannot write executed notebooks to {out.parent} ({e.strerror}); "
                      "point RESULTS= (make) or --results / $REPRO_RESULTS (repro) at a writable folder") from None
    tmp = out.with_name(f".{out.stem}.running.ipynb")
    env_results = os.environ.get("REPRO_RESULTS")
    if results is not None:
        os.environ["REPRO_RESULTS"] = str(results)
    t0 = time.perf_counter()
    print(f"[repro] executing {Path(nb).name} (profile={profile}, seed={seed}, device={device})", flush=True)
    try:
        pm.execute_notebook(str(nb), str(tmp), parameters={"profile": profile, "seed": int(seed), "device": device},
                            kernel_name="python3", cwd=str(project_root()), progress_bar=log_progress,
                            log_output=False, request_save_on_cell_execute=True)
    except pm.PapermillExecutionError as e:
        # The user-facing part is the exception raised in the notebook, not papermill's wrapper.
        raise RuntimeError(
            f"{Path(nb).name} failed in cell {e.exec_count} with {e.ename}: {e.evalue}\n"
            f"(the partially executed notebook is {tmp}; previous results are unchanged)"
        ) from None
    finally:
        if results is not None:
            if env_results is None:
                os.environ.pop("REPRO_RESULTS", None)
            else:
                os.environ["REPRO_RESULTS"] = env_results
    os.replace(tmp, out)
    dt = time.perf_counter() - t0
    timing = out.parent / "timings.json"
    data = json.loads(timing.read_text()) if timing.exists() else {}
    data[Path(nb).stem] = round(dt, 1)
    timing.write_text(json.dumps(data, indent=2))
    print(f"[repro] finished {Path(nb).name} in {dt:.1f} s", flush=True)
    return out


def _stage_notebook(src: Path, dst: Path) -> None:
    """Copy an executed notebook, hiding the notebook's default parameters cell: papermill's
    injected cell right after it shows the values this page was actually built with."""
    import nbformat

    nb = nbformat.read(src, as_version=4)
    for c in nb.cells:
        tags = c.metadata.get("tags", [])
        if "parameters" in tags and "remove-cell" not in tags:
            c.metadata["tags"] = tags + ["remove-cell"]
    _write_if_changed(nbformat.writes(nb), dst)


def _copy_if_changed(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists() and filecmp.cmp(src, dst, shallow=False):
        return
    shutil.copy2(src, dst)


def _write_if_changed(text: str, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists() and dst.read_text() == text:
        return
    dst.write_text(text)


def notebook_title(nb: Path) -> str:
    """The notebook's first '# ' heading (its page title in the book)."""
    import nbformat

    for c in nbformat.read(nb, as_version=4).cells:
        if c.cell_type == "markdown":
            for line in c.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return Path(nb).stem


def glance_markdown(profile: str, results: Path | None = None) -> str:
    """Verdict counts per chapter for the landing page (links to the chapter and the summary)."""
    from repro.reference import VERDICTS, summary

    df = summary(Path(results or results_root()), profile)
    if df.empty:
        return ""
    nbs = {chapter_of(n): n for n in notebook_paths()}
    rows = []
    for ch, g in sorted(df.groupby("chapter"), key=lambda kv: chapter_sort_key(kv[0])):
        counts = g["verdict"].value_counts()
        nb = nbs.get(ch)
        rows.append({"chapter": f"{{doc}}`{notebook_title(nb)} <chapters/{nb.stem}>`" if nb else ch,
                     "claims": len(g), **{v: int(counts.get(v, 0)) for v in VERDICTS}})
    table = pd.DataFrame(rows).to_markdown(index=False)
    return ("## At a glance: what this build reproduced\n\n"
            f"Claims tested per chapter in this build (profile `{profile}`), by verdict. Each claim with both "
            "numbers is in the {doc}`summary`.\n\n" + table + "\n")


def summary_markdown(profile: str, results: Path | None = None) -> str:
    from repro.reference import summary

    df = summary(Path(results or results_root()), profile)
    lines = ["# Reproduction summary", "",
             f"Every claim the chapters test, with the dissertation's number beside ours (profile `{profile}`).",
             "Verdicts are computed by the chapter notebooks from the numbers they produced; "
             "`not testable at this scale` marks claims that need the paper's data or models (see "
             "{doc}`paper_scale`).", ""]
    if df.empty:
        lines.append("No chapter has been executed for this profile yet.")
        return "\n".join(lines) + "\n"
    counts = df["verdict"].value_counts()
    lines.append("**Verdicts:** " + ", ".join(f"{k}: {v}" for k, v in counts.items()) + "")
    lines.append("")
    nbs = {chapter_of(n): n for n in notebook_paths()}
    for ch, g in sorted(df.groupby("chapter"), key=lambda kv: chapter_sort_key(kv[0])):
        nb = nbs.get(ch)
        if nb is None:
            lines += [f"## {ch}", ""]
        else:
            lines += [f"## {notebook_title(nb)}", "", f"Details: {{doc}}`chapters/{nb.stem}`.", ""]
        lines += [g.drop(columns=["chapter"]).to_markdown(index=False), ""]
    return "\n".join(lines) + "\n"


def stage(profile: str, stage_dir: Path, results: Path | None = None, root: Path | None = None) -> Path:
    """Assemble the book sources + executed notebooks of ``profile`` into ``stage_dir``."""
    root = Path(root or project_root())
    src = root / "book"
    stage_dir = Path(stage_dir)
    for p in src.rglob("*"):
        rel = p.relative_to(src)
        if p.is_file() and not rel.parts[0].startswith("_build") and rel.parts[0] not in ("chapters", "generated"):
            _copy_if_changed(p, stage_dir / rel)
    missing = []
    for nb in notebook_paths(root):
        ex = executed_path(nb, profile, results)
        if not ex.exists():
            missing.append(nb.stem)
            continue
        _stage_notebook(ex, stage_dir / "chapters" / nb.name)
        # Tables the chapter saved, so each page can offer them as CSV downloads.
        for csv in sorted((Path(results or results_root()) / profile / chapter_of(nb)).glob("*.csv")):
            _copy_if_changed(csv, stage_dir / "data" / chapter_of(nb) / csv.name)
    if missing:
        raise FileNotFoundError(
            f"chapters {missing} have not been executed in profile {profile!r}; run `make book PROFILE={profile}` "
            f"or `repro run all --profile {profile}` first"
        )
    _write_if_changed(summary_markdown(profile, results), stage_dir / "summary.md")
    intro = (src / "intro.md").read_text()
    marker = "<!-- at-a-glance: repro/book/stage.py inserts the verdict counts of this build here -->"
    glance = glance_markdown(profile, results)
    intro = intro.replace(marker, glance) if marker in intro else intro + glance
    _write_if_changed(intro, stage_dir / "intro.md")
    from repro.book.methods import methods_markdown

    _write_if_changed(methods_markdown(root), stage_dir / "methods.md")
    return stage_dir


def build(stage_dir: Path, out_dir: Path, quiet: bool = True) -> Path:
    """``jupyter-book build`` of the staging folder; returns the html folder."""
    exe = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(exe) if exe.exists() else "jupyter-book", "build", str(stage_dir), "--path-output", str(out_dir)]
    if quiet:
        cmd.append("--quiet")
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stdout[-5000:] + r.stderr[-5000:])
        raise RuntimeError(f"jupyter-book build failed (exit {r.returncode}); see the output above")
    html = Path(out_dir) / "_build" / "html"
    return html


def toc_chapters(root: Path | None = None) -> list[str]:
    """Chapter files listed in ``book/_toc.yml`` (``chapters/<stem>``)."""
    import yaml

    toc = yaml.safe_load(open(Path(root or project_root()) / "book" / "_toc.yml"))
    out = []

    def walk(node):
        if isinstance(node, dict):
            f = node.get("file")
            if isinstance(f, str) and f.startswith("chapters/"):
                out.append(f.split("/", 1)[1])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(toc)
    return out
