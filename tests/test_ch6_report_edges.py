"""Verdict edge cases of both report modules this chapter pair owns (ch6 SAM-ON and the appendix):
NaN, empty and constant inputs never yield "reproduced" for a scientific claim (issue 20, item 4),
and a standard error from one seed is refused (issue 20, item 3)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from repro.reference import claims_frame
from repro.studies.appendix_related import report as ar
from repro.studies.ch6_samon import experiment as ex
from repro.studies.ch6_samon import report as rp

NAN = float("nan")


# ------------------------------------------------------------------------------------------- ch6
def _runs(values: dict) -> pd.DataFrame:
    """values: {(variant, mode): [acc per seed]} -> the run frame of experiment.run_many."""
    rows = []
    for (v, mode), accs in values.items():
        for s, a in enumerate(accs):
            rows.append(dict(method="sgd" if v == "SGD" else "sam", variant=v, mode=mode, params="",
                             rho=0.1 if mode != "ON" else 1.0, seed=s, label="", val_acc=a, test_acc=a,
                             train_time=1.0, sec_per_step=0.1))
    return pd.DataFrame(rows)


def _extra(values: dict) -> pd.DataFrame:
    rows = []
    for lab, accs in values.items():
        for s, a in enumerate(accs):
            rows.append(dict(method="sgd" if lab == "fix-norm-sgd" else "sam", variant="sam", mode="x",
                             params=lab, rho=1.0, seed=s, label="fix-norm" if lab.startswith("fix-norm") else lab,
                             val_acc=a, test_acc=a, train_time=1.0, sec_per_step=0.1))
    return pd.DataFrame(rows)


def _ch6_rows(acc_fn, n_seeds: int, sharp_val=None, rank_val=None, costs=None, best=None):
    """All ch6 claim rows from run frames whose accuracies come from ``acc_fn(variant, mode, seed)``."""
    variants = ["sam", "elementwise_linf"]
    vals = {("SGD", "-"): [acc_fn("SGD", "-", s) for s in range(n_seeds)]}
    for v in variants:
        for m in ("all", "ON", "no-norm"):
            vals[(v, m)] = [acc_fn(v, m, s) for s in range(n_seeds)]
    main = _runs(vals)
    extra = _extra({k: [acc_fn("x", k, s) for s in range(n_seeds)]
                    for k in ("random_mask", "ssam_f", "ssam_d", "B3", "B2+B3", "fix-norm-sgd", "fix-norm-sam")})
    acc = ex.accuracy_table(main, variants)
    gs = ex.gap_summary(acc)
    gaps = rp.gap_with_se(main, variants)
    nn_gaps = rp.gap_with_se(main, variants, a="no-norm", b="ON")
    best = best if best is not None else {(v, m): 0.1 for v in variants for m in ("all", "ON", "no-norm")}
    costs = costs or {k: {"sec_per_step": 1.0} for k in ("SGD", "SAM-all", "SAM-ON (runtime mode)",
                                                          "SAM-ON B2+B3 (runtime mode)", "SAM-ON B3 (runtime mode)")}
    names = ["SGD", "SAM all", "SAM ON", "el-linf all", "el-linf ON"]
    sharp = pd.DataFrame([dict(method=m, seed=s, rho=0.005, sharpness=sharp_val if sharp_val is not None else acc_fn(m, "", s),
                               test_acc=50.0) for m in names for s in range(n_seeds)])
    rank = pd.DataFrame([dict(method=m, seed=s, rank=rank_val if rank_val is not None else acc_fn(m, "", s))
                         for m in names for s in range(n_seeds)])
    g = {k: [acc_fn(k, "", s) for s in range(n_seeds)] for k in ("gamma_all", "gamma_on", "beta_all", "beta_on")}
    return rp.claims_rows(gs=gs, paper_gs=rp.paper_gap_summary("basic"), gap_df=gaps, shift=rp.rho_shift(best, variants),
                          sparse=rp.sparse_frame(main, extra, 0.99), points=rp.runtime_points(main, extra, costs),
                          sharp=sharp, sharp_rho=0.005, gamma_shift=g, rank=rank, norm_counts=(0, 0),
                          sgd_acc=gs["sgd"], shared_grid=True, no_norm_gaps=nn_gaps, fix_norm=rp.fix_norm_frame(main, extra),
                          sam_sgd=rp.sgd_gaps(main, variants), costs=costs)


def _scientific(rows):
    c = claims_frame(rows)
    return c[c.get("kind", pd.Series("claim", index=c.index)).fillna("claim") == "claim"]


@pytest.mark.parametrize("case", ["constant", "nan", "one_seed"])
def test_ch6_degenerate_inputs_never_reproduced(case):
    if case == "constant":
        rows = _ch6_rows(lambda v, m, s: 50.0, 3)
    elif case == "nan":
        rows = _ch6_rows(lambda v, m, s: NAN, 3, best={})
    else:  # one seed, and SAM-ON clearly above everything: still no noise estimate
        rows = _ch6_rows(lambda v, m, s: 60.0 if m == "ON" or v.endswith("ON") or v.endswith("_on") else 50.0, 1)
    sci = _scientific(rows)
    assert len(sci) >= 8
    assert not (sci.verdict == "reproduced").any(), sci[sci.verdict == "reproduced"].claim.tolist()
    # every verdict other than reproduced says why
    assert (sci.why.str.len() > 0).all()


def test_ch6_one_seed_direction_is_not_testable():
    """Issue 20 item 3: with one seed std(ddof=0) was 0, so +0.1 point read as "reproduced"."""
    main = _runs({("SGD", "-"): [50.0], ("sam", "all"): [60.0], ("sam", "ON"): [60.1]})
    extra = _extra({"random_mask": [60.0], "ssam_f": [60.0], "ssam_d": [60.0]})
    sp = rp.sparse_frame(main, extra, 0.99)
    assert sp.acc_std.isna().all() and sp.se.isna().all()
    assert rp.verdict_direction([0.1, 0.1, 0.1], [rp._se(0.0, 1, 0.0, 1)] * 3) == "not testable at this scale"
    assert rp.verdict_direction([0.1], [0.0]) == "not testable at this scale"  # SE 0 = seeds that agree exactly
    assert rp.verdict_direction([], []) == "not testable at this scale"
    assert rp.verdict_direction([NAN], [1.0]) == "not testable at this scale"
    rows = [r for r in _ch6_rows(lambda v, m, s: 60.1 if m == "ON" else 60.0, 1) if r["section"] == "Sparse"]
    assert rows and rows[0]["verdict"] == "not testable at this scale"


def test_ch6_sparse_std_uses_ddof_1():
    main = _runs({("SGD", "-"): [50, 51, 52], ("sam", "all"): [60, 61, 62], ("sam", "ON"): [61, 63, 65]})
    sp = rp.sparse_frame(main, _extra({"random_mask": [58, 59, 60]}), 0.99).set_index("method")
    assert sp.acc_std["SAM-ON"] == pytest.approx(np.std([61, 63, 65], ddof=1))
    assert sp.se["SAM-ON"] == pytest.approx(np.std([61, 63, 65], ddof=1) / math.sqrt(3))
    pts = rp.runtime_points(main, _extra({"B3": [60, 61, 62]}),
                            {k: {"sec_per_step": 1.0} for k in ("SGD", "SAM-all", "SAM-ON (runtime mode)",
                                                                  "SAM-ON B3 (runtime mode)")})
    assert pts.set_index("label").acc_std["SAM-ON"] == pytest.approx(2.0)


def _timing(sgd, all_, on, b3):
    """Step timings with per-repeat records (repro.sam.timing.step_costs' format)."""
    rep = {"SGD": sgd, "SAM-all": all_, "SAM-ON (runtime mode)": on, "SAM-ON B2+B3 (runtime mode)": on,
           "SAM-ON B3 (runtime mode)": b3}
    return {k: {"sec_per_step": float(np.median(v)), "sec_per_repeat": list(v)} for k, v in rep.items()}


def test_ch6_runtime_claim_needs_the_saving_in_enough_repeats():
    # B3 saves (2 - b3) / (2 - 1): 60 % in every repeat -> reproduced (sign test 5/5, p = 1/32)
    runtime = lambda c: [r for r in _ch6_rows(lambda v, m, s: 50.0 + s, 3, costs=c) if r["section"] == "Runtime"][0]  # noqa: E731
    r = runtime(_timing([1.0] * 5, [2.0] * 5, [1.8] * 5, [1.4] * 5))
    assert r["verdict"] == "reproduced" and "in 5 of 5 interleaved repeats" in r["reproduced"]
    np.testing.assert_allclose(rp.b3_savings(_timing([1.0] * 5, [2.0] * 5, [1.8] * 5, [1.4] * 5)), 0.6)
    # the median saving is 55 %, but two repeats save less than half: the median alone would say "reproduced"
    r = runtime(_timing([1.0] * 5, [2.0] * 5, [1.8] * 5, [1.45, 1.45, 1.45, 1.6, 1.7]))
    assert r["verdict"] == "partly reproduced" and "in only 3 of 5 repeats" in r["why"], r
    # SAM-ON not cheaper than SAM-all: not reproduced, whatever the repeats say
    assert runtime(_timing([1.0] * 5, [2.0] * 5, [2.1] * 5, [1.4] * 5))["verdict"] == "not reproduced"
    # no per-repeat record (older timings): the median rule
    assert rp.b3_savings({k: {"sec_per_step": 1.0} for k in ("SGD", "SAM-all", "SAM-ON B3 (runtime mode)")}).size == 0


def test_ch6_norm_count_row_is_a_check():
    rows = _ch6_rows(lambda v, m, s: 50.0 + s, 3)
    chk = [r for r in rows if r.get("kind") == "check"]
    assert len(chk) == 1 and "17,952" in chk[0]["claim"] and chk[0]["verdict"] == "not reproduced"


def test_ch6_empty_rho_shift_is_not_testable():
    rows = _ch6_rows(lambda v, m, s: 50.0 + s, 3, best={})
    r = [x for x in rows if x["section"] == "ρ"][0]
    assert r["verdict"] == "not testable at this scale"


# -------------------------------------------------------------------------------------- appendix
def _table(values):
    rows = []
    for (m, v), d in values.items():
        for det, f in d.items():
            for ds in ("ninco", "far"):
                rows.append({"model": m, "variant": v, "detector": det, "dataset": ds, "fpr": f, "auroc": 100 - f})
    return pd.DataFrame(rows, columns=["model", "variant", "detector", "dataset", "fpr", "auroc"])


def _studies(x):
    """l2 / um / st inputs whose every number is ``x`` (NaN or a constant)."""
    dets = {"feature_norm": x, "msp": x, "energy": x, "maha_pp": x}
    l2 = {"table": _table({("m", "conventional"): dets, ("m", "l2-trained"): dets}),
          "acc": pd.DataFrame([{"model": "m", "variant": v, "test_acc": x} for v in ("conventional", "l2-trained")])}
    s = pd.DataFrame([{"stage": st, "detector": "energy", "mean_fpr": x, "mean_auroc": x, "test_acc": x}
                      for st in ("final", "best checkpoint (epoch 2)", "UM")])
    curve = pd.DataFrame([{"epoch": e, "split": sp, "fpr": x} for e in (2, 4) for sp in ("selection", "evaluation")])
    um = {"summary": s, "table": _table({("u", "final"): dets, ("u", "UM"): dets}), "detector": "energy",
          "best_epoch": 2, "epochs": 4, "level": 0.1, "keep": 0.975, "ascent_share": 0.0,
          "selection": {"best_epoch": 2, "last_epoch": 4, "gap_select": x - x, "gap_eval": x - x, "ci_low": x - x,
                        "ci_high": x - x, "fpr_final_eval": x, "fpr_best_eval": x, "curve": curve}}
    st = {"table": _table({("s", "vanilla"): dets, ("s", "SeTAR"): dets}),
          "acc": pd.DataFrame([{"model": "s", "variant": v, "test_acc": x} for v in ("vanilla", "SeTAR")]),
          "ratios": pd.DataFrame([{"model": "s", "layer": "fc1", "theta": 0.0}])}
    return l2, um, st


@pytest.mark.parametrize("x", [NAN, 50.0, 0.0, 100.0])
def test_appendix_nan_and_constant_inputs_never_reproduced(x):
    l2, um, st = _studies(x)
    c = ar.appendix_claims(l2, um, st)
    assert len(c) >= 6
    assert not (c.verdict == "reproduced").any(), c[c.verdict == "reproduced"].claim.tolist()


def test_appendix_empty_comparison_is_not_testable():
    """Issue 20 item 4: ``all([])`` is True, so an empty comparison read as "reproduced"."""
    assert ar._verdict_all_some(pd.Series([], dtype=bool)) == "not testable at this scale"
    empty = {"table": _table({}), "acc": pd.DataFrame(columns=["model", "variant", "test_acc"]),
             "ratios": pd.DataFrame(columns=["model", "layer", "theta"])}
    rows = ar.l2_claims(empty) + ar.setar_claims(empty)
    assert all(r["verdict"] != "reproduced" for r in rows)


def test_sam_beats_sgd_is_noise_aware():
    """Every SAM arm above SGD by far more than its seed SE: reproduced; the same means with one seed (no SE):
    not testable; arms that differ from SGD only within noise are not "reproduced"."""
    def row(rows):
        return next(r for r in rows if r["claim"] == "SAM-all and SAM-ON beat SGD")

    clear = _ch6_rows(lambda v, m, s: (60.0 if v == "SGD" else 70.0) + 0.1 * s, n_seeds=3)
    assert row(clear)["verdict"] == "reproduced"
    assert row(_ch6_rows(lambda v, m, s: 60.0 if v == "SGD" else 70.0, n_seeds=1))["verdict"] == "not testable at this scale"
    noisy = row(_ch6_rows(lambda v, m, s: (60.0 if v == "SGD" else 60.3) + 3.0 * (-1) ** s, n_seeds=3))
    assert noisy["verdict"] != "reproduced" and "two seed standard errors" in noisy["why"]


def test_sgd_gaps_matches_hand_computation():
    main = _runs({("SGD", "-"): [60.0, 62.0, 64.0], ("sam", "all"): [65.0, 66.0, 67.0], ("sam", "ON"): [70.0, 70.0, 73.0]})
    g = rp.sgd_gaps(main, ["sam"]).set_index("mode")
    assert g.loc["all", "gap"] == pytest.approx(66.0 - 62.0)
    assert g.loc["all", "se"] == pytest.approx(math.sqrt(1.0 / 3 + 4.0 / 3))
    assert g.loc["ON", "gap"] == pytest.approx(71.0 - 62.0)
