"""Natural-language-inference files (MNLI, HANS) as frames of (premise, hypothesis, label name[, heuristic]).

Reads the HF dataset exports (``.jsonl``/``.json`` with integer labels) and the original tab-separated
files (GLUE MNLI, HANS ``heuristics_evaluation_set.txt``); :func:`encode_labels` turns label names
into class indices and refuses names outside the label set (an unknown label must not become a class).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

#: Integer labels of the HF datasets: nyu-mll/glue mnli and nyu-mll/multi_nli, jhu-cogsci/hans.
HF_MNLI_LABELS = ("entailment", "neutral", "contradiction")
HF_HANS_LABELS = ("entailment", "non-entailment")
#: HANS subsets (McCoy et al. 2019) under the names of Table 2 of Sec. 8.3.
HANS_SUBSETS = {"HANS-L": "lexical_overlap", "HANS-S": "subsequence", "HANS-C": "constituent"}


def read_nli(path, int_labels=HF_MNLI_LABELS) -> pd.DataFrame:
    """An NLI file as a frame (premise, hypothesis, label name, heuristic): HF exports (``.jsonl``/``.json``
    with premise, hypothesis, integer label) or the original tab-separated files (GLUE ``train.tsv`` /
    ``dev_matched.tsv``: sentence1, sentence2, gold_label; HANS ``heuristics_evaluation_set.txt``:
    gold_label, sentence1, sentence2, heuristic).  Integer labels outside ``int_labels`` (-1 marks the
    unlabeled test splits of the HF exports) drop the row; text labels are kept as they are, and
    :func:`encode_labels` refuses any that is not a class."""
    import csv

    path = Path(path)
    if path.suffix in (".jsonl", ".json"):
        df = pd.read_json(path, lines=path.suffix == ".jsonl")
    else:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
        df = pd.DataFrame(rows[1:], columns=rows[0])
        df = df.rename(columns={"sentence1": "premise", "sentence2": "hypothesis", "gold_label": "label"})
    if not {"premise", "hypothesis", "label"} <= set(df.columns):
        raise ValueError(f"{path}: need premise/hypothesis/label (or sentence1/sentence2/gold_label) columns")

    def name(v):
        if isinstance(v, (int, np.integer)) or (isinstance(v, str) and v.lstrip("-").isdigit()):
            v = int(v)
            return int_labels[v] if 0 <= v < len(int_labels) else None
        return str(v)

    out = pd.DataFrame({"premise": df.premise.astype(str), "hypothesis": df.hypothesis.astype(str),
                        "label": df.label.map(name)})
    if "heuristic" in df.columns:
        out["heuristic"] = df.heuristic.astype(str)
    return out[out.label.notna()].reset_index(drop=True)


def encode_labels(labels, names) -> torch.Tensor:
    """Class index of each label name in ``names`` (e.g. ``("contradiction", "entailment", "neutral")``).
    A name outside ``names`` raises: mapping it to −1 would silently index the last class."""
    pos = {n: i for i, n in enumerate(names)}
    labels = list(labels)
    bad = sorted({str(lbl) for lbl in labels if lbl not in pos})
    if bad:
        raise ValueError(f"unknown NLI label(s) {bad[:5]}; expected one of {tuple(names)}. Drop or relabel those "
                         "rows (e.g. GLUE's '-' = no annotator consensus) before encoding.")
    return torch.tensor([pos[lbl] for lbl in labels], dtype=torch.long)
