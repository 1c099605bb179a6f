"""The 12 sharpness definitions of the CIFAR-10 study (dissertation Sec. 8.3, App. H.4).

A definition fixes four things (paper Eq. 1 / chapter Eq. 5.1, Sec. 8.3 (Sec. 3.1)):

- ``kind``: ``"avg"`` (expected loss increase under random noise) or ``"worst"`` (maximal loss
  increase in a ball, found with Auto-PGD, Algorithm 1);
- ``norm``: ``"l2"`` or ``"linf"``.  Average-case ℓ2 means Gaussian noise δ ~ N(0, ρ² diag(c²)),
  average-case ℓ∞ means uniform noise δ ~ U[-ρc, ρc] (naming of Sec. 8.3, App. H.4);
- ``adaptive``: scaling vector c = |w| (elementwise adaptive, Sec. 8.3 (Sec. 3.1)) or c = 1 ("standard");
- ``logit_norm``: whether the logits are normalized before the cross-entropy (Eq. 5, Sec. 8.3 (Sec. 3.2)).

Names follow ``{standard|adaptive}_{avg|worst}_{l2|linf}[_ln]``; the 12 registered ones are the
list of Sec. 8.3, App. H.4, in its order.  ``register`` adds a new definition, ``get`` looks one up.
"""
from __future__ import annotations

from dataclasses import dataclass

from repro.core.registry import Registry

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


#: name -> :class:`Definition` (a value registry: ``DEFINITIONS.get(name)`` returns the Definition)
DEFINITIONS = Registry("sharpness definition")


def register(name: str, *, kind: str, norm: str, adaptive: bool, logit_norm: bool) -> Definition:
    if name in DEFINITIONS:
        raise ValueError(f"sharpness definition {name!r} registered twice")
    return DEFINITIONS.register(name, Definition(name, kind, norm, adaptive, logit_norm))


def get(name: str | Definition) -> Definition:
    if isinstance(name, Definition):
        return name
    if name not in DEFINITIONS:
        raise ValueError(
            f"unknown sharpness definition {name!r}; registered: {', '.join(DEFINITIONS.list())} "
            "(pattern {standard|adaptive}_{avg|worst}_{l2|linf}[_ln])"
        )
    return DEFINITIONS.get(name)


def list_definitions() -> list[str]:
    return DEFINITIONS.list()


def definitions_table():
    """The registered definitions as a DataFrame (name, Tables 3-4 label, kind, norm, adaptive,
    logit_norm), in App. H.4 order."""
    import pandas as pd

    return pd.DataFrame([dict(name=d.name, label=d.label, kind=d.kind, norm=d.norm, adaptive=d.adaptive,
                              logit_norm=d.logit_norm) for _, d in DEFINITIONS.items()])


# App. H.4 order (the ch. 5 implementation notes).  Logit normalization is only combined with adaptive sharpness.
for _norm in ("l2", "linf"):
    register(f"standard_avg_{_norm}", kind="avg", norm=_norm, adaptive=False, logit_norm=False)
    register(f"standard_worst_{_norm}", kind="worst", norm=_norm, adaptive=False, logit_norm=False)
    register(f"adaptive_avg_{_norm}", kind="avg", norm=_norm, adaptive=True, logit_norm=False)
    register(f"adaptive_worst_{_norm}", kind="worst", norm=_norm, adaptive=True, logit_norm=False)
    register(f"adaptive_avg_{_norm}_ln", kind="avg", norm=_norm, adaptive=True, logit_norm=True)
    register(f"adaptive_worst_{_norm}_ln", kind="worst", norm=_norm, adaptive=True, logit_norm=True)

# The chapter's main measure (Sec. 8.3 (App. A)) and the one chapter 6 uses (Sec. 6.3).
MAIN_DEFINITION = "adaptive_worst_linf_ln"

# The paper's radii per definition (Tables 1-4) are in repro.reference.sharpness.paper_radii.
