"""Chapter 7 runs on the smoke world (issue 20 item 10, issue 17 figures): the dynamics evaluations
generate ``eval.answer_tokens`` tokens like every other evaluation; the Figure 11 relearning curve
is exact (an s-step relearning run is the prefix of a longer one); the chapter's figures render."""
import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
import torch

from repro.core import config
from repro.studies.ch7_jensun import experiment as X
from repro.unlearning import evaluation as E


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    import os

    old = os.environ.get("REPRO_CACHE")
    os.environ["REPRO_CACHE"] = str(tmp_path_factory.mktemp("c7cache"))
    torch.set_num_threads(1)
    try:
        cfg = config.chapter_config("ch7", "smoke")
        cfg["eval"]["answer_tokens"] = 7      # not the old hard-coded 5
        yield X.build_world(cfg, seed=0, device="cpu")
    finally:
        if old is None:
            os.environ.pop("REPRO_CACHE", None)
        else:
            os.environ["REPRO_CACHE"] = old


def test_dynamics_evaluations_use_answer_tokens(world, monkeypatch):
    seen = []
    orig_f, orig_r = E.evaluate_forget, E.evaluate_retain

    def f(*a, **k):
        seen.append(k.get("max_new_tokens", 5))
        return orig_f(*a, **k)

    def r(*a, **k):
        seen.append(k.get("max_new_tokens", 5))
        return orig_r(*a, **k)
    monkeypatch.setattr(E, "evaluate_forget", f)
    monkeypatch.setattr(E, "evaluate_retain", r)
    out = X.run_unlearning(world, "jensun", dynamics_every=3, seed=0)
    assert [e["step"] for e in out["evals"]] == [0, 3, 6]
    assert seen and set(seen) == {7}


def test_relearning_curve_is_the_prefix_of_one_run(world):
    ra = {"steps": 6, "lr": 1e-3, "batch_size": 4}
    r = X.run_unlearning(world, "jensun", seed=0, relearn_after={**ra, "curve_steps": [2, 4]})
    curve = pd.DataFrame(r["relearned"]["curve"])
    assert curve["relearn_step"].tolist() == [0, 2, 4, 6]
    assert curve.iloc[0]["J_W"] == r["metrics"]["J_W"] and curve.iloc[-1]["J_W"] == r["relearned"]["metrics"]["J_W"]
    short = X.run_unlearning(world, "jensun", seed=0, relearn_after={**ra, "steps": 4})
    assert short["relearned"]["metrics"]["J_W"] == curve.iloc[2]["J_W"]
    # the notebook's table: one curve per relearning method, from the same cached run as Table 3's 1x row
    rc = X.relearning_curves(world, seed=0)
    assert set(rc["method"]) == set(world.cfg["sweeps"]["relearn_methods"]) and rc["relearn_step"].max() == 6


def test_paraphrase_curves_are_monotone_and_end_at_or_below_jw(world):
    pc = X.paraphrase_curves(world, seed=0)
    assert "base" in set(pc["model"])
    for _, g in pc.groupby("model"):
        a = g["accuracy"].to_numpy()
        assert (np.diff(a) >= -1e-9).all() and a[-1] <= g["J_W"].iloc[0] + 1e-9
        assert len(g) == len(world.corpus.eval_paraphrases) + 1


def _text_overlaps(fig):
    """Pairs of overlapping tick labels / texts within each axes (rendered extents)."""
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    bad = []
    for ax in fig.axes:
        texts = [t for t in ax.get_xticklabels() + ax.texts if t.get_visible() and t.get_text()]
        boxes = [t.get_window_extent(r) for t in texts]
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                if boxes[i].overlaps(boxes[j]):
                    bad.append((texts[i].get_text(), texts[j].get_text()))
    return bad


def test_figures_are_legible():
    import matplotlib.pyplot as plt

    from repro.plots import unlearning as U
    from repro.studies.ch7_jensun import report as R

    base = {"J_W": 100.0, "Rep": 400.0, "WR_proxy": 0.5, "MC": 90.0, "J_Avg": 80.0}
    sweep = pd.DataFrame({"method": ["jensun"] * 4 + ["graddiff"] * 4, "lr": [1e-3, 2e-3, 3e-3, 5e-3] * 2,
                          "J_W": [10, 9, 9, 8, 10, 9.5, 9, 9], "Rep": [400, 399, 398, 397] * 2,
                          "WR_proxy": [0.5, 0.49, 0.49, 0.48] * 2, "MC": [90, 90, 89, 89] * 2})
    tg = pd.DataFrame({"target": ["No idea", "#", ",", ";", "No idea <eos>"], "J_W": [0, 0, 1, 0, 0],
                       "WR_proxy": [0.5] * 5, "J_Avg": [80] * 5})
    bl = pd.DataFrame({"method": ["GradAscent", "GradDiff", "NPO", "SimNPO"], "J_W": [0, 0, 1, 0],
                       "WR_proxy": [0.1, 0.1, 0.12, 0.1], "J_Avg": [0, 1, 0, 1]})
    rel = pd.DataFrame({"method": ["jensun"] * 4, "multiple": [1, 2, 4, 8], "J_W_relearn": [30, 20, 10, 5],
                        "J_W_unlearn": [0] * 4})
    curve = pd.DataFrame({"method": ["jensun"] * 4, "relearn_step": [0, 10, 25, 100], "J_W": [0, 5, 10, 12],
                          "standard": [0, 2, 4, 5]})
    pc = pd.DataFrame({"model": ["base"] * 16, "query formats k": range(1, 17), "accuracy": np.linspace(50, 90, 16),
                       "J_W": 95.0})
    figs = {"pareto": U.pareto_fronts(sweep, base, label_col="lr"), "targets": U.target_ablation(tg, base, bl),
            "relearning": U.relearning(rel), "curves": U.relearning_curves(curve), "diversity": U.paraphrase_diversity(pc),
            "rouge": U.rouge_problems(R.rouge_examples(), R.table5_rouge()["paper"])}
    for name, fig in figs.items():
        w, h = fig.get_size_inches()
        assert w <= 8.5 and h <= 7, (name, w, h)
        assert not _text_overlaps(fig), (name, _text_overlaps(fig))
        plt.close(fig)
    # no stray minor tick labels between the multiples (the old figure printed 3×10⁰ / 6×10⁰)
    fig = U.relearning(rel)
    fig.canvas.draw()
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels(minor=True) + ax.get_xticklabels() if t.get_text()]
    assert labels == ["1×", "2×", "4×", "8×"]
    plt.close(fig)


def test_table1_by_seed_redraws_the_world_and_reuses_the_chapter_seed(world):
    """Seed 0 of table1_by_seed is the chapter's own Table 1 (same cache entries); seed 1 is another world
    (corpus, exposure, pretraining): its base model differs."""
    cfg = dict(world.cfg, table1_seeds=2)
    by = X.table1_by_seed(cfg, seed=0)
    assert sorted(by) == [0, 1]
    runs0, _ = X.table1(world, seed=0)
    assert by[0]["rows"] == X.metrics_by_method(runs0)
    assert by[0]["base"] == X.base_row(world)
    assert set(by[1]["rows"]) == set(by[0]["rows"])
    w1 = X.build_world(cfg, seed=1)
    assert w1.base_fp != world.base_fp
    with pytest.raises(ValueError, match="table1_seeds"):
        X.table1_by_seed(dict(world.cfg, table1_seeds=0))
