"""Each chapter's sweep fills exactly the cache entries its notebook reads.

For every chapter with a sweep (its study's ``jobs.py``): run the sweep (in-process) from a cold cache, then make the
notebook's own calls (copied from ``notebooks/chN_*.ipynb``) and require that none of the chapter's
expensive cache names is computed again. Sizes come from a tmp ``REPRO_PROFILE_DIR`` (the smoke
profile, shrunk further) so the whole file stays around a minute on 2 cores.
"""
from __future__ import annotations

import pytest
import yaml

from repro.core import cache
from repro.launch import runner as launch
from repro.core.config import PROFILE_DIR


def _write_profiles(d, edits: dict) -> None:
    for ch, edit in edits.items():
        full = yaml.safe_load((PROFILE_DIR / f"{ch}.yaml").read_text())
        edit(full["smoke"])
        (d / f"{ch}.yaml").write_text(yaml.safe_dump(full))


def _ch5(c):
    c["zoo"]["n_models"] = 3
    c["train_err_max"] = 1.0  # keep every model, so stage 2 measures sharpness
    c["ablation"] = {"n_models": 1, "steps": [2], "m": [16]}
    c["zoo_vit"]["n_models"] = 2


def _ch7(c):
    keep = ("graddiff", "jensun", "jensun_kl")
    c["methods"] = {k: v for k, v in c["methods"].items() if k in keep}
    c["sweeps"] = {"lambda_r": {"jensun": [0.5]}, "lr": {"jensun": [0.003]}, "targets": ["#"],
                   "relearn_methods": ["jensun"], "relearn_multiples": [1]}


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    d = tmp_path / "profiles"
    d.mkdir()
    _write_profiles(d, {"ch5": _ch5, "ch7": _ch7})
    monkeypatch.setenv("REPRO_PROFILE_DIR", str(d))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    launch._INPUTS.clear()
    yield
    launch._INPUTS.clear()


def _sweep_then(chapter: str, names: tuple[str, ...], notebook_calls) -> list:
    jobs = launch.run_chapter(chapter, "smoke", 0)
    assert all(j.done() for j in jobs)
    assert [r["state"] for r in launch.status(jobs, sweep=f"{chapter}_smoke_seed0")] == ["done"] * len(jobs)
    cache.EVENTS.clear()
    notebook_calls()
    ev = [(n, kind) for n, _, kind, _ in cache.EVENTS if n in names]
    assert ev, f"the notebook path read none of {names}: the test checks nothing"
    misses = [n for n, kind in ev if kind != "hit"]
    assert not misses, f"the notebook recomputed {misses} after the sweep: builder and notebook disagree"
    return jobs


def test_ch3_zoo(tiny):
    from repro.core.config import chapter_config
    from repro.data.world import make_world
    from repro.studies.ch3_ninco.zoo import trained_zoo, zoo_entries

    def nb():
        cfg = chapter_config("ch3", "smoke")
        trained_zoo(make_world(seed=0, **cfg["world"]), zoo_entries(cfg), seed=0, progress=False)

    _sweep_then("ch3", ("zoo_model",), nb)


def test_ch5_zoo_sharpness_ablation(tiny):
    from repro.core.config import chapter_config
    from repro.studies.ch5_sharpness import experiment as zoo

    def nb():  # the zoo calls of notebooks/ch5_sharpness.ipynb
        cfg = chapter_config("ch5", "smoke")
        data = zoo.prepare_data(cfg)
        study = zoo.run_study(cfg, data, seed=0, progress=False)
        zoo.run_ablation(study, data, cfg, seed=0)
        zoo.run_augmentation(study, data, cfg, seed=0)
        vit = zoo.run_study(zoo.zoo_study_config(cfg, "zoo_vit"), data, seed=0, progress=False)
        assert len(vit["entries"]) == 2 and vit["zdf"].filter(like="@").notna().all().all()

    jobs = _sweep_then("ch5", ("ch5_zoo_model", "ch5_sharpness"), nb)
    assert {"sweep_ch5_sharpness", "sweep_ch5_ablation"} <= {j.name for j in jobs}  # stage 2 was built and run
    vit_jobs = [j for j in jobs if "ViT" in j.label]
    assert len(vit_jobs) == 4 and {j.name for j in vit_jobs} == {"sweep_ch5_zoo", "sweep_ch5_sharpness"}


def test_ch6_run_plan(tiny):
    from repro.core.config import chapter_config
    from repro.studies.ch6_samon import experiment as ex

    def nb():
        cfg = chapter_config("ch6", "smoke")
        ex.run_plan(cfg, ex.make_data(cfg["world"]), progress=False)

    jobs = _sweep_then("ch6", ("ch6_train", "ch6_run"), nb)
    n = len(jobs)
    assert n > len(launch.jobs_for("ch6", "smoke", 0)[:3])  # stages 2-3 were unlocked after the ρ selection


def test_ch7_runs(tiny):
    from repro.core.config import chapter_config
    from repro.studies.ch7_jensun import experiment as X

    def nb():  # the run calls of notebooks/ch7_jensun.ipynb
        world = X.build_world(chapter_config("ch7", "smoke"), seed=0)
        X.table1(world, seed=0)
        X.worst_case_table(world, seed=0)
        X.lambda_sweep(world, seed=0)
        X.lr_sweep(world, seed=0)
        X.dynamics(world, seed=0)
        X.target_sweep(world, seed=0)
        X.relearning_table(world, seed=0)

    _sweep_then("ch7", ("ch7_unlearn", "ch7_relearn"), nb)
