"""The sharpness paper's printed numbers (Sec. 8.3, Tables 1-4): radii and Kendall τ, read from
``tables/ch5_kendall_tau_tables_1to4.csv`` so that code and notebooks never type them.

Tables 1-2 (ImageNet zoos, MNLI) list only the four adaptive ℓ∞ families; Tables 3-4 (CIFAR-10
ResNet-18 / ViT zoos of App. H) all 12 definitions of App. H.4.  Table ids:

====================  ================================================  ======================
id                    zoo                                                short name
====================  ================================================  ======================
T1_IN1k_scratch       AugReg ViT-B/16 trained on ImageNet-1k             ``augreg_in1k``
T1_IN21k_ft           AugReg ViT-B/16 from ImageNet-21k                  ``augreg_in21k``
T1_CLIP_ft            CLIP ViT-B/32 fine-tunes (model soups)             ``clip_soups``
T2_BERT_MNLI          BERT fine-tunes on MNLI                            ``bert_mnli``
T3_CIFAR10_ResNet18   200 ResNet-18 on CIFAR-10 (App. H)                 ``T3``
T4_CIFAR10_ViT        200 ViTs on CIFAR-10 (App. H)                      ``T4``
====================  ================================================  ======================

Table 1 lists CLIP's average-case radii as 0.001/0.002/0.004 (the worst-case list repeated?) while
the caption of Fig. 20 says ρ = 0.1; the CSV keeps the table's values so that τ can be compared.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

TAU_TABLE = "ch5_kendall_tau_tables_1to4"

#: short name of a zoo -> table id in the τ CSV
PAPER_TABLES = {"augreg_in1k": "T1_IN1k_scratch", "augreg_in21k": "T1_IN21k_ft", "clip_soups": "T1_CLIP_ft",
                "bert_mnli": "T2_BERT_MNLI", "T3": "T3_CIFAR10_ResNet18", "T4": "T4_CIFAR10_ViT"}

#: Tables 1-2 name the four adaptive ℓ∞ families without "Adaptive" (all of them are adaptive):
#: ("Sharpness", "LogitNorm") of the CSV -> registered definition, in the tables' row order
TABLE12_DEFINITIONS = {("Worst-case ℓ_∞", "Yes"): "adaptive_worst_linf_ln", ("Worst-case ℓ_∞", "No"): "adaptive_worst_linf",
                       ("Avg-case ℓ_∞", "Yes"): "adaptive_avg_linf_ln", ("Avg-case ℓ_∞", "No"): "adaptive_avg_linf"}


def _table_id(table: str) -> str:
    if table in PAPER_TABLES:
        return PAPER_TABLES[table]
    if table in PAPER_TABLES.values():
        return table
    raise ValueError(f"unknown sharpness table {table!r}; known: {sorted(PAPER_TABLES)} or {sorted(PAPER_TABLES.values())}")


@lru_cache(maxsize=1)
def _definition_of() -> dict:
    """("Sharpness", "LogitNorm") of the CSV -> definition name, for all 12 definitions and Tables 1-2."""
    from repro.sharpness.definitions import get, list_definitions

    out = dict(TABLE12_DEFINITIONS)
    for name in list_definitions():
        d = get(name)
        out[(d.paper_sharpness, "Yes" if d.logit_norm else "No")] = name
    return out


@lru_cache(maxsize=1)
def tau_table() -> pd.DataFrame:
    """All printed τ of Tables 1-4 with a ``definition`` column (registered definition name)."""
    from repro.reference import load_paper_table

    df = load_paper_table(TAU_TABLE)
    df = df.assign(rho=df.rho.astype(float), tau=df.tau.astype(float),
                   definition=[_definition_of().get((s, ln)) for s, ln in zip(df.sharpness, df.logitnorm)])
    if df.definition.isna().any():
        bad = df[df.definition.isna()][["sharpness", "logitnorm"]].drop_duplicates().values.tolist()
        raise ValueError(f"{TAU_TABLE}.csv rows name no registered sharpness definition: {bad}")
    return df


def paper_taus(table: str) -> pd.DataFrame:
    """The rows of one table (``table``: short name or id): definition, rho, eval_set, tau, …"""
    t = tau_table()
    return t[t.table == _table_id(table)].reset_index(drop=True)


def paper_radii(table: str) -> dict[str, tuple[float, ...]]:
    """{definition: radii in increasing order} of one table, definitions in the table's order
    (Tables 1-2: worst-case LN, worst-case, average-case LN, average-case; Tables 3-4: App. H.4 order)."""
    from repro.sharpness.definitions import list_definitions

    t = paper_taus(table)
    order = list(TABLE12_DEFINITIONS.values()) if _table_id(table).startswith(("T1", "T2")) else list_definitions()
    return {d: tuple(sorted(set(t.rho[t.definition == d]))) for d in order if (t.definition == d).any()}


def paper_tau(table: str, definition: str, rho: float, eval_set: str) -> float:
    """One printed τ (NaN when the table has no such cell)."""
    t = paper_taus(table)
    sel = t[(t.definition == definition) & np.isclose(t.rho, float(rho)) & (t.eval_set == eval_set)]
    return float(sel.tau.iloc[0]) if len(sel) else float("nan")


def paper_tau_range(table: str, eval_set: str) -> tuple[float, float]:
    """(min, max) of the printed τ of one table on one evaluation set."""
    t = paper_taus(table)
    t = t[t.eval_set == eval_set]
    if not len(t):
        raise ValueError(f"table {table!r} has no evaluation set {eval_set!r}; it has {sorted(set(paper_taus(table).eval_set))}")
    return float(t.tau.min()), float(t.tau.max())
