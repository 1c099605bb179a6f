"""The book's "Methods index": every registered detector, sharpness definition, SAM variant,
parameter selection and unlearning loss, with the docstring that cites its equation, the
``repro`` object that implements it, and the chapters that use it.

Built from the registries at book-build time, so it cannot drift from the code.
"""
from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pandas as pd

from repro.core.config import chapter_sort_key, profile_path, project_root


def _doc(obj, fallback: str = "") -> str:
    d = inspect.getdoc(obj) or fallback
    para = d.strip().split("\n\n")[0]
    return " ".join(para.split())


def _qualname(obj) -> str:
    o = obj if inspect.isclass(obj) or inspect.isfunction(obj) else type(obj)
    return f"{o.__module__}.{o.__qualname__}"


# name -> chapters that use it without quoting its name (filled by _families)
IMPLICIT_USAGE: dict[str, set] = {}


def _families() -> list[tuple[str, str, list[tuple[str, str, str]]]]:
    """(family, how to call, [(name, implementation, description)]) for each registry that exists."""
    out = []
    try:
        from repro.ood import related  # noqa: F401  (registers the appendix's feature-norm detector)
        from repro.ood.detectors import base as det

        det.list_detectors()
        rows = [(n, _qualname(c), _doc(c)) for n, c in sorted(det._REGISTRY.items())]
        out.append(("OOD detectors (ch. 3-4, appendix)", 'get_detector("NAME").fit(...).score(...)', rows))
    except ImportError:
        pass
    try:
        from repro.sharpness import definitions as sd

        rows = [(n, "repro.sharpness.measure", sd.get(n).label) for n in sd.list_definitions()]
        # The ch5 zoo measures every definition of the paper's Table 3 grid (zoo.rho_grid), which the
        # notebook and profile never name one by one.
        IMPLICIT_USAGE.update({n: IMPLICIT_USAGE.get(n, set()) | {"ch5"} for n in sd.PAPER_RHO_RESNET})
        out.append(("Sharpness definitions (ch. 5)", 'repro.sharpness.measure(model, batches, "NAME", rho)', rows))
    except ImportError:
        pass
    try:
        from repro.sam import selection as ss
        from repro.sam import variants as sv

        rows = [(n, _qualname(sv.get(n).scale), sv.get(n).description.split("\n\n")[0].replace("\n", " "))
                for n in sv.list_variants()]
        out.append(("SAM perturbation models T_w (ch. 6, Table 9)", 'SAM(model, base, rho=..., variant="NAME")', rows))
        rows = [(n, _qualname(ss._REGISTRY[n]), _doc(ss._REGISTRY[n])) for n in ss.list_selections()]
        out.append(("SAM parameter selections (ch. 6)", 'SAM(model, base, rho=..., params="NAME")', rows))
    except ImportError:
        pass
    try:
        from repro.unlearning import losses as ul

        rows = [(n, _qualname(ul._LOSSES[n]), _doc(ul._LOSSES[n])) for n in ul.list_losses()]
        out.append(("Unlearning losses (ch. 7)", 'repro.unlearning.losses.get("NAME", ...)', rows))
    except ImportError:
        pass
    return out


def _list_items(node, out: set) -> set:
    """All strings that appear as list items or mapping keys anywhere in a parsed YAML document
    (profiles name methods both ways: ``variants: [sam, fisher]`` and ``detectors: {msp: {}, knn: {k: 10}}``)."""
    if isinstance(node, dict):
        for k, v in node.items():
            if isinstance(k, str):
                out.add(k)
            _list_items(v, out)
    elif isinstance(node, list):
        for v in node:
            if isinstance(v, str):
                out.add(v)
            else:
                _list_items(v, out)
    return out


def _usage(root: Path) -> dict[str, tuple[str, set]]:
    """Chapter -> (code of its notebook, names listed in its profile file)."""
    import nbformat
    import yaml

    from repro.book.stage import chapter_of, notebook_paths

    usage: dict[str, tuple[str, set]] = {}
    for nb in notebook_paths(root):
        ch = chapter_of(nb)
        code = "\n".join(c.source for c in nbformat.read(nb, as_version=4).cells if c.cell_type == "code")
        prof = profile_path(ch)
        listed = _list_items(yaml.safe_load(prof.read_text()), set()) if prof.exists() else set()
        usage[ch] = (code, listed)
    return usage


def methods_index(root: Path | None = None) -> pd.DataFrame:
    usage = _usage(Path(root or project_root()))
    rows = []
    for family, call, items in _families():
        for name, impl, desc in items:
            quoted = re.compile(rf"[\"']{re.escape(name)}[\"']")
            used = [ch for ch, (code, listed) in sorted(usage.items(), key=lambda kv: chapter_sort_key(kv[0]))
                    if name in listed or quoted.search(code) or ch in IMPLICIT_USAGE.get(name, ())]
            rows.append({"family": family, "call": call, "name": name, "implementation": impl,
                         "description": desc, "used in": ", ".join(used) or "library only"})
    return pd.DataFrame(rows)


def methods_markdown(root: Path | None = None) -> str:
    df = methods_index(root)
    lines = ["# Methods index", "",
             "Every method the library registers, generated from the registries when the book is built.",
             "Descriptions are the first paragraph of each implementation's docstring, which cites the",
             "dissertation's equation or table; *used in* lists the chapters whose notebook or profile names it.", ""]
    if df.empty:
        return "\n".join(lines + ["No registries are importable."]) + "\n"
    for family, g in df.groupby("family", sort=False):
        lines += [f"## {family}", "", f"Call: `{g['call'].iloc[0]}`", ""]
        t = g[["name", "description", "implementation", "used in"]].copy()
        t["name"] = "`" + t["name"] + "`"
        t["implementation"] = "`" + t["implementation"] + "`"
        t["description"] = t["description"].str.replace("|", "\\|", regex=False)
        lines += [t.to_markdown(index=False), ""]
    return "\n".join(lines) + "\n"
