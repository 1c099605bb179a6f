"""Numbers computed from the NINCO authors' released annotations (MIT licence), not typed from the text.

``released/ninco/`` is a verbatim copy of the ``data/`` folder of the authors' repository (j-cb/NINCO;
commit, licence and file meanings in ``released/ninco/SOURCE.md`` and ``LICENSE``). From it:

* :func:`contamination_from_annotations` -- Table 3.1 / N-Tab. 1: the share of images containing an
  ImageNet-1k object among the decided images of each annotated 400-image subsample,
  ``i / (i + o)``; ``u`` (unclear) and the rare ``q``/``b`` codes are not decided and are left out, as
  the dissertation ignores unclear samples (Sec. 3.2). The Places file lists 5 images twice with a
  second decision; the later decision is kept (re-annotation). This is the only rule under which the
  release reproduces both printed Places numbers, 59.5 % ID and 6.7 % unclear (keeping every row gives
  59.3 %, keeping the first decision 59.8 %); the other five files have no repeated image.
* :func:`ninco_class_sizes` -- images per NINCO OOD class (N-Tab. 9), from the released image list.
* :func:`paper_contamination` -- the printed Table 3.1 / N-Tab. 1 as fractions (``tables/ninco_T1_contamination.csv``).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from repro.reference import load_paper_table

__all__ = ["RELEASE_DIR", "ANNOTATED_SETS", "load_annotations", "contamination_from_annotations",
           "ninco_class_sizes", "paper_contamination", "contamination_comparison"]

RELEASE_DIR = Path(__file__).resolve().parent / "released" / "ninco"
_ANN = RELEASE_DIR / "data" / "cleaning_annotations" / "annotations_subsampled_datasets"

#: released annotation file -> the dataset's name in Table 3.1 / N-Tab. 1
ANNOTATED_SETS = {"OOD_Places_MOS": "PLACES", "all_species": "SPECIES", "imagenet_o": "IMAGENET-O",
                  "textures": "TEXTURES", "OOD_iNaturalist_MOS": "INAT. PLANTS", "openimage_o": "OPENIM.-O"}


def _require(path: Path) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: the NINCO release is vendored under {RELEASE_DIR} "
                                "(copy of j-cb/NINCO data/, see SOURCE.md); restore it from git")
    return path


def load_annotations(name: str) -> pd.DataFrame:
    """One released annotation file (``image_location, decision``), repeated images resolved to the
    later decision (see the module docstring)."""
    if name not in ANNOTATED_SETS:
        raise ValueError(f"unknown annotation file {name!r}; released: {sorted(ANNOTATED_SETS)}")
    d = pd.read_csv(_require(_ANN / f"{name}.csv"))
    d["decision"] = d["decision"].astype(str).str.strip().str.lower()
    return d.drop_duplicates("image_location", keep="last").reset_index(drop=True)


def contamination_from_annotations() -> pd.DataFrame:
    """Per annotated dataset: images, ``id`` (i), ``ood`` (o), ``unclear`` (u and other codes),
    ``id_fraction`` = id / (id + ood) and ``unclear_fraction`` = unclear / images."""
    rows = []
    for name, label in ANNOTATED_SETS.items():
        dec = load_annotations(name)["decision"]
        n_i, n_o = int((dec == "i").sum()), int((dec == "o").sum())
        rows.append(dict(dataset=label, images=len(dec), id=n_i, ood=n_o, unclear=len(dec) - n_i - n_o,
                         id_fraction=n_i / (n_i + n_o), unclear_fraction=(len(dec) - n_i - n_o) / len(dec)))
    return pd.DataFrame(rows)


def paper_contamination() -> dict[str, float]:
    """Table 3.1 / N-Tab. 1 as printed: dataset name -> ID fraction (0-1)."""
    t = load_paper_table("ninco_T1_contamination")
    pairs = list(zip(t.iloc[:, 0], t.iloc[:, 1])) + list(zip(t.iloc[:, 2], t.iloc[:, 3]))
    return {str(k): float(str(v).rstrip("%")) / 100 for k, v in pairs}


def contamination_comparison() -> pd.DataFrame:
    """Every dataset of Table 3.1: the printed ID fraction (%) beside the one computed from the release
    (NaN where the authors released no annotations for that set)."""
    comp = contamination_from_annotations().set_index("dataset")
    rows = []
    for name, frac in paper_contamination().items():
        r = dict(dataset=name, paper_pct=100 * frac)
        if name in comp.index:
            c = comp.loc[name]
            r.update(annotated=int(c.images), id=int(c.id), ood=int(c.ood), unclear=int(c.unclear),
                     computed_pct=100 * float(c.id_fraction))
        rows.append(r)
    out = pd.DataFrame(rows, columns=["dataset", "annotated", "id", "ood", "unclear", "computed_pct", "paper_pct"])
    return out.astype({c: "Int64" for c in ("annotated", "id", "ood", "unclear")})


def ninco_class_sizes() -> pd.Series:
    """Images per NINCO OOD class from the released image list (64 classes), largest first."""
    d = pd.read_csv(_require(RELEASE_DIR / "data" / "NINCO_OOD_classes.csv"))
    return d["class"].value_counts().rename("images")
