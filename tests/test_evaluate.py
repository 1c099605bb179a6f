"""repro.ood.evaluate: per-class FPR, class mean vs pooled, unit-test verdicts, contamination."""
import numpy as np
import pandas as pd
import pytest

from repro.ood.evaluate import (cleaning_effect, contamination_study, evaluate_model, ninco_summary,
                                per_class_metrics, rank_methods, score_detectors, unit_test_verdicts)
from repro.ood.metrics import auroc, fpr_at_95tpr


@pytest.fixture(scope="module")
def toy():
    rng = np.random.default_rng(0)
    sid = rng.normal(2, 1, 1000)
    # class 0 easy (far), class 1 hard (near), uneven sizes
    sood = np.r_[rng.normal(-2, 1, 30), rng.normal(1.5, 1, 170)]
    y = np.r_[np.zeros(30, int), np.ones(170, int)]
    return sid, sood, y


def test_per_class_matches_metrics(toy):
    sid, sood, y = toy
    df = per_class_metrics(sid, sood, y, ["easy", "hard"], dataset="ninco", model="m", method="msp")
    assert list(df.columns) == ["model", "method", "dataset", "ood_class", "n", "fpr", "auroc"]
    assert df["n"].tolist() == [30, 170]
    assert df.loc[1, "fpr"] == fpr_at_95tpr(sid, sood[y == 1])
    assert df.loc[0, "auroc"] == auroc(sid, sood[y == 0])


def test_class_mean_differs_from_pooled(toy):
    sid, sood, y = toy
    df = per_class_metrics(sid, sood, y, ["easy", "hard"], dataset="ninco", model="m", method="msp")
    s = ninco_summary(df).iloc[0]
    assert s["mean_fpr"] == pytest.approx(df["fpr"].mean())
    assert s["pooled_fpr"] == pytest.approx(fpr_at_95tpr(sid, sood))  # same ID threshold for all classes
    assert abs(s["mean_fpr"] - s["pooled_fpr"]) > 0.1  # uneven class sizes matter
    assert s["n_classes"] == 2 and s["max_fpr"] == df["fpr"].max()


def test_unit_test_fail_threshold():
    sid = np.arange(100.0)  # 5 % quantile = 4.95
    tests = {"pass": np.r_[np.full(10, 5.0), np.zeros(90)],   # FPR 0.10 -> not failed (> 10 % fails)
             "fail": np.r_[np.full(11, 5.0), np.zeros(89)]}   # FPR 0.11 -> failed
    df = unit_test_verdicts(sid, tests, model="m", method="x")
    assert df.set_index("test")["failed"].to_dict() == {"pass": False, "fail": True}


def test_cleaning_effect_and_fp_share():
    rng = np.random.default_rng(1)
    sid = rng.normal(2, 1, 2000)
    flags = np.r_[np.zeros(300, int), np.ones(100, int), np.full(100, 2)]
    s = np.r_[rng.normal(-1, 1, 300), rng.normal(2, 1, 200)]  # contaminated images look ID
    r = cleaning_effect(sid, s, flags, model="m")
    assert r["p"] == pytest.approx(0.4)
    assert r["fpr_cleaned"] == fpr_at_95tpr(sid, s[:300])
    assert r["fpr_original"] > r["fpr_cleaned"] + 0.3
    tau = np.quantile(sid, 0.05)
    assert r["fp_share_contaminated"] == pytest.approx((s[300:] >= tau).sum() / (s >= tau).sum())
    assert r["fp_share_contaminated"] > 0.8


def test_contamination_study_monotone_in_p():
    rng = np.random.default_rng(2)
    sid = rng.normal(2, 1, 2000)
    flags = np.r_[np.zeros(600, int), np.ones(400, int)]
    s = np.r_[rng.normal(-1, 1, 600), rng.normal(2, 1, 400)]
    df = contamination_study(sid, s, flags, ps=[0.0, 0.2, 0.5], reps=3, seed=0)
    m = df.groupby("p")[["fpr_original", "fpr_cleaned"]].mean()
    assert m["fpr_original"].is_monotonic_increasing
    assert (m.loc[0.0, "fpr_original"] == m.loc[0.0, "fpr_cleaned"])
    assert (m["fpr_cleaned"] < 0.2).all()
    assert df["n"].nunique() == 1 and len(df) == 9
    with pytest.raises(ValueError, match="cannot draw"):
        contamination_study(sid, s, flags, ps=[0.9], n=900)


def test_rank_methods():
    summ = pd.DataFrame({"model": ["a", "a", "b", "b"], "method": ["x", "y", "x", "y"],
                         "mean_fpr": [0.2, 0.5, 0.6, 0.1]})
    r = rank_methods(summ)
    assert r.loc["a", "x"] == 1 and r.loc["b", "y"] == 1


def test_score_detectors_and_evaluate_model():
    from repro.ood.features import Features
    from repro.ood.detectors import Head

    rng = np.random.default_rng(3)
    C, D = 3, 6
    W, b = rng.normal(0, 1, (C, D)), np.zeros(C)
    mk = lambda f, y=None: Features(f.astype(np.float32), (f @ W.T + b).astype(np.float32), y, Head(W, b))
    y = rng.integers(0, C, 300)
    tr = mk(rng.normal(0, 1, (300, D)) + 3 * np.eye(C, D)[y], y)
    sets = {"id": mk(rng.normal(0, 1, (100, D)) + 3 * np.eye(C, D)[rng.integers(0, C, 100)]),
            "ninco": mk(rng.normal(0, 1, (60, D)) - 3), "black": mk(np.zeros((20, D)) + 0.1)}
    sc = score_detectors(["msp", "maha"], tr, sets)
    assert set(sc) == {"msp", "maha"} and sc["maha"]["ninco"].shape == (60,)
    res = evaluate_model(sc, "id", {"ninco": (np.r_[np.zeros(30, int), np.ones(30, int)], ["c0", "c1"])},
                         unit_sets=["black"], model="toy")
    assert len(res["per_class"]) == 4 and len(res["unit_tests"]) == 2


def test_bad_input(toy):
    sid, sood, y = toy
    with pytest.raises(ValueError, match="labels"):
        per_class_metrics(sid, sood, y[:5])
    with pytest.raises(ValueError, match="empty"):
        per_class_metrics([], sood)
    with pytest.raises(ValueError, match="no clean"):
        cleaning_effect(sid, sood[:3], [1, 1, 2])


def test_evaluate_zoo_on_the_generated_world():
    """repro.studies.ch3_ninco.experiment: the smoke/cpu path (generated world) gives every frame chapter 3 needs."""
    from repro.core.config import chapter_config
    from repro.studies.ch3_ninco.experiment import benchmark_unit_tests, evaluate_zoo, load_ood_benchmark
    from repro.studies.ch3_ninco.zoo import trained_zoo

    cfg = chapter_config("ch3", "smoke")
    cfg["world"].update(n_train_per_class=6, n_test_per_class=4, n_popular=24)
    cfg["unit_tests"] = {"n": 4}
    w = load_ood_benchmark(cfg, "smoke", 0)
    assert w.source == "generated" and w.unit_tests is None
    units = benchmark_unit_tests(w, cfg, 0)
    assert len(units) == 17 and all(u.shape[0] == 4 for u in units.values())
    zoo = trained_zoo(w, [{"name": "c", "arch": "convnext_t", "epochs": 1, "batch_size": 32}], progress=False)
    dets = {"msp": {}, "maha": {}, "knn": {"k": 3}}
    res = evaluate_zoo(w, zoo, units, dets, {"ps": [0.0, 0.3], "reps": 2, "pool_n": 60, "pool_p": 0.5}, seed=0)
    assert res["ood_sets"] == ["ninco", "near", "far"] and res["skipped"] == []
    assert set(res["summary"].method) == set(dets) and set(res["summary"].dataset) == {"ninco", "near", "far"}
    assert len(res["units"]) == 17 * len(dets) and set(res["units"].test) == set(units)
    assert set(res["cleaning"].set) == set(res["flagged_sets"]) == {k for k in w.ood if not k.endswith("_clean")
                                                                   and k.startswith("pop_")}
    assert sorted(res["study"].p.unique()) == [0.0, 0.3]
    # the same world without a contamination config: the study is skipped, and the result says why
    res2 = evaluate_zoo(w, zoo, {}, {"msp": {}}, None, ood_sets=["ninco"])
    assert res2["study"].empty and res2["units"].empty and not res2["cleaning"].empty
    with pytest.raises(ValueError, match="not in the world"):
        evaluate_zoo(w, zoo, {}, {"msp": {}}, ood_sets=["nope"])
    with pytest.raises(ValueError, match="at least one detector"):
        evaluate_zoo(w, zoo, {}, {})
