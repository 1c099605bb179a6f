"""The 12 sharpness definitions of the CIFAR-10 study (dissertation App. H.4, S:4179-4192).

A definition fixes four things (paper Eq. 1 / chapter Eq. 5.1, S:3405-3407):

- ``kind``: ``"avg"`` (expected loss increase under random noise) or ``"worst"`` (maximal loss
  increase in a ball, found with Auto-PGD, Algorithm 1);
- ``norm``: ``"l2"`` or ``"linf"``.  Average-case ℓ2 means Gaussian noise δ ~ N(0, ρ² diag(c²)),
  average-case ℓ∞ means uniform noise δ ~ U[-ρc, ρc] (naming of App. H.4, S:4181-4192);
- ``adaptive``: scaling vector c = |w| (elementwise adaptive, S:3409) or c = 1 ("standard");
- ``logit_norm``: whether the logits are normalized before the cross-entropy (Eq. 5, S:3459).

Names follow ``{standard|adaptive}_{avg|worst}_{l2|linf}[_ln]``; the 12 registered ones are the
list of notes §1.6 in App. H.4 order.  ``register`` adds a new definition, ``get`` looks one up.
"""
from __future__ import annotations

from dataclasses import dataclass

KINDS = ("avg", "worst")
NORMS = ("l2", "linf")


@dataclass(frozen=True)
class Definition:
    name: str
    kind: str
    norm: str
    adaptive: bool
    logit_norm: bool

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")

    @property
    def label(self) -> str:
        """Human-readable label as in Tables 3-4 (e.g. 'Adaptive worst-case ℓ∞, LN')."""
        n = "ℓ2" if self.norm == "l2" else "ℓ∞"
        a = "Adaptive" if self.adaptive else "Standard"
        k = "avg-case" if self.kind == "avg" else "worst-case"
        return f"{a} {k} {n}" + (", LN" if self.logit_norm else "")

    @property
    def paper_sharpness(self) -> str:
        """The 'Sharpness' column string of the paper's Tables 3-4 CSV."""
        n = "ℓ_2" if self.norm == "l2" else "ℓ_∞"
        a = "Adaptive" if self.adaptive else "Standard"
        k = "avg-case" if self.kind == "avg" else "worst-case"
        return f"{a} {k} {n}"


_REGISTRY: dict[str, Definition] = {}


def register(name: str, *, kind: str, norm: str, adaptive: bool, logit_norm: bool) -> Definition:
    if name in _REGISTRY:
        raise ValueError(f"sharpness definition {name!r} registered twice")
    d = Definition(name, kind, norm, adaptive, logit_norm)
    _REGISTRY[name] = d
    return d


def get(name: str | Definition) -> Definition:
    if isinstance(name, Definition):
        return name
    if name not in _REGISTRY:
        raise ValueError(
            f"unknown sharpness definition {name!r}; registered: {', '.join(_REGISTRY)} "
            "(pattern {standard|adaptive}_{avg|worst}_{l2|linf}[_ln])"
        )
    return _REGISTRY[name]


def list_definitions() -> list[str]:
    return list(_REGISTRY)


def definitions_table():
    """The registered definitions as a DataFrame (name, Tables 3-4 label, kind, norm, adaptive,
    logit_norm), in App. H.4 order."""
    import pandas as pd

    return pd.DataFrame([dict(name=d.name, label=d.label, kind=d.kind, norm=d.norm, adaptive=d.adaptive,
                              logit_norm=d.logit_norm) for d in _REGISTRY.values()])


# App. H.4 order (notes §1.6).  Logit normalization is only combined with adaptive sharpness.
for _norm in ("l2", "linf"):
    register(f"standard_avg_{_norm}", kind="avg", norm=_norm, adaptive=False, logit_norm=False)
    register(f"standard_worst_{_norm}", kind="worst", norm=_norm, adaptive=False, logit_norm=False)
    register(f"adaptive_avg_{_norm}", kind="avg", norm=_norm, adaptive=True, logit_norm=False)
    register(f"adaptive_worst_{_norm}", kind="worst", norm=_norm, adaptive=True, logit_norm=False)
    register(f"adaptive_avg_{_norm}_ln", kind="avg", norm=_norm, adaptive=True, logit_norm=True)
    register(f"adaptive_worst_{_norm}_ln", kind="worst", norm=_norm, adaptive=True, logit_norm=True)

# The chapter's main measure (S:3480) and the one chapter 6 uses (S:748-766).
MAIN_DEFINITION = "adaptive_worst_linf_ln"

# ρ grids of the paper's CIFAR-10 ResNet-18 study (Table 3, S:3724-3771), per definition.
PAPER_RHO_RESNET = {
    "standard_avg_l2": (0.05, 0.1, 0.2, 0.4),
    "standard_worst_l2": (0.25, 0.5, 1.0, 2.0),
    "adaptive_avg_l2": (0.05, 0.1, 0.2, 0.4),
    "adaptive_worst_l2": (0.25, 0.5, 1.0, 2.0),
    "adaptive_avg_l2_ln": (0.05, 0.1, 0.2, 0.4),
    "adaptive_worst_l2_ln": (0.25, 0.5, 1.0, 2.0),
    "standard_avg_linf": (0.1, 0.2, 0.4, 0.8),
    "standard_worst_linf": (0.0005, 0.001, 0.002, 0.004),
    "adaptive_avg_linf": (0.1, 0.2, 0.4, 0.8),
    "adaptive_worst_linf": (0.001, 0.002, 0.004, 0.008),
    "adaptive_avg_linf_ln": (0.1, 0.2, 0.4, 0.8),
    "adaptive_worst_linf_ln": (0.001, 0.002, 0.004, 0.008),
}

# Table 4 (CIFAR-10 ViT, S:3779-3826): the radii the paper used for its ViT zoo (from the table CSV).
PAPER_RHO_VIT = {
    "standard_avg_l2": (0.005, 0.01, 0.02, 0.04),
    "standard_worst_l2": (0.025, 0.05, 0.1, 0.2),
    "adaptive_avg_l2": (0.1, 0.2, 0.4, 0.8),
    "adaptive_worst_l2": (0.5, 1.0, 2.0, 4.0),
    "adaptive_avg_l2_ln": (0.1, 0.2, 0.4, 0.8),
    "adaptive_worst_l2_ln": (0.25, 0.5, 1.0, 2.0),
    "standard_avg_linf": (0.01, 0.02, 0.04, 0.08),
    "standard_worst_linf": (0.00001, 0.00002, 0.00004, 0.00008),
    "adaptive_avg_linf": (0.1, 0.2, 0.4, 0.8),
    "adaptive_worst_linf": (0.0005, 0.001, 0.002, 0.004),
    "adaptive_avg_linf_ln": (0.1, 0.2, 0.4, 0.8),
    "adaptive_worst_linf_ln": (0.0005, 0.001, 0.002, 0.004),
}
