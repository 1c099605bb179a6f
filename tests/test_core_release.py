"""Released artifacts (issue 16, section 2): a read-only, versioned store that the cache reads before
computing; a stale release is never used and fails this test; a release re-derives bit-identically."""
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from repro.core import cache, release
from repro.core import fingerprint as fp
from repro.core.config import PACKAGE_DIR, chapters, project_root
from repro.train.loop import evaluate, train_classifier


# --------------------------------------------------------------------------- the committed store
def test_committed_releases_are_current_and_intact():
    """Fails when the code a released entry depends on has changed: re-release (the message says how)."""
    problems = release.check(project_root() / "releases")
    assert not problems, "\n".join(problems)


def test_committed_store_fits_its_budget_and_has_a_readme():
    store = project_root() / "releases"
    assert (store / "README.md").exists() and (store / "families.yaml").exists()
    size = sum(p.stat().st_size for p in store.rglob("*") if p.is_file())
    assert size <= release.BUDGET_MB * 1e6, f"the release store holds {size / 1e6:.1f} MB"


def test_every_chapter_names_released_families_the_code_really_caches():
    names = set()
    for p in PACKAGE_DIR.rglob("*.py"):
        names |= set(re.findall(r'get_or_compute\(\s*"([A-Za-z0-9_.]+)"', p.read_text()))
    for ch in chapters():
        fams = release.families(ch, project_root() / "releases")
        assert fams and set(fams) <= names, f"{ch}: {sorted(set(fams) - names)} is not a cache name used in repro"
    with pytest.raises(ValueError, match="no released families for chapter 'ch99'"):
        release.families("ch99", project_root() / "releases")


# --------------------------------------------------------------------------- a smoke-scale release
def _tiny_model(seed: int) -> dict:
    """A small synthetic training step through the book's training loop (so the loop is in its code)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (96, 3, 4, 4), dtype=torch.uint8, generator=g)
    y = (x.float().mean(dim=(1, 2, 3)) > 127.5).long()
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 2))
    train_classifier(model, x, y, epochs=2, lr=0.05, batch_size=32, seed=seed, device="cpu", progress=False)
    return {"state_dict": {k: v.clone() for k, v in model.state_dict().items()},
            "train_acc": float(evaluate(model, x, y, device="cpu")["accuracy"])}


def _chapter_run():
    """Stands in for a chapter notebook: two expensive entries and a cheap one."""
    for s in (0, 1):
        cache.get_or_compute("unit_zoo", {"seed": s}, lambda s=s: _tiny_model(s))
    cache.get_or_compute("unit_cheap", {}, lambda: np.arange(3))


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_RELEASES", str(tmp_path / "store"))
    monkeypatch.setenv("REPRO_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("REPRO_NO_RELEASE", raising=False)
    release.reset_index()
    yield tmp_path
    release.reset_index()


def _build(store=None, **kw):
    return release.build("unitch", "smoke", _chapter_run, names=["unit_zoo"], store=store, command="pytest", **kw)


def test_release_manifest_lookup_and_no_release(env, monkeypatch):
    m = _build()
    assert m["release"] == 1 and m["chapter"] == "unitch" and m["profile"] == "smoke" and m["build_seconds"] >= 0
    assert len(m["entries"]) == 2 and {e["name"] for e in m["entries"]} == {"unit_zoo"}
    for e in m["entries"]:
        assert set(e) >= {"key", "file", "sha256", "payload_sha256", "bytes", "code", "code_roots", "metrics"}
        assert 0 <= e["metrics"]["train_acc"] <= 1 and e["code"] == fp.code_fingerprint(e["code_roots"]).digest
    assert json.loads((env / "store" / "unitch" / "smoke" / "manifest.json").read_text()) == m
    assert not (env / "cache").exists(), "a release is made in its own temporary cache"
    assert release.check(env / "store") == []

    calls = []
    n0 = len(cache.EVENTS)
    v = cache.get_or_compute("unit_zoo", {"seed": 0}, lambda: calls.append(1) or _tiny_model(0))
    assert calls == [] and cache.EVENTS[-1][2] == "release" and not (env / "cache").exists()
    assert torch.equal(v["state_dict"]["1.weight"], _tiny_model(0)["state_dict"]["1.weight"])

    from repro.core.provenance import Provenance

    prov = Provenance(chapter="ch3", profile="smoke", seed=0, device="cpu", _n0=n0).finish()
    md = prov.markdown()
    assert prov.cache_release == 1 and "`unit_zoo`: loaded from release ×1" in md
    assert "unitch/smoke #1" in md and "made by the current code" in md
    # the compute its entries took is shown beside the wall time of the last release call (a resumed release's
    # build_seconds covers only the call that finished it)
    compute = sum(e["compute_seconds"] for e in m["entries"])
    assert compute > 0 and release.compute_seconds(m) == pytest.approx(compute)
    assert f"{compute:,.0f} s of compute" in md
    assert release.describe(env / "store")[0]["compute_seconds"] == pytest.approx(compute, abs=0.05)

    monkeypatch.setenv("REPRO_NO_RELEASE", "1")
    cache.get_or_compute("unit_zoo", {"seed": 0}, lambda: calls.append(1) or _tiny_model(0))
    assert calls == [1] and cache.EVENTS[-1][2] == "miss"

    assert _build()["release"] == 2, "a re-release counts up"


def test_release_rederives_bit_identically(env):
    a = _build(env / "a")
    b = _build(env / "b")
    assert [(e["key"], e["payload_sha256"]) for e in a["entries"]] == [(e["key"], e["payload_sha256"]) for e in b["entries"]]


def test_killed_release_resumes_in_its_work_dir(env):
    calls = []

    def killed():
        cache.get_or_compute("unit_zoo", {"seed": 0}, lambda: calls.append(0) or _tiny_model(0))
        raise KeyboardInterrupt  # killed after the first model

    with pytest.raises(KeyboardInterrupt):
        release.build("unitch", "smoke", killed, names=["unit_zoo"], store=env / "store", work_dir=env / "work")
    assert not (env / "store" / "unitch").exists() and (env / "work" / "cache").is_dir()

    def run():
        for s in (0, 1):
            cache.get_or_compute("unit_zoo", {"seed": s}, lambda s=s: calls.append(s) or _tiny_model(s))

    m = release.build("unitch", "smoke", run, names=["unit_zoo"], store=env / "store", work_dir=env / "work")
    assert calls == [0, 1], "the resumed release reuses the first model and computes only the second"
    fresh = _build(env / "fresh")
    assert [(e["key"], e["payload_sha256"]) for e in m["entries"]] == \
        [(e["key"], e["payload_sha256"]) for e in fresh["entries"]], "resumed = re-derived from scratch"


def test_stale_release_is_never_used_and_fails_the_check(env, monkeypatch, capsys):
    _build()
    real = fp.ModuleGraph()._read

    def read(p):  # the training loop as someone edited it after the release
        s = real(p)
        return s + "\n_EDITED = 1\n" if Path(p).as_posix().endswith("repro/train/loop.py") else s

    monkeypatch.setattr(fp, "_DEFAULT", fp.ModuleGraph(read_source=read))
    problems = release.check(env / "store")
    assert len(problems) == 2 and all("stale" in p and "repro.train.loop" in p for p in problems)
    assert "repro release unitch --profile smoke" in problems[0]
    calls = []
    cache.get_or_compute("unit_zoo", {"seed": 0}, lambda: calls.append(1) or _tiny_model(0))
    assert calls == [1] and cache.EVENTS[-1][2] == "miss"

    from repro import cli

    assert cli.main(["release", "--check"]) == 1 and "stale" in capsys.readouterr().out


def test_damaged_release_is_reported_and_not_loaded(env):
    m = _build()
    for e in m["entries"]:
        p = env / "store" / "unitch" / "smoke" / e["file"]
        data = bytearray(p.read_bytes())
        data[-5] ^= 0xFF
        p.write_bytes(bytes(data))
    assert sum("does not match its sha256" in x for x in release.check(env / "store")) == 2
    calls = []
    cache.get_or_compute("unit_zoo", {"seed": 0}, lambda: calls.append(1) or _tiny_model(0))
    assert calls == [1] and [e[2] for e in cache.EVENTS[-2:]] == ["corrupt", "miss"]


def test_release_refuses_over_budget_and_empty_runs(env):
    with pytest.raises(ValueError, match="over its 0.0001 MB budget"):
        _build(budget_mb=1e-4)
    assert not (env / "store" / "unitch" / "smoke").exists()
    with pytest.raises(ValueError, match="made no entries of"):
        release.build("unitch", "smoke", _chapter_run, names=["no_such_family"], store=env / "store")


def test_cli_flags(monkeypatch):
    from repro import cli

    args = cli.build_parser().parse_args(["run", "ch3", "--no-release"])
    monkeypatch.setenv("REPRO_NO_RELEASE", "0")  # restored (removed) after the test
    assert release.enabled()
    cli._no_release(args)
    assert not release.enabled()
    args = cli.build_parser().parse_args(["release", "ch3", "--profile", "smoke"])
    assert (args.chapter, args.profile, args.device) == ("ch3", "smoke", "cpu")


# --------------------------------------------------------------------------- the released zoos themselves
def _released_only(chapter: str, family: str, tmp_path, monkeypatch) -> dict:
    """Set up a run that may load ``chapter``'s cpu release but never train (the training loop fails), in an
    empty cache; return the manifest's recorded metrics of ``family`` by entry key. Skips without a release."""
    from repro.train import loop

    mp = project_root() / "releases" / chapter / "cpu" / "manifest.json"
    if not mp.exists():
        pytest.skip(f"no {chapter}/cpu release committed")
    monkeypatch.setenv("REPRO_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("REPRO_NO_RELEASE", raising=False)
    release.reset_index()

    def no_training(*a, **k):
        raise AssertionError(f"the released {chapter} zoo was not found: the chapter would train (stale release?)")

    monkeypatch.setattr(loop, "train_classifier", no_training)
    return {e["key"]: e["metrics"] for e in json.loads(mp.read_text())["entries"] if e["name"] == family}


@pytest.mark.slow
@pytest.mark.parametrize("chapter", ["ch3"])
def test_released_zoo_loads_without_training_and_has_its_recorded_accuracy(chapter, tmp_path, monkeypatch):
    """The chapter's cpu plan finds every zoo model in the committed release (no training: the training loop is
    replaced by one that fails), and each model's accuracy on the world's ID train/test sets, recomputed here,
    is the one the manifest records."""
    from repro.core.config import chapter_config
    from repro.studies.ch3_ninco import experiment as X
    from repro.train import loop

    recorded = _released_only(chapter, "zoo_model", tmp_path, monkeypatch)
    plan = X.plan(chapter_config("ch3", "cpu"), "cpu", 0)
    n0 = len(cache.EVENTS)
    zoo = X.train_zoo(plan, device="cpu", progress=False)
    events = [e for e in cache.EVENTS[n0:] if e[0] == "zoo_model"]
    assert len(zoo) == len(plan.entries) == len(events) and all(e[2] == "release" for e in events), events
    for i, (z, ev) in enumerate(zip(zoo, events)):
        m = recorded[ev[1]]
        assert m["test_acc"] == pytest.approx(z.test_acc, abs=1e-9)
        # the test accuracy identifies every model: one image of 1,000 may flip between BLAS builds, more is a
        # different model
        test = loop.evaluate(z.model, plan.world.id_test.x, plan.world.id_test.y, device="cpu")["accuracy"]
        assert abs(test - m["test_acc"]) <= 1.5e-3, (z.name, test, m)
        if i < 3:   # the recorded train accuracy (one code path for every entry) on 6,000 images: 3 s per model
            train = loop.evaluate(z.model, plan.world.id_train.x, plan.world.id_train.y, device="cpu")["accuracy"]
            assert abs(train - m["train_acc"]) <= 1e-3, (z.name, train, m)
    release.reset_index()


@pytest.mark.slow
def test_released_ch5_zoo_loads_without_training_and_has_its_recorded_errors(tmp_path, monkeypatch):
    """The chapter-5 cpu zoo comes from the committed release (training replaced by a failure), and each model's
    clean train / test error, recomputed here, is the one the manifest records (App. H's filter reads them)."""
    from repro.core.config import chapter_config
    from repro.studies.ch5_sharpness import experiment as X

    recorded = _released_only("ch5", "ch5_zoo_model", tmp_path, monkeypatch)
    cfg = chapter_config("ch5", "cpu")
    data = X.prepare_data(cfg)
    n0 = len(cache.EVENTS)
    entries = X.train_zoo(cfg, data, progress=False, jobs=1)   # in-process: the patch must apply
    events = [e for e in cache.EVENTS[n0:] if e[0] == "ch5_zoo_model"]
    assert len(entries) == cfg["zoo"]["n_models"] == len(events) and all(e[2] == "release" for e in events), events
    for entry, ev in zip(entries, events):
        m = recorded[ev[1]]
        model = X.load_model(entry)
        train = X.error_rate(model, data["x_train"], data["y_train"])
        test = X.error_rate(model, data["x_test"], data["y_test"])
        # one image of 300 / 1,000 may flip between BLAS builds; more is a different model
        assert abs(train - m["train_err"]) <= 3.4e-3 and abs(test - m["test_err"]) <= 1.5e-3, (train, test, m)
    release.reset_index()


@pytest.mark.slow
def test_released_ch6_runs_load_without_training_and_have_their_recorded_accuracy(tmp_path, monkeypatch):
    """The chapter-6 cpu plan finds every run's results (``ch6_run``) and the studied models' weights
    (``ch6_model``) in the committed release, without training; each studied model's test accuracy,
    recomputed from the released weights, is the one its released run records."""
    from repro.core.config import chapter_config
    from repro.studies.ch6_samon import experiment as ex
    from repro.studies.ch6_samon import train as tr
    from repro.train import loop

    recorded = _released_only("ch6", "ch6_run", tmp_path, monkeypatch)
    monkeypatch.setattr(tr, "train_classifier", loop.train_classifier)   # the failing stand-in of _released_only
    cfg = chapter_config("ch6", "cpu")
    data = ex.make_data(cfg["world"])
    n0 = len(cache.EVENTS)
    plan = ex.run_plan(cfg, data, progress=False)
    models, accs = ex.sharpness_models(plan)
    events = [e for e in cache.EVENTS[n0:] if e[0] in ("ch6_run", "ch6_model", "ch6_train")]
    assert events and all(e[2] == "release" for e in events), [e for e in events if e[2] != "release"][:3]
    runs = [e for e in events if e[0] == "ch6_run"]
    assert len({e[1] for e in runs}) == len(recorded) == len(plan["results"])
    assert len(models) == len(ex.SHARPNESS_MODELS) * len(cfg["seeds"])
    for (name, seed), (model, _) in models.items():
        test = loop.evaluate(model, data["x_test"], data["y_test"], device="cpu")["accuracy"]
        # one image of 1,500 may flip between BLAS builds; more is a different model
        assert abs(100 * test - accs[(name, seed)]) <= 0.14, (name, seed, test, accs[(name, seed)])
    release.reset_index()
