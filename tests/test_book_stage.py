"""Staging the book: logs stay out of pages, code cells collapsed, mixed seeds refused, the summary and
landing page computed from the claim tables."""
import json
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest

from repro.book import stage as book
from repro.reference import claims_frame

ROOT = Path(__file__).resolve().parents[1]
NASTY = "|τ_gap − τ_test| < 0.1 & <eos> kept"


def _nb(cells, metadata=None):
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    nb.metadata.update(metadata or {})
    return nb


def _code(src, tags=(), outputs=()):
    c = nbformat.v4.new_code_cell(src)
    c.metadata["tags"] = list(tags)
    c.outputs = list(outputs)
    return c


# ---------------------------------------------------------------- logs out of pages

def _clean_and_dirty(tmp_path):
    clean = _nb([_code("x = 1", outputs=[nbformat.v4.new_output("stream", name="stdout", text="42 models\n")])])
    dirty = _nb([
        _code("a", outputs=[nbformat.v4.new_output("stream", name="stderr",
                                                   text="features:  40%|████      | 4/10 [00:01<00:02,  3.1it/s]")]),
        _code("b", outputs=[nbformat.v4.new_output("stream", name="stderr", text="[repro.core.cache] computed zoo/r18\n")]),
        _code("c", outputs=[nbformat.v4.new_output("stream", name="stderr",
                                                   text="/work/main/repro/ood/x.py:12: UserWarning: careful\n")]),
        _code("d", outputs=[nbformat.v4.new_output("display_data", data={"text/plain": "see /tmp/abc/results"})]),
    ])
    p1, p2 = tmp_path / "clean.ipynb", tmp_path / "dirty.ipynb"
    nbformat.write(clean, p1)
    nbformat.write(dirty, p2)
    return p1, p2


def test_page_output_problems_detects_bars_cache_lines_and_paths(tmp_path):
    clean, dirty = _clean_and_dirty(tmp_path)
    assert book.page_output_problems(clean) == []
    probs = book.page_output_problems(dirty)
    kinds = [p.split(": ")[1] for p in probs]
    assert kinds == ["tqdm progress bar", "cache log line", "absolute path", "absolute path"], probs


PROBE = """\
import logging, warnings
from repro.book.notebook import start_chapter
ctx = start_chapter("ch5", profile=profile, seed=seed, device=device)
logging.getLogger("repro.cache").info("computed probe entry")
warnings.warn("a warning from the probe")
from tqdm.auto import tqdm
for _ in tqdm(range(50), desc="probe bar", mininterval=0):
    pass
print("visible text")
"""


@pytest.mark.timeout(300)
def test_executed_notebook_keeps_logs_on_the_terminal(tmp_path, capfd):
    """A real papermill run: cache lines, warnings and tqdm bars reach the terminal (stderr) and the
    run log, but not the executed notebook; the notebook records profile/seed/device."""
    nb = _nb([_code('profile = "smoke"\nseed = 0\ndevice = "cpu"', tags=["parameters"]), _code(PROBE)],
             metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    src = tmp_path / "ch5_probe.ipynb"
    nbformat.write(nb, src)
    out = book.execute(src, "smoke", seed=0, device="cpu", results=tmp_path / "results", log_progress=False)
    executed = nbformat.read(out, as_version=4)
    text = json.dumps([c.get("outputs", []) for c in executed.cells])
    assert "visible text" in text
    assert book.page_output_problems(out) == []
    assert "probe entry" not in text and "a warning from the probe" not in text and "probe bar" not in text
    log = book.run_log_path(src, "smoke", tmp_path / "results").read_text()
    assert "[repro.cache] computed probe entry" in log and "a warning from the probe" in log and "probe bar" in log
    assert "computed probe entry" in capfd.readouterr().err  # streamed to the terminal while running
    assert executed.metadata["repro"]["profile"] == "smoke" and executed.metadata["repro"]["seed"] == 0
    assert book.run_info(out) == {"profile": "smoke", "seed": 0, "device": "cpu"}


# ---------------------------------------------------------------- staging a notebook

def test_stage_notebook_collapses_code_and_drops_the_trailing_echo(tmp_path):
    nb = _nb([
        _code('profile = "cpu"', tags=["parameters"]),
        _code('profile = "smoke"', tags=["injected-parameters"]),
        _code("ctx = start_chapter('ch5')"),
        _code("ctx.table(df, 'x', 'X')", tags=["show-input"]),
        _code("ctx.finish(claims)", outputs=[
            nbformat.v4.new_output("display_data", data={"text/markdown": "provenance"}),
            nbformat.v4.new_output("execute_result", data={"text/plain": "   claim paper"}, execution_count=1)]),
    ])
    src, dst = tmp_path / "a.ipynb", tmp_path / "b.ipynb"
    nbformat.write(nb, src)
    book._stage_notebook(src, dst)
    tags = [c.metadata["tags"] for c in nbformat.read(dst, as_version=4).cells]
    assert "remove-cell" in tags[0]
    assert "hide-input" not in tags[1], "the parameters this page was built with stay visible"
    assert "hide-input" in tags[2] and "hide-input" not in tags[3] and "hide-input" in tags[4]
    outs = nbformat.read(dst, as_version=4).cells[4].outputs
    assert [o["output_type"] for o in outs] == ["display_data"]


# ---------------------------------------------------------------- mixed runs

def _fake_results(results, profile, seeds):
    """Executed notebooks for every chapter of the repo with the given seeds (others: seed 0)."""
    for nb in book.notebook_paths(ROOT):
        ch = book.chapter_of(nb)
        ex = book.executed_path(nb, profile, results)
        ex.parent.mkdir(parents=True, exist_ok=True)
        note = _nb([nbformat.v4.new_markdown_cell(f"# {ch} title")],
                   metadata={"repro": {"profile": profile, "seed": seeds.get(ch, 0), "device": "cpu"}})
        nbformat.write(note, ex)
        d = results / profile / ch
        d.mkdir(parents=True, exist_ok=True)
        claims_frame([{"claim": f"{ch} headline {NASTY}", "paper": "1", "reproduced": "2",
                       "verdict": "not reproduced", "why": "world too small"},
                      {"claim": f"{ch} params", "paper": "3", "reproduced": "3", "verdict": "reproduced",
                       "kind": "check"}]).to_csv(d / "claims.csv", index=False)


def test_check_runs_names_chapters_and_seeds():
    infos = {"ch3": {"profile": "cpu", "seed": 0, "device": "cpu"},
             "ch5": {"profile": "cpu", "seed": 1, "device": "cpu"},
             "ch6": {"profile": "cpu", "seed": 0, "device": "cuda"}}
    with pytest.raises(book.MixedRunsError, match=r"seed 0: ch3, ch6; seed 1: ch5"):
        book.check_runs(infos, "cpu")
    book.check_runs(infos, "cpu", allow_mixed=True)
    with pytest.raises(book.MixedRunsError, match=r"ch5 \(smoke\)"):
        book.check_runs({"ch5": {"profile": "smoke", "seed": 0, "device": "cpu"}}, "cpu", allow_mixed=True)
    # Old executed notebooks without metadata.repro: papermill's parameters are used.
    book.check_runs({"ch3": {"profile": None, "seed": None, "device": None}}, "cpu")


def test_stage_refuses_a_mix_unless_allowed(tmp_path):
    results = tmp_path / "results"
    _fake_results(results, "smoke", {"ch5": 1})
    with pytest.raises(book.MixedRunsError, match="ch5"):
        book.stage("smoke", tmp_path / "stage", results, root=ROOT)
    out = book.stage("smoke", tmp_path / "stage", results, root=ROOT, allow_mixed=True)
    summary = (out / "summary.md").read_text()
    assert "different seeds" in summary


# ---------------------------------------------------------------- summary and landing page

class _Cells(HTMLParser):
    def __init__(self):
        super().__init__()
        self.rows, self._row, self._cell, self.tags = [], None, None, []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = ""

    def handle_endtag(self, tag):
        if tag == "tr":
            self.rows.append(self._row)
        elif tag in ("td", "th"):
            self._row.append(self._cell)
            self._cell = None

    def handle_data(self, d):
        if self._cell is not None:
            self._cell += d


def test_summary_counts_checks_and_appendix_apart_and_escapes(tmp_path):
    results = tmp_path / "results"
    _fake_results(results, "smoke", {})
    md = book.summary_markdown("smoke", results)
    n_diss = sum(1 for nb in book.notebook_paths(ROOT) if not book.chapter_of(nb).startswith("appendix"))
    assert f"scientific claims ({n_diss})" in md and f"implementation checks ({n_diss})" in md
    assert "Appendix (related papers" in md and "scientific claims (1)" in md
    assert "| claim |" not in md, "no Markdown pipe tables (a | in a claim breaks them)"
    assert "<eos>" not in md and "&lt;eos&gt;" in md
    p = _Cells()
    p.feed(md)
    rows = [r for r in p.rows if r and r[0] != "chapter"]
    claim_rows = [r for r in rows if "headline" in r[0]]
    assert claim_rows and all(len(r) == 5 for r in claim_rows), "claim, paper, reproduced, verdict, why"
    assert claim_rows[0][0].endswith(NASTY) and claim_rows[0][4] == "world too small"
    assert "background:#f9d6d5" in md  # not reproduced is coloured


def test_landing_page_has_one_line_per_chapter_with_its_headline(tmp_path):
    results = tmp_path / "results"
    _fake_results(results, "smoke", {})
    md = book.glance_markdown("smoke", results)
    lines = [ln for ln in md.splitlines() if ln.startswith("- **")]
    assert len(lines) == len(book.notebook_paths(ROOT))
    for nb, ln in zip(book.notebook_paths(ROOT), lines):
        assert f"<chapters/{nb.stem}>" in ln
        assert f"{book.chapter_of(nb)} headline" in ln and "not reproduced" in ln and "world too small" in ln
        assert "implementation checks: 1 (1 reproduced)" in ln


@pytest.mark.parametrize("src, want", [
    ("compares 'No idea<EOT>' and <eos>", "compares 'No idea&lt;EOT&gt;' and &lt;eos&gt;"),
    ("code `a<EOT>` stays", "code `a<EOT>` stays"),
    ("```\n<eos>\n```", "```\n<eos>\n```"),
    ("a<br>b <span style='x'>c</span> <https://example.org>", "a<br>b <span style='x'>c</span> <https://example.org>"),
])
def test_escape_unknown_tags(src, want):
    assert book.escape_unknown_tags(src) == want


def test_stage_notebook_escapes_token_names_in_markdown(tmp_path):
    md = nbformat.v4.new_markdown_cell("target 'No idea<EOT>'")
    out = _code("x", outputs=[nbformat.v4.new_output("display_data", data={"text/markdown": "a <eos> b"})])
    src, dst = tmp_path / "a.ipynb", tmp_path / "b.ipynb"
    nbformat.write(_nb([md, out]), src)
    book._stage_notebook(src, dst)
    cells = nbformat.read(dst, as_version=4).cells
    assert "&lt;EOT&gt;" in cells[0].source and "&lt;eos&gt;" in cells[1].outputs[0]["data"]["text/markdown"]
