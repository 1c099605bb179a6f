"""Verdicts for chapter 7's qualitative claims (notes §8.B), computed from measured results.

Each function takes the measured numbers and returns a claim row (``claim, paper, reproduced,
verdict, section``) for :func:`repro.reference.claims_frame`; no verdict text is hard-coded in
the notebook. Thresholds are stated in the ``claim`` text so a reader can check them.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from repro.reference import verdict_from


def _row(claim, paper, reproduced, ok, section, partly=False):
    return {"claim": claim, "paper": paper, "reproduced": reproduced, "verdict": verdict_from(ok, partly),
            "section": section}


def fmt(m: dict) -> str:
    return (f"J_W {m['J_W']:.0f}, J_Avg {m['J_Avg']:.0f}, MC {m['MC']:.0f}, Rep {m['Rep']:.0f}, "
            f"WR-proxy {m['WR_proxy']:.2f}")


def claim_ga_collapse(base: dict, ga: dict) -> dict:
    ok = ga["J_W"] <= 5 and ga["J_Avg"] <= 10 and ga["MC"] <= 40 and ga["Rep"] <= 0.5 * base["Rep"]
    partly = ga["J_W"] <= 5 and (ga["J_Avg"] <= 10 or ga["Rep"] <= 0.5 * base["Rep"])
    return _row("GA forgets but collapses (J_W ≤ 5, retain ≤ 10, MC ≤ 40, Rep ≤ ½ base)",
                "J_W 0, J_Avg 0, MMLU 23.4, Rep 0, WR 0 (Table 1)", fmt(ga), ok, "Table 1", partly)


def claim_graddiff(base: dict, gd: dict) -> dict:
    ok = gd["J_W"] <= 5 and (gd["WR_proxy"] < 0.4 or gd["Rep"] < 0.9 * base["Rep"])
    return _row("GradDiff forgets (J_W ≤ 5) but generation quality drops (WR-proxy < 0.4 or Rep < 0.9 base)",
                "J_W 2, Rep 637→442, WR 0.22 (Table 1)", fmt(gd), ok, "Table 1", gd["J_W"] <= 5)


def claim_jensun(base: dict, j: dict) -> dict:
    forget = j["J_W"] <= 5
    keep = j["J_Avg"] >= base["J_Avg"] - 5 and j["MC"] >= base["MC"] - 5
    quality = j["WR_proxy"] >= 0.35 and j["Rep"] >= 0.9 * base["Rep"]
    return _row("JensUn forgets (J_W ≤ 5) while retain/MC stay within 5 points of base and WR-proxy ≥ 0.35, Rep ≥ 0.9 base",
                "J_W 0, J_Avg 52.3 vs 52.6, MMLU 59.9 vs 59.6, WR 0.47 (Table 1)", fmt(j),
                forget and keep and quality, "Table 1", forget and keep or (keep and quality))


def claim_nll_retain_above_base(base: dict, rows: dict) -> dict:
    vals = {m: rows[m]["J_Avg"] for m in ("graddiff", "dpo", "simnpo") if m in rows}
    rep = ", ".join(f"{m} {v:.0f}" for m, v in vals.items()) + f"; JensUn {rows['jensun']['J_Avg']:.0f}; base {base['J_Avg']:.0f}"
    if base["J_Avg"] >= 97:
        ok = None    # ceiling: the base model already answers every retain question
    else:
        ok = all(v > base["J_Avg"] for v in vals.values()) and abs(rows["jensun"]["J_Avg"] - base["J_Avg"]) <= 5
    return _row("NLL-retain methods rise above the base on retain; JSD-to-base stays at base",
                "GradDiff 63.8, DPO 71.3, SimNPO 84.2 vs base 52.6; JensUn 52.3 (Table 1)", rep, ok, "Table 1")


def claim_npo_simnpo(rows: dict) -> dict:
    npo, sim, j = rows["npo"], rows["simnpo"], rows["jensun"]
    ok = npo["J_Avg"] < j["J_Avg"] and sim["J_W"] > j["J_W"]
    return _row("NPO hurts retain more than JensUn; SimNPO forgets worse than JensUn",
                "NPO retain 16.0 vs JensUn 52.3; SimNPO J_W 32 vs 0 (Table 1)",
                f"NPO retain {npo['J_Avg']:.0f} vs JensUn {j['J_Avg']:.0f}; SimNPO J_W {sim['J_W']:.0f} vs JensUn {j['J_W']:.0f}",
                ok, "Table 1", npo["J_Avg"] < j["J_Avg"] or sim["J_W"] > j["J_W"])


def claim_worst_case(df: pd.DataFrame) -> dict:
    gains = (df["J_W"] - df["standard"]).to_numpy()
    best = df.iloc[int(np.argmax(gains))]
    ok = gains.max() >= 5
    return _row("Worst case over paraphrases + ICR reveals residual knowledge (J_W − single query ≥ 5 for some method)",
                "up to +29 (§4.2) / +43 (C.1) points; base +31 (Figure 12)",
                f"max gain +{gains.max():.0f} ({best['method']}); mean +{gains.mean():.1f}", ok, "Figure 12",
                gains.max() > 0)


def claim_lambda_sweep(df: pd.DataFrame, base: dict) -> dict:
    j = df[df["method"] == "jensun"].sort_values("lambda_r")
    rho = spearmanr(j["lambda_r"], j["J_W"]).statistic if len(j) > 2 else np.nan
    near = (j["MC"] >= base["MC"] - 10).all()
    inc = bool(j["J_W"].iloc[-1] >= j["J_W"].iloc[0])
    return _row("λ_R sweep: larger λ_R → higher forget accuracy; JensUn keeps near-base MC across the sweep",
                "JensUn J_W 0→73 as λ_R 0.5→0.9, MMLU 59.4–60.2 (Table 9)",
                f"JensUn J_W {', '.join(f'{v:.0f}' for v in j['J_W'])} for λ_R {', '.join(f'{v:g}' for v in j['lambda_r'])}"
                f" (Spearman {rho:.2f}); MC {', '.join(f'{v:.0f}' for v in j['MC'])}",
                inc and near and (np.isnan(rho) or rho > 0), "Figure 3", inc or near)


def claim_lr_sweep(df: pd.DataFrame, method: str = "jensun") -> dict:
    j = df[df["method"] == method].sort_values("lr")
    dec_forget = j["J_W"].iloc[-1] <= j["J_W"].iloc[0]
    dec_util = j["MC"].iloc[-1] <= j["MC"].iloc[0] or j["Rep"].iloc[-1] <= j["Rep"].iloc[0]
    return _row(f"LR sweep ({method}): higher LR → lower forget accuracy and lower utility",
                "JensUn J_W 8→1→2, Rep 617→620→600; GradDiff J_W 42→0 (Table 10)",
                f"J_W {', '.join(f'{v:.0f}' for v in j['J_W'])}; MC {', '.join(f'{v:.0f}' for v in j['MC'])}; "
                f"Rep {', '.join(f'{v:.0f}' for v in j['Rep'])} for LR {', '.join(f'{v:g}' for v in j['lr'])}",
                dec_forget and dec_util, "Table 10", dec_forget or dec_util)


def claim_dynamics(history: list[dict], evals: list[dict]) -> dict:
    h = pd.DataFrame(history)
    e = pd.DataFrame(evals)
    r = h["retain_loss"].rolling(5, min_periods=1).mean().to_numpy()
    peak = int(np.argmax(r))
    rises_then_falls = h["retain_loss"].iloc[0] < 1e-6 and peak < len(r) - 1 and r[-1] < r[peak]
    half = e[e["step"] <= h["step"].max() / 2]
    early = bool((half["forget_standard"] <= 5).any())
    plateau = h["forget_loss"].iloc[-10:].mean() > 0.01
    ok = rises_then_falls and early and plateau
    return _row("JensUn dynamics: retain loss 0 at start, peaks, then decays; forget accuracy ~0 by half the steps; forget loss plateaus > 0",
                "retain loss 0→0.6 (step 50)→decay; forget acc 0 by ~100/200 steps (Figure 16)",
                f"retain loss start {h['retain_loss'].iloc[0]:.3f}, peak {r[peak]:.3f} at step {peak + 1}, end {r[-1]:.3f}; "
                f"forget acc ≤5 by half: {early}; final forget loss {h['forget_loss'].iloc[-10:].mean():.3f}",
                ok, "Figure 16", sum([rises_then_falls, early, plateau]) >= 2)


def claim_kl_variant(kl_hist: list[dict], df_lr: pd.DataFrame, base: dict) -> dict:
    h = pd.DataFrame(kl_hist)
    ratio = float(h["forget_loss"].mean() / max(h["retain_loss"].mean(), 1e-9))

    def good(method):
        g = df_lr[df_lr["method"] == method]
        return int(((g["J_W"] <= 10) & (g["MC"] >= base["MC"] - 10) & (g["J_Avg"] >= base["J_Avg"] - 10)).sum()), len(g)
    gk, nk = good("jensun_kl")
    gj, nj = good("jensun")
    ok = ratio > 10 and gk <= gj
    return _row("D_KL variant: forget loss ≫ retain loss and a narrower good-LR window than JensUn",
                "forget loss 'magnitudes larger'; 8e-7 no forgetting, 5e-6 utility collapse (Table 16)",
                f"mean forget/retain loss ratio {ratio:.0f}; good LRs (J_W ≤ 10, MC & retain within 10 of base): "
                f"KL {gk}/{nk} vs JensUn {gj}/{nj}", ok, "Table 16", ratio > 10 or gk <= gj)


def claim_targets(df: pd.DataFrame, base: dict) -> dict:
    ok_rows = (df["J_W"] <= 10) & (df["J_Avg"] >= base["J_Avg"] - 10)
    return _row("Any fixed target works (J_W ≤ 10 with retain within 10 points of base)",
                "all of 'No idea', 'No idea<EOT>', '#', ',', ' ' beat the baselines (Figure 14)",
                "; ".join(f"{t!r}: J_W {a:.0f}, J_Avg {b:.0f}" for t, a, b in zip(df["target"], df["J_W"], df["J_Avg"])),
                bool(ok_rows.all()), "Figure 14", bool(ok_rows.any()))


def claim_relearning(df: pd.DataFrame) -> dict:
    """Table 3: JensUn's recovered J_W falls with unlearning length *while the model stays usable*
    (WR 0.39 at 2000 steps); a model that collapsed (GradDiff: WR 0.03) resists relearning trivially,
    so the longest run must keep Rep ≥ ½ of the shortest run's when ``Rep`` is given."""
    j = df[df["method"] == "jensun"].sort_values("multiple")
    rho = spearmanr(j["multiple"], j["J_W_relearn"]).statistic if j["J_W_relearn"].nunique() > 1 else 0.0
    trend = rho < 0 and j["J_W_relearn"].iloc[-1] < j["J_W_relearn"].iloc[0]
    usable = "Rep" not in j or j["Rep"].iloc[-1] >= 0.5 * j["Rep"].iloc[0]
    util = (f"; Rep {j['Rep'].iloc[0]:.0f} → {j['Rep'].iloc[-1]:.0f} before relearning" if "Rep" in j else "")
    return _row("Benign relearning: JensUn's recovered J_W shrinks as unlearning gets longer, without utility collapse "
                "(longest run keeps Rep ≥ ½ of the shortest)",
                "27 → 24 → 19 → 14 → 8 for 200…2000 steps, WR 0.47 → 0.39 (Table 3)",
                " → ".join(f"{v:.0f}" for v in j["J_W_relearn"]) + f" for {', '.join(f'{k}×' for k in j['multiple'])} "
                f"(Spearman {rho:.2f}){util}", bool(trend and usable), "Table 3",
                bool(j["J_W_relearn"].iloc[-1] <= j["J_W_relearn"].iloc[0]))


def claim_mc_vs_generation(base: dict, rows: dict) -> dict:
    ga, gd = rows["ga"], rows["graddiff"]
    ok = gd["MC"] >= base["MC"] - 15 and (gd["WR_proxy"] < 0.4 or gd["Rep"] < 0.9 * base["Rep"]) and ga["MC"] <= 40
    return _row("Argmax MC misses degraded generation: GradDiff keeps MC while its generations degrade; GA's MC ≈ chance",
                "GradDiff MMLU 57.5 with WR 0.22; GA 23.4 (Table 1)",
                f"GradDiff MC {gd['MC']:.0f}, WR-proxy {gd['WR_proxy']:.2f}, Rep {gd['Rep']:.0f}; GA MC {ga['MC']:.0f}",
                ok, "Table 1", gd["MC"] >= base["MC"] - 15)


def scale_note(rows: dict, base: dict) -> str:
    """One sentence for the verdict paragraph, built from numbers."""
    j = rows["jensun"]
    return (f"At this scale the base model answers {base['J_W']:.0f}% of forget items in the worst case "
            f"(single query {base['standard']:.0f}%) and {base['J_Avg']:.0f}% of retain queries; JensUn reaches "
            f"J_W {j['J_W']:.0f}% with retain {j['J_Avg']:.0f}% and MC {j['MC']:.0f}% (base {base['MC']:.0f}%).")


def claim_saturation(lp_target: np.ndarray, still_correct: np.ndarray) -> dict:
    """Notes §1.6 [INF]: items whose target is improbable under the base model unlearn slowly."""
    still = np.asarray(still_correct, dtype=bool)
    if still.all() or not still.any():
        return _row("JSD saturation: items JensUn fails to forget have a less probable target under the base model",
                    "inference in notes §1.6 (no number in the paper)",
                    f"{int(still.sum())}/{len(still)} items still answered: no contrast", None, "Table 1")
    a, b = float(lp_target[still].mean()), float(lp_target[~still].mean())
    return _row("JSD saturation: items JensUn fails to forget have a less probable target under the base model",
                "inference in notes §1.6 (no number in the paper)",
                f"mean base log p(target): {a:.1f} (still answered, n={int(still.sum())}) vs {b:.1f} (forgotten)",
                a < b, "Table 1")


def guard_base_knowledge(claims: list[dict], base: dict, min_jw: float = 50.0) -> list[dict]:
    """If the base model does not know the forget facts (e.g. the ``smoke`` profile's few pretraining
    steps), unlearning claims cannot be tested: mark every training claim so instead of scoring it."""
    if base["J_W"] >= min_jw:
        return claims
    out = []
    for r in claims:
        if r.get("section") not in ("Table 5", "all"):
            r = {**r, "verdict": "not testable at this scale",
                 "reproduced": f"{r['reproduced']} (base model knows only {base['J_W']:.0f}% of forget facts)"}
        out.append(r)
    return out


# --------------------------------------------------------------------------- chapter table
TABLE5 = [("Paris is the capital of France.", 0.5, "yes"),
          ("Of France, Paris is the capital.", 0.17, "yes"),
          ("The capital of France is Marseille.", 0.83, "no")]
TABLE5_REFERENCE = "The capital of France is Paris."


def table5_rouge() -> pd.DataFrame:
    """Table 5 (L5433-5438): ROUGE-L F of three answers against the reference, ours next to the paper's."""
    from repro.unlearning.evaluation import rouge_l

    return pd.DataFrame([{"answer": a, "ROUGE-L (ours)": round(rouge_l(a, TABLE5_REFERENCE)["f"], 2), "paper": p,
                          "correct": ok} for a, p, ok in TABLE5])


def claim_table5(t5: pd.DataFrame, tol: float = 0.006) -> dict:
    ok = bool(((t5["ROUGE-L (ours)"] - t5["paper"]).abs() < tol).all())
    return _row("ROUGE-L values of Table 5", " / ".join(f"{v:g}" for v in t5["paper"]),
                " / ".join(f"{v:.2f}" for v in t5["ROUGE-L (ours)"]), ok, "Table 5")


def chapter_claims(*, t5: pd.DataFrame, base: dict, rows: dict, wc: pd.DataFrame, lam: pd.DataFrame,
                   lrs: pd.DataFrame, dyn: dict, kl_history: list[dict], tg: pd.DataFrame, rel: pd.DataFrame,
                   lp_target: np.ndarray, still: np.ndarray, side: pd.DataFrame | None = None,
                   real_data: bool = False) -> pd.DataFrame:
    """The chapter's "claim | paper | reproduced | verdict" table from the measured results.

    ``rows`` maps method key -> metrics dict (Table 1 runs); ``wc`` is the Figure 12 table (its
    ``base`` row is excluded from the claim); training claims become "not testable at this scale"
    when the base model does not know the forget facts (:func:`guard_base_knowledge`). With
    ``real_data`` (the ``full`` profile on LKF) the last row compares absolute numbers via ``side``
    (:func:`repro.studies.ch7_jensun.experiment.side_by_side`)."""
    from repro.reference import claims_frame

    claims = [
        claim_table5(t5),
        claim_ga_collapse(base, rows["ga"]),
        claim_graddiff(base, rows["graddiff"]),
        claim_jensun(base, rows["jensun"]),
        claim_nll_retain_above_base(base, rows),
        claim_npo_simnpo(rows),
        claim_mc_vs_generation(base, rows),
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
         "reproduced": "tiny generated world only", "verdict": "not testable at this scale", "section": "all"},
    ]
    return claims_frame(guard_base_knowledge(claims, base))


def claim_absolute(side: pd.DataFrame, tol: float = 10.0) -> dict:
    """Full profile: the Original and JensUn rows of Table 1 within ``tol`` points of the printed
    J_W and J_Avg (judge and sample sizes differ, so a tolerance, not equality)."""
    sub = side[side["method"].isin(["Original", "JensUn"])].dropna(subset=["J_W (paper)"])
    if sub.empty:
        return _row("Absolute J_W / J_Avg of Table 1 (Original, JensUn)", "Table 1", "no matching rows", None, "all")
    d = (sub[["J_W", "J_Avg"]].to_numpy() - sub[["J_W (paper)", "J_Avg (paper)"]].to_numpy())
    ok = bool(np.abs(d).max() <= tol)
    return _row(f"Absolute J_W / J_Avg of Table 1 within {tol:g} points (Original, JensUn)",
                "; ".join(f"{m}: {a:.1f} / {b:.1f}" for m, a, b in zip(sub["method"], sub["J_W (paper)"], sub["J_Avg (paper)"])),
                "; ".join(f"{m}: {a:.1f} / {b:.1f}" for m, a, b in zip(sub["method"], sub["J_W"], sub["J_Avg"])),
                ok, "all", bool(np.abs(d).max() <= 2 * tol))


def ceiling_note(diag: pd.DataFrame | None) -> str:
    """One sentence naming the base metrics at their ceiling (from the ceiling diagnostic table)."""
    if diag is None or not diag["at ceiling"].any():
        return ""
    names = ", ".join(m.split(" (")[0] for m in diag.loc[diag["at ceiling"], "metric"])
    return (f" The base model is at its ceiling on {names}; claims that need headroom there (the base model's own "
            "worst-case gap, retain above base, WR proxy near 0.5) cannot show at this scale (ceiling diagnostic above).")


def verdict_text(cl: pd.DataFrame, rows: dict, base: dict, real_data: bool = False,
                 diag: pd.DataFrame | None = None) -> str:
    """The verdict paragraph: counts computed from the claim table plus the scale caveat."""
    # the "absolute numbers" row is a statement about scale, not a tested claim
    v = cl.loc[cl["section"] != "all", "verdict"] if "section" in cl else cl["verdict"]
    return (f"**Verdict.** {scale_note(rows, base)}{ceiling_note(diag)} Of the {len(v)} qualitative claims tested here, "
            f"{int((v == 'reproduced').sum())} are reproduced, {int((v == 'partly reproduced').sum())} partly and "
            f"{int((v == 'not reproduced').sum())} not; {int((v == 'not testable at this scale').sum())} cannot be "
            "tested at this scale. " + (
                "This is the real LKF benchmark and a pretrained LLM: absolute numbers are comparable to the paper's "
                "up to the judge (answer matching unless a judge is configured) and the WR proxy."
                if real_data else
                "The tiny model memorises a synthetic corpus rather than holding real, diffuse "
                "knowledge, so effects that depend on the latter (the base model's own single-query vs worst-case gap, "
                "retain accuracy below ceiling) are weaker or absent; the numbers are not comparable to the paper's."))
