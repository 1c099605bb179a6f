"""Cache keys follow the code (issue 19, section 1): the code fingerprint of a cached computation
changes with the training loop, not with plots, reports, docstrings or comments; entries record their
fingerprint; `repro cache info/verify` tell current from stale entries."""
import ast
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from repro.core import cache
from repro.core import fingerprint as fp
from repro.core.config import PACKAGE_DIR

# every module that calls get_or_compute itself (the job functions of jobs.py run through the runner)
CACHED = sorted(
    ".".join(p.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    for p in PACKAGE_DIR.rglob("*.py")
    if "get_or_compute(" in p.read_text() and p.name not in ("cache.py", "runner.py"))
TRAINED = ["repro.studies.ch3_ninco.zoo", "repro.studies.ch5_sharpness.experiment", "repro.studies.ch6_samon.experiment",
           "repro.studies.appendix_related.experiment",   # incl. the l2-normalised zoo (train_l2_model)
           "repro.studies.ch5_sharpness.zoo_train", "repro.studies.ch6_samon.train"]
# the modules whose entries are released (releases/families.yaml): their keys must not move with other code


@pytest.fixture(scope="module")
def pkg(tmp_path_factory):
    """A temporary copy of the package to edit."""
    root = tmp_path_factory.mktemp("pkg")
    shutil.copytree(PACKAGE_DIR, root / "repro", ignore=shutil.ignore_patterns("__pycache__", "*.csv", "*.npz"))
    return root / "repro"


def _digests(package_dir, roots):
    g = fp.ModuleGraph(package_dir)
    return {r: g.fingerprint([r]).digest for r in roots}


def _edit(path: Path, transform):
    old = path.read_text()
    path.write_text(transform(old))
    return old


def test_the_cached_modules_are_found():
    assert set(TRAINED) <= set(CACHED) and "repro.ood.features" in CACHED and len(CACHED) >= 7


def test_training_loop_edit_changes_every_trained_family_and_nothing_else(pkg):
    before = _digests(pkg, CACHED)
    loop = pkg / "train" / "loop.py"
    old = _edit(loop, lambda s: s.replace("def train_classifier(", "_EDITED = 1\n\n\ndef train_classifier(", 1))
    try:
        after = _digests(pkg, CACHED)
    finally:
        loop.write_text(old)
    changed = {r for r in CACHED if before[r] != after[r]}
    assert set(TRAINED) <= changed, "every zoo/model trained with the loop must get a new key"
    # features are keyed by the trained weights (params), not by the loop's code: a retrained model
    # gives new feature keys, an unchanged one keeps them
    assert "repro.ood.features" not in changed
    assert _digests(pkg, CACHED) == before


@pytest.mark.parametrize("root", ["repro.studies.ch3_ninco.zoo_train", "repro.studies.ch5_sharpness.zoo_train",
                                  "repro.studies.ch6_samon.train"])
def test_released_zoo_keys_follow_only_their_training_code(root):
    """A released zoo is retrained (and re-released, an hour of CPU) whenever a module of its closure changes:
    its key must not follow detectors, sharpness measures, unlearning code, other studies, or chapter 7's
    pretraining corpus (kept in repro.data.pretraining for exactly this reason)."""
    closure = fp.default_graph().closure([root])
    foreign = sorted(m for m in closure if m.startswith(("repro.ood", "repro.sharpness", "repro.unlearning",
                                                         "repro.data.pretraining", "repro.data.world"))
                     or (m.startswith("repro.studies.") and m != root))
    assert not foreign, f"{root} depends on {foreign}"


def test_feature_keys_follow_the_trained_weights():
    import torch

    m = torch.nn.Linear(3, 2)
    k1 = cache.key_for("features", {"model": cache.fingerprint(m)}, code="repro.ood.features")
    with torch.no_grad():
        m.weight[0, 0] += 1e-6
    assert cache.key_for("features", {"model": cache.fingerprint(m)}, code="repro.ood.features") != k1


@pytest.mark.parametrize("target", ["plots/ood.py", "plots/__init__.py", "studies/ch3_ninco/report.py",
                                    "studies/ch5_sharpness/report.py", "book/notebook.py", "cli.py",
                                    "launch/runner.py", "core/cache.py"])
def test_presentation_edits_change_no_expensive_key(pkg, target):
    before = _digests(pkg, CACHED)
    path = pkg / target
    old = _edit(path, lambda s: s + "\n\ndef _added_by_a_test():\n    return 42\n")
    try:
        assert _digests(pkg, CACHED) == before, f"editing {target} must not invalidate cached computations"
    finally:
        path.write_text(old)


def test_docstring_comment_and_format_edits_change_nothing(pkg):
    before = _digests(pkg, TRAINED)
    loop = pkg / "train" / "loop.py"

    def cosmetic(src):
        tree = ast.parse(src)
        fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "train_classifier")
        lines = src.splitlines()
        # a comment, blank lines and a changed docstring (first statement of the function)
        doc = fn.body[0]
        assert isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant)
        lines[doc.lineno - 1] = lines[doc.lineno - 1].replace('"""', '"""Reworded. ', 1)
        lines.insert(fn.lineno - 1, "# a new comment\n\n")
        return "\n".join(lines) + "\n# trailing comment\n"

    old = _edit(loop, cosmetic)
    try:
        assert (pkg / "train" / "loop.py").read_text() != old
        assert _digests(pkg, TRAINED) == before
        loop.write_text(old.replace("def train_classifier(", "def train_classifier_renamed(", 1))
        assert all(_digests(pkg, [r])[r] != before[r] for r in TRAINED), "a code change must count"
    finally:
        loop.write_text(old)


def test_no_cached_computation_depends_on_presentation_code():
    """The exclusion is only sound if values never come from plots/book/launch/report code."""
    g = fp.ModuleGraph()
    machinery = {"repro.core.cache", "repro.core.schema"}  # keys and validates values, computes none
    for r in CACHED:
        assert g.excluded_reached([r]) - machinery == set(), r


def test_registries_count_all_their_modules():
    mods = fp.ModuleGraph().closure(["repro.studies.ch3_ninco.zoo"])
    assert {"repro.models.small", "repro.models.wrn", "repro.ood.detectors.mahalanobis", "repro.train.loop"} <= set(mods)
    assert not [m for m in mods if fp.is_excluded(m)]


def test_code_of_main_or_excluded_modules_is_refused_and_code_argument_works(tmp_path):
    def f():
        return 1

    f.__module__ = "__main__"
    with pytest.raises(fp.CodeError, match="code='package.module'"):
        cache.get_or_compute("unit.main", {}, f, root=tmp_path)
    assert cache.get_or_compute("unit.main", {}, f, root=tmp_path, code="repro.train.loop") == 1
    f.__module__ = "repro.launch.runner"  # a runner's lambda must not stand in for the job it runs
    with pytest.raises(fp.CodeError, match="run-layer"):
        cache.get_or_compute("unit.main", {}, f, root=tmp_path)
    with pytest.raises(fp.CodeError, match="cannot find the source"):
        cache.get_or_compute("unit.main", {}, f, root=tmp_path, code="repro.no_such_module")


@pytest.fixture
def edited_loop(monkeypatch):
    """Swap the process-wide graph for one that reads an edited training loop."""
    def install(edit: bool):
        real = fp.ModuleGraph()._read

        def read(p):
            s = real(p)
            return s + "\n_EDITED = 1\n" if edit and Path(p).as_posix().endswith("repro/train/loop.py") else s

        monkeypatch.setattr(fp, "_DEFAULT", fp.ModuleGraph(read_source=read))
    install(False)
    return install


def test_entries_record_their_code_and_a_code_change_recomputes(tmp_path, edited_loop, capsys, monkeypatch):
    calls = []

    def train():
        calls.append(1)
        return {"weights": np.arange(3.0), "test_acc": 0.5}

    v = cache.get_or_compute("unit.zoo", {"n": 1}, train, root=tmp_path, code="repro.train.loop")
    cache.get_or_compute("unit.plot", {}, lambda: 2, root=tmp_path, code="repro.core.config")
    (entry,) = (tmp_path / "unit.zoo").glob("*.pt")
    meta = cache.read_meta(entry)
    assert meta["code"] == fp.code_fingerprint(["repro.train.loop"]).digest
    assert "repro.train.loop" in dict(meta["modules"]) and meta["metrics"] == {"test_acc": 0.5}
    assert cache.get_or_compute("unit.zoo", {"n": 1}, train, root=tmp_path, code="repro.train.loop")["test_acc"] == v["test_acc"]
    assert len(calls) == 1 and cache.EVENTS[-1][2] == "hit"
    assert {r["name"]: (r["current"], r["stale"]) for r in cache.info(tmp_path)} == {"unit.zoo": (1, 0), "unit.plot": (1, 0)}

    edited_loop(True)
    cache.get_or_compute("unit.zoo", {"n": 1}, train, root=tmp_path, code="repro.train.loop")
    assert len(calls) == 2 and cache.EVENTS[-1][2] == "miss", "an entry made by other code must never load"
    info = {r["name"]: (r["current"], r["stale"]) for r in cache.info(tmp_path)}
    assert info == {"unit.zoo": (1, 1), "unit.plot": (1, 0)}
    (old,) = cache.stale(tmp_path)
    assert old["path"] == entry and "repro.train.loop" in old["why"]

    from repro import cli

    monkeypatch.setenv("REPRO_CACHE", str(tmp_path))
    assert cli.main(["cache", "info"]) == 0
    out = capsys.readouterr().out
    assert "unit.zoo" in out and "stale" in out
    assert cli.main(["cache", "verify"]) == 0 and "stale:   unit.zoo" in capsys.readouterr().out
    assert cli.main(["cache", "verify", "--strict"]) == 1
    capsys.readouterr()
    assert cli.main(["cache", "clear", "--stale"]) == 0 and not entry.exists()
    assert {r["name"]: r["entries"] for r in cache.info(tmp_path)} == {"unit.zoo": 1, "unit.plot": 1}


def test_legacy_entries_count_as_stale(tmp_path):
    import hashlib

    payload = cache._serialize(1)
    p = tmp_path / "old" / "k.pt"
    p.parent.mkdir()
    p.write_bytes(cache.LEGACY_MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)
    assert cache.read_entry(p) == 1 and cache.verify(tmp_path) == []
    assert cache.info(tmp_path)[0]["stale"] == 1


def test_fingerprints_are_memoised_and_fast():
    g = fp.ModuleGraph()
    t0 = time.perf_counter()
    for r in CACHED:
        g.fingerprint([r])
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(1000):
        g.fingerprint(["repro.studies.ch3_ninco.zoo"])
    warm = (time.perf_counter() - t0) / 1000
    print(f"\ncode fingerprints of {len(CACHED)} cached modules: {cold * 1e3:.0f} ms cold, {warm * 1e6:.1f} us memoised")
    assert warm < 1e-3 and cold < 20
