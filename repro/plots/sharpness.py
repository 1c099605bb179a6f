"""Chapter 5 figures: τ heatmap, sharpness-vs-error scatter (Fig. 2/5 style), DLN panels (Fig. 7),
Fig. 1 scale sensitivity, ablations (Figs. 30-31), the generalization gap (Fig. 8), one scatter per
definition (Figs. 33-44), original vs augmented sharpness points (Fig. 29).  Figure numbers are the
paper's (Sec. 8.3)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

from repro.plots import PALETTE, figure_check, page_figsize

GROUP_COLORS = {"aug=off, mixup=off": PALETTE[0], "aug=on, mixup=off": PALETTE[1],
                "aug=off, mixup=on": PALETTE[2], "aug=on, mixup=on": PALETTE[3]}


def _taus_demo():
    from repro.sharpness.definitions import list_definitions

    rng = np.random.default_rng(0)
    rows = [dict(definition=d, rho=r, target=t, tau=float(rng.uniform(-0.6, 0.4)), tau_within_mean=float(rng.uniform(-0.5, 0.6)))
            for d in list_definitions() for r in (0.001, 0.004) for t in ("test_err", "shift_err")]
    return (pd.DataFrame(rows), "test_err")


@figure_check(_taus_demo)
def tau_heatmap(taus: pd.DataFrame, target: str = "test_err", value: str = "tau", title: str | None = None):
    """Rows: definitions; columns: ρ index (value annotated with ρ)."""
    if not len(taus) or not (taus.target == target).any():
        return no_data(f"no τ for {target}: too few kept models in this profile")
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
    fig, ax = plt.subplots(figsize=(2.2 + 1.3 * len(ranks), 0.5 * len(defs) + 1.2))
    im = ax.imshow(M, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    for i in range(len(defs)):
        for j in range(len(ranks)):
            ax.text(j, i, lab[i][j], ha="center", va="center", fontsize=7.5)
    ax.set_yticks(range(len(defs)), defs, fontsize=8)
    ax.set_xticks(range(len(ranks)), [f"radius {k}" for k in ranks])
    ax.grid(False)
    fig.colorbar(im, ax=ax, label="Kendall τ")
    ax.set_title(title or f"τ(sharpness, {target})")
    fig.tight_layout()
    return fig


@figure_check(lambda: (_zoo_demo(), ["adaptive_worst_linf_ln@0.001", "adaptive_worst_linf@0.001"]))
def sharpness_scatter(df: pd.DataFrame, cols: list[str], targets=("test_err", "shift_err"), taus=None):
    """Sharpness (x) vs error (y), coloured by augment × mixup subgroup, marker size by LR."""
    from repro.sharpness.kendall import kendall_tau

    if len(df) < 3 or not cols:
        return no_data("fewer than 3 kept models: no scatter")
    fig, axes = plt.subplots(len(targets), len(cols), figsize=page_figsize(0.45 * len(targets) * 2 / max(len(cols), 1)),
                             squeeze=False)
    size = 15 + 60 * (np.log(df.lr) - np.log(df.lr).min()) / max(np.ptp(np.log(df.lr)), 1e-12)
    for j, c in enumerate(cols):
        for i, t in enumerate(targets):
            ax = axes[i, j]
            for g, sub in df.groupby("group"):
                ax.scatter(sub[c], sub[t] * 100, s=size[sub.index], c=GROUP_COLORS.get(g, "gray"), label=g,
                           alpha=0.8, edgecolor="k", linewidth=0.3)
            ok = df[[c, t]].dropna()
            ax.set_title(f"{c}\nτ = {kendall_tau(ok[t], ok[c]):+.2f}", fontsize=9)
            ax.xaxis.set_major_locator(plt.MaxNLocator(4))
            ax.set_xlabel("sharpness")
            ax.set_ylabel({"test_err": "test error (%)", "shift_err": "corrupted test error (%)"}.get(t, t))
    axes[0, 0].legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def no_data(message: str):
    """A small figure that says why a plot is empty (too few kept models in a small profile)."""
    fig, ax = plt.subplots(figsize=page_figsize(0.2, 5.0))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=10, wrap=True)
    return fig


def _log_ticks(ax, values, axis: str = "x") -> None:
    """Ticks of a log axis only at ``values`` (plain numbers): matplotlib's default log ticks put
    minor labels like 3×10⁻¹ next to 10⁰ and collide at page width."""
    vals = sorted({float(v) for v in values if np.isfinite(v) and v > 0})
    ax_ = ax.xaxis if axis == "x" else ax.yaxis
    ax_.set_major_locator(FixedLocator(vals))
    ax_.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax_.set_minor_locator(NullLocator())
    ax_.set_minor_formatter(NullFormatter())


def _zoo_demo(n: int = 16, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    groups = list(GROUP_COLORS)
    df = pd.DataFrame(dict(lr=np.exp(rng.uniform(np.log(0.02), np.log(0.5), n)),
                           group=[groups[i % 4] for i in range(n)], test_err=rng.uniform(0.2, 0.5, n),
                           shift_err=rng.uniform(0.4, 0.7, n), train_err=rng.uniform(0, 0.05, n)))
    df["gen_gap"] = df.test_err - df.train_err
    from repro.sharpness.definitions import list_definitions

    for d in list_definitions():
        for r in (0.001, 0.004):
            df[f"{d}@{r:g}"] = rng.uniform(0.01, 1.0, n)
    return df


@figure_check(lambda: (_zoo_demo(), "adaptive_worst_linf_ln@0.001"))
def lr_scatter(df: pd.DataFrame, col: str):
    """Sharpness vs learning rate per augment × mixup subgroup (Fig. 6); x ticks at round learning rates."""
    if len(df) < 3:
        return no_data("fewer than 3 kept models: no scatter")
    fig, ax = plt.subplots(figsize=page_figsize(0.55, 5.2))
    for g, sub in df.groupby("group"):
        ax.scatter(sub.lr, sub[col], c=GROUP_COLORS.get(g, "gray"), label=g, edgecolor="k", linewidth=0.3)
    ax.set_xscale("log")
    lo, hi = float(df.lr.min()), float(df.lr.max())
    cands = [c * 10.0 ** e for e in range(-4, 2) for c in (1, 2, 5)]
    _log_ticks(ax, [c for c in cands if lo / 1.5 <= c <= hi * 1.5] or [lo, hi])
    ax.set_xlabel("learning rate")
    ax.set_ylabel(f"sharpness\n({col})", fontsize=9)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def _dln_demo():
    rng = np.random.default_rng(0)
    n = 30
    l1 = rng.uniform(1, 3, n)
    df = pd.DataFrame(dict(l1=l1, half_tr_adaptive=l1, tr_plain=rng.uniform(1, 9, n), lmax_adaptive=rng.uniform(0.5, 2, n),
                           tr_adaptive=2 * l1, test_loss=rng.uniform(0, 1, n), init_scale=np.exp(rng.uniform(-3, 0, n)),
                           converged=True))
    return df, dict(l1=0.8, half_tr_adaptive=0.8, tr_plain=0.3, lmax_adaptive=0.2, tr_vs_lmax_adaptive=-0.1)


@figure_check(_dln_demo)
def dln_panels(df: pd.DataFrame, taus: dict):
    """Fig. 7: test loss vs four measures, and tr vs λ_max of the rescaled Hessian, in a 2 × 3 grid at
    page width (the sixth cell holds the colour bar)."""
    cols = [("l1", "‖β‖₁"), ("half_tr_adaptive", "½ tr ∇̃²L"), ("tr_plain", "tr ∇²L"),
            ("lmax_adaptive", "λ_max ∇̃²L")]
    fig, axes = plt.subplots(2, 3, figsize=page_figsize(0.72))
    ok = df[df.converged]
    sc = None
    for ax, (c, lab) in zip(axes.flat, cols):
        sc = ax.scatter(ok[c], ok.test_loss, c=np.log10(ok.init_scale), s=9, cmap="viridis")
        ax.set_xlabel(lab)
        ax.set_ylabel("test loss ‖β−β*‖²", fontsize=9)
        ax.set_title(f"τ = {taus[c]:+.2f}", fontsize=10)
    ax = axes.flat[4]
    ax.scatter(ok.tr_adaptive, ok.lmax_adaptive, c=np.log10(ok.init_scale), s=9, cmap="viridis")
    ax.set_xlabel("tr ∇̃²L")
    ax.set_ylabel("λ_max ∇̃²L", fontsize=9)
    ax.set_title(f"τ(tr, λ_max) = {taus['tr_vs_lmax_adaptive']:+.2f}", fontsize=10)
    for ax in axes.flat[:5]:
        ax.xaxis.set_major_locator(plt.MaxNLocator(3))
        ax.yaxis.set_major_locator(plt.MaxNLocator(4))
        ax.tick_params(labelsize=8)
    axes.flat[5].axis("off")
    if sc is not None:
        fig.colorbar(sc, ax=axes.flat[5], location="left", fraction=0.5, label="log10 init scale")
    fig.tight_layout()
    return fig


@figure_check(lambda: (np.logspace(-2, 2, 30), {"ρ = 0.5": np.exp(-np.logspace(-2, 2, 30)), "LN": np.ones(30) * 0.1}))
def fig1_scale(alphas, curves: dict):
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for lab, y in curves.items():
        ax.plot(alphas, y, marker=".", label=lab)
    ax.set_xscale("log")
    ax.set_xlabel("weight scaling coefficient α")
    ax.set_ylabel("sharpness")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _abl_demo():
    rng = np.random.default_rng(0)
    rows = [dict(model=i, steps=k, test_err=0.2 + 0.02 * i, sharpness=float(rng.uniform(0.1, 1)) * (1 + 0.1 * j))
            for i in range(8) for j, k in enumerate((10, 20, 50))]
    return pd.DataFrame(rows), "steps", "adaptive_worst_linf_ln, ρ = 0.001"


@figure_check(_abl_demo)
def ablation_plot(abl: pd.DataFrame, xcol: str, title: str):
    """Figs. 30-31: one line per model, sharpness vs the ablated setting (APGD steps or m), with
    ticks exactly at the settings and a legend naming each model by its test error."""
    fig, ax = plt.subplots(figsize=page_figsize(0.55, 5.6))
    cmap = plt.get_cmap("viridis")
    models = sorted(abl.model.unique())
    for k, (mi, sub) in enumerate(abl.sort_values(xcol).groupby("model")):
        err = sub.test_err.iloc[0] if "test_err" in sub else float("nan")
        ax.plot(sub[xcol], sub.sharpness, marker="o", alpha=0.85, color=cmap(k / max(len(models) - 1, 1)),
                label=f"model {mi} ({err:.0%} test err.)" if np.isfinite(err) else f"model {mi}")
    ax.set_xscale("log")
    _log_ticks(ax, abl[xcol].unique())
    ax.set_xlabel({"steps": "APGD iterations", "m": "m (points per batch)"}.get(xcol, xcol))
    ax.set_ylabel("sharpness")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def _gap_demo():
    # the cpu book's kept models (their main measure spans 0.0047-0.0133): four 6-character ticks collided there
    rng = np.random.default_rng(0)
    n, col = 16, "adaptive_worst_linf_ln@0.001"
    groups = ["aug=off, mixup=on", "aug=on, mixup=on", "aug=on, mixup=off", "aug=off, mixup=off"]
    return (pd.DataFrame({"group": [groups[i % 4] for i in range(n)], col: np.linspace(0.00467, 0.01329, n),
                          "test_err": rng.uniform(0.2, 0.3, n), "gen_gap": rng.uniform(0.18, 0.29, n)}), col)


@figure_check(_gap_demo)
def gap_scatter(df: pd.DataFrame, col: str):
    """Fig. 8 analogue: the same sharpness against test error (left) and the generalization gap
    (right), coloured by subgroup, τ in each title (App. B: with a train-error filter the two agree)."""
    from matplotlib.ticker import FormatStrFormatter

    from repro.sharpness.kendall import kendall_tau

    if len(df) < 3:
        return no_data("fewer than 3 kept models: no scatter")
    fig, axes = plt.subplots(1, 2, figsize=page_figsize(0.42), sharex=True)
    for ax, t, lab in zip(axes, ("test_err", "gen_gap"), ("test error (%)", "generalization gap (%)")):
        for g, sub in df.groupby("group"):
            ax.scatter(sub[col], sub[t] * 100, c=GROUP_COLORS.get(g, "gray"), label=g, edgecolor="k", linewidth=0.3, s=22)
        ok = df[[col, t]].dropna()
        tau = kendall_tau(ok[t], ok[col]) if len(ok) > 1 else float("nan")
        ax.set_title(f"τ = {tau:+.2f}", fontsize=10)
        ax.set_xlabel("sharpness")
        ax.set_ylabel(lab)
        # three ticks in short form: at half the page width four 6-character ticks (0.0075) collide
        ax.xaxis.set_major_locator(plt.MaxNLocator(3))
        ax.xaxis.set_major_formatter(FormatStrFormatter("%.3g"))
    axes[1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def _definition_columns(df: pd.DataFrame, grid) -> list[str]:
    """One column per definition of ``grid``, at its smallest ρ, in grid order."""
    out = {}
    for d, r in grid:
        out[d] = min(out.get(d, r), r)
    return [f"{d}@{r:g}" for d, r in out.items() if f"{d}@{r:g}" in df.columns]


def _short_label(d: str) -> str:
    from repro.sharpness.definitions import get

    return get(d).label.replace("Adaptive ", "adapt. ").replace("Standard ", "std. ")


@figure_check(lambda: (_zoo_demo(), [(d, r) for d in ("adaptive_worst_linf_ln", "standard_avg_l2", "adaptive_avg_linf")
                                     for r in (0.001, 0.004)]))
def definition_scatter(df: pd.DataFrame, grid, target: str = "test_err", ncols: int = 3):
    """Figs. 33-44 analogue: sharpness vs ``target`` with one panel per definition (its smallest ρ in
    ``grid``), coloured by subgroup, τ in each panel's title."""
    from repro.sharpness.kendall import kendall_tau

    cols = _definition_columns(df, grid)
    if len(df) < 3 or not cols:
        return no_data("fewer than 3 kept models: no scatter")
    nrows = max(1, -(-len(cols) // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=page_figsize(0.33 * nrows), squeeze=False)
    for ax, c in zip(axes.flat, cols):
        d, r = c.split("@")
        for g, sub in df.groupby("group"):
            ax.scatter(sub[c], sub[target] * 100, c=GROUP_COLORS.get(g, "gray"), s=12, edgecolor="k", linewidth=0.2,
                       label=g)
        ok = df[[c, target]].dropna()
        tau = kendall_tau(ok[target], ok[c]) if len(ok) > 1 else float("nan")
        ax.set_title(f"{_short_label(d)}, ρ={r}\nτ = {tau:+.2f}", fontsize=8)
        ax.xaxis.set_major_locator(plt.MaxNLocator(3))
        ax.yaxis.set_major_locator(plt.MaxNLocator(3))
        ax.tick_params(labelsize=8)
    for ax in axes.flat[len(cols):]:
        ax.axis("off")
    for ax in axes.flat[max(len(cols) - ncols, 0):len(cols)]:
        ax.set_xlabel("sharpness", fontsize=9)
    for ax in axes[:, 0]:
        ax.set_ylabel({"test_err": "test err. (%)", "shift_err": "corr. err. (%)"}.get(target, target), fontsize=9)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False, bbox_to_anchor=(0.5, 0.0))
    return fig


def _aug_demo():
    rng = np.random.default_rng(0)
    rows = [dict(model=i, rho=r, test_err=0.2 + 0.01 * i, original=float(rng.uniform(0.1, 1)) * r * 10,
                 augmented=float(rng.uniform(0.1, 1)) * r * 12) for i in range(12) for r in (0.1, 0.4)]
    return (pd.DataFrame(rows),)


@figure_check(_aug_demo)
def augmentation_scatter(frame: pd.DataFrame):
    """Fig. 29 analogue: test error vs sharpness measured on the original and on augmented training
    points, one panel per ρ, τ of each in the legend."""
    from repro.sharpness.kendall import kendall_tau

    rhos = sorted(frame.rho.unique())
    if not len(rhos):
        return no_data("no kept model: sharpness on augmented points was not measured")
    fig, axes = plt.subplots(1, len(rhos), figsize=page_figsize(0.42), squeeze=False)
    for ax, r in zip(axes[0], rhos):
        sub = frame[frame.rho == r]
        for c, lab, col in (("original", "original", PALETTE[0]), ("augmented", "augmented", PALETTE[1])):
            tau = kendall_tau(sub.test_err, sub[c]) if len(sub) > 1 else float("nan")
            ax.scatter(sub[c], sub.test_err * 100, c=col, s=18, edgecolor="k", linewidth=0.3, label=f"{lab} (τ = {tau:+.2f})")
        ax.set_title(f"ρ = {r:g}", fontsize=10)
        ax.set_xlabel("sharpness")
        ax.xaxis.set_major_locator(plt.MaxNLocator(4))
        ax.legend(fontsize=8, loc="best")
    axes[0, 0].set_ylabel("test error (%)")
    fig.tight_layout()
    return fig


@figure_check(_taus_demo, {"highlight": "adaptive_worst_linf_ln"})
def within_vs_global(taus: pd.DataFrame, target: str = "test_err", highlight: str | None = None):
    """Each (definition, ρ): global τ (x) vs the mean within-subgroup τ (y) — the paper's point that
    correlations inside augment × mixup subgroups (App. H.4) need not survive globally."""
    sub = taus[taus.target == target].dropna(subset=["tau_within_mean"])
    if not len(sub):
        return no_data("no within-subgroup τ: too few kept models in this profile")
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
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
