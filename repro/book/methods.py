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


def _first_para(d: str | None) -> str:
    d = inspect.cleandoc(d or "").strip()
    return " ".join(d.split("\n\n")[0].split()) if d else ""


def _doc(obj, fallback: str = "") -> str:
    """First paragraph of ``obj``'s *own* docstring (never one inherited from a base class)."""
    own = obj.__dict__.get("__doc__") if inspect.isclass(obj) else getattr(obj, "__doc__", None)
    return _first_para(own) or fallback


def _module_doc_for(name: str, obj, siblings: int) -> str:
    """A method documented in its module's docstring: the bullet that starts with ``name`` (a module
    defining several methods lists one bullet each), or the first paragraph when the module defines only
    this method."""
    mod = inspect.getmodule(obj)
    text = inspect.cleandoc(getattr(mod, "__doc__", None) or "")
    if not text:
        return ""
    bullet = re.search(rf"^\s*[*-]\s+``{re.escape(name)}``[^\n]*(?:\n(?!\s*[*-]\s)(?!\s*\n)[^\n]*)*", text, flags=re.M)
    if bullet:
        text = " ".join(bullet.group(0).strip().lstrip("*-").split())
        return re.sub(rf"^``{re.escape(name)}``\s*:?\s*", "", text)
    return _first_para(text) if siblings == 1 else ""


def _own_doc(name: str, obj, module_counts: dict) -> str:
    return _doc(obj) or _module_doc_for(name, obj, module_counts.get(getattr(obj, "__module__", None), 0))


def _qualname(obj) -> str:
    o = obj if inspect.isclass(obj) or inspect.isfunction(obj) else type(obj)
    return f"{o.__module__}.{o.__qualname__}"


def _registry_items(module, legacy: str) -> list[tuple[str, object]]:
    """(name, entry) pairs of the one :class:`repro.core.registry.Registry` a module defines, or of
    its older ``dict`` registry ``legacy`` (the registries are moving to the shared class)."""
    from repro.core.registry import Registry

    regs = [v for v in vars(module).values() if isinstance(v, Registry)]
    if regs:
        return list(regs[0].items())
    old = getattr(module, legacy, None)
    if isinstance(old, dict):
        return list(old.items())
    raise ImportError(f"{module.__name__} defines neither a Registry nor {legacy!r}; the methods index "
                      "cannot list its methods (repro/book/methods.py)")


def _rows(items) -> list[tuple[str, str, str]]:
    counts: dict = {}
    for _, o in items:
        m = getattr(o, "__module__", None)
        counts[m] = counts.get(m, 0) + 1
    return [(n, _qualname(o), _own_doc(n, o, counts)) for n, o in sorted(items)]


# name -> chapters that use it without quoting its name (filled by _families)
IMPLICIT_USAGE: dict[str, set] = {}


def _families() -> list[tuple[str, str, list[tuple[str, str, str]]]]:
    """(family, how to call, [(name, implementation, description)]) for each registry.

    Import errors propagate: a module that fails to import must fail the book build, not vanish
    silently from the Methods page."""
    from repro.ood import related  # noqa: F401  (registers the appendix's feature-norm detector)
    from repro.ood.detectors import base as det
    from repro.sam import selection as ss
    from repro.sam import variants as sv
    from repro.sharpness import definitions as sd
    from repro.unlearning import losses as ul

    out = []
    det.list_detectors()  # runs the registry's loader (imports every detector module)
    out.append(("OOD detectors (ch. 3-4, appendix)", 'get_detector("NAME").fit(...).score(...)',
                _rows(_registry_items(det, "_REGISTRY"))))
    rows = [(n, "repro.sharpness.measure", sd.get(n).label) for n in sd.list_definitions()]
    # The ch5 zoo measures every definition of the paper's Table 3 grid (zoo.rho_grid), which the
    # notebook and profile never name one by one.
    from repro.reference.sharpness import paper_radii

    IMPLICIT_USAGE.update({n: IMPLICIT_USAGE.get(n, set()) | {"ch5"} for n in paper_radii("T3")})
    out.append(("Sharpness definitions (ch. 5)", 'repro.sharpness.measure(model, batches, "NAME", rho)', rows))
    rows = [(n, _qualname(sv.get(n).scale), _first_para(sv.get(n).description)) for n in sv.list_variants()]
    out.append(("SAM perturbation models T_w (ch. 6, Table 9)", 'SAM(model, base, rho=..., variant="NAME")', rows))
    sel = dict(_registry_items(ss, "_REGISTRY"))
    out.append(("SAM parameter selections (ch. 6)", 'SAM(model, base, rho=..., params="NAME")',
                _rows([(n, sel[n]) for n in ss.list_selections()])))
    out.append(("Unlearning losses (ch. 7)", 'repro.unlearning.losses.get("NAME", ...)',
                _rows(_registry_items(ul, "_LOSSES"))))
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
    from repro.book.render import frame_html

    df = methods_index(root)
    lines = ["# Methods index", "",
             "Every method the library registers, generated from the registries when the book is built.",
             "Descriptions are the first paragraph of each implementation's own docstring (or of its module's",
             "docstring where one module documents it), which cites the dissertation's equation or table;",
             "*used in* lists the chapters whose notebook or profile names it.", ""]
    if df.empty:
        return "\n".join(lines + ["No methods are registered."]) + "\n"
    for family, g in df.groupby("family", sort=False):
        lines += [f"## {family}", "", f"Call: `{g['call'].iloc[0]}`", ""]
        t = g[["name", "description", "implementation", "used in"]].reset_index(drop=True)
        t["description"] = t["description"].str.replace("``", "", regex=False)  # RST literals read as plain text here
        lines += [frame_html(t), ""]
    return "\n".join(lines) + "\n"
