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
import re
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


def run_log_path(nb: Path, profile: str, results: Path | None = None) -> Path:
    """``<results>/<profile>/logs/<stem>.log``: progress bars, cache and warning messages of the
    last execution (the terminal shows them live; the book page does not)."""
    return Path(results or results_root()) / profile / "logs" / f"{Path(nb).stem}.log"


class _Follow:
    """Stream a growing file to a terminal stream from a background thread (``tail -f``)."""

    def __init__(self, path: Path, sink):
        import threading

        self.path, self.sink = Path(path), sink
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self):
        pos = 0
        while True:
            stopping = self._stop.is_set()
            try:
                with open(self.path, "r", encoding="utf-8", errors="replace") as f:
                    f.seek(pos)
                    chunk = f.read()
                    pos = f.tell()
            except FileNotFoundError:
                chunk = ""
            if chunk:
                try:
                    self.sink.write(chunk)
                    self.sink.flush()
                except (OSError, ValueError):
                    return
            if stopping:
                return
            self._stop.wait(0.5)


def execute(nb: Path, profile: str, seed: int = 0, device: str = "auto", results: Path | None = None,
            log_progress: bool = True) -> Path:
    """Run one chapter notebook with papermill; returns the executed notebook's path.

    The kernel writes its progress bars, ``[repro.cache]`` lines and warnings to
    :func:`run_log_path` (see :func:`repro.book.notebook._setup_logging`), which is streamed to
    this process's stderr while the notebook runs. The executed notebook records the profile,
    seed and device in ``metadata.repro`` so :func:`stage` can refuse a mix.
    """
    import papermill as pm

    from repro.book.notebook import RUN_LOG_ENV

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
    log = run_log_path(nb, profile, results)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    saved_env = {k: os.environ.get(k) for k in ("REPRO_RESULTS", RUN_LOG_ENV)}
    if results is not None:
        os.environ["REPRO_RESULTS"] = str(results)
    os.environ[RUN_LOG_ENV] = str(log)  # the kernel inherits the environment
    t0 = time.perf_counter()
    print(f"[repro] executing {Path(nb).name} (profile={profile}, seed={seed}, device={device}); "
          f"log: {log}", flush=True)
    try:
        with _Follow(log, sys.stderr):
            pm.execute_notebook(str(nb), str(tmp), parameters={"profile": profile, "seed": int(seed), "device": device},
                                kernel_name="python3", cwd=str(project_root()), progress_bar=log_progress,
                                log_output=False, request_save_on_cell_execute=True)
    except pm.PapermillExecutionError as e:
        # The user-facing part is the exception raised in the notebook, not papermill's wrapper.
        raise RuntimeError(
            f"{Path(nb).name} failed in cell {e.exec_count} with {e.ename}: {e.evalue}\n"
            f"(the partially executed notebook is {tmp}; its log is {log}; previous results are unchanged)"
        ) from None
    finally:
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    _record_run(tmp, profile=profile, seed=int(seed), device=device,
                results_dir=Path(results or results_root()) / profile / chapter_of(nb))
    os.replace(tmp, out)
    dt = time.perf_counter() - t0
    _record_timing(out.parent / "timings.json", Path(nb).stem, dt)
    print(f"[repro] finished {Path(nb).name} in {dt:.1f} s", flush=True)
    return out


def _record_timing(path: Path, stem: str, seconds: float) -> None:
    """Add one chapter's execution time to ``timings.json``. Chapters may run concurrently (``make -j2 book``):
    the read-modify-write holds an exclusive lock and the file is replaced atomically, so no entry is lost and
    no reader sees half a file."""
    import fcntl

    with open(path.with_name(f".{path.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = json.loads(path.read_text()) if path.exists() else {}
        data[stem] = round(seconds, 1)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=2))
        os.replace(tmp, path)


def _record_run(nb_path: Path, profile: str, seed: int, device: str, results_dir: Path) -> None:
    """Write ``metadata.repro = {profile, seed, device}`` into an executed notebook; ``device`` is the
    one the chapter actually ran on (its provenance.json) when available, else the requested one."""
    import nbformat

    nb = nbformat.read(nb_path, as_version=4)
    resolved = device
    prov = Path(results_dir) / "provenance.json"
    if prov.exists():
        try:
            resolved = json.loads(prov.read_text()).get("device", device)
        except (OSError, ValueError):
            pass
    nb.metadata["repro"] = {"profile": profile, "seed": int(seed), "device": str(resolved),
                            "device_requested": str(device)}
    nbformat.write(nb, str(nb_path))


SHOW_INPUT_TAGS = ("show-input", "injected-parameters")


def _stage_notebook(src: Path, dst: Path) -> None:
    """Copy an executed notebook for the book.

    - the notebook's default parameters cell is removed: papermill's injected cell right after it
      shows the values this page was actually built with, and stays visible;
    - every other code cell gets Jupyter Book's ``hide-input`` tag (the reader sees prose, figures
      and tables; the code is one click away), except cells tagged ``show-input`` by the chapter,
      where the call itself is the point;
    - the value echoed by the last line of the ``ctx.finish(...)`` cell (a DataFrame, in notebooks
      executed before ``finish`` returned None) is dropped, so the page ends with the provenance box;
    - tag-like prose in Markdown (``<EOT>``) is escaped (:func:`escape_unknown_tags`).
    """
    import nbformat

    nb = nbformat.read(src, as_version=4)
    for c in nb.cells:
        if c.cell_type == "markdown":
            c.source = escape_unknown_tags(c.source)
        if c.cell_type != "code":
            continue
        for o in c.get("outputs", []):
            data = o.get("data") or {}
            if isinstance(data.get("text/markdown"), str):
                data["text/markdown"] = escape_unknown_tags(data["text/markdown"])
        tags = list(c.metadata.get("tags", []))
        if "parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
        elif not any(t in tags for t in SHOW_INPUT_TAGS + ("remove-cell", "remove-input", "hide-input")):
            tags.append("hide-input")
        c.metadata["tags"] = tags
        if "ctx.finish(" in c.source:
            c.outputs = [o for o in c.get("outputs", []) if o.get("output_type") != "execute_result"]
    _write_if_changed(nbformat.writes(nb), dst)


HTML_TAGS = frozenset("""a abbr address area article aside audio b base bdi bdo blockquote body br button canvas
caption cite code col colgroup data datalist dd del details dfn dialog div dl dt em embed fieldset figcaption
figure footer form h1 h2 h3 h4 h5 h6 head header hgroup hr html i iframe img input ins kbd label legend li link
main map mark math menu meta meter nav noscript object ol optgroup option output p param picture pre progress q
rp rt ruby s samp script section select slot small source span strong style sub summary sup svg table tbody td
template textarea tfoot th thead time title tr track u ul var video wbr center font""".split())

_FENCE = re.compile(r"(```.*?```|~~~.*?~~~|`[^`\n]*`|\$\$.*?\$\$)", re.S)
_TAGLIKE = re.compile(r"<(/?)([A-Za-z][\w-]*)(?![\w:-])([^<>\n]*)>")


def escape_unknown_tags(markdown: str) -> str:
    """Escape ``<EOT>``, ``<eos>`` and other tag-like text that is not HTML, outside code spans and
    fences, so a token name in prose is shown instead of being swallowed as an unknown element.
    Real HTML (``<br>``, ``<span ...>``, custom elements with a hyphen) and autolinks stay."""
    def fix(m):
        name = m.group(2).lower()
        if name in HTML_TAGS or "-" in name:
            return m.group(0)
        return "&lt;" + m.group(0)[1:-1] + "&gt;"

    parts = _FENCE.split(markdown)
    return "".join(p if i % 2 else _TAGLIKE.sub(fix, p) for i, p in enumerate(parts))


def run_info(nb_path: Path) -> dict:
    """``{profile, seed, device}`` an executed notebook was made with: ``metadata.repro`` (written by
    :func:`execute`), else papermill's record of the injected parameters; missing keys are None."""
    import nbformat

    md = nbformat.read(nb_path, as_version=4).metadata
    info = dict(md.get("repro") or {})
    params = (md.get("papermill") or {}).get("parameters") or {}
    for k in ("profile", "seed", "device"):
        if info.get(k) is None:
            info[k] = params.get(k)
    return {k: info.get(k) for k in ("profile", "seed", "device")}


class MixedRunsError(ValueError):
    """Executed chapters of one book were made with different seeds or profiles."""


def check_runs(infos: dict, profile: str, allow_mixed: bool = False) -> None:
    """Refuse to stage chapters executed with different seeds (or another profile than the book's).

    ``infos`` maps chapter -> :func:`run_info`. ``make chapter CH=ch5 SEED=1`` followed by
    ``make book`` would otherwise put seed-1 ch5 beside seed-0 chapters with nothing on the page
    saying so. ``allow_mixed`` stages anyway (the summary then shows every chapter's seed).
    """
    wrong_profile = {ch: i["profile"] for ch, i in infos.items() if i["profile"] not in (None, profile)}
    if wrong_profile:
        raise MixedRunsError(
            f"executed notebooks in the {profile!r} folder were run with another profile: "
            + ", ".join(f"{ch} ({p})" for ch, p in wrong_profile.items())
            + f"; re-run them with `repro run <chapter> --profile {profile}`")
    seeds = {ch: i["seed"] for ch, i in infos.items()}
    if len({str(v) for v in seeds.values()}) > 1 and not allow_mixed:
        by_seed: dict = {}
        for ch, sd in seeds.items():
            by_seed.setdefault(str(sd), []).append(ch)
        listing = "; ".join(f"seed {sd}: {', '.join(chs)}" for sd, chs in sorted(by_seed.items()))
        raise MixedRunsError(
            f"the executed chapters of profile {profile!r} were run with different seeds ({listing}). "
            "Re-run the odd ones with the book's seed (`make chapter CH=<chapter> SEED=<seed>`), "
            "or stage the mix on purpose with --allow-mixed-seeds (the summary then shows each chapter's seed).")


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


def _chapter_links() -> dict:
    return {chapter_of(n): n for n in notebook_paths()}


def world_card_anchor(nb: Path) -> str | None:
    """The MyST anchor of the notebook's "World card" heading, if it has one."""
    import re

    import nbformat

    for c in nbformat.read(nb, as_version=4).cells:
        if c.cell_type != "markdown":
            continue
        for line in c.source.splitlines():
            m = re.match(r"^#{1,3}\s+(.*world card.*)$", line.strip(), flags=re.I)
            if m:
                slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).strip().replace(" ", "-")
                return re.sub(r"-+", "-", slug)
    return None


def _counts_sentence(g: pd.DataFrame) -> str:
    from repro.reference import VERDICTS

    c = g["verdict"].value_counts()
    parts = [f"{int(c.get(v, 0))} {v}" for v in VERDICTS if int(c.get(v, 0))]
    return f"{len(g)} ({', '.join(parts)})" if parts else "0"


def headline(g: pd.DataFrame) -> dict | None:
    """A chapter's main result: its first scientific claim (chapters list their headline claim first)."""
    claims = g[g["kind"] != "check"]
    return None if claims.empty else claims.iloc[0].to_dict()


def glance_markdown(profile: str, results: Path | None = None) -> str:
    """One line per chapter for the landing page: the chapter's headline claim and its verdict (with
    the reason when not reproduced), the claim and check counts, and links to the chapter and its world
    card. Computed from the claims CSVs when the book is staged."""
    from repro.book.render import VERDICT_STYLE, esc
    from repro.reference import summary

    df = summary(Path(results or results_root()), profile)
    if df.empty:
        return ""
    nbs = _chapter_links()
    lines = ["## At a glance: what this build reproduced", "",
             f"The main result of each chapter in this build (profile `{profile}`), computed from its claim "
             "table when the book was staged. Every claim with both numbers is in the {doc}`summary`.", ""]
    for ch, g in sorted(df.groupby("chapter"), key=lambda kv: chapter_sort_key(kv[0])):
        nb = nbs.get(ch)
        title = f"{{doc}}`{notebook_title(nb)} <chapters/{nb.stem}>`" if nb else ch
        h = headline(g)
        line = f"- **{title}**"
        if h is not None:
            bg, fg = VERDICT_STYLE.get(h["verdict"], ("#eee", "#000"))
            line += (f" — {esc(h['claim'])}: <span style=\"background:{bg};color:{fg};padding:0 .3em;"
                     f"border-radius:3px\">{esc(h['verdict'])}</span>")
            if h["verdict"] != "reproduced" and str(h.get("why", "")).strip():
                line += f" ({esc(h['why'])})"
            line += "."
        sci, chk = g[g["kind"] != "check"], g[g["kind"] == "check"]
        line += f" Claims: {_counts_sentence(sci)}"
        if len(chk):
            line += f"; implementation checks: {_counts_sentence(chk)}"
        line += "."
        anchor = world_card_anchor(nb) if nb else None
        if anchor:
            line += f" [World card](chapters/{nb.stem}.ipynb#{anchor})."
        lines.append(line)
    return "\n".join(lines) + "\n"


def _counts_block(df: pd.DataFrame) -> str:
    from repro.book.render import verdict_counts_html

    sci, chk = df[df["kind"] != "check"], df[df["kind"] == "check"]
    out = f"- scientific claims ({len(sci)}): " + verdict_counts_html(sci["verdict"].value_counts().to_dict())
    if len(chk):
        out += f"\n- implementation checks ({len(chk)}): " + verdict_counts_html(chk["verdict"].value_counts().to_dict())
    return out


def summary_markdown(profile: str, results: Path | None = None, runs: dict | None = None) -> str:
    """The reproduction-summary page: verdict counts (the dissertation's claims, implementation checks
    and the appendix's related papers counted apart), the runs' seeds/devices, and one escaped HTML
    claim table per chapter with colour-coded verdicts and a "why" column."""
    from repro.book.render import claims_html, esc, frame_html
    from repro.reference import summary

    df = summary(Path(results or results_root()), profile)
    lines = ["# Reproduction summary", "",
             f"Every claim the chapters test, with the dissertation's number beside ours (profile `{profile}`).",
             "Verdicts are computed by the chapter notebooks from the numbers they produced; "
             "`not testable at this scale` marks claims that need the paper's data or models (see "
             "{doc}`paper_scale`). *Implementation checks* (parameter counts, worked examples, exact "
             "identities) test our code, not the dissertation, and are counted apart.", ""]
    if df.empty:
        lines.append("No chapter has been executed for this profile yet.")
        return "\n".join(lines) + "\n"
    is_app = df["chapter"].str.startswith("appendix")
    lines += ["## Verdicts", "", "**The dissertation (chapters 3–7):**", "", _counts_block(df[~is_app]), ""]
    if is_app.any():
        lines += ["**Appendix (related papers re-examined; not the dissertation's claims):**", "",
                  _counts_block(df[is_app]), ""]
    if runs:
        rows = pd.DataFrame([{"chapter": ch, **{k: ("–" if v is None else str(v)) for k, v in i.items()}}
                             for ch, i in sorted(runs.items(), key=lambda kv: chapter_sort_key(kv[0]))])
        if rows["seed"].nunique() > 1:
            lines += [":::{warning}", "The chapters of this build were run with **different seeds** "
                      "(staged with `--allow-mixed-seeds`); compare them with care.", ":::", ""]
        lines += ["**Runs:**", "", frame_html(rows), ""]
    nbs = _chapter_links()
    for ch, g in sorted(df.groupby("chapter"), key=lambda kv: chapter_sort_key(kv[0])):
        nb = nbs.get(ch)
        if nb is None:
            lines += [f"## {esc(ch)}", ""]
        else:
            lines += [f"## {notebook_title(nb)}", "", f"Details: {{doc}}`chapters/{nb.stem}`.", ""]
        for kind, title in (("claim", None), ("check", "Implementation checks")):
            part = g[(g["kind"] == "check") == (kind == "check")]
            if part.empty:
                continue
            if title:
                lines += [f"**{title}**", ""]
            lines += [claims_html(part, force_why=True), ""]
    return "\n".join(lines) + "\n"


def stage(profile: str, stage_dir: Path, results: Path | None = None, root: Path | None = None,
          allow_mixed: bool = False) -> Path:
    """Assemble the book sources + executed notebooks of ``profile`` into ``stage_dir``.

    Refuses (:class:`MixedRunsError`) chapters executed with different seeds unless ``allow_mixed``."""
    root = Path(root or project_root())
    src = root / "book"
    stage_dir = Path(stage_dir)
    infos = {chapter_of(nb): run_info(executed_path(nb, profile, results))
             for nb in notebook_paths(root) if executed_path(nb, profile, results).exists()}
    check_runs(infos, profile, allow_mixed=allow_mixed)
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
    _write_if_changed(summary_markdown(profile, results, runs=infos), stage_dir / "summary.md")
    intro = (src / "intro.md").read_text()
    marker = "<!-- at-a-glance: repro/book/stage.py inserts the verdict counts of this build here -->"
    glance = glance_markdown(profile, results)
    intro = intro.replace(marker, glance) if marker in intro else intro + glance
    _write_if_changed(intro, stage_dir / "intro.md")
    from repro.book.methods import methods_markdown

    _write_if_changed(methods_markdown(root), stage_dir / "methods.md")
    stage_mathjax(stage_dir)
    return stage_dir


def stage_mathjax(stage_dir: Path) -> Path:
    """Copy MathJax 3's self-contained ``tex-svg.js`` (and its licence) into ``<stage>/_static/mathjax/``,
    where ``book/_config.yml`` points ``mathjax_path``: the site renders formulas without network."""
    import importlib.util

    spec = importlib.util.find_spec("mathjax")
    base = Path(next(iter(spec.submodule_search_locations))) / "static" / "mathjax" if spec else None
    if base is None or not (base / "es5" / "tex-svg.js").is_file():
        raise FileNotFoundError("MathJax for the book is missing: `pip install django-static-mathjax==3.2.2.1` "
                                "(a dependency of the `book` extra; `make install` installs it)")
    dest = Path(stage_dir) / "_static" / "mathjax"
    _copy_if_changed(base / "es5" / "tex-svg.js", dest / "tex-svg.js")
    _copy_if_changed(base / "LICENSE", dest / "LICENSE")
    return dest / "tex-svg.js"


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


# What must not reach a book page (issue: pages buried in logs). Checked on executed notebooks by the tests.
_TQDM_BAR = r"\d+%\|[^\n]*\|\s*\d+/\d+|\bit/s\]|s/it\]"
_CACHE_LINE = r"\[repro(?:\.\w+)*\]"
_ABS_PATH = r"(?<![\w.~-])/(?:work|root|home|tmp|Users|private/var)/[^\s'\"<>)]*"


def page_output_problems(nb_path: Path) -> list[str]:
    """Progress bars, cache log lines and absolute machine paths in an executed notebook's outputs,
    as ``"cell <i>: <what>: <excerpt>"`` strings (empty when the page is clean)."""
    import re

    import nbformat

    nb = nbformat.read(nb_path, as_version=4)
    problems = []
    checks = (("tqdm progress bar", _TQDM_BAR), ("cache log line", _CACHE_LINE), ("absolute path", _ABS_PATH))
    for i, c in enumerate(nb.cells):
        for o in c.get("outputs", []):
            texts = []
            if o.get("output_type") == "stream":
                texts.append(o.get("text", ""))
            elif o.get("output_type") == "error":
                texts.append("\n".join(o.get("traceback", [])))
            for mime, v in (o.get("data") or {}).items():
                if mime.startswith("text/") or mime in ("application/json",):
                    texts.append(v if isinstance(v, str) else "".join(v) if isinstance(v, list) else str(v))
            for text in texts:
                for what, pat in checks:
                    m = re.search(pat, text)
                    if m:
                        lo = max(0, m.start() - 40)
                        problems.append(f"cell {i}: {what}: {text[lo:m.end() + 40]!r}")
    return problems
