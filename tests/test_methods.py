import builtins
import inspect

import pytest

from repro.book import methods as M
from repro.book.methods import methods_index, methods_markdown


def test_every_registered_method_is_documented():
    df = methods_index()
    assert {"OOD detectors (ch. 3-4, appendix)"} <= set(df["family"])
    assert df["name"].is_unique or df.groupby("family")["name"].apply(lambda s: s.is_unique).all()
    undocumented = df[df["description"].str.len() < 10]
    assert undocumented.empty, f"registered without a docstring: {list(undocumented['name'])}"


def test_each_method_shows_its_own_docstring_not_the_base_class():
    from repro.ood.detectors.base import Detector

    df = methods_index()
    det = df[df["family"].str.startswith("OOD detectors")].set_index("name")["description"]
    base = M._first_para(inspect.getdoc(Detector))
    inherited = [n for n, d in det.items() if base and d == base]
    assert not inherited, f"these detectors show the base class's docstring: {inherited}"
    # one description per method, also for methods documented by a shared module docstring
    assert det["cosine"] != det["rcos"] and "softmax" in det["rcos"] and "knn" not in det["cosine"].lower()
    assert "nearest" in det["knn"]


def test_own_doc_rules():
    class Base:
        """The base."""

    class Child(Base):
        pass

    assert M._doc(Child) == "" and M._doc(Base) == "The base."


def test_import_errors_fail_loudly(monkeypatch):
    real = builtins.__import__

    def broken(name, *a, **k):
        if name == "repro.unlearning" or name.startswith("repro.unlearning.losses"):
            raise ImportError("simulated broken module")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", broken)
    with pytest.raises(ImportError, match="simulated"):
        methods_index()


def test_markdown_has_a_section_per_family():
    md = methods_markdown()
    df = methods_index()
    for fam in df["family"].unique():
        assert f"## {fam}" in md
    assert ">maha_pp<" in md
    assert "| name |" not in md, "HTML tables, so a | in a description cannot break a row"
