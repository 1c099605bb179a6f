"""Chapter 7 figures (the paper reprinted in Sec. 8.5): Pareto fronts (Figure 3), training dynamics
(Figure 16), worst-case vs single-query bars (Figure 12), paraphrase diversity (Figure 13), target
ablation (Figure 14), benign relearning (Table 3) and its curve over relearning steps (Figure 11),
and the ROUGE-L problems (Figure 2 left, Figure 17, Table 5).

Figures are sized for the book's page width (about 8 inches at most) and carry no per-point text
labels that could collide: sweep values go into the legend, baselines get their own markers.
"""
from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

from repro.plots import PALETTE

METHOD_COLORS = {"jensun": "#D62728", "graddiff": PALETTE[0], "ga": PALETTE[7], "npo": PALETTE[2],
                 "simnpo": PALETTE[3], "dpo": PALETTE[4], "rmu": PALETTE[5], "jensun_kl": PALETTE[1],
                 "npo_sam": "#8C564B", "base": "#000000"}
MARKERS = ["x", "+", "^", "v", "<", ">", "D", "P", "h", "1"]


def _color(m: str) -> str:
    return METHOD_COLORS.get(m, "#555555")


def _sweep_text(values, col: str) -> str:
    v = [f"{x:g}" for x in values]
    name = {"lambda_r": "λ_R", "lr": "LR"}.get(col, col)
    return f"{name} {v[0]}→{v[-1]}" if len(v) > 1 else f"{name} {v[0]}"


def pareto_fronts(df: pd.DataFrame, base: dict, utilities=(("Rep", "Rep"), ("WR_proxy", "WR proxy"), ("MC", "MC probe (%)")),
                  label_col: str = "lambda_r"):
    """Forget J_W (x, lower is better) vs each utility (y, higher is better); one curve per method
    from a sweep, the base model as a star. Figure 3 analogue. The sweep runs from the hollow
    marker (first value) to the large filled one (last value); the values are in the legend."""
    n = len(utilities)
    ncol = 2 if n > 2 else n
    nrow = int(np.ceil((n + 1) / ncol)) if n > 2 else 1
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.9 * ncol, 3.2 * nrow), squeeze=False)
    flat = axes.ravel()
    for ax, (col, name) in zip(flat, utilities):
        for m, g in df.groupby("method"):
            g = g.sort_values(label_col)
            c = _color(m)
            ax.plot(g["J_W"], g[col], "-", color=c, lw=2 if m == "jensun" else 1.2,
                    label=f"{m} ({_sweep_text(g[label_col], label_col)})")
            ax.plot(g["J_W"].iloc[0], g[col].iloc[0], "o", mfc="white", mec=c, ms=7)
            ax.plot(g["J_W"].iloc[1:-1], g[col].iloc[1:-1], "o", color=c, ms=4)
            ax.plot(g["J_W"].iloc[-1], g[col].iloc[-1], "o", color=c, ms=8)
        ax.plot([base["J_W"]], [base[col]], marker="*", ms=14, color="k", ls="", label="base model")
        ax.set_xlabel("forget J_W (%) ↓")
        ax.set_ylabel(name + " ↑")
    handles, labels = flat[0].get_legend_handles_labels()
    if n > 2 and len(flat) > n:     # the spare panel holds the legend
        for ax in flat[n + 1:]:
            ax.axis("off")
        flat[n].axis("off")
        flat[n].legend(handles, labels, loc="center", fontsize=8, title="○ first → ● last sweep value",
                       title_fontsize=8, frameon=False)
    else:
        fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8, frameon=False,
                   bbox_to_anchor=(0.5, -0.02))
        fig.subplots_adjust(bottom=0.3)
    fig.tight_layout()
    return fig


def training_dynamics(history: list[dict], evals: list[dict]):
    """JensUn's forget/retain accuracy and forget/retain losses over steps (Figure 16 analogue)."""
    h = pd.DataFrame(history)
    e = pd.DataFrame(evals)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 3.2))
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
    fig, ax = plt.subplots(figsize=(min(8, max(6, 1.1 * len(df))), 3.4))
    x = np.arange(len(df))
    w = 0.2
    for i, (c, col) in enumerate(cols):
        ax.bar(x + (i - 1.5) * w, df[c], w, color=col, label=c)
    for xi, (_, r) in zip(x, df.iterrows()):
        ax.annotate(f"+{r['J_W'] - r['standard']:.0f}", (xi + 1.5 * w, r["J_W"]), ha="center", fontsize=7,
                    xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(x, df["method"], rotation=20)
    ax.set_ylabel("forget accuracy (%)")
    ax.set_ylim(0, 115)
    ax.legend(fontsize=8, ncol=4, loc="upper center", bbox_to_anchor=(0.5, 1.16), frameon=False)
    fig.tight_layout()
    return fig


def paraphrase_diversity(df: pd.DataFrame):
    """Figure 13 analogue: forget accuracy as the worst case over the first k query formats
    (k = 1 the canonical question, then held-out paraphrases), one line per model; the diamond at
    the right end is J_W (adding the in-context-retain prompts)."""
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    kmax = int(df["query formats k"].max()) if len(df) else 1
    for i, (m, g) in enumerate(df.groupby("model", sort=False)):
        c = _color(m) if m in METHOD_COLORS else PALETTE[i % len(PALETTE)]
        ax.plot(g["query formats k"], g["accuracy"], "-", color=c, lw=2 if m in ("base", "jensun") else 1.2, label=m)
        ax.plot([kmax + 1], [g["J_W"].iloc[0]], "D", color=c, ms=5)
    ax.set_xticks(list(range(1, kmax + 1)) + [kmax + 1],
                  [str(k) if (k == 1 or k % 5 == 0 or k == kmax) else "" for k in range(1, kmax + 1)] + ["J_W"])
    ax.set_xlabel("query formats k (1 = canonical question, then held-out paraphrases)")
    ax.set_ylabel("forget accuracy, worst case (%)")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.tight_layout()
    return fig


def target_ablation(df: pd.DataFrame, base: dict, baselines: pd.DataFrame | None = None,
                    utilities=(("WR_proxy", "WR proxy"), ("J_Avg", "retain J_Avg (%)"))):
    """J_W vs utility for each JensUn target string (Figure 14 analogue), baselines in grey, each
    with its own marker; one legend under the panels instead of labels next to the points."""
    fig, axes = plt.subplots(1, len(utilities), figsize=(3.9 * len(utilities), 3.3))
    for ax, (col, name) in zip(np.atleast_1d(axes), utilities):
        if baselines is not None:
            for j, (_, r) in enumerate(baselines.iterrows()):
                ax.scatter([r["J_W"]], [r[col]], color="#999999", marker=MARKERS[j % len(MARKERS)], s=40,
                           label=f"{r['method']} (baseline)")
        for i, (_, r) in enumerate(df.iterrows()):
            ax.scatter([r["J_W"]], [r[col]], color=PALETTE[i % len(PALETTE)], label=f"JensUn, target {r['target']!r}",
                       s=45, edgecolor="white", zorder=3)
        ax.plot([base["J_W"]], [base[col]], marker="*", ms=14, color="k", ls="", label="base model")
        ax.set_xlabel("forget J_W (%) ↓")
        ax.set_ylabel(name + " ↑")
    handles, labels = np.atleast_1d(axes)[0].get_legend_handles_labels()
    fig.tight_layout()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3, fontsize=8, frameon=False)
    return fig


def _multiple_axis(ax, multiples):
    ks = sorted(set(float(k) for k in multiples))
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(ks))
    ax.set_xticks(ks, [f"{k:g}×" for k in ks])
    # no minor tick labels (matplotlib would print 3×10⁰, 6×10⁰ between the multiples)
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())


def relearning(df: pd.DataFrame):
    """J_W after unlearning and after benign relearning vs unlearning length (Table 3 analogue)."""
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    for m, g in df.groupby("method"):
        g = g.sort_values("multiple")
        ax.plot(g["multiple"], g["J_W_relearn"], "o-", color=_color(m), label=f"{m}: after relearning")
        ax.plot(g["multiple"], g["J_W_unlearn"], "x:", color=_color(m), alpha=0.7, label=f"{m}: unlearned")
    _multiple_axis(ax, df["multiple"])
    ax.set_xlabel("unlearning length (× base steps)")
    ax.set_ylabel("forget J_W (%)")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.tight_layout()
    return fig


def relearning_curves(df: pd.DataFrame):
    """Figure 11 analogue: forget J_W (solid) and single-query accuracy (dotted) of each unlearned
    model over benign relearning steps; step 0 is the unlearned model."""
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    for m, g in df.groupby("method"):
        g = g.sort_values("relearn_step")
        ax.plot(g["relearn_step"], g["J_W"], "o-", color=_color(m), label=f"{m}: J_W")
        ax.plot(g["relearn_step"], g["standard"], ":", color=_color(m), alpha=0.7, label=f"{m}: single query")
    ax.set_xlabel("relearning step (cross-entropy on disjoint facts)")
    ax.set_ylabel("forget accuracy (%)")
    ax.set_ylim(-3, 103)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.tight_layout()
    return fig


def rouge_problems(df: pd.DataFrame, paper_f=None):
    """ROUGE-L recall, precision and F of answers against one reference, with whether each answer
    is correct (the ROUGE problems of Figure 2 left / Figure 17 on Table 5's example): a wrong
    answer can score higher than correct ones. ``paper_f`` marks the printed F values."""
    fig, ax = plt.subplots(figsize=(7.2, 3.4))
    x = np.arange(len(df))
    w = 0.25
    for i, (c, col) in enumerate([("recall", "#9ECAE1"), ("precision", "#4292C6"), ("F", "#08519C")]):
        ax.bar(x + (i - 1) * w, df[c], w, color=col, label=f"ROUGE-L {c}")
    if paper_f is not None:
        ax.plot(x + w, list(paper_f), "k_", ms=14, mew=2, label="F printed in Table 5")
    labels = [textwrap.fill(f"{a} ({'correct' if ok == 'yes' else 'WRONG'})", 22)
              for a, ok in zip(df["answer"], df["correct"])]
    ax.set_xticks(x, labels, fontsize=8)
    for t, ok in zip(ax.get_xticklabels(), df["correct"]):
        t.set_color("#000000" if ok == "yes" else "#D62728")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("score vs reference")
    ax.legend(fontsize=8, loc="upper left", frameon=False)
    fig.tight_layout()
    return fig
