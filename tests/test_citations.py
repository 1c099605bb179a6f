"""Citations a reader can resolve: no line numbers of the dissertation's text file or of internal notes
anywhere in the book, the notebooks, the code's user-facing text or the profiles.

Cite by chapter/section, equation, figure and table number instead ("Sec. 4.2, Eq. 4.1", "Table 3.1",
"M-Tab. 4", "Sec. 8.4, App. A.1"); the prefixes are explained in book/intro.md ("How to read the
citations"). Each failing test lists every offending file:line, so what is left is visible at once.
"""
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Line references into dissertation.txt ("L1249", "L514-516", "S:3409-3413") and into the notes the
# book does not ship ("notes §1.6", "notes D9"). The look-behinds keep model names such as
# "ViT-L14-336" and paths such as "a/L123" out.
LINE_REF = re.compile(
    r"(?<![\w/.-])L\d{3,}\b"
    r"|(?<![\w/.-])L\d+\s?[-–]\s?L?\d+\b"
    r"|(?<![\w])S:\s?\d+"
    r"|\bnotes\s*§"
    r"|\bnotes\s+D\d+"
)

TEXT_SUFFIXES = {".py", ".md", ".yml", ".yaml", ".txt", ".csv", ".bib", ".ipynb", ".json", ".cfg", ".toml"}
SKIP_PARTS = {"_build", "__pycache__", ".ipynb_checkpoints"}


def offending_lines(path: Path) -> list[str]:
    """``"<path>:<line>: <match>  | <line text>"`` for every line reference in a file (for a notebook:
    ``<path>:cell <i> line <j>``)."""
    rel = path.relative_to(ROOT)
    out = []
    if path.suffix == ".ipynb":
        nb = json.loads(path.read_text())
        for ci, cell in enumerate(nb.get("cells", [])):
            src = cell.get("source", "")
            src = "".join(src) if isinstance(src, list) else src
            for li, line in enumerate(src.splitlines(), 1):
                for m in LINE_REF.finditer(line):
                    out.append(f"{rel}:cell {ci} line {li}: {m.group(0)!r}  | {line.strip()[:120]}")
        return out
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        return out
    for li, line in enumerate(text.splitlines(), 1):
        for m in LINE_REF.finditer(line):
            out.append(f"{rel}:{li}: {m.group(0)!r}  | {line.strip()[:120]}")
    return out


def files_under(folder: str, exclude: tuple[str, ...] = ()) -> list[Path]:
    base = ROOT / folder
    return sorted(p for p in base.rglob("*")
                  if p.is_file() and p.suffix in TEXT_SUFFIXES and not SKIP_PARTS & set(p.parts)
                  and not any(str(p.relative_to(ROOT)).startswith(e) for e in exclude))


AREAS = {
    "book": lambda: files_under("book"),
    "notebooks": lambda: files_under("notebooks"),
    "repro-code": lambda: files_under("repro", exclude=("repro/profiles",)),
    "profiles": lambda: files_under("repro/profiles"),
}


@pytest.mark.parametrize("area", list(AREAS))
def test_no_line_number_citations(area):
    bad = [line for p in AREAS[area]() for line in offending_lines(p)]
    assert not bad, (f"{len(bad)} line-number citation(s) in {area} (cite section/equation/figure/table "
                     "numbers instead):\n" + "\n".join(bad))


@pytest.mark.parametrize("text", ["see L1249", "(L514-516)", "S:3409-3413", "S: 3409", "notes §1.6", "notes D9",
                                  "lines L4383-L4396", "L5-12"])
def test_pattern_catches_line_references(text):
    assert LINE_REF.search(text), text


@pytest.mark.parametrize("text", ["ViT-L14-336", "Table 3.1", "M-Tab. 4", "N-Fig. 6", "Sec. 8.4, App. A.1",
                                  "ℓ2 norm", "L2 normalisation", "L1 loss", "Eq. 4.1", "resnet_L123 path/L1234",
                                  "the notes say"])
def test_pattern_spares_resolvable_citations_and_names(text):
    assert not LINE_REF.search(text), text


def test_intro_explains_the_citation_prefixes():
    intro = (ROOT / "book" / "intro.md").read_text()
    assert "How to read the citations" in intro
    # Every "<X>-Tab./Fig./Eq./Sec." prefix used anywhere in the book sources is explained in the key.
    used = set()
    for folder in ("book", "notebooks", "repro"):
        for p in files_under(folder):
            used |= set(re.findall(r"\b([A-Z])-(?:Tab|Fig|Eq|Sec|App|Alg)\.", p.read_text(errors="ignore")))
    key = intro.split("How to read the citations", 1)[1]
    missing = sorted(u for u in used if f"**{u}-**" not in key)
    assert not missing, f"citation prefixes used but not explained in book/intro.md: {missing}"
