"""Chapter 7 figures: Pareto fronts (Fig. 3), training dynamics (Fig. 16), worst-case vs
single-query bars (Fig. 12), target ablation (Fig. 14), benign relearning (Table 3 / Fig. 11)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from repro.plots import PALETTE

METHOD_COLORS = {"jensun": "#D62728", "graddiff": PALETTE[0], "ga": PALETTE[7], "npo": PALETTE[2],
                 "simnpo": PALETTE[3], "dpo": PALETTE[4], "rmu": PALETTE[5], "jensun_kl": PALETTE[1],
                 "npo_sam": "#8C564B"}


def _color(m: str) -> str:
    return METHOD_COLORS.get(m, "#555555")


def pareto_fronts(df: pd.DataFrame, base: dict, utilities=(("Rep", "Rep"), ("WR_proxy", "WR proxy"), ("MC", "MC probe (%)")),
                  label_col: str = "lambda_r"):
    """Forget J_W (x, lower is better) vs each utility (y, higher is better); one curve per method
    from a sweep, the base model as a star. Figure 3 analogue."""
    fig, axes = plt.subplots(1, len(utilities), figsize=(4.2 * len(utilities), 3.6))
    for ax, (col, name) in zip(np.atleast_1d(axes), utilities):
        for m, g in df.groupby("method"):
            g = g.sort_values("J_W")
            ax.plot(g["J_W"], g[col], "o-", color=_color(m), label=m, lw=2 if m == "jensun" else 1.2)
            for _, r in g.iterrows():
                ax.annotate(f"{r[label_col]:g}", (r["J_W"], r[col]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.plot([base["J_W"]], [base[col]], marker="*", ms=14, color="k", ls="", label="base")
        ax.set_xlabel("forget J_W (%) ↓")
        ax.set_ylabel(name + " ↑")
    np.atleast_1d(axes)[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def training_dynamics(history: list[dict], evals: list[dict]):
    """JensUn's forget/retain accuracy and forget/retain losses over steps (Figure 16 analogue)."""
    h = pd.DataFrame(history)
    e = pd.DataFrame(evals)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4))
    a1.plot(e["step"], e["forget_standard"], "o-", color="#D62728", label="forget (single query)")
    a1.plot(e["step"], e["forget_J_P"], "s--", color="#D62728", alpha=0.6, label="forget J_P")
    a1.plot(e["step"], e["retain"], "o-", color=PALETTE[0], label="retain J_Avg")
    a1.set_xlabel("unlearning step")
    a1.set_ylabel("accuracy (%)")
    a1.legend(fontsize=8)
    sm = lambda s: s.rolling(5, min_periods=1).mean()
    a2.plot(h["step"], sm(h["forget_loss"]), color="#D62728", label="forget loss (JSD)")
    a2.plot(h["step"], sm(h["retain_loss"]), color=PALETTE[0], label="retain loss (JSD)")
    a2.set_xlabel("unlearning step")
    a2.set_ylabel("loss (5-step mean)")
    a2.legend(fontsize=8)
    fig.tight_layout()
    return fig


def worst_case_bars(df: pd.DataFrame):
    """Standard vs J_P vs J_ICR vs J_W per method (Figure 12 analogue); gain J_W − standard annotated."""
    cols = [("standard", "#999999"), ("J_P", "#D62728"), ("J_ICR", "#9ECAE1"), ("J_W", "#08519C")]
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(df)), 3.6))
    x = np.arange(len(df))
    w = 0.2
    for i, (c, col) in enumerate(cols):
        ax.bar(x + (i - 1.5) * w, df[c], w, color=col, label=c)
    for xi, (_, r) in zip(x, df.iterrows()):
        ax.annotate(f"+{r['J_W'] - r['standard']:.0f}", (xi + 1.5 * w, r["J_W"]), ha="center", fontsize=7,
                    xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(x, df["method"], rotation=20)
    ax.set_ylabel("forget accuracy (%)")
    ax.legend(fontsize=8, ncol=4)
    fig.tight_layout()
    return fig


def target_ablation(df: pd.DataFrame, base: dict, baselines: pd.DataFrame | None = None,
                    utilities=(("WR_proxy", "WR proxy"), ("J_Avg", "retain J_Avg (%)"))):
    """J_W vs utility for each JensUn target string (Figure 14 analogue), baselines in grey."""
    fig, axes = plt.subplots(1, len(utilities), figsize=(4.3 * len(utilities), 3.5))
    for ax, (col, name) in zip(np.atleast_1d(axes), utilities):
        if baselines is not None:
            ax.scatter(baselines["J_W"], baselines[col], color="#bbbbbb", marker="x")
            for _, r in baselines.iterrows():
                ax.annotate(r["method"], (r["J_W"], r[col]), fontsize=7, color="#888888")
        for i, (_, r) in enumerate(df.iterrows()):
            ax.scatter([r["J_W"]], [r[col]], color=PALETTE[i % len(PALETTE)], label=repr(r["target"]), s=40)
        ax.plot([base["J_W"]], [base[col]], marker="*", ms=14, color="k", ls="", label="base")
        ax.set_xlabel("forget J_W (%) ↓")
        ax.set_ylabel(name + " ↑")
    np.atleast_1d(axes)[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def relearning(df: pd.DataFrame):
    """J_W after unlearning and after benign relearning vs unlearning length (Table 3 analogue)."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for m, g in df.groupby("method"):
        g = g.sort_values("multiple")
        ax.plot(g["multiple"], g["J_W_relearn"], "o-", color=_color(m), label=f"{m}: after relearning")
        ax.plot(g["multiple"], g["J_W_unlearn"], "x:", color=_color(m), alpha=0.6, label=f"{m}: unlearned")
    ax.set_xscale("log")
    ax.set_xticks(sorted(df["multiple"].unique()), [f"{k}×" for k in sorted(df["multiple"].unique())])
    ax.set_xlabel("unlearning length (× base steps)")
    ax.set_ylabel("forget J_W (%)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
