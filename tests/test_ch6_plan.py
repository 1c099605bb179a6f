"""The ch6 run plan: one function (experiment.plan_specs) for the notebook and the sweep, validated
profile keys (issue 20 item 7), ρ chosen on the seed mean, and the new arms (no-norm, SSAM sparsity
levels, fix-norm) wired through RunSpec without changing the cache keys of existing runs."""
from __future__ import annotations

import pandas as pd
import pytest
import torch

from repro.core.config import chapter_config
from repro.studies.ch6_samon import experiment as ex

torch.set_num_threads(1)


@pytest.mark.parametrize("profile", ["smoke", "cpu", "full"])
def test_every_profile_validates(profile):
    ex.check_config(chapter_config("ch6", profile))


@pytest.mark.parametrize("bad, match", [
    ({"sparce": ["ssam_f"]}, "unknown key 'sparce'"),
    ({"block": ["B3"]}, "unknown key 'block'"),
    ({"sparse": ["ssam-f"]}, "unknown sparse mask"),
    ({"sharpness": {"definition": "x", "rho": [0.1]}}, "unknown key 'rho'"),
    ({"sparse_levels": {"ssam_f": [1.5]}}, r"\[0, 1\)"),
    ({"no_norm": ["fisher"]}, "no_norm lists"),
    ({"blocks": ["B4"]}, "unknown block"),
])
def test_misspelled_keys_raise(bad, match):
    cfg = dict(chapter_config("ch6", "smoke"), **bad)
    with pytest.raises(ValueError, match=match):
        ex.check_config(cfg)


def test_select_rho_uses_the_seed_mean_not_one_seeds_best():
    # seed 0 alone prefers rho 1.0 (75 > 70); the mean over seeds prefers 0.1 (70 vs 65)
    grid = pd.DataFrame(dict(method="sam", variant="sam", mode="all", rho=[0.1, 1.0, 0.1, 1.0, 0.1, 1.0],
                             seed=[0, 0, 1, 1, 2, 2], val_acc=[70, 75, 70, 60, 70, 60]))
    assert ex.select_rho(grid) == {("sam", "all"): 0.1}
    with pytest.raises(ValueError, match="no finite validation accuracy"):
        ex.select_rho(grid.assign(val_acc=float("nan")))


def test_plan_has_the_new_arms_and_sweep_uses_it():
    cfg = chapter_config("ch6", "cpu")
    first = ex.plan_specs(cfg)
    assert {s.mode for s in first["grid"]} == {"all", "ON", "no-norm"}
    assert sum(s.fix_norm for s in first["sgd"]) == len(cfg["seeds"])
    best = {(s.variant, s.mode): s.rho for s in first["grid"]}
    later = ex.plan_specs(cfg, best)
    labels = {s.label for s in later["extra"]}
    assert {"B3", "B2+B3", "random_mask", "ssam_f", "ssam_d", "ssam_f@0.5", "ssam_d@0.5", "fix-norm"} <= labels
    assert len(later["main"]) == len(cfg["variants"]) * 3 * len(cfg["seeds"])


def test_rho_grid_runs_on_every_seed_and_main_runs_are_grid_runs():
    cfg = chapter_config("ch6", "cpu")
    first = ex.plan_specs(cfg)
    per = pd.Series([(s.variant, s.params, s.rho) for s in first["grid"]]).value_counts()
    assert (per == len(cfg["seeds"])).all()
    best = {(s.variant, s.mode): s.rho for s in first["grid"]}
    grid_keys = {tuple(sorted(s.key().items())) for s in first["grid"]}
    assert all(tuple(sorted(s.key().items())) in grid_keys for s in ex.plan_specs(cfg, best)["main"])


def _tiny_data():
    g = torch.Generator().manual_seed(0)
    data = dict(x_train=torch.randint(0, 256, (32, 3, 8, 8), dtype=torch.uint8, generator=g),
                y_train=torch.randint(0, 3, (32,), generator=g))
    data.update(x_val=data["x_train"][:8], y_val=data["y_train"][:8], x_test=data["x_train"][:8],
                y_test=data["y_train"][:8])
    return data


def test_run_result_and_weights_split_one_training(tmp_path, monkeypatch):
    """ch6_run (released for every run) has no weights; ch6_model holds them; both come from one ch6_train
    training, and once both exist no training is needed (a cold book from the release trains nothing)."""
    from repro.core import cache
    from repro.studies.ch6_samon import train as tr

    monkeypatch.setenv("REPRO_CACHE", str(tmp_path))
    monkeypatch.setenv("REPRO_NO_RELEASE", "1")
    data, tcfg, spec = _tiny_data(), dict(epochs=1, lr=0.05, batch_size=16), ex.RunSpec("sgd", seed=0)
    calls = []
    real = tr.train_classifier
    monkeypatch.setattr(tr, "train_classifier", lambda *a, **k: calls.append(1) or real(*a, **k))
    r = ex.run_result(data, "wrn10_1", 3, tcfg, spec)
    w = ex.run_weights(data, "wrn10_1", 3, tcfg, spec)
    assert len(calls) == 1 and "state_dict" not in r and 0 <= r["train_acc"] <= 1
    full = ex.train_run(data, "wrn10_1", 3, tcfg, spec)
    assert all(torch.equal(w[k], full["state_dict"][k]) for k in w)
    assert {k: v for k, v in full.items() if k != "state_dict"}.keys() == r.keys()
    cache.clear("ch6_train", root=tmp_path)
    monkeypatch.setattr(tr, "train_classifier", lambda *a, **k: pytest.fail("trained although both entries exist"))
    assert ex.run_result(data, "wrn10_1", 3, tcfg, spec)["test_acc"] == r["test_acc"]
    m = ex.load_model(dict(model_spec=r["model_spec"], state_dict=ex.run_weights(data, "wrn10_1", 3, tcfg, spec)))
    assert sum(p.numel() for p in m.parameters()) > 0


def test_sweep_jobs_come_from_the_same_plan(monkeypatch):
    from repro.studies.ch6_samon import jobs

    monkeypatch.setattr(jobs, "results_if_done", lambda js: None)
    cfg = chapter_config("ch6", "cpu")
    first = ex.plan_specs(cfg)
    js = jobs.build("cpu", 0)
    assert len(js) == len(first["grid"]) + len(first["sgd"])
    # stage 2: once the grid is "done", the later stages are the plan's main + extra (deduplicated)
    monkeypatch.setattr(jobs, "results_if_done", lambda js: [{"val_acc": 0.5}] * len(js))
    js2 = jobs.build("cpu", 0)
    frame = pd.DataFrame([dict(method="sam", variant=s.variant, mode=s.mode, rho=s.rho, val_acc=50.0)
                          for s in first["grid"]])
    later = ex.plan_specs(cfg, ex.select_rho(frame))
    keys = {tuple(sorted(ex.spec_dict(s).items())) for s in first["grid"] + first["sgd"] + later["main"] + later["extra"]}
    assert len(js2) == len(keys)


def test_runspec_keys_of_existing_runs_are_unchanged():
    s = ex.RunSpec("sam", "sam", "only_norm", 1.0, 0)
    assert "fix_norm" not in s.key() and "fix_norm" not in ex.spec_dict(s)
    f = ex.RunSpec("sam", "sam", "all", 0.1, 0, fix_norm=True)
    assert f.key()["fix_norm"] is True and ex.spec_dict(f)["fix_norm"] is True
    assert ex._split_sparsity("ssam_f@0.5") == ("ssam_f", 0.5) and ex._split_sparsity("ssam_d") == ("ssam_d", None)


def test_fix_norm_and_sparsity_level_runs_train(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_CACHE", str(tmp_path))
    g = torch.Generator().manual_seed(0)
    data = dict(x_train=torch.randint(0, 256, (32, 3, 8, 8), dtype=torch.uint8, generator=g),
                y_train=torch.randint(0, 3, (32,), generator=g))
    data.update(x_val=data["x_train"][:8], y_val=data["y_train"][:8], x_test=data["x_train"][:8],
                y_test=data["y_train"][:8])
    tcfg = dict(epochs=1, lr=0.05, batch_size=16)
    r = ex.train_run(data, "wrn10_1", 3, tcfg, ex.RunSpec("sam", "sam", "all", 0.1, 0, fix_norm=True))
    m = ex.load_model(r)
    vals = ex.norm_affine_values(m)
    assert (vals["gamma"] == 1).all() and (vals["beta"] == 0).all()  # frozen at the identity map
    r2 = ex.train_run(data, "wrn10_1", 3, tcfg, ex.RunSpec("sam", "sam", "ssam_f@0.5", 0.1, 0))
    assert 0 <= r2["test_acc"] <= 1
