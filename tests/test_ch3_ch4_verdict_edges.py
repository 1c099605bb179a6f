"""Chapters 3 and 4 report modules: NaN, empty and constant inputs never yield "reproduced"; a two-part claim
is never judged on one part; Maha vs Maha++ claims skip models whose norms are constant (LayerNorm features)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from repro.studies.ch3_ninco.report import ninco_claims
from repro.studies.ch4_mahapp import report as R

from test_report_mahapp import tables  # noqa: E402  (synthetic chapter-4 tables)
from test_report_ninco import summary, units  # noqa: E402


def _ch4(**kw):
    return R.mahapp_claims(**tables(**kw))


@pytest.mark.parametrize("value", [np.nan, 50.0])
def test_ch4_nan_or_constant_tables_never_reproduce_a_comparison(value):
    df = _ch4(maha=value, maha_pp=value, rmaha=value, rmaha_pp=value, msp=value, unit=(value, value),
              dev=(value, value), within_ratio=value / 50,  # real spread = Gaussian spread
              kurt=(value, value), conf=(value, value), scal=(value, value),
              rej=(value, value))
    comparisons = df[~df.claim.str.contains("best detector|State of the art")]
    assert "reproduced" not in set(comparisons.verdict), comparisons[["claim", "verdict"]]


def test_ch4_layernorm_models_are_not_counted():
    t = tables(n=4, maha=[50, 50, 50, 50], maha_pp=[40, 40, 50, 50])
    t["diag"]["norm_cv"] = [0.2, 0.2, 0.003, 0.004]  # two models with constant norms: Maha = Maha++ there
    df = R.mahapp_claims(**t)
    row = df[df.claim.str.contains("better than Maha for almost every model")].iloc[0]
    # 2/2 decidedly better, but two models cannot make "almost every model" significant (sign test p = 0.25)
    assert row.reproduced.startswith("2/2") and "not counted" in row.reproduced and row.verdict == "partly reproduced"
    t["diag"]["norm_cv"] = 0.002  # no model can test the claim
    df = R.mahapp_claims(**t)
    row = df[df.claim.str.contains("better than Maha for almost every model")].iloc[0]
    assert row.verdict == "not testable at this scale" and "norm CV" in row.why and "0.20 %" in row.why


def test_ch4_empty_table_raises():
    t = tables(n=2)
    t["avg"] = t["avg"].loc[["Average"]]
    with pytest.raises(ValueError, match="at least one model"):
        R.mahapp_claims(**t)


def test_ch3_constant_and_nan_inputs_never_reproduce():
    for v in (0.5, np.nan):
        fpr = {m: dict(msp=v, maha=v, rmaha=v, vim=v, cosine=v, rcos=v) for m in ("a", "b", "c")}
        df = ninco_claims(summary(fpr), units({}))
        assert "reproduced" not in set(df.verdict), df[["claim", "verdict"]]


def test_ch3_two_part_claim_with_a_missing_group_is_not_reproduced():
    # both models are IN-21k checkpoints of N-Tab. 3: the "IN-21k lowers the FPR" part cannot be tested
    fpr = {"ViT-B-384-21k": dict(msp=0.5, maha=0.25, rmaha=0.3, vim=0.3, cosine=0.4, rcos=0.4),
           "ViT-B-224-21k": dict(msp=0.55, maha=0.3, rmaha=0.35, vim=0.35, cosine=0.45, rcos=0.45)}
    row = ninco_claims(summary(fpr), units({}))
    row = row[row.claim.str.startswith("IN-21k")].iloc[0]
    assert row.verdict == "not testable at this scale" and "cannot be tested" in row.why
    fpr["ViT-B-224-21k"]["cosine"] = 0.1  # the tested part fails
    row = ninco_claims(summary(fpr), units({}))
    assert row[row.claim.str.startswith("IN-21k")].verdict.iloc[0] == "not reproduced"
