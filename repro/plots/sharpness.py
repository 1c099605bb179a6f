"""Chapter 5 figures: τ heatmap, sharpness-vs-error scatter (Fig. 2/5 style), DLN panels (Fig. 7),
Fig. 1 scale sensitivity, ablations (Figs. 30-31)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from repro.plots import PALETTE

GROUP_COLORS = {"aug=off, mixup=off": PALETTE[0], "aug=on, mixup=off": PALETTE[1],
                "aug=off, mixup=on": PALETTE[2], "aug=on, mixup=on": PALETTE[3]}


def tau_heatmap(taus: pd.DataFrame, target: str = "test_err", value: str = "tau", title: str | None = None):
    """Rows: definitions; columns: ρ index (value annotated with ρ)."""
    sub = taus[taus.target == target].copy()
    sub["rho_rank"] = sub.groupby("definition")["rho"].rank(method="dense").astype(int)
    defs = list(dict.fromkeys(sub.definition))
    ranks = sorted(sub.rho_rank.unique())
    M = np.full((len(defs), len(ranks)), np.nan)
    lab = [["" for _ in ranks] for _ in defs]
    for r in sub.itertuples():
        i, j = defs.index(r.definition), ranks.index(r.rho_rank)
        M[i, j] = getattr(r, value)
        lab[i][j] = f"{M[i, j]:+.2f}\nρ={r.rho:g}"
    fig, ax = plt.subplots(figsize=(1.6 + 1.5 * len(ranks), 0.45 * len(defs) + 1.2))
    im = ax.imshow(M, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    for i in range(len(defs)):
        for j in range(len(ranks)):
            ax.text(j, i, lab[i][j], ha="center", va="center", fontsize=7)
    ax.set_yticks(range(len(defs)), defs, fontsize=8)
    ax.set_xticks(range(len(ranks)), [f"radius {k}" for k in ranks])
    ax.grid(False)
    fig.colorbar(im, ax=ax, label="Kendall τ")
    ax.set_title(title or f"τ(sharpness, {target})")
    fig.tight_layout()
    return fig


def sharpness_scatter(df: pd.DataFrame, cols: list[str], targets=("test_err", "shift_err"), taus=None):
    """Sharpness (x) vs error (y), coloured by augment × mixup subgroup, marker size by LR."""
    from repro.sharpness.kendall import kendall_tau

    fig, axes = plt.subplots(len(targets), len(cols), figsize=(3.6 * len(cols), 3.0 * len(targets)), squeeze=False)
    size = 15 + 60 * (np.log(df.lr) - np.log(df.lr).min()) / max(np.ptp(np.log(df.lr)), 1e-12)
    for j, c in enumerate(cols):
        for i, t in enumerate(targets):
            ax = axes[i, j]
            for g, sub in df.groupby("group"):
                ax.scatter(sub[c], sub[t] * 100, s=size[sub.index], c=GROUP_COLORS.get(g, "gray"), label=g,
                           alpha=0.8, edgecolor="k", linewidth=0.3)
            ok = df[[c, t]].dropna()
            ax.set_title(f"{c}\nτ = {kendall_tau(ok[t], ok[c]):+.2f}", fontsize=9)
            ax.set_xlabel("sharpness")
            ax.set_ylabel({"test_err": "test error (%)", "shift_err": "corrupted test error (%)"}.get(t, t))
    axes[0, 0].legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def lr_scatter(df: pd.DataFrame, col: str):
    fig, ax = plt.subplots(figsize=(4.5, 3.4))
    for g, sub in df.groupby("group"):
        ax.scatter(sub.lr, sub[col], c=GROUP_COLORS.get(g, "gray"), label=g, edgecolor="k", linewidth=0.3)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel(f"sharpness ({col})")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def dln_panels(df: pd.DataFrame, taus: dict):
    cols = [("l1", "‖β‖₁"), ("half_tr_adaptive", "½ tr ∇̃²L"), ("tr_plain", "tr ∇²L"),
            ("lmax_adaptive", "λ_max ∇̃²L")]
    fig, axes = plt.subplots(1, 5, figsize=(18, 3.4))
    ok = df[df.converged]
    for ax, (c, lab) in zip(axes, cols):
        sc = ax.scatter(ok[c], ok.test_loss, c=np.log10(ok.init_scale), s=10, cmap="viridis")
        ax.set_xlabel(lab)
        ax.set_ylabel("test loss ‖β−β*‖²")
        ax.set_title(f"τ = {taus[c]:+.2f}")
    ax = axes[4]
    ax.scatter(ok.tr_adaptive, ok.lmax_adaptive, c=np.log10(ok.init_scale), s=10, cmap="viridis")
    ax.set_xlabel("tr ∇̃²L")
    ax.set_ylabel("λ_max ∇̃²L")
    ax.set_title(f"τ(tr, λ_max) = {taus['tr_vs_lmax_adaptive']:+.2f}")
    fig.colorbar(sc, ax=axes, label="log10 init scale")
    return fig


def fig1_scale(alphas, curves: dict):
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for lab, y in curves.items():
        ax.plot(alphas, y, marker=".", label=lab)
    ax.set_xscale("log")
    ax.set_xlabel("weight scaling coefficient α")
    ax.set_ylabel("sharpness")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def ablation_plot(abl: pd.DataFrame, xcol: str, title: str):
    """One line per model: sharpness vs the ablated setting (steps or m)."""
    fig, ax = plt.subplots(figsize=(4.5, 3.4))
    for mi, sub in abl.groupby("model"):
        ax.plot(sub[xcol], sub.sharpness, marker="o", alpha=0.7)
    ax.set_xscale("log", base=2)
    ax.set_xlabel(xcol)
    ax.set_ylabel("sharpness")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def within_vs_global(taus: pd.DataFrame, target: str = "test_err", highlight: str | None = None):
    """Each (definition, ρ): global τ (x) vs the mean within-subgroup τ (y) — the paper's point that
    correlations inside augment × mixup subgroups (S:4196) need not survive globally."""
    sub = taus[taus.target == target].dropna(subset=["tau_within_mean"])
    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    adaptive = sub.definition.str.startswith("adaptive")
    ax.scatter(sub.tau[~adaptive], sub.tau_within_mean[~adaptive], c=PALETTE[0], label="standard", edgecolor="k", linewidth=0.3)
    ax.scatter(sub.tau[adaptive], sub.tau_within_mean[adaptive], c=PALETTE[1], label="adaptive", edgecolor="k", linewidth=0.3)
    if highlight is not None:
        h = sub[sub.definition == highlight]
        ax.scatter(h.tau, h.tau_within_mean, s=120, facecolor="none", edgecolor="k", label=highlight)
    ax.axline((0, 0), slope=1, color="gray", lw=0.8, ls="--")
    ax.axhline(0, color="gray", lw=0.5)
    ax.axvline(0, color="gray", lw=0.5)
    ax.set_xlim(-1, 1)
    ax.set_ylim(-1, 1)
    ax.set_xlabel(f"global τ (sharpness, {target})")
    ax.set_ylabel("mean within-subgroup τ")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
