"""Chapter 6's world card (repro.studies.ch6_samon.report.world_card): the paper's setting (Sec. 8.4) beside
this world's, every "this world" value computed from the run objects; NaN or missing inputs give "not measured"."""
from __future__ import annotations

import pandas as pd
import torch

from repro.reference import load_paper_table
from repro.studies.ch6_samon import experiment as ex
from repro.studies.ch6_samon import report as rp

NAN = float("nan")
ROWS = ["data", "models", "training", "augmentation", "seeds", "ρ grid", "train accuracy", "test accuracy"]


def _row(method, variant, mode, rho, seed, acc):
    return dict(method=method, variant=variant, mode=mode, params="", rho=rho, seed=seed, label="", val_acc=acc,
                test_acc=acc, train_time=1.0, sec_per_step=0.1)


def _inputs():
    cfg = dict(world=dict(seed=0, resolution=16), model="wrn10_1", seeds=[0, 1, 2], variants=["sam"],
               rho_grid=dict(sam=dict(all=[0.02, 0.1, 0.5], only_norm=[0.02, 0.1, 0.5])),
               train=dict(epochs=8, lr=0.1, batch_size=128, weight_decay=0.0005, momentum=0.9, label_smoothing=0.1,
                          augment=True))
    grid = pd.DataFrame([_row("sam", "sam", m, r, 0, 50.0) for m in ("all", "ON") for r in (0.02, 0.1, 0.5)])
    main = pd.DataFrame([_row("sgd", "SGD", "-", 0.0, s, 40.0 + s) for s in range(3)]
                        + [_row("sam", "sam", "all", 0.1, s, 44.0 + s) for s in range(3)]
                        + [_row("sam", "sam", "ON", 0.5, s, 46.0 + 2 * s) for s in range(3)])
    results = {ex.RunSpec("sam", "sam", "all", 0.1, s): dict(history=[dict(train_acc=0.3)] * 7 + [dict(train_acc=a)])
               for s, a in enumerate((0.6, 0.7, 0.8))}
    plan = dict(grid=grid, main=main, extra=pd.DataFrame(), best_rho={("sam", "all"): 0.1, ("sam", "ON"): 0.5},
                results=results)
    data = dict(x_train=torch.zeros(1200, 3, 16, 16, dtype=torch.uint8), x_val=torch.zeros(500, 3, 16, 16),
                x_test=torch.zeros(1500, 3, 16, 16), num_classes=10)
    return plan, data, cfg


def test_world_card_measures_the_runs():
    plan, data, cfg = _inputs()
    card = rp.world_card(plan, data, cfg)
    assert list(card.columns) == ["aspect", "paper", "this world"] and list(card["aspect"]) == ROWS
    c = card.set_index("aspect")["this world"]
    assert c["data"] == "generated world (ID classes): 10 classes, 1,200 train / 500 validation / 1,500 test images, 16 px"
    n_norm, n_all = ex.norm_counts("wrn10_1", 10)
    assert c["models"] == (f"wrn10_1: {n_all:,} parameters, {n_norm:,} of them in normalization layers "
                           f"({100 * (1 - n_norm / n_all):.2f} % sparsity); 3 training runs")
    assert c["training"].startswith("8 epochs; SGD, lr 0.1, momentum 0.9, weight decay 0.0005, label smoothing 0.1")
    assert c["augmentation"] == "basic (random crop + flip)"
    assert c["seeds"] == "3 seed(s) (0, 1, 2); 3 run(s) per arm"
    # the chapter's precondition: one shared grid for all and ON, and the selected ρ per mode
    assert c["ρ grid"].startswith("sam: {0.02, 0.1, 0.5} for all, ON → selected all 0.1, ON 0.5 (grid on seed 0")
    assert "500 held-out images" in c["ρ grid"]
    assert c["train accuracy"].startswith("60.0-80.0 % (mean 70.0 %, 3 runs), last epoch")
    assert c["test accuracy"] == ("SGD: 40.0-42.0 % (mean 41.0 %, 3 runs); SAM-all (1 variant): 44.0-46.0 % "
                                  "(mean 45.0 %, 3 runs); SAM-ON (1 variant): 46.0-50.0 % (mean 48.0 %, 3 runs)")


def test_world_card_paper_side_comes_from_the_printed_tables():
    plan, data, cfg = _inputs()
    p = rp.world_card(plan, data, cfg).set_index("aspect")["paper"]
    t = load_paper_table("samon_T1_cifar100")
    t = t[(t.aug == "basic") & (t.model == "WRN-28")]
    sgd = float(t[t.variant == "sgd"].acc_mean.iloc[0])
    on = t[(t.variant != "sgd") & (t["mode"] == "ON")].acc_mean
    assert f"SGD {sgd:.2f} %" in p["test accuracy"]
    assert f"SAM-ON {on.min():.2f}-{on.max():.2f} %" in p["test accuracy"]
    assert "Table 7" in p["ρ grid"] and "3 seeds" in p["seeds"] and "99.95 %" in p["models"]


def test_world_card_nan_and_empty_inputs_say_not_measured():
    plan, data, cfg = _inputs()
    plan["main"] = plan["main"].assign(test_acc=NAN)
    plan["results"] = {k: dict(history=[dict(train_acc=NAN)]) for k in plan["results"]}
    c = rp.world_card(plan, data, cfg).set_index("aspect")["this world"]
    assert c["test accuracy"] == rp.NOT_MEASURED and c["train accuracy"] == rp.NOT_MEASURED
    assert c["seeds"].startswith("3 seed(s)")  # the runs exist; only their accuracies are missing
    empty = rp.world_card({}, None, {})
    assert list(empty["aspect"]) == ROWS
    assert (empty["this world"] == rp.NOT_MEASURED).all()
    no_frames = rp.world_card(dict(grid=pd.DataFrame(), main=pd.DataFrame(), extra=pd.DataFrame(), best_rho={},
                                   results={}), data, cfg).set_index("aspect")["this world"]
    for row in ("seeds", "ρ grid", "train accuracy", "test accuracy", "training"):
        assert no_frames[row] == rp.NOT_MEASURED, row


def test_pct_range():
    from repro.reference import pct_range  # the shared formatter, with the ch6 card's arguments (runs counted)

    assert pct_range([50.0, NAN, 52.0, None], unit="run") == "50.0-52.0 % (mean 51.0 %, 2 runs)"
    assert pct_range([0.5], scale=100.0, unit="run") == "50.0 % (1 run)"
    assert pct_range([NAN], unit="run") == rp.NOT_MEASURED
