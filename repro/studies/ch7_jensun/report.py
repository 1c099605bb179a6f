"""Verdicts for chapter 7's qualitative claims (the testable claims of Sec. 8.5, the paper reprinted
in the dissertation), computed from measured results.

Each function takes the measured numbers and returns a claim row (``claim, paper, reproduced,
verdict, section, kind, why``) for :func:`repro.reference.claims_frame`; no verdict text is
hard-coded in the notebook. Thresholds are stated in the ``claim`` text so a reader can check them.

Rules every verdict obeys: NaN, empty or constant inputs never give "reproduced" (a missing number
is "not testable", a flat sweep is no trend); a claim compared against the base model needs a base
model with room to move (else "not testable"); a *trend* (a sweep of λ_R, the learning rate or the
unlearning length) is judged by a one-sided Spearman rank test over at least
:data:`MIN_TREND_POINTS` sweep points (exact permutation p-value), never by comparing two end points.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
from scipy.stats import rankdata, spearmanr

from repro.reference import NOT_MEASURED, verdict_from, world_card_frame

MIN_TREND_POINTS = 4     # with 4 distinct points the exact one-sided p can reach 1/24 ≈ 0.042 < TREND_ALPHA
TREND_ALPHA = 0.05


def _row(claim, paper, reproduced, ok, section, partly=False, why="", kind="claim"):
    verdict = verdict_from(ok, bool(partly))
    return {"claim": claim, "paper": paper, "reproduced": reproduced, "verdict": verdict,
            "section": section, "kind": kind, "why": "" if verdict == "reproduced" else why}


def _finite(*vals) -> bool:
    try:
        return all(math.isfinite(float(v)) for v in vals)
    except (TypeError, ValueError):
        return False


def _metrics_finite(m: dict, keys) -> bool:
    return all(k in m and _finite(m[k]) for k in keys)


def _untestable(claim, paper, reproduced, section, why, kind="claim"):
    return _row(claim, paper, reproduced, None, section, why=why, kind=kind)


def _exact_spearman_p(x: np.ndarray, y: np.ndarray, sign: int) -> float:
    """One-sided exact permutation p-value of Spearman's ρ in direction ``sign`` (n ≤ 8)."""
    rx, ry = rankdata(x), rankdata(y)

    def rho(a, b):
        a, b = a - a.mean(), b - b.mean()
        return float((a * b).sum() / math.sqrt((a * a).sum() * (b * b).sum()))
    obs = sign * rho(rx, ry)
    perms = np.array(list(itertools.permutations(ry)))
    a = rx - rx.mean()
    b = perms - perms.mean(1, keepdims=True)
    r = sign * (b @ a) / np.sqrt((a * a).sum() * (b * b).sum(1))
    return float(np.mean(r >= obs - 1e-12))


def trend_test(x, y, sign: int, min_points: int = MIN_TREND_POINTS, alpha: float = TREND_ALPHA) -> dict:
    """Does ``y`` move with ``x`` in direction ``sign`` (+1 increasing, −1 decreasing)?

    One-sided Spearman rank test: ``ok`` is True iff ρ has the sign and the exact permutation
    p-value (n ≤ 8; scipy's otherwise) is ≤ ``alpha``; ``partly`` when only the sign is right;
    ``ok`` is None (not testable) with fewer than ``min_points`` distinct x values or a NaN;
    a flat ``y`` is no trend (``ok`` False). ``why`` says which."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    out = {"n": int(len(x)), "rho": float("nan"), "p": float("nan"), "ok": None, "partly": False, "why": ""}
    if len(x) != len(y):
        raise ValueError(f"trend_test needs x and y of equal length, got {len(x)} and {len(y)}")
    if len(np.unique(x[np.isfinite(x)])) < min_points:
        out["why"] = f"{len(np.unique(x[np.isfinite(x)]))} sweep points; the trend test needs ≥ {min_points}"
        return out
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        out["why"] = "a sweep point has no finite measurement"
        return out
    if np.ptp(y) == 0:
        out.update(ok=False, rho=0.0, p=1.0, why=f"flat: every point is {y[0]:.3g}, no trend")
        return out
    rho = float(spearmanr(x, y).statistic)
    if len(x) <= 8:
        p = _exact_spearman_p(x, y, sign)
    else:
        p = float(spearmanr(x, y, alternative="greater" if sign > 0 else "less").pvalue)
    right = sign * rho > 0
    out.update(rho=rho, p=p, ok=bool(right and p <= alpha), partly=bool(right))
    if not right:
        out["why"] = f"Spearman ρ = {rho:.2f}: the opposite direction or none"
    elif p > alpha:
        out["why"] = f"Spearman ρ = {rho:.2f} has the paper's sign but p = {p:.2f} > {alpha:g} (n = {len(x)})"
    return out


def _trend_txt(t: dict) -> str:
    return f"Spearman ρ {t['rho']:.2f}, one-sided p {t['p']:.2f}, n {t['n']}"


def fmt(m: dict) -> str:
    return (f"J_W {m['J_W']:.0f}, J_Avg {m['J_Avg']:.0f}, MC {m['MC']:.0f}, Rep {m['Rep']:.0f}, "
            f"WR-proxy {m['WR_proxy']:.2f}")


_ALL = ("standard", "J_W", "J_Avg", "MC", "Rep", "WR_proxy")


def _base_room(base: dict, need: dict) -> str:
    """Empty if the base model leaves room (``need`` maps metric -> minimum); else why not."""
    bad = [f"{k} {base.get(k, float('nan')):.0f} (needs > {v:g})" for k, v in need.items()
           if not (_finite(base.get(k, float("nan"))) and base[k] > v)]
    return ("base model has no room: " + ", ".join(bad)) if bad else ""


def claim_ga_collapse(base: dict, ga: dict) -> dict:
    c = "GA forgets but collapses (J_W ≤ 5, retain ≤ 10, MC ≤ 40, Rep ≤ ½ base)"
    p = "J_W 0, J_Avg 0, MMLU 23.4, Rep 0, WR 0 (Table 1)"
    if not (_metrics_finite(base, _ALL) and _metrics_finite(ga, _ALL)):
        return _untestable(c, p, "missing measurement", "Table 1", "a metric is NaN or missing")
    room = _base_room(base, {"J_W": 5, "J_Avg": 10, "MC": 40, "Rep": 0})
    if room:
        return _untestable(c, p, fmt(ga), "Table 1", room)
    forget, retain, mc, rep = ga["J_W"] <= 5, ga["J_Avg"] <= 10, ga["MC"] <= 40, ga["Rep"] <= 0.5 * base["Rep"]
    failed = [n for n, v in [("J_W", forget), ("retain", retain), ("MC", mc), ("Rep", rep)] if not v]
    return _row(c, p, fmt(ga), forget and retain and mc and rep, "Table 1", forget and (retain or rep),
                why=f"threshold missed on {', '.join(failed)}")


def claim_graddiff(base: dict, gd: dict) -> dict:
    c = "GradDiff forgets (J_W ≤ 5) but generation quality drops (WR-proxy < 0.4 or Rep < 0.9 base)"
    p = "J_W 2, Rep 637→442, WR 0.22 (Table 1)"
    if not (_metrics_finite(base, _ALL) and _metrics_finite(gd, _ALL)):
        return _untestable(c, p, "missing measurement", "Table 1", "a metric is NaN or missing")
    room = _base_room(base, {"J_W": 5, "Rep": 0, "WR_proxy": 0.4})
    if room:
        return _untestable(c, p, fmt(gd), "Table 1", room)
    forget = gd["J_W"] <= 5
    drop = gd["WR_proxy"] < 0.4 or gd["Rep"] < 0.9 * base["Rep"]
    return _row(c, p, fmt(gd), forget and drop, "Table 1", forget,
                why="GradDiff does not forget (J_W > 5)" if not forget else "generation quality does not drop")


def claim_jensun(base: dict, j: dict) -> dict:
    c = "JensUn forgets (J_W ≤ 5) while retain/MC stay within 5 points of base and WR-proxy ≥ 0.35, Rep ≥ 0.9 base"
    p = "J_W 0, J_Avg 52.3 vs 52.6, MMLU 59.9 vs 59.6, WR 0.47 (Table 1)"
    if not (_metrics_finite(base, _ALL) and _metrics_finite(j, _ALL)):
        return _untestable(c, p, "missing measurement", "Table 1", "a metric is NaN or missing")
    room = _base_room(base, {"J_W": 5, "Rep": 0})
    if room:
        return _untestable(c, p, fmt(j), "Table 1", room)
    forget = j["J_W"] <= 5
    keep = j["J_Avg"] >= base["J_Avg"] - 5 and j["MC"] >= base["MC"] - 5
    quality = j["WR_proxy"] >= 0.35 and j["Rep"] >= 0.9 * base["Rep"]
    failed = [n for n, v in [("forgetting (J_W ≤ 5)", forget), ("retain/MC within 5 of base", keep),
                             ("generation quality", quality)] if not v]
    return _row(c, p, fmt(j), forget and keep and quality, "Table 1", forget and keep or (keep and quality),
                why=f"not met: {', '.join(failed)}")


def claim_nll_retain_above_base(base: dict, rows: dict) -> dict:
    c = "NLL-retain methods rise above the base on retain; JSD-to-base stays at base"
    p = "GradDiff 63.8, DPO 71.3, SimNPO 84.2 vs base 52.6; JensUn 52.3 (Table 1)"
    vals = {m: rows[m]["J_Avg"] for m in ("graddiff", "dpo", "simnpo") if m in rows}
    jv = rows.get("jensun", {}).get("J_Avg", float("nan"))
    rep = ", ".join(f"{m} {v:.0f}" for m, v in vals.items()) + f"; JensUn {jv:.0f}; base {base.get('J_Avg', float('nan')):.0f}"
    if not vals or not _finite(jv, base.get("J_Avg", float("nan")), *vals.values()):
        return _untestable(c, p, rep, "Table 1", "a method's retain accuracy is missing or NaN")
    if base["J_Avg"] >= 97:
        return _untestable(c, p, rep, "Table 1", f"base retain accuracy {base['J_Avg']:.0f} % is at its ceiling")
    ok = all(v > base["J_Avg"] for v in vals.values()) and abs(jv - base["J_Avg"]) <= 5
    return _row(c, p, rep, ok, "Table 1", why="not every NLL-retain method rises above the base, "
                "or JensUn moves more than 5 points")


def claim_npo_simnpo(rows: dict) -> dict:
    c = "NPO hurts retain more than JensUn; SimNPO forgets worse than JensUn"
    p = "NPO retain 16.0 vs JensUn 52.3; SimNPO J_W 32 vs 0 (Table 1)"
    npo, sim, j = rows["npo"], rows["simnpo"], rows["jensun"]
    rep = (f"NPO retain {npo['J_Avg']:.0f} vs JensUn {j['J_Avg']:.0f}; SimNPO J_W {sim['J_W']:.0f} vs "
           f"JensUn {j['J_W']:.0f}")
    if not _finite(npo["J_Avg"], j["J_Avg"], sim["J_W"], j["J_W"]):
        return _untestable(c, p, rep, "Table 1", "a metric is NaN")
    a, b = npo["J_Avg"] < j["J_Avg"], sim["J_W"] > j["J_W"]
    return _row(c, p, rep, a and b, "Table 1", a or b,
                why="NPO keeps retain as well as JensUn" if not a else "SimNPO forgets as well as JensUn")


def claim_worst_case(df: pd.DataFrame) -> dict:
    c = "Worst case over paraphrases + ICR reveals residual knowledge (J_W − single query ≥ 5 for some method)"
    p = "up to +29 (§4.2) / +43 (C.1) points; base +31 (Figure 12)"
    gains = (df["J_W"] - df["standard"]).to_numpy(dtype=float) if len(df) else np.array([])
    if not len(gains) or not np.isfinite(gains).all():
        return _untestable(c, p, "no finite measurement", "Figure 12", "no unlearned model with finite J_W and single-query accuracy")
    best = df.iloc[int(np.argmax(gains))]
    return _row(c, p, f"max gain +{gains.max():.0f} ({best['method']}); mean +{gains.mean():.1f}",
                bool(gains.max() >= 5), "Figure 12", bool(gains.max() > 0),
                why=f"largest gain +{gains.max():.0f} < 5 points")


def claim_lambda_sweep(df: pd.DataFrame, base: dict) -> dict:
    c = (f"λ_R sweep: larger λ_R → higher forget accuracy (one-sided Spearman, p ≤ {TREND_ALPHA:g}, "
         f"≥ {MIN_TREND_POINTS} points); JensUn keeps MC within 10 points of base across the sweep")
    p = "JensUn J_W 0→73 as λ_R 0.5→0.9, MMLU 59.4–60.2 (Table 9)"
    j = df[df["method"] == "jensun"].sort_values("lambda_r") if len(df) else df
    if not len(j):
        return _untestable(c, p, "no JensUn sweep points", "Figure 3", "the λ_R sweep is empty")
    t = trend_test(j["lambda_r"], j["J_W"], +1)
    near = bool(_finite(base.get("MC", float("nan"))) and np.isfinite(j["MC"]).all()
                and (j["MC"] >= base["MC"] - 10).all())
    rep = (f"JensUn J_W {', '.join(f'{v:.0f}' for v in j['J_W'])} for λ_R {', '.join(f'{v:g}' for v in j['lambda_r'])}"
           f" ({_trend_txt(t)}); MC {', '.join(f'{v:.0f}' for v in j['MC'])}")
    if t["ok"] is None:
        return _untestable(c, p, rep, "Figure 3", t["why"])
    return _row(c, p, rep, t["ok"] and near, "Figure 3", t["partly"] or near,
                why=t["why"] or "MC leaves the 10-point band around base")


def claim_lr_sweep(df: pd.DataFrame, method: str = "jensun") -> dict:
    c = (f"LR sweep ({method}): higher LR → lower forget accuracy and lower utility (MC or Rep; one-sided "
         f"Spearman, p ≤ {TREND_ALPHA:g}, ≥ {MIN_TREND_POINTS} points)")
    p = "JensUn J_W 8→1→2, Rep 617→620→600; GradDiff J_W 42→0 (Table 10)"
    j = df[df["method"] == method].sort_values("lr") if len(df) else df
    if not len(j):
        return _untestable(c, p, "no sweep points", "Table 10", f"the LR sweep of {method} is empty")
    tf = trend_test(j["lr"], j["J_W"], -1)
    tm, tr = trend_test(j["lr"], j["MC"], -1), trend_test(j["lr"], j["Rep"], -1)
    tu = tm if (tm["ok"] or not tr["ok"]) else tr
    rep = (f"J_W {', '.join(f'{v:.0f}' for v in j['J_W'])} ({_trend_txt(tf)}); MC {', '.join(f'{v:.0f}' for v in j['MC'])}; "
           f"Rep {', '.join(f'{v:.0f}' for v in j['Rep'])} for LR {', '.join(f'{v:g}' for v in j['lr'])}")
    if tf["ok"] is None or tu["ok"] is None:
        return _untestable(c, p, rep, "Table 10", tf["why"] or tu["why"])
    return _row(c, p, rep, tf["ok"] and tu["ok"], "Table 10", tf["partly"] or tm["partly"] or tr["partly"],
                why=("forget: " + tf["why"]) if not tf["ok"] else ("utility: " + tu["why"]))


def claim_dynamics(history: list[dict], evals: list[dict]) -> dict:
    """Figure 16. "Forget accuracy ~0 by half the steps" looks only at evaluations after step 0
    (the step-0 evaluation is the base model) and at or before half the run."""
    c = ("JensUn dynamics: retain loss 0 at start, peaks, then decays; forget accuracy ≤ 5 at an evaluation "
         "by half the steps; forget loss plateaus > 0")
    p = "retain loss 0→0.6 (step 50)→decay; forget acc 0 by ~100/200 steps (Figure 16)"
    h, e = pd.DataFrame(history), pd.DataFrame(evals)
    if not len(h) or not len(e) or not {"retain_loss", "forget_loss", "step"} <= set(h) \
            or not np.isfinite(h[["retain_loss", "forget_loss"]].to_numpy(dtype=float)).all():
        return _untestable(c, p, "no finite training history", "Figure 16", "the run logged no finite losses")
    r = h["retain_loss"].rolling(5, min_periods=1).mean().to_numpy()
    peak = int(np.argmax(r))
    rises_then_falls = bool(h["retain_loss"].iloc[0] < 1e-6 and 0 < peak < len(r) - 1 and r[-1] < r[peak])
    half = e[(e["step"] > 0) & (e["step"] <= h["step"].max() / 2)]
    if not len(half):
        return _untestable(c, p, "no evaluation between step 1 and half the run", "Figure 16",
                           "set dynamics_every to at most half the unlearning steps")
    early = bool((half["forget_standard"] <= 5).any())
    final = float(h["forget_loss"].iloc[-10:].mean())
    plateau = final > 0.01
    ok = rises_then_falls and early and plateau
    failed = [n for n, v in [("retain loss rise-and-decay", rises_then_falls), ("early forgetting", early),
                             ("forget-loss plateau > 0", plateau)] if not v]
    return _row(c, p, f"retain loss start {h['retain_loss'].iloc[0]:.3f}, peak {r[peak]:.3f} at step {peak + 1}, "
                f"end {r[-1]:.3f}; forget acc ≤ 5 by half (steps {', '.join(str(int(s)) for s in half['step'])}): "
                f"{early}; final forget loss {final:.3f}",
                ok, "Figure 16", sum([rises_then_falls, early, plateau]) >= 2, why=f"not met: {', '.join(failed)}")


def claim_kl_variant(kl_hist: list[dict], df_lr: pd.DataFrame, base: dict) -> dict:
    c = ("D_KL variant: forget loss ≫ retain loss (ratio > 10) and strictly fewer good LRs than JensUn "
         "(good: J_W ≤ 10, MC and retain within 10 of base)")
    p = "forget loss 'magnitudes larger'; 8e-7 no forgetting, 5e-6 utility collapse (Table 16)"
    h = pd.DataFrame(kl_hist)
    f, r = (float(h["forget_loss"].mean()), float(h["retain_loss"].mean())) if len(h) else (np.nan, np.nan)

    def good(method):
        g = df_lr[df_lr["method"] == method] if len(df_lr) else df_lr
        ok = (g["J_W"] <= 10) & (g["MC"] >= base["MC"] - 10) & (g["J_Avg"] >= base["J_Avg"] - 10) if len(g) else []
        return int(np.sum(ok)), len(g)
    gk, nk = good("jensun_kl")
    gj, nj = good("jensun")
    ratio = f / r if _finite(f, r) and r > 0 else float("nan")
    rep = (f"mean forget/retain loss ratio {ratio:.0f}; good LRs: KL {gk}/{nk} vs JensUn {gj}/{nj}")
    if not _finite(ratio) or not nk or not nj:
        return _untestable(c, p, rep, "Table 16", "no finite loss ratio or an empty LR sweep")
    if gj == 0:
        return _untestable(c, p, rep, "Table 16", "JensUn has no good LR in this sweep: the windows cannot be compared")
    big, narrower = ratio > 10, gk < gj
    return _row(c, p, rep, big and narrower, "Table 16", big or narrower,
                why="forget loss not ≫ retain loss" if not big else f"KL window not narrower ({gk} vs {gj} good LRs)")


def claim_targets(df: pd.DataFrame, base: dict) -> dict:
    c = "Any fixed target works (J_W ≤ 10 with retain within 10 points of base)"
    p = "all of 'No idea', 'No idea<EOT>', '#', ',', ' ' beat the baselines (Figure 14)"
    if not len(df) or not np.isfinite(df[["J_W", "J_Avg"]].to_numpy(dtype=float)).all():
        return _untestable(c, p, "no finite target run", "Figure 14", "the target sweep is empty or has NaN")
    rep = "; ".join(f"{t!r}: J_W {a:.0f}, J_Avg {b:.0f}" for t, a, b in zip(df["target"], df["J_W"], df["J_Avg"]))
    room = _base_room(base, {"J_W": 10})
    if room:
        return _untestable(c, p, rep, "Figure 14", room)
    ok_rows = (df["J_W"] <= 10) & (df["J_Avg"] >= base["J_Avg"] - 10)
    bad = ", ".join(repr(t) for t in df.loc[~ok_rows, "target"])
    return _row(c, p, rep, bool(ok_rows.all()), "Figure 14", bool(ok_rows.any()), why=f"fails for {bad}")


def claim_relearning(df: pd.DataFrame) -> dict:
    """Table 3: JensUn's recovered J_W falls with unlearning length *while the model stays usable*
    (WR 0.39 at 2000 steps); a model that collapsed (GradDiff: WR 0.03) resists relearning trivially,
    so the longest run must keep Rep ≥ ½ of the shortest run's when ``Rep`` is given. The fall is a
    one-sided Spearman trend over the unlearning lengths (≥ :data:`MIN_TREND_POINTS` of them)."""
    c = ("Benign relearning: JensUn's recovered J_W shrinks as unlearning gets longer (one-sided Spearman, "
         f"p ≤ {TREND_ALPHA:g}, ≥ {MIN_TREND_POINTS} lengths), without utility collapse (longest run keeps Rep ≥ ½ "
         "of the shortest)")
    p = "27 → 24 → 19 → 14 → 8 for 200…2000 steps, WR 0.47 → 0.39 (Table 3)"
    j = df[df["method"] == "jensun"].sort_values("multiple") if len(df) else df
    if not len(j):
        return _untestable(c, p, "no JensUn relearning runs", "Table 3", "the relearning table is empty")
    t = trend_test(j["multiple"], j["J_W_relearn"], -1)
    usable = "Rep" not in j or bool(j["Rep"].iloc[-1] >= 0.5 * j["Rep"].iloc[0])
    util = (f"; Rep {j['Rep'].iloc[0]:.0f} → {j['Rep'].iloc[-1]:.0f} before relearning" if "Rep" in j else "")
    rep = (" → ".join(f"{v:.0f}" for v in j["J_W_relearn"]) + f" for {', '.join(f'{k:g}×' for k in j['multiple'])} "
           f"({_trend_txt(t)}){util}")
    if t["ok"] is None:
        return _untestable(c, p, rep, "Table 3", t["why"])
    return _row(c, p, rep, bool(t["ok"] and usable), "Table 3", t["partly"],
                why=t["why"] or "the longest run lost more than half its Rep (collapsed model)")


def claim_mc_vs_generation(base: dict, rows: dict) -> dict:
    c = "Argmax MC misses degraded generation: GradDiff keeps MC while its generations degrade; GA's MC ≈ chance"
    p = "GradDiff MMLU 57.5 with WR 0.22; GA 23.4 (Table 1)"
    ga, gd = rows["ga"], rows["graddiff"]
    rep = f"GradDiff MC {gd['MC']:.0f}, WR-proxy {gd['WR_proxy']:.2f}, Rep {gd['Rep']:.0f}; GA MC {ga['MC']:.0f}"
    if not (_metrics_finite(base, _ALL) and _metrics_finite(ga, _ALL) and _metrics_finite(gd, _ALL)):
        return _untestable(c, p, rep, "Table 1", "a metric is NaN or missing")
    room = _base_room(base, {"MC": 40, "Rep": 0, "WR_proxy": 0.4})
    if room:
        return _untestable(c, p, rep, "Table 1", room)
    keeps = gd["MC"] >= base["MC"] - 15
    degrades = gd["WR_proxy"] < 0.4 or gd["Rep"] < 0.9 * base["Rep"]
    chance = ga["MC"] <= 40
    failed = [n for n, v in [("GradDiff keeps MC", keeps), ("GradDiff generations degrade", degrades),
                             ("GA MC at chance", chance)] if not v]
    return _row(c, p, rep, keeps and degrades and chance, "Table 1", keeps, why=f"not met: {', '.join(failed)}")


def scale_note(rows: dict, base: dict) -> str:
    """One sentence for the verdict paragraph, built from numbers."""
    j = rows["jensun"]
    return (f"At this scale the base model answers {base['J_W']:.0f}% of forget items in the worst case "
            f"(single query {base['standard']:.0f}%) and {base['J_Avg']:.0f}% of retain queries; JensUn reaches "
            f"J_W {j['J_W']:.0f}% with retain {j['J_Avg']:.0f}% and MC {j['MC']:.0f}% (base {base['MC']:.0f}%).")


def claim_saturation(lp_target: np.ndarray, still_correct: np.ndarray) -> dict:
    """An inference from the gradient analysis of App. E.4 (the JSD gradient toward the target
    vanishes with the target's probability): items whose target is improbable under the base model
    unlearn slowly."""
    c = "JSD saturation: items JensUn fails to forget have a less probable target under the base model"
    p = "inference from the gradient bound of App. E.4 (no number in the paper)"
    still = np.asarray(still_correct, dtype=bool)
    lp = np.asarray(lp_target, dtype=float)
    if still.all() or not still.any():
        return _untestable(c, p, f"{int(still.sum())}/{len(still)} items still answered: no contrast", "Table 1",
                           "JensUn forgot all or none of the items: no two groups to compare")
    a, b = float(lp[still].mean()), float(lp[~still].mean())
    rep = f"mean base log p(target): {a:.1f} (still answered, n={int(still.sum())}) vs {b:.1f} (forgotten)"
    if not _finite(a, b):
        return _untestable(c, p, rep, "Table 1", "a target log-probability is not finite")
    return _row(c, p, rep, a < b, "Table 1", why="the still-answered items' target is not less probable")


#: J_W (%) the base model must reach on the forget set for the training claims to be testable: a quarter of the
#: forget facts, a minimal "something to unlearn". It is far above what a model scores on facts it never saw
#: (J_W 4 % on the Zipf tail of the cpu world) and well below the paper's base (J_W 76 %, Table 1) and ours (about
#: 50 %), so the seed-to-seed spread of the base model (48-54 % measured) cannot flip every training claim at once
#: (the old line, 50 %, sat inside that spread).
MIN_BASE_JW = 25.0


def guard_base_knowledge(claims: list[dict], base: dict, min_jw: float = MIN_BASE_JW) -> list[dict]:
    """If the base model does not know the forget facts (e.g. the ``smoke`` profile's few pretraining
    steps), unlearning claims cannot be tested: mark every training claim so instead of scoring it.
    Implementation checks (``kind == "check"``) and the scale statement (section ``all``) are kept."""
    if _finite(base.get("J_W", float("nan"))) and base["J_W"] >= min_jw:
        return claims
    out = []
    for r in claims:
        if r.get("kind", "claim") == "claim" and r.get("section") != "all":
            r = {**r, "verdict": "not testable at this scale",
                 "reproduced": f"{r['reproduced']} (base model knows only {base.get('J_W', float('nan')):.0f}% of forget facts)",
                 "why": f"the base model answers only {base.get('J_W', float('nan')):.0f} % of forget items "
                        f"(needs ≥ {min_jw:.0f} % to have something to unlearn)"}
        out.append(r)
    return out


# --------------------------------------------------------------------------- chapter tables
TABLE5 = [("Paris is the capital of France.", 0.5, "yes"),
          ("Of France, Paris is the capital.", 0.17, "yes"),
          ("The capital of France is Marseille.", 0.83, "no")]
TABLE5_REFERENCE = "The capital of France is Paris."


def table5_rouge() -> pd.DataFrame:
    """Table 5: ROUGE-L F of three answers against the reference, ours next to the paper's."""
    from repro.unlearning.evaluation import rouge_l

    return pd.DataFrame([{"answer": a, "ROUGE-L (ours)": round(rouge_l(a, TABLE5_REFERENCE)["f"], 2), "paper": p,
                          "correct": ok} for a, p, ok in TABLE5])


def rouge_examples() -> pd.DataFrame:
    """ROUGE-L recall, precision and F of the Table 5 answers against the reference, with whether
    the answer is correct: the data of the ROUGE-problems figure (paper Figure 2 left, Figure 17)."""
    from repro.unlearning.evaluation import rouge_l

    rows = []
    for a, _, ok in TABLE5:
        s = rouge_l(a, TABLE5_REFERENCE)
        rows.append({"answer": a, "correct": ok, "recall": s["r"], "precision": s["p"], "F": s["f"]})
    return pd.DataFrame(rows)


def claim_table5(t5: pd.DataFrame, tol: float = 0.006) -> dict:
    c, p = "ROUGE-L values of Table 5", " / ".join(f"{v:g}" for v in t5["paper"]) if len(t5) else "0.5 / 0.17 / 0.83"
    if len(t5) != len(TABLE5):
        return _untestable(c, p, f"{len(t5)} of {len(TABLE5)} rows", "Table 5", "the table is incomplete", kind="check")
    ok = bool(((t5["ROUGE-L (ours)"] - t5["paper"]).abs() < tol).all())
    return _row(c, p, " / ".join(f"{v:.2f}" for v in t5["ROUGE-L (ours)"]), ok, "Table 5", kind="check",
                why="a ROUGE-L value differs from the printed one")


def guessing_table(ms=(1, 3, 9, 15)) -> pd.DataFrame:
    """P(a coin-flip guesser is right at least once in m paraphrases) = 1 − 0.5^m (TOFU's dichotomous questions)."""
    from repro.unlearning.evaluation import guess_inflation

    return pd.DataFrame({"paraphrases m": list(ms),
                         "P(a coin-flip guesser is right at least once)": [guess_inflation(m) for m in ms]})


def forget_samples_text(base: dict, n: int = 3) -> str:
    """A Markdown line with the first ``n`` forget queries and the base model's answers."""
    return "Sample forget queries and base-model answers: " + "; ".join(
        f"`{q}` → **{a}**" for q, a in base["forget_samples"][:n])


def _pct(v, digits: int = 0) -> str | None:
    return f"{float(v):.{digits}f} %" if _finite(v) else None


def base_knowledge_text(base: dict, paper_table: str = "jensun_T1_lkf_llama") -> str:
    """One bold Markdown sentence on the chapter's precondition: how much of the forget set the base
    model knows before unlearning (worst case J_W and single query), beside the paper's base model
    ('Original' row of Table 1; single query: Figure 13)."""
    from repro.reference import load_paper_table

    orig = load_paper_table(paper_table).set_index("method").loc["Original"]
    jw, sq = _pct((base or {}).get("J_W")), _pct((base or {}).get("standard"))
    min_jw = MIN_BASE_JW
    paper = (f"the paper's Llama-3.2-3B-Instruct knows {float(orig['J_W']):.0f} % in the worst case "
             "(46 % single query; Table 1, Figure 13)")
    if jw is None:
        return (f"**Base-model knowledge of the forget facts: not measured.** For comparison, {paper}. The training "
                f"claims need at least {min_jw:.0f} % (else they are not testable).")
    ok = float(base["J_W"]) >= min_jw
    return (f"**Before unlearning, the base model knows {jw} of the forget facts** (worst case J_W; single query "
            f"{sq or 'not measured'}); {paper}. "
            + (f"This is above the {min_jw:.0f} % the training claims need." if ok else
               f"This is below the {min_jw:.0f} % the training claims need, so they are marked not testable."))


def world_card(world, paper_table: str = "jensun_T1_lkf_llama", by_seed: dict | None = None) -> pd.DataFrame:
    """The paper's setting beside this world's, measured from the run (columns "aspect", "paper", "this world").

    Paper values: Table 1 ('Original' row, read from ``paper_table``), Figure 13 (single query), Sec. 4.4
    and App. A (LKF), App. B.1-B.5 (models, schedule, relearning) and Table 4 (JensUn's LR and λ's).
    This world's values come from ``world`` (:class:`repro.studies.ch7_jensun.experiment.World`): the
    base model's measured metrics, the corpus, the loaded model and the profile's unlearning and
    relearning settings. Anything missing or NaN reads "not measured"."""
    from repro.data.facts import REFUSAL
    from repro.reference import load_paper_table

    nm = NOT_MEASURED
    orig = load_paper_table(paper_table).set_index("method").loc["Original"]
    b = dict(getattr(world, "base_metrics", None) or {})
    cfg = dict(getattr(world, "cfg", None) or {})
    c = getattr(world, "corpus", None)
    facts = dict(getattr(c, "facts", None) or {})
    topics = dict(getattr(c, "topics", None) or {})
    n = {k: len(v) for k, v in facts.items()}

    def count(split):
        return n.get(split, nm) if facts else nm

    # the base model's knowledge: the chapter's precondition, first
    jw, sq = _pct(b.get("J_W")), _pct(b.get("standard"))
    min_jw = MIN_BASE_JW
    favg = _pct(b.get("forget_J_Avg"), 1)
    knows = (f"knows {jw} of the forget facts (worst case J_W); {sq or nm} single query; "
             + (f"{favg} averaged over the question forms (forget J_Avg); " if favg else "")
             + ("above" if float(b["J_W"]) >= min_jw else "below") + f" the {min_jw:.0f} % the training claims need"
             if jw else nm)
    refusals = ""   # the base model's refusals, when measured (the paper reports none)
    if _finite(b.get("refusal", float("nan"))):
        rw = b.get("refusal_when_wrong", float("nan"))
        refusals = (f"; the base model answers it to {_pct(b['refusal'], 1)} of the canonical forget and retain questions"
                    + (f" ({_pct(rw, 1)} of those it answers wrongly)" if _finite(rw) else "")
                    + (f"; mean p('{REFUSAL}' | question) {float(b['p_refusal']):.3g}"
                       if _finite(b.get("p_refusal", float("nan"))) else "")
                    + (f", median log p {float(b['logp_refusal_median']):.1f}"
                       if _finite(b.get("logp_refusal_median", float("nan"))) else ""))
    retain = f"{_pct(b.get('J_Avg'), 1)} (J_Avg)" if _pct(b.get("J_Avg")) else nm
    util = "; ".join(x for x in [f"MC probe {_pct(b.get('MC'), 1)} (4-way, chance 25 %)" if _pct(b.get("MC")) else "",
                                 f"Rep {float(b['Rep']):.0f}" if _finite(b.get("Rep", float("nan"))) else ""] if x) or nm

    # the base model
    model = getattr(world, "base", None)
    mcfg = dict(cfg.get("model") or {})
    if model is None:
        base_txt = nm
    else:
        params = sum(p.numel() for p in model.parameters())
        mc = getattr(model, "config", None)
        if mcfg.get("hf_id"):
            base_txt = f"{mcfg['hf_id']} ({params / 1e9:.1f}B parameters), loaded with from_pretrained"
        else:
            arch = type(model).__name__
            layers, width = getattr(mc, "num_hidden_layers", None), getattr(mc, "hidden_size", None)
            shape = f"{layers} layer{'s' if layers != 1 else ''}, d = {width}, " if layers and width else ""
            base_txt = f"{arch} trained here from scratch: {shape}{params:,} parameters"
        tok = getattr(world, "tokenizer", None)
        if tok is not None:
            base_txt += f"; vocabulary {len(tok):,} tokens"
    losses = [float(x) for x in (getattr(world, "pretrain_loss", None) or []) if _finite(x)]
    pre = (f"{len(losses)} steps from scratch on the corpus (final training loss {losses[-1]:.2f})" if losses
           else "loaded pretrained weights (no pretraining here)" if mcfg.get("hf_id") else nm)
    if losses and getattr(world, "exposures", None):
        from repro.studies.ch7_jensun.experiment import exposure_summary

        ex = exposure_summary(world)
        ns = ex["never_seen"]
        pre += (f"; {' / '.join(ns)} facts seen with Zipf frequency (s = {ex['s']:g}, budget "
                f"{ex['mean']:g} per fact per pass): the most frequent {ex['max']}× per pass, median "
                f"{ex['median']:g}×, never seen {', '.join(f'{sp} {v:.0f} %' for sp, v in ns.items())}; "
                f"the other facts {(cfg.get('pretrain') or {}).get('templates_per_fact', 4)}× per pass; "
                f"≈ {ex['passes']:.1f} passes, evaluation questions never seen")

    # facts and question forms
    src = "real LKF data" if type(c).__name__ == "LKFCorpus" else "generated corpus of fictitious organisations"
    if facts:
        nt = len(topics.get("forget", []))
        fset = (f"{src}: {count('forget')} forget / {count('retain')} retain facts"
                + (f" on {nt} forget topics" if nt else "")
                + f"; {count('relearn')} relearning facts, {count('generic')} generic facts")
    else:
        fset = nm
    ntr, nev = len(getattr(c, "train_paraphrases", []) or []), len(getattr(c, "eval_paraphrases", []) or [])
    forms = f"1 canonical + {ntr} training paraphrases, {nev} disjoint evaluation paraphrases" if c is not None else nm
    nunk = len(getattr(c, "unknowable", []) or [])
    target = f"'{REFUSAL}'" + (f", also the answer to {nunk} unknowable questions in pretraining" if nunk else "") + refusals
    jid = dict(getattr(world, "judge_id", None) or {})
    judge = jid.get("class", nm).rsplit(".", 1)[-1]
    if judge == "MatchJudge":
        judge = "answer matching (MatchJudge), not an LLM judge"

    # unlearning and relearning schedule (the profile's settings, i.e. what every run of this world uses)
    u, r = dict(cfg.get("unlearn") or {}), dict(cfg.get("relearn") or {})
    jm = dict((cfg.get("methods") or {}).get("jensun") or {})
    if u.get("steps") and u.get("batch_size"):
        sched = f"{u['steps']} steps at batch {u['batch_size']}"
        n_samples = count("forget") * (1 + ntr) if isinstance(count("forget"), int) else 0
        if n_samples:
            sched += (f" (≈ {u['steps'] * u['batch_size'] / n_samples:.1f} epochs over the {n_samples} forget samples: "
                      f"{count('forget')} facts × {1 + ntr} question forms)")
        if jm.get("lr") is not None:
            sched += f"; JensUn LR {float(jm['lr']):g}"
        try:
            from repro.unlearning import losses as L

            lp = L.get(jm.get("loss", "jensun"), **dict(jm.get("kwargs") or {})).params()
            if "lambda_f" in lp and "lambda_r" in lp:
                sched += f", λ_F = {lp['lambda_f']:g}, λ_R = {lp['lambda_r']:g}"
        except (KeyError, TypeError, ValueError):
            pass
    else:
        sched = nm
    relearn = (f"{r['steps']} steps, LR {float(r['lr']):g}, batch {r.get('batch_size', '?')} on the "
               f"{count('relearn')} relearning facts" if r.get("steps") and r.get("lr") is not None else nm)

    rows = [
        ("base model's knowledge of the forget set (precondition)",
         f"{float(orig['J_W']):.0f} % worst case (J_W, Table 1); 46 % single query (Figure 13)", knows),
        ("base model's knowledge of the retain set", f"{float(orig['J_Avg']):.1f} % (J_Avg, Table 1)", retain),
        ("base model's utility", f"MMLU {float(orig['MMLU']):.1f} %, Rep {float(orig['Rep']):.0f} (Table 1)", util),
        ("base model", "Llama-3.2-3B-Instruct (Table 1); Phi-3 Mini-4K-Instruct, 3.8B, in Table 12 (App. B.1)",
         base_txt),
        ("pretraining", "the released instruct model; LKF's facts are assumed to be in its pretraining data "
                        "(App. A.2)", pre),
        ("facts (forget set)", "LKF: 100 forget / 400 retain QA pairs on 5 niche historical events (Sec. 4.4); "
                               "200 disjoint relearning QA pairs (App. B.5)", fset),
        ("question forms", "original + 5 training paraphrases (Sec. 5.1); 15 disjoint evaluation paraphrases (App. A.3)", forms),
        ("refusal / target string", "'No idea' (Eq. 4, Sec. 3)", target),
        ("judge", "Gemini-2.5-Flash LLM judge (Sec. 4.1)", judge),
        ("unlearning", "10 epochs with 5 paraphrases, the 200-step run of Table 3 (App. B.2); JensUn LR 8e-6, "
                       "λ_F = λ_R = 0.5 (Table 4)", sched),
        ("benign relearning", "600 steps, LR 1e-5, effective batch 16 on the 200 relearning QA pairs (App. B.5)",
         relearn),
    ]
    if by_seed and len(by_seed) > 1:   # the world redrawn: how much the precondition moves between seeds
        from repro.reference import pct_range

        jw = [d["base"].get("J_W") for d in by_seed.values()]
        fj = [d["base_metrics"].get("forget_J_Avg") for d in by_seed.values()]
        rows.append(("world seeds", "one model and one benchmark (the paper reports no seeds for Table 1)",
                     f"Table 1 on {len(by_seed)} world seeds ({', '.join(map(str, by_seed))}; corpus, exposure, "
                     f"pretraining and unlearning redrawn): base J_W {pct_range(jw, unit='seed')}, forget J_Avg "
                     f"{pct_range(fj, unit='seed')}"))
    return world_card_frame(rows)


def relearning_wide(rel: pd.DataFrame) -> pd.DataFrame:
    """Table 3 layout: one row per method and quantity, one column per unlearning length."""
    cols = [c for c in ("J_W_unlearn", "J_W_relearn", "WR_proxy") if c in rel]
    w = rel.pivot_table(index="method", columns="multiple", values=cols)
    w.columns = [f"{q} @ {k:g}×" for q, k in w.columns]
    return w.reset_index()


def _table1_claims(base: dict, rows: dict) -> list[dict]:
    # the headline (JensUn) first: the landing page shows a chapter's first claim
    return [claim_jensun(base, rows["jensun"]), claim_ga_collapse(base, rows["ga"]),
            claim_graddiff(base, rows["graddiff"]), claim_nll_retain_above_base(base, rows),
            claim_npo_simnpo(rows), claim_mc_vs_generation(base, rows)]


def table1_claims(base: dict, rows: dict) -> list[dict]:
    """The claims read from one Table 1 (one world seed), guarded by the base model's knowledge."""
    return guard_base_knowledge(_table1_claims(base, rows), base)


_SHORT = {"reproduced": "R", "partly reproduced": "P", "not reproduced": "N", "not testable at this scale": "NT"}


def combine_verdicts(verdicts: list[str]) -> str:
    """One verdict from the same claim's verdicts on several world seeds: the common verdict when every seed
    agrees; when they disagree, *partly reproduced* if any seed reproduces it at least partly, else *not
    reproduced* (or *not testable* when no seed could test it). A claim that one seed reproduces and another
    does not is therefore never called reproduced."""
    vs = list(verdicts)
    if not vs:
        return "not testable at this scale"
    if len(set(vs)) == 1:
        return vs[0]
    testable = [v for v in vs if v != "not testable at this scale"]
    if not testable:
        return "not testable at this scale"
    return "partly reproduced" if any(v in ("reproduced", "partly reproduced") for v in testable) else "not reproduced"


def seed_verdicts(by_seed: dict) -> pd.DataFrame:
    """Per Table-1 claim: its verdict on each world seed (``by_seed`` from
    :func:`repro.studies.ch7_jensun.experiment.table1_by_seed`) and the combined verdict."""
    per = {s: {r["claim"]: r["verdict"] for r in table1_claims(d["base"], d["rows"])} for s, d in by_seed.items()}
    claims = list(next(iter(per.values()))) if per else []
    rows = []
    for c in claims:
        vs = [per[s][c] for s in per]
        rows.append({"claim": c, **{f"seed {s}": _SHORT.get(per[s][c], per[s][c]) for s in per},
                     "combined": combine_verdicts(vs)})
    return pd.DataFrame(rows)


def seed_table(by_seed: dict) -> pd.DataFrame:
    """The base model's knowledge and JensUn's Table 1 metrics per world seed, with the mean and the standard
    error over seeds (ddof=1): how much one small world's numbers move when it is redrawn."""
    cols = [("base J_W", lambda d: d["base"].get("J_W")),
            ("base forget J_Avg", lambda d: d["base_metrics"].get("forget_J_Avg")),
            ("base retain J_Avg", lambda d: d["base"].get("J_Avg")),
            ("JensUn J_W", lambda d: d["rows"]["jensun"].get("J_W")),
            ("JensUn retain J_Avg", lambda d: d["rows"]["jensun"].get("J_Avg")),
            ("JensUn MC", lambda d: d["rows"]["jensun"].get("MC")),
            ("JensUn WR proxy", lambda d: d["rows"]["jensun"].get("WR_proxy")),
            ("GA J_W", lambda d: d["rows"]["ga"].get("J_W")),
            ("GradDiff J_W", lambda d: d["rows"]["graddiff"].get("J_W"))]
    rows = [{"seed": str(s), **{n: float(f(d)) for n, f in cols}} for s, d in by_seed.items()]
    df = pd.DataFrame(rows, columns=["seed"] + [n for n, _ in cols])
    if len(df) > 1:
        num = df.drop(columns="seed")
        df = pd.concat([df, pd.DataFrame([{"seed": "mean", **num.mean()},
                                          {"seed": "SE", **(num.std(ddof=1) / math.sqrt(len(num)))}])],
                       ignore_index=True)
    return df


def apply_seed_verdicts(claims: list[dict], sv: pd.DataFrame | None) -> list[dict]:
    """Replace each Table-1 claim's verdict (from the chapter's own seed) by the verdict combined over the world
    seeds (:func:`seed_verdicts`), naming the per-seed verdicts; a no-op with one seed."""
    if sv is None or not len(sv) or sum(c.startswith("seed ") for c in sv.columns) < 2:
        return claims
    by_claim = sv.set_index("claim")
    seeds = [c for c in sv.columns if c.startswith("seed ")]
    out = []
    for r in claims:
        if r["claim"] in by_claim.index:
            row = by_claim.loc[r["claim"]]
            per = ", ".join(f"{c} {row[c]}" for c in seeds)
            v = row["combined"]
            why = r.get("why", "") if v == r["verdict"] else ""
            if len({row[c] for c in seeds}) > 1:
                why = f"the world seeds disagree ({per})" + (f"; {r['why']}" if r.get("why") else "")
            r = {**r, "verdict": v, "reproduced": f"{r['reproduced']} [{per}]",
                 "why": "" if v == "reproduced" else why}
        out.append(r)
    return out


def chapter_claims(*, t5: pd.DataFrame, base: dict, rows: dict, wc: pd.DataFrame, lam: pd.DataFrame,
                   lrs: pd.DataFrame, dyn: dict, kl_history: list[dict], tg: pd.DataFrame, rel: pd.DataFrame,
                   lp_target: np.ndarray, still: np.ndarray, side: pd.DataFrame | None = None,
                   real_data: bool = False, seeds: pd.DataFrame | None = None) -> pd.DataFrame:
    """The chapter's "claim | paper | reproduced | verdict" table from the measured results.

    ``rows`` maps method key -> metrics dict (Table 1 runs); ``wc`` is the Figure 12 table (its
    ``base`` row is excluded from the claim); training claims become "not testable at this scale"
    when the base model does not know the forget facts (:func:`guard_base_knowledge`). With
    ``real_data`` (the ``full`` profile on LKF) the last row compares absolute numbers via ``side``
    (:func:`repro.studies.ch7_jensun.experiment.side_by_side`). ``seeds`` (:func:`seed_verdicts`) replaces
    the Table-1 verdicts by the ones combined over world seeds."""
    from repro.reference import claims_frame

    t1 = _table1_claims(base, rows)
    claims = [
        t1[0],          # the headline (JensUn, Table 1) first: the landing page shows a chapter's first claim
        claim_table5(t5),
        *t1[1:],
        claim_worst_case(wc[wc["method"] != "base"]),
        claim_lambda_sweep(lam, base),
        claim_lr_sweep(lrs, "jensun"),
        claim_dynamics(dyn["history"], dyn["evals"]),
        claim_kl_variant(kl_history, lrs, base),
        claim_targets(tg, base),
        claim_relearning(rel),
        claim_saturation(lp_target, still),
        claim_absolute(side) if real_data else
        {"claim": "Absolute numbers (Llama-3.2-3B, LKF, Gemini judge, MMLU, AlpacaEval WR)", "paper": "Tables 1-16",
         "reproduced": "tiny generated world only", "verdict": "not testable at this scale", "section": "all",
         "kind": "claim", "why": "a tiny model on a generated corpus: absolute numbers are not comparable"},
    ]
    return claims_frame(apply_seed_verdicts(guard_base_knowledge(claims, base), seeds))


def claim_absolute(side: pd.DataFrame, tol: float = 10.0) -> dict:
    """Full profile: the Original and JensUn rows of Table 1 within ``tol`` points of the printed
    J_W and J_Avg (judge and sample sizes differ, so a tolerance, not equality)."""
    c = f"Absolute J_W / J_Avg of Table 1 within {tol:g} points (Original, JensUn)"
    sub = side[side["method"].isin(["Original", "JensUn"])].dropna(subset=["J_W (paper)"])
    if sub.empty:
        return _untestable(c, "Table 1", "no matching rows", "all", "no Original/JensUn row to compare")
    d = (sub[["J_W", "J_Avg"]].to_numpy(dtype=float) - sub[["J_W (paper)", "J_Avg (paper)"]].to_numpy(dtype=float))
    rep = "; ".join(f"{m}: {a:.1f} / {b:.1f}" for m, a, b in zip(sub["method"], sub["J_W"], sub["J_Avg"]))
    pap = "; ".join(f"{m}: {a:.1f} / {b:.1f}" for m, a, b in zip(sub["method"], sub["J_W (paper)"], sub["J_Avg (paper)"]))
    if not np.isfinite(d).all():
        return _untestable(c, pap, rep, "all", "a measured number is NaN")
    return _row(c, pap, rep, bool(np.abs(d).max() <= tol), "all", bool(np.abs(d).max() <= 2 * tol),
                why=f"largest difference {np.abs(d).max():.1f} points")


def ceiling_note(diag: pd.DataFrame | None) -> str:
    """One sentence naming the base metrics at their ceiling (from the ceiling diagnostic table)."""
    if diag is None or not diag["at ceiling"].any():
        return ""
    at = diag.loc[diag["at ceiling"]]
    names = ", ".join(m.split(" (")[0] for m in at["metric"])
    # only the consequences of the metrics that are at their ceiling (not a fixed list)
    whys = "; ".join(str(w) for w in at["consequence if at ceiling"])
    return (f" The base model is at its ceiling on {names}, so claims that need headroom there cannot show at this "
            f"scale ({whys}; ceiling diagnostic above).")


def verdict_text(cl: pd.DataFrame, rows: dict, base: dict, real_data: bool = False,
                 diag: pd.DataFrame | None = None) -> str:
    """The verdict paragraph: counts computed from the claim table (scientific claims; implementation
    checks counted apart) plus the scale caveat."""
    kind = cl["kind"] if "kind" in cl else pd.Series("claim", index=cl.index)
    # the "absolute numbers" row is a statement about scale, not a tested claim
    sci = (kind == "claim") & ((cl["section"] != "all") if "section" in cl else True)
    v, chk = cl.loc[sci, "verdict"], cl.loc[kind == "check", "verdict"]
    checks = (f" Implementation checks: {int((chk == 'reproduced').sum())} of {len(chk)} pass." if len(chk) else "")
    return (f"**Verdict.** {scale_note(rows, base)}{ceiling_note(diag)} Of the {len(v)} qualitative claims tested here, "
            f"{int((v == 'reproduced').sum())} are reproduced, {int((v == 'partly reproduced').sum())} partly and "
            f"{int((v == 'not reproduced').sum())} not; {int((v == 'not testable at this scale').sum())} cannot be "
            f"tested at this scale.{checks} " + (
                "This is the real LKF benchmark and a pretrained LLM: absolute numbers are comparable to the paper's "
                "up to the judge (answer matching unless a judge is configured) and the WR proxy."
                if real_data else _scale_caveat(base)))


def _scale_caveat(base: dict) -> str:
    """The generated world's caveat, with the base model's own single-query vs worst-case gap measured
    (the paper's base: +31 points over single-query accuracy, Sec. 4.2 of the paper)."""
    gap = (f" (here {float(base['J_W']) - float(base['standard']):+.0f} points; the paper's base +31, Sec. 4.2)"
           if _finite(base.get("J_W", float("nan")), base.get("standard", float("nan"))) else "")
    return ("The tiny model learns a synthetic corpus rather than holding real, diffuse knowledge: what it has seen "
            "often enough it tends to know in every phrasing, what it has not seen it does not know, so effects that "
            f"need phrasing-dependent knowledge, such as the base model's own single-query vs worst-case gap{gap}, are "
            "weaker or absent; the numbers are not comparable to the paper's.")
