"""The book: toc in sync with the notebooks, notebook conventions, and the end-to-end smoke build
(every notebook executed with papermill in the `smoke` profile, then `jupyter-book build`)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from repro.book import stage as book

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = book.notebook_paths(ROOT)


def test_toc_lists_exactly_the_notebooks():
    assert sorted(book.toc_chapters(ROOT)) == sorted(nb.stem for nb in NOTEBOOKS)


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=[n.stem for n in NOTEBOOKS])
def test_notebook_conventions(nb_path):
    nb = nbformat.read(nb_path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "exactly one cell tagged 'parameters'"
    for name in ("profile", "seed", "device"):
        assert f"{name} =" in params[0].source, f"parameters cell lacks {name}"
    src = "\n".join(c.source for c in code)
    assert f'start_chapter("{book.chapter_of(nb_path)}"' in src
    assert "ctx.finish(" in src
    for c in code:
        assert not c.get("outputs"), "commit notebooks with outputs cleared"
        for line in c.source.splitlines():
            assert not line.lstrip().startswith(("def ", "class ")), f"algorithm code belongs in repro/: {line!r}"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.lstrip().startswith("# ")


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_smoke_book_end_to_end(smoke_site):
    """`make book PROFILE=smoke` executes every chapter and builds the site; a second run does nothing."""
    assert smoke_site["rc"] == 0, smoke_site["log"]
    html, results = smoke_site["html"], smoke_site["results"]
    assert (html / "index.html").exists() and (html / "summary.html").exists()
    for nb in NOTEBOOKS:
        page = html / "chapters" / f"{nb.stem}.html"
        assert page.exists(), page
        text = page.read_text()
        assert "Provenance of this page" in text and "Paper vs reproduced" in text
        assert "Traceback" not in text, f"{nb.stem} rendered an exception"
        assert "claims.csv" in text, "the claim table is downloadable"
        claims = results / "smoke" / book.chapter_of(nb) / "claims.csv"
        assert claims.exists()
        prov = json.loads((claims.parent / "provenance.json").read_text())
        assert prov["profile"] == "smoke"
    summary = (html / "summary.html").read_text()
    for nb in NOTEBOOKS:
        assert book.chapter_of(nb) in summary
    # Second build: nothing to re-execute or rebuild. (`make -n`, not `-q`: the phony `book` goal prints
    # the timings and the site's path every time, so `-q` is never 0.)
    r2 = subprocess.run(smoke_site["args"] + ["-n"], env=smoke_site["env"], capture_output=True, text=True)
    assert r2.returncode == 0, r2.stderr[-2000:]
    assert "repro.cli" not in r2.stdout, "make plans work after a complete build:\n" + r2.stdout[-2000:]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_smoke_pages_have_no_logs_or_machine_paths(smoke_site):
    """No tqdm bars, `[repro.*]` log lines or absolute paths in any executed smoke notebook (they go to
    the terminal and results/<profile>/logs/ instead), and each records the profile/seed/device it ran with."""
    assert smoke_site["rc"] == 0, smoke_site["log"]
    problems = []
    for nb in NOTEBOOKS:
        ex = book.executed_path(nb, "smoke", smoke_site["results"])
        problems += [f"{nb.stem}: {p}" for p in book.page_output_problems(ex)]
        assert book.run_info(ex)["profile"] == "smoke" and book.run_info(ex)["seed"] == 0
    assert not problems, "\n".join(problems[:40])
