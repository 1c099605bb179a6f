"""Chapter 5 at paper scale: adaptive sharpness of the pretrained model zoos (Tables 1-2, Figs. 2, 8-28).

The paper's ImageNet and MNLI studies (Sec. 4 and App. C, E, F, G of the paper in
Sec. 8.3) measure sharpness of *released* checkpoints, so nothing is trained
here: every zoo is a list of files on disk (described by a manifest in ``data_manifests/``), a
loader that turns member *i* into an ``nn.Module`` whose ``forward(x)`` returns logits, and the
evaluation data.  The zoos (``list_zoos()``):

``augreg_in1k``   56 ViT-B/16 trained from scratch on ImageNet-1k for 300 epochs and fine-tuned
                  20k steps (AugReg, Steiner et al.; App. C): 7 augmentation settings × weight decay ∈
                  {0.1, 0.03} × (dropout, stochastic depth) ∈ {(0, 0), (0.1, 0.1)} × fine-tuning LR ∈
                  {0.01, 0.03}, read from the AugReg ``index.csv`` (rows B/16, ds i1k, adapt_ds
                  imagenet2012, 224 px).  Checkpoint names seen in timm's configs use light0/light1,
                  medium1/medium2, strong1/strong2 ("medium0"/"strong0" do not occur).
                  Table 1 (``T1_IN1k_scratch``).
``augreg_in21k``  the same grid pre-trained on ImageNet-21k; the two models with close to 100 % test
                  error are dropped (App. E), leaving 54 (``T1_IN21k_ft``).
``clip_soups``    72 CLIP ViT-B/32 ImageNet fine-tunes of model soups (Wortsman et al. 2022; Sec. 4,
                  App. F): ``model_0`` is the linear-probe initialization ("the base model",
                  per the repository's ``hparam_info.json``), ``model_1..71`` the random-search
                  fine-tunes (aug, wd, lr, mixup, label smoothing, epochs).  ``T1_CLIP_ft``.
``bert_mnli``     100 bert-base-uncased MNLI fine-tunes that differ only in the seed ("BERTs of a
                  feather", McCoy et al. 2020; App. G), ID = MNLI matched dev, OOD = the HANS
                  non-entailment subsets (lexical overlap, subsequence, constituent).  Table 2.

Sharpness follows App. C ("the same sharpness evaluation for all ImageNet-1k and MNLI models"): the
first 2048 training points without augmentation (eval transform), 8 batches of m = 256, model in
eval mode, APGD with 20 steps and a random start for the worst case, 100 noise draws for the average
case; the four adaptive ℓ∞ families of Tables 1-2 at their radii (:data:`PAPER_RHO`).
Test errors come from the zoo's own metadata (AugReg ``index.csv``: ImageNet only; model-soups
``individual_model_results.jsonl``: all six ImageNet sets; McCoy et al.'s accuracy table: MNLI and
HANS) or are computed on the evaluation data where present (``errors.source``).

Every number of every model goes through :mod:`repro.core.cache` (one entry per model × set and per
model × definition × ρ), so a killed run resumes and a rerun only reads.

Configuration (``cfg``; the ``pretrained_zoos:`` section of ``repro/profiles/ch5.yaml`` ``full``).
Shared keys apply to every zoo; a key named after a zoo holds overrides for that zoo only::

    zoos: [augreg_in1k, augreg_in21k, clip_soups, bert_mnli]   # read by the notebook
    members: null        # all members; k = the first k; [i, j, ...] = those member indices
    points:   {n: 2048, m: 256, selection: first, root: null, workers: 8}
    sharpness: {steps: 20, n_samples: 100, seed: 0, mode: faithful, init: null, logit_norm: null,
                batched_noise: false, chunk: null}
    grid: paper          # Tables 1-2 radii; or {definition: [rho, ...]}
    errors: {source: auto, batch_size: 256, workers: 8, max_per_class: null, roots: {}}
    max_length: 128      # BERT: tokens per (premise, hypothesis) pair (McCoy et al.'s run_classifier)
    augreg_in21k: {min_index_accuracy: 0.1}

- ``points.selection``: ``first`` = the first ``n`` images of ImageFolder order (sorted classes,
  sorted files; for ImageNet that is 2 classes) or ``per_class`` = one image per class in turn
  (n/1000 per class).  Which 2048 ImageNet images the paper used is not stated.
  ``points.root``: a folder ``<class>/<image>`` used instead of ``$REPRO_DATA/imagenet/train`` (image
  zoos), or an MNLI training file (``.jsonl``/``.tsv``) instead of ``$REPRO_DATA/mnli/train.jsonl``.
- ``sharpness.*`` are the arguments of :func:`repro.sharpness.measure_detailed`; ``init: null`` is
  its default (random start, App. C), ``logit_norm: null`` its default convention (Eq. 5 of the paper, Eq. 5.2).
  ``batched_noise`` defaults to false here: at m = 256 one forward of ViT-B or BERT-base already fills
  a GPU, and vmapping ``chunk`` noise draws would hold ``chunk`` weight copies and activations.
- ``errors.source``: ``metadata`` (only the zoo's published numbers), ``compute`` (only our own
  evaluation; a missing evaluation set raises ``MissingAsset``) or ``auto`` (metadata where it exists,
  else computed where the data are present, else NaN).  ``errors.roots`` maps an evaluation-set name
  (``IN``, ``IN-v2``, ``IN-R``, ``IN-Sketch``, ``IN-A``, ``MNLI``, ``HANS``) to a local folder/file
  instead of its manifest; ``max_per_class`` subsamples image sets (quick runs).
- ``arch`` ({name, kwargs}) and ``resolution`` override the architecture of the image zoos; they
  exist for small stand-ins in tests, not for the paper run.

Frame columns (:func:`pretrained_zoo_frame`): ``member``, ``id``, the hyperparameters, ``err_<set>``
per evaluation set (paper names: IN, IN-v2, IN-R, IN-Sketch, IN-A, ObjectNet; MNLI, HANS-L, HANS-S,
HANS-C), ``errors_from`` (``set=metadata|computed|missing`` per set) and one ``"{definition}@{rho:g}"`` column per
grid point (as :mod:`repro.studies.ch5_sharpness.experiment`).  :func:`tau_vs_paper` puts our Kendall τ beside Table 1/2.
"""
from __future__ import annotations

import abc
import hashlib
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from repro.core import cache
from repro.core.registry import Registry
from repro.data.imagefolder import decode_images
from repro.data.nli import HANS_SUBSETS, HF_HANS_LABELS, HF_MNLI_LABELS, encode_labels, read_nli
from repro.models.checkpoints.augreg import AUGREG_AUG_ORDER, load_augreg_npz, read_augreg_index
from repro.models.checkpoints.bert import BERT_MNLI_LABELS, TextClassifierLogits, bert_tokenizer, convert_bert_tf_checkpoint
from repro.models.checkpoints.clip_soups import load_clip_soup
from repro.reference import sharpness as _ref

log = logging.getLogger("repro.studies.ch5_sharpness.pretrained")

PRETRAINED_SHARPNESS_VERSION = "1"
PRETRAINED_ERROR_VERSION = "1"

# ------------------------------------------------------------------------------------------ paper facts
# Table id per zoo, the radii of Tables 1-2 and the CSV -> definition map live in repro.reference.sharpness.
PAPER_TABLES = {z: _ref.PAPER_TABLES[z] for z in ("augreg_in1k", "augreg_in21k", "clip_soups", "bert_mnli")}
#: Radii of Tables 1-2 per zoo (Sec. 8.3, Tables 1-2), read from the paper's CSV.
PAPER_RHO = {z: _ref.paper_radii(z) for z in PAPER_TABLES}

DEFAULTS: dict = {
    "members": None,
    "points": {"n": 2048, "m": 256, "selection": "first", "root": None, "workers": 8},
    "sharpness": {"steps": 20, "n_samples": 100, "seed": 0, "mode": "faithful", "init": None, "logit_norm": None,
                  "batched_noise": False, "chunk": None},
    "grid": "paper",
    "errors": {"source": "auto", "batch_size": 256, "workers": 8, "max_per_class": None, "roots": {}},
    "max_length": 128,
    "arch": None,
    "resolution": None,
    "min_index_accuracy": 0.1,
}
ERROR_SOURCES = ("auto", "metadata", "compute")


# ------------------------------------------------------------------------------------------ registry
#: name -> :class:`PretrainedZoo` subclass; ``ZOOS.get(name)`` builds one
ZOOS = Registry("pretrained zoo")


def register_zoo(name: str):
    """Decorator registering a zero-argument factory (or class) of a :class:`PretrainedZoo` under ``name``."""
    return ZOOS.register(name)


def list_zoos() -> list[str]:
    return ZOOS.list()


def get_zoo(name: str) -> "PretrainedZoo":
    return ZOOS.get(name)


def paper_grid(zoo_name: str) -> list[tuple[str, float]]:
    """(definition, ρ) pairs of Table 1/2 for ``zoo_name``."""
    get_zoo(zoo_name)
    return [(d, float(r)) for d, rs in PAPER_RHO[zoo_name].items() for r in rs]


# ------------------------------------------------------------------------------------------ helpers
def _deep_merge(base: dict, over: dict | None) -> dict:
    out = dict(base)
    for k, v in (over or {}).items():
        out[k] = _deep_merge(out[k], v) if isinstance(out.get(k), dict) and isinstance(v, dict) else v
    return out


def pretrained_zoo_config(zoo_name: str, cfg: dict | None) -> dict:
    """:data:`DEFAULTS` ← the shared keys of ``cfg`` ← ``cfg[zoo_name]`` (see the module docstring)."""
    cfg = dict(cfg or {})
    shared = {k: v for k, v in cfg.items() if k not in ZOOS and k != "zoos"}
    unknown = set(shared) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown pretrained_zoos key(s) {sorted(unknown)}; known: {sorted(DEFAULTS)} plus one "
                         f"section per zoo ({', '.join(ZOOS.list())}); see repro/studies/ch5_sharpness/pretrained.py")
    own = cfg.get(zoo_name) or {}
    if set(own) - set(DEFAULTS):
        raise ValueError(f"unknown key(s) {sorted(set(own) - set(DEFAULTS))} in the {zoo_name!r} section of "
                         f"pretrained_zoos; known: {sorted(DEFAULTS)}")
    c = _deep_merge(_deep_merge(DEFAULTS, shared), own)
    if c["errors"]["source"] not in ERROR_SOURCES:
        raise ValueError(f"errors.source must be one of {ERROR_SOURCES}, got {c['errors']['source']!r}")
    return c


def _missing(manifest: str, what: str):
    """A :class:`MissingAsset` for a file ``what`` of ``manifest`` (names the manifest, its fetch command
    or its manual instructions, and the data root)."""
    from repro.core.config import data_root
    from repro.data.manifests import MissingAsset, load

    m = load(manifest)
    how = (f"run `repro data fetch {m.name}`" if m.files else "it cannot be downloaded automatically")
    return MissingAsset(f"{what} of '{m.name}' ({m.title}) not found under {m.location}. To get it, {how}; "
                        f"manifest: {m.path}. Data root: $REPRO_DATA={data_root()}.\n"
                        f"Instructions: {m.instructions.strip()}")


def _asset_root(manifest: str) -> Path:
    from repro.data.manifests import load

    return load(manifest).location


def find_file(root: Path, name: str) -> Path | None:
    """``root/name``, or the single ``root/<hash>-name`` that ``repro data fetch`` (pooch) writes."""
    p = Path(root) / name
    if p.exists():
        return p
    hits = sorted(Path(root).glob(f"*-{name}")) if Path(root).is_dir() else []
    return hits[0] if hits else None


def _file_key(path: Path) -> dict:
    """Cheap identity of a (large) file or folder: name, size and SHA-256 of its first/last MiB."""
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    h = hashlib.sha256()
    total = 0
    for f in files:
        size = f.stat().st_size
        total += size
        h.update(f"{f.relative_to(path) if path.is_dir() else f.name}:{size};".encode())
        with open(f, "rb") as fh:
            h.update(fh.read(1 << 20))
            if size > 2 << 20:
                fh.seek(size - (1 << 20))
                h.update(fh.read())
    return {"name": path.name, "bytes": total, "sha256_ends": h.hexdigest()}


def _select_members(df: pd.DataFrame, sel) -> pd.DataFrame:
    if sel is None:
        return df
    if isinstance(sel, int) and not isinstance(sel, bool):
        return df.iloc[: int(sel)]
    idx = [int(i) for i in sel]
    bad = [i for i in idx if i not in set(df.member)]
    if bad:
        raise ValueError(f"members {bad} not in this zoo (members 0..{len(df) - 1})")
    return df.set_index("member", drop=False).loc[idx].reset_index(drop=True)


# ------------------------------------------------------------------------------------------ images
_IMAGENET_WNIDS: list[str] | None = None


def _wnid_positions() -> dict[str, int]:
    global _IMAGENET_WNIDS
    if _IMAGENET_WNIDS is None:
        from timm.data import ImageNetInfo

        _IMAGENET_WNIDS = list(ImageNetInfo().label_names())
    return {w: i for i, w in enumerate(_IMAGENET_WNIDS)}


def _known_class(name: str, pos: dict) -> bool:
    return (name.isdigit() and 0 <= int(name) < 1000) or name in pos


def imagenet_class_index(folder_names) -> list[int]:
    """Model class index of each folder: ``"0".."999"`` (ImageNet-V2) as integers, WordNet ids
    (ImageNet, -R, -A, -Sketch) by their position among the 1000 sorted ImageNet-1k synsets (timm's
    ImageNet info).  Any other name raises: a class index cannot be guessed, and a sorted-position
    fallback let one stray folder (``__MACOSX``) shift every class, i.e. an error of ~100 % without a
    message.  :func:`class_folders` drops such folders (with a warning) before this is called."""
    names = [str(n) for n in folder_names]
    pos = _wnid_positions()
    bad = [n for n in names if not _known_class(n, pos)]
    if bad:
        raise ValueError(f"folder(s) {bad[:5]} are neither ImageNet-1k WordNet ids (n01440764, ...) nor class "
                         "indices 0..999; an ImageNet evaluation folder needs one of the two per class")
    return [int(n) if n.isdigit() else pos[n] for n in names]


def class_folders(root: Path) -> list[str]:
    """Sorted class folders of ``root`` that name an ImageNet class (:func:`imagenet_class_index`);
    other folders (``__MACOSX``, ``.ipynb_checkpoints``, a stray download) are skipped with a
    warning.  No class folder at all raises."""
    root = Path(root)
    names = sorted(p.name for p in root.iterdir() if p.is_dir())
    pos = _wnid_positions()
    unknown = [n for n in names if not _known_class(n, pos)]
    if unknown:
        log.warning("%s: skipping %d folder(s) that name no ImageNet class: %s", root, len(unknown), unknown[:5])
    classes = [n for n in names if _known_class(n, pos)]
    if not classes:
        raise ValueError(f"{root} has no class sub-folders named by an ImageNet WordNet id or 0..999 (found "
                         f"{names[:5]}); expected {root}/<class>/<image files>")
    return classes


def _image_files(root: Path, max_per_class=None, seed: int = 0):
    """Sorted ImageFolder listing ``root/<class>/<image>``: (files, class index per file, class names)."""
    from repro.data.imagefolder import IMG_EXTENSIONS

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist; expected {root}/<class>/<image files>")
    classes = class_folders(root)
    cidx = dict(zip(classes, imagenet_class_index(classes)))
    rng = np.random.default_rng(seed)
    files, labels = [], []
    for c in classes:
        fs = sorted(p for p in (root / c).iterdir() if p.suffix.lower() in IMG_EXTENSIONS)
        if max_per_class is not None and len(fs) > int(max_per_class):
            fs = [fs[i] for i in sorted(rng.choice(len(fs), int(max_per_class), replace=False))]
        files += fs
        labels += [cidx[c]] * len(fs)
    return files, labels, classes


def _train_files(root: Path, n: int, selection: str):
    """The sharpness points' files: the first ``n`` in ImageFolder order, or one per class in turn."""
    from repro.data.imagefolder import IMG_EXTENSIONS

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"training image folder {root} does not exist; expected {root}/<class>/<image files>")
    classes = class_folders(root)
    cidx = dict(zip(classes, imagenet_class_index(classes)))

    def listing(c):
        return sorted(p for p in (root / c).iterdir() if p.suffix.lower() in IMG_EXTENSIONS)

    out: list[tuple[Path, int]] = []
    if selection == "first":
        for c in classes:
            out += [(f, cidx[c]) for f in listing(c)[: n - len(out)]]
            if len(out) >= n:
                break
    elif selection == "per_class":
        lists = [(c, listing(c)) for c in classes]
        k = 0
        while len(out) < n and any(k < len(fs) for _, fs in lists):
            out += [(fs[k], cidx[c]) for c, fs in lists if k < len(fs)][: n - len(out)]
            k += 1
    else:
        raise ValueError(f"points.selection must be 'first' or 'per_class', got {selection!r}")
    if len(out) < n:
        raise ValueError(f"only {len(out)} training images under {root}, points.n = {n}")
    return out


def _normalize(x: torch.Tensor, mean, std) -> torch.Tensor:
    from repro.models import preprocess

    return preprocess(x, mean=mean, std=std)


def _listing_key(files, root: Path) -> str:
    h = hashlib.sha256()
    for f in files:
        f = Path(f)
        h.update(f"{f.relative_to(root)}:{f.stat().st_size};".encode())
    return h.hexdigest()


@dataclass
class EvalData:
    """One evaluation set: ``key`` is a cheap identity for the cache, ``load()`` returns the tensors."""
    name: str
    key: dict
    load: Callable[[], tuple]
    kind: str = "multiclass"            # "multiclass" | "hans" (binary entailment vs non-entailment)
    restrict: list | None = None       # class indices the logits are restricted to (IN-R, IN-A: 200)


# ------------------------------------------------------------------------------------------ zoo base
class PretrainedZoo(abc.ABC):
    """A zoo of released checkpoints (see :func:`register_zoo`).  Subclasses implement :meth:`members`,
    :meth:`load_model`, :meth:`points_key` / :meth:`sharpness_points`, :meth:`eval_data` and :meth:`error`."""

    name = ""
    title = ""
    manifest = ""
    eval_sets: tuple = ()
    hparams: tuple = ()

    @property
    def paper_table(self) -> str:
        return PAPER_TABLES[self.name]

    @property
    def root(self) -> Path:
        return _asset_root(self.manifest)

    def config(self, cfg: dict | None) -> dict:
        """``cfg`` merged with :data:`DEFAULTS` (:func:`pretrained_zoo_config`) unless it already is."""
        return cfg if cfg is not None and set(DEFAULTS) <= set(cfg) else pretrained_zoo_config(self.name, cfg)

    @abc.abstractmethod
    def members(self, cfg: dict | None = None) -> pd.DataFrame:
        """One row per member: ``member`` (0..), ``id``, ``file`` (relative to the asset root), the
        hyperparameters and ``meta_err_<set>`` for every error the zoo's metadata gives."""

    def member_path(self, row) -> Path:
        p = find_file(self.root, row["file"])
        if p is None:
            raise _missing(self.manifest, f"checkpoint {row['file']} (member {row['member']})")
        return p

    @abc.abstractmethod
    def load_model(self, member, cfg: dict | None = None) -> nn.Module:
        """Member ``member`` (index or row of :meth:`members`) as an eval-mode module returning logits."""

    def row(self, member, cfg=None):
        if isinstance(member, (int, np.integer)):
            df = self.members(cfg)
            if not 0 <= int(member) < len(df):
                raise IndexError(f"{self.name} has members 0..{len(df) - 1}, got {member}")
            return df.iloc[int(member)]
        return member

    @abc.abstractmethod
    def points_key(self, cfg: dict) -> dict:
        """A cheap identity of the sharpness points (file listing, sizes, transform) for the cache."""

    @abc.abstractmethod
    def sharpness_points(self, cfg: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y) of the first ``points.n`` training points, model-ready (eval transform, normalized)."""

    @abc.abstractmethod
    def eval_data(self, set_name: str, cfg: dict) -> EvalData | None:
        """The evaluation set, or None when its data are not present."""

    @abc.abstractmethod
    def error(self, model: nn.Module, data: EvalData, tensors: tuple, cfg: dict, device) -> float:
        """Test error of ``model`` on the loaded ``tensors`` of ``data``."""

    def model_targets(self, model: nn.Module, y: torch.Tensor) -> torch.Tensor:
        """Sharpness-point labels in ``model``'s class order (identity except for the BERT zoo)."""
        return y


# ------------------------------------------------------------------------------------------ image zoos
#: Evaluation sets of the ImageNet zoos: paper name -> (manifest, sub-folder); ObjectNet has no
#: manifest (registration-gated download and a 113-class mapping), so only metadata can give it.
IMAGE_EVAL_SETS = {"IN": ("imagenet1k", "val"), "IN-v2": ("imagenet_v2", "imagenetv2-matched-frequency-format-val"),
                   "IN-R": ("imagenet_r", "imagenet-r"), "IN-Sketch": ("imagenet_sketch", "sketch"),
                   "IN-A": ("imagenet_a", "imagenet-a"), "ObjectNet": None}


class ImageZoo(PretrainedZoo):
    eval_sets = ("IN", "IN-v2", "IN-R", "IN-Sketch", "IN-A", "ObjectNet")
    arch = ""
    resolution = 224
    crop_pct = 0.875
    mean = (0.5, 0.5, 0.5)
    std = (0.5, 0.5, 0.5)

    def transform(self, cfg: dict) -> dict:
        return dict(resolution=int(cfg.get("resolution") or self.resolution), crop_pct=float(self.crop_pct),
                    mean=tuple(self.mean), std=tuple(self.std))

    def arch_spec(self, cfg: dict) -> tuple[str, dict]:
        a = cfg.get("arch") or {}
        return a.get("name", self.arch), dict(a.get("kwargs") or {})

    @abc.abstractmethod
    def load_checkpoint(self, path, arch: str, **kw) -> nn.Module:
        """The checkpoint file at ``path`` as an eval-mode ``arch`` model returning logits."""

    def load_model(self, member, cfg=None) -> nn.Module:
        cfg = self.config(cfg)
        name, kw = self.arch_spec(cfg)
        return self.load_checkpoint(self.member_path(self.row(member, cfg)), name, **kw)

    def _train_root(self, cfg: dict) -> Path:
        r = (cfg.get("points") or {}).get("root")
        if r:
            return Path(r).expanduser()
        from repro.data.manifests import require

        train = require("imagenet1k") / "train"
        if not train.is_dir():
            raise _missing("imagenet1k", "the train/ folder (sharpness points)")
        return train

    def _points_files(self, cfg):
        p = cfg["points"]
        root = self._train_root(cfg)
        return root, _train_files(root, int(p["n"]), p.get("selection", "first"))

    def points_key(self, cfg: dict) -> dict:
        root, fl = self._points_files(cfg)
        return dict(files=_listing_key([f for f, _ in fl], root), n=len(fl), **self.transform(cfg))

    def sharpness_points(self, cfg: dict):
        _, fl = self._points_files(cfg)
        t = self.transform(cfg)
        x = decode_images([f for f, _ in fl], t["resolution"], t["crop_pct"], cfg["points"].get("workers", 0))
        return _normalize(x, t["mean"], t["std"]), torch.tensor([c for _, c in fl], dtype=torch.long)

    def eval_data(self, set_name: str, cfg: dict) -> EvalData | None:
        spec = IMAGE_EVAL_SETS.get(set_name)
        roots = cfg["errors"].get("roots") or {}
        if set_name in roots:
            folder = Path(roots[set_name]).expanduser()
        elif spec is None:
            return None
        else:
            from repro.data.manifests import load

            m = load(spec[0])
            if not m.present():
                return None
            folder = m.location / spec[1]
        if not folder.is_dir():
            return None
        e = cfg["errors"]
        files, labels, classes = _image_files(folder, e.get("max_per_class"))
        t = self.transform(cfg)
        present = sorted(set(labels))
        restrict = present if len(present) < 1000 else None   # IN-R / IN-A: the 200 present classes
        key = dict(set=set_name, files=_listing_key(files, folder), n=len(files), restrict=restrict, **t)

        def load():
            x = decode_images(files, t["resolution"], t["crop_pct"], e.get("workers", 0))
            return x, torch.tensor(labels, dtype=torch.long)

        return EvalData(set_name, key, load, "multiclass", restrict)

    @torch.no_grad()
    def error(self, model, data: EvalData, tensors, cfg, device) -> float:
        x, y = tensors
        t = self.transform(cfg)
        return image_error(model, x, y, t["mean"], t["std"], restrict=data.restrict,
                           batch_size=int(cfg["errors"]["batch_size"]), device=device)


@torch.no_grad()
def image_error(model: nn.Module, x: torch.Tensor, y: torch.Tensor, mean, std, restrict=None,
                batch_size: int = 256, device=None) -> float:
    """Top-1 error of ``model`` on uint8 images ``x`` (normalized with ``mean``/``std``); with
    ``restrict`` the argmax runs over those class indices only (the usual 200-class protocol of
    ImageNet-R/-A)."""
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    model.eval()
    idx = torch.as_tensor(restrict, dtype=torch.long, device=dev) if restrict is not None else None
    wrong = 0
    for i in range(0, len(x), batch_size):
        xb = _normalize(x[i:i + batch_size].to(dev), mean, std)
        logits = model(xb)
        pred = idx[logits[:, idx].argmax(1)] if idx is not None else logits.argmax(1)
        wrong += int((pred.cpu() != y[i:i + batch_size]).sum())
    return wrong / max(len(x), 1)


class AugRegZoo(ImageZoo):
    manifest = "augreg_vit_b16"
    arch = "vit_base_patch16_224"
    crop_pct = 0.9        # timm's eval transform for the AugReg ViTs (resize 248, centre crop 224)
    hparams = ("aug", "aug_group", "wd", "do", "sd", "sd_do", "lr", "pretrain_lr")
    ds = ""
    expected = 56

    def index_path(self) -> Path:
        p = find_file(self.root, "index.csv")
        if p is None:
            raise _missing(self.manifest, "index.csv")
        return p

    def members(self, cfg=None) -> pd.DataFrame:
        cfg = self.config(cfg)
        df = read_augreg_index(self.index_path())
        sel = df[(df.name == "B/16") & (df.ds == self.ds) & (df.adapt_ds == "imagenet2012")
                 & (df.adapt_resolution.astype(int) == 224)].drop_duplicates("adapt_filename")
        n_all = len(sel)
        sel = sel[sel.adapt_final_test.astype(float) >= float(cfg.get("min_index_accuracy", 0.0))]
        if len(sel) != self.expected:
            log.warning("%s: %d models in the index after the filter (%d before), the paper has %d",
                        self.name, len(sel), n_all, self.expected)
        order = {a: i for i, a in enumerate(AUGREG_AUG_ORDER)}
        sel = sel.assign(_a=sel.aug.map(lambda a: order.get(str(a), 99)))
        sel = sel.sort_values(["_a", "aug", "wd", "do", "sd", "adapt_lr"], ascending=[True, True, False, True, True, True],
                              kind="stable")
        rows = []
        for i, r in enumerate(sel.itertuples()):
            rows.append(dict(member=i, id=str(r.adapt_filename), file=f"{r.adapt_filename}.npz", aug=str(r.aug),
                             aug_group=str(r.aug).rstrip("0123456789"), wd=float(r.wd), do=float(r.do), sd=float(r.sd),
                             sd_do=bool(float(r.do) > 0 or float(r.sd) > 0), lr=float(r.adapt_lr),
                             pretrain_lr=float(getattr(r, "lr", float("nan"))),
                             meta_err_IN=1.0 - float(r.adapt_final_test)))
        return pd.DataFrame(rows)

    def load_checkpoint(self, path, arch: str, **kw) -> nn.Module:
        return load_augreg_npz(path, arch, **kw)


@register_zoo("augreg_in1k")
class AugRegIn1k(AugRegZoo):
    name = "augreg_in1k"
    title = "AugReg ViT-B/16, ImageNet-1k from scratch (56 models, Table 1)"
    ds = "i1k"
    expected = 56


@register_zoo("augreg_in21k")
class AugRegIn21k(AugRegZoo):
    name = "augreg_in21k"
    title = "AugReg ViT-B/16, ImageNet-21k pre-trained, fine-tuned on ImageNet-1k (54 of 56 models, Table 1)"
    ds = "i21k"
    expected = 54


def augreg_urls(zoo_name: str = "augreg_in1k", cfg: dict | None = None) -> list[str]:
    """Download URLs of a AugReg zoo's ``.npz`` files, read from the (present) ``index.csv`` — for
    ``wget -i`` / ``gsutil``; nothing is downloaded here."""
    zoo = get_zoo(zoo_name)
    if not isinstance(zoo, AugRegZoo):
        raise ValueError(f"{zoo_name!r} is not an AugReg zoo")
    return [f"https://storage.googleapis.com/vit_models/augreg/{f}" for f in zoo.members(cfg).file]


#: model-soups result keys -> paper evaluation-set names (accuracies; errors are 1 − accuracy)
_SOUPS_SETS = {"ImageNet": "IN", "ImageNetV2": "IN-v2", "ImageNetR": "IN-R", "ImageNetSketch": "IN-Sketch",
               "ImageNetA": "IN-A", "ObjectNet": "ObjectNet"}


@register_zoo("clip_soups")
class ClipSoups(ImageZoo):
    name = "clip_soups"
    title = "CLIP ViT-B/32 fine-tuned on ImageNet-1k, model soups (72 models, Table 1)"
    manifest = "clip_model_soups"
    arch = "vit_base_patch32_clip_quickgelu_224"
    crop_pct = 1.0      # CLIP's preprocess: resize 224 (bicubic), centre crop 224
    mean = (0.48145466, 0.4578275, 0.40821073)
    std = (0.26862954, 0.26130258, 0.27577711)
    hparams = ("is_base", "aug", "wd", "lr", "mix", "smoothing", "epochs")
    n_models = 72

    def members(self, cfg=None) -> pd.DataFrame:
        hp_path = find_file(self.root, "hparam_info.json")
        res_path = find_file(self.root, "individual_model_results.jsonl")
        hp = json.loads(hp_path.read_text()) if hp_path else {}
        res = {}
        if res_path:
            for line in res_path.read_text().splitlines():
                if line.strip():
                    r = json.loads(line)
                    res[r["model_name"]] = r
        rows = []
        for i in range(self.n_models):
            mid = f"model_{i}"
            h = hp.get(mid, {})
            row = dict(member=i, id=mid, file=f"{mid}.pt", is_base=bool(i == 0 or "info" in h),
                       aug=h.get("aug"), wd=h.get("wd", float("nan")), lr=h.get("lr", float("nan")),
                       mix=h.get("mix", float("nan")), smoothing=h.get("smoothing", float("nan")),
                       epochs=h.get("epochs", float("nan")))
            for k, s in _SOUPS_SETS.items():
                if mid in res and k in res[mid]:
                    row[f"meta_err_{s}"] = 1.0 - float(res[mid][k])
            rows.append(row)
        return pd.DataFrame(rows)

    def load_checkpoint(self, path, arch: str, **kw) -> nn.Module:
        return load_clip_soup(path, arch, **kw)


# ------------------------------------------------------------------------------------------ BERT / MNLI
def _first_existing(root: Path, names) -> Path | None:
    for n in names:
        p = find_file(root, n) if root.is_dir() else None
        if p is not None:
            return p
    return None


@register_zoo("bert_mnli")
class BertMnli(PretrainedZoo):
    name = "bert_mnli"
    title = "BERT-base fine-tuned on MNLI with 100 seeds, BERTs of a feather (Table 2)"
    manifest = "berts_of_a_feather"
    eval_sets = ("MNLI", "HANS-L", "HANS-S", "HANS-C")
    hparams = ("seed",)
    n_models = 100
    base_dir = "uncased_L-12_H-768_A-12"
    accuracy_file = "berts_of_a_feather_accuracies_by_run.csv"

    def members(self, cfg=None) -> pd.DataFrame:
        acc = find_file(self.root, self.accuracy_file)
        meta = {}
        if acc is not None:
            t = pd.read_csv(acc)
            for r in t.itertuples(index=False):
                run = int(str(r[0]).split()[-1])            # "Run 1" .. "Run 100" -> bert_00 .. bert_99
                row = dict(zip(t.columns, r))
                meta[run - 1] = {"MNLI": row["MNLI dev acc."], "HANS-L": row["Lexical (nonent)"],
                                 "HANS-S": row["Subseq (nonent)"], "HANS-C": row["Constituent (nonent)"]}
        rows = []
        for i in range(self.n_models):
            row = dict(member=i, id=f"bert_{i:02d}", file=f"bert_{i:02d}", seed=i)
            for s, a in meta.get(i, {}).items():
                row[f"meta_err_{s}"] = 1.0 - float(a)
            rows.append(row)
        return pd.DataFrame(rows)

    def member_path(self, row) -> Path:
        """The released folder ``bert_XX`` (TF checkpoint, or a HF folder), else its converted copy
        ``hf/bert_XX``.  The released folder names the cache entries, so converting changes nothing."""
        for cand in (self.root / row["file"], self.root / "hf" / row["file"]):
            if cand.is_dir():
                return cand
        raise _missing(self.manifest, f"checkpoint folder {row['file']} (member {row['member']})")

    def vocab_path(self, member_dir: Path | None = None) -> Path:
        cands = ([member_dir / "vocab.txt"] if member_dir else []) + [self.root / self.base_dir / "vocab.txt"]
        cands += sorted(self.root.glob("hf/*/vocab.txt"))[:1] + sorted(self.root.glob("bert_*/vocab.txt"))[:1]
        for v in cands:
            if v.exists():
                return v
        raise _missing(self.manifest, f"the bert-base-uncased vocabulary ({self.base_dir}/vocab.txt)")

    def _tokenizer(self, member_dir: Path | None = None):
        return bert_tokenizer(self.vocab_path(member_dir))

    def load_model(self, member, cfg=None) -> nn.Module:
        from transformers import BertForSequenceClassification

        row = self.row(member, cfg)
        path = self.member_path(row)
        if not (path / "config.json").exists():
            hf = self.root / "hf" / row["file"]
            if (hf / "config.json").exists():
                path = hf
            else:                                               # a TF checkpoint folder: convert once
                conf = self.root / self.base_dir / "bert_config.json"
                if not conf.exists():
                    raise _missing(self.manifest, f"{self.base_dir}/bert_config.json (needed to convert {path.name})")
                path = convert_bert_tf_checkpoint(path, hf, conf)
        model = BertForSequenceClassification.from_pretrained(str(path), local_files_only=True)
        names = [str(model.config.id2label[i]) for i in range(model.config.num_labels)]
        if any(n.upper().startswith("LABEL_") for n in names):
            names = list(BERT_MNLI_LABELS)
        tok = self._tokenizer(path)
        wrapped = TextClassifierLogits(model, tok.pad_token_id, tok.sep_token_id).eval()
        wrapped.label_names = tuple(n.lower() for n in names)
        return wrapped

    # data -----------------------------------------------------------------------------------
    def _nli_file(self, set_name: str, cfg: dict, required: bool):
        roots = cfg["errors"].get("roots") or {}
        if set_name in roots:
            return Path(roots[set_name]).expanduser()
        from repro.data.manifests import load

        manifest, names = {"MNLI-train": ("mnli", ("train.jsonl", "train.json", "train.tsv")),
                           "MNLI": ("mnli", ("validation_matched.jsonl", "validation_matched.json", "dev_matched.tsv")),
                           "HANS": ("hans", ("validation.jsonl", "validation.json", "heuristics_evaluation_set.txt"))}[set_name]
        p = _first_existing(load(manifest).location, names)
        if p is None and required:
            raise _missing(manifest, f"{' or '.join(names)}")
        return p

    def _encode(self, df: pd.DataFrame, cfg: dict, labels=BERT_MNLI_LABELS):
        tok = self._tokenizer()
        enc = tok(list(df.premise), list(df.hypothesis), padding="max_length", truncation=True,
                  max_length=int(cfg.get("max_length", 128)), return_tensors="pt")
        return enc["input_ids"], encode_labels(df.label, labels)

    def _train_source(self, cfg):
        p = (cfg.get("points") or {}).get("root")
        return Path(p).expanduser() if p else self._nli_file("MNLI-train", cfg, required=True)

    def points_key(self, cfg: dict) -> dict:
        return dict(data=_file_key(self._train_source(cfg)), n=int(cfg["points"]["n"]),
                    max_length=int(cfg.get("max_length", 128)), vocab=_file_key(self.vocab_path()))

    def sharpness_points(self, cfg: dict):
        """The first ``n`` MNLI training pairs (input ids, labels in :data:`BERT_MNLI_LABELS` order;
        :meth:`model_targets` maps them to a model's own order)."""
        n = int(cfg["points"]["n"])
        df = read_nli(self._train_source(cfg), HF_MNLI_LABELS)
        if len(df) < n:
            raise ValueError(f"only {len(df)} MNLI training pairs, points.n = {n}")
        return self._encode(df.iloc[:n], cfg)

    def eval_data(self, set_name: str, cfg: dict) -> EvalData | None:
        src = "MNLI" if set_name == "MNLI" else "HANS"
        path = self._nli_file(src, cfg, required=False)
        if path is None or not path.exists():
            return None
        key = dict(set=set_name, data=_file_key(path), max_length=int(cfg.get("max_length", 128)),
                   vocab=_file_key(self.vocab_path()))

        def load():
            df = read_nli(path, HF_MNLI_LABELS if src == "MNLI" else HF_HANS_LABELS)
            if src == "HANS":
                if "heuristic" not in df.columns:
                    raise ValueError(f"{path}: HANS needs a 'heuristic' column")
                df = df[(df.heuristic == HANS_SUBSETS[set_name]) & (df.label == "non-entailment")]
                return self._encode(df, cfg, labels=("entailment", "non-entailment"))
            return self._encode(df, cfg)

        return EvalData(set_name, key, load, "multiclass" if src == "MNLI" else "hans")

    def model_targets(self, model, y):
        names = list(getattr(model, "label_names", BERT_MNLI_LABELS))
        return torch.tensor([names.index(n) for n in BERT_MNLI_LABELS])[y]

    @torch.no_grad()
    def error(self, model, data: EvalData, tensors, cfg, device) -> float:
        x, y = tensors
        names = getattr(model, "label_names", BERT_MNLI_LABELS)
        bs = int(cfg["errors"]["batch_size"])
        dev = torch.device(device) if device is not None else next(model.parameters()).device
        preds = torch.cat([model(x[i:i + bs].to(dev)).argmax(1).cpu() for i in range(0, len(x), bs)])
        if data.kind == "hans":                    # binary: entailment vs neutral/contradiction
            ent = names.index("entailment")
            return float(((preds != ent).long() != y).float().mean()) if len(y) else float("nan")
        # y is in BERT_MNLI_LABELS order; map it to the model's label order
        perm = torch.tensor([names.index(n) for n in BERT_MNLI_LABELS])
        return float((preds != perm[y]).float().mean()) if len(y) else float("nan")


# ------------------------------------------------------------------------------------------ runner
def resolve_grid(zoo_name: str, grid) -> list[tuple[str, float]]:
    """``"paper"`` -> :func:`paper_grid`; a mapping {definition: [ρ, …]} -> its pairs (checked)."""
    from repro.sharpness.definitions import get as get_definition

    if grid in (None, "paper"):
        return paper_grid(zoo_name)
    if not isinstance(grid, dict):
        raise ValueError(f"grid must be 'paper' or a mapping {{definition: [rho, ...]}}, got {grid!r}")
    out = []
    for d, rs in grid.items():
        get_definition(d)
        out += [(d, float(r)) for r in (rs if isinstance(rs, (list, tuple)) else [rs])]
    return out


def _measure_entry(model, points, d: str, rho: float, s: dict, m: int, device) -> dict:
    from repro.sharpness.measure import measure_detailed

    r = measure_detailed(model, [points], d, float(rho), m=int(m), steps=int(s["steps"]),
                         n_samples=int(s["n_samples"]), logit_norm=s.get("logit_norm"), seed=int(s["seed"]),
                         device=device, mode=s.get("mode", "faithful"), init=s.get("init"),
                         batched_noise=s.get("batched_noise"), chunk=s.get("chunk"))
    return dict(value=float(r.value), per_batch=[float(v) for v in r.per_batch], clean_loss=float(r.clean_loss))


def pretrained_zoo_frame(zoo_name: str, cfg: dict | None, device=None, progress: bool = True) -> pd.DataFrame:
    """One row per member of ``zoo_name``: hyperparameters, ``err_<set>`` for the zoo's evaluation sets,
    ``errors_from`` and one ``"{definition}@{rho:g}"`` sharpness column per grid point.

    ``cfg``: the ``pretrained_zoos`` section of the ch5 profile (module docstring).  Every model × set
    error and every model × definition × ρ sharpness is one :mod:`repro.core.cache` entry keyed by the
    checkpoint's identity (name, size, hash of its ends) and by what determines the number, so a killed
    run resumes; a model is only loaded when one of its entries is missing.  A member whose checkpoint
    is absent raises :class:`repro.data.manifests.MissingAsset` before anything is computed."""
    from repro.core.config import device as _device
    from repro.sharpness.definitions import get as get_definition

    zoo = get_zoo(zoo_name)
    c = pretrained_zoo_config(zoo_name, cfg)
    dev = _device(device) if (device is None or isinstance(device, str)) else torch.device(device)
    members = _select_members(zoo.members(c), c["members"])
    paths = {int(r.member): zoo.member_path(r) for _, r in members.iterrows()}   # MissingAsset up front
    grid = resolve_grid(zoo_name, c["grid"])
    s, p, e = c["sharpness"], c["points"], c["errors"]

    # where each error comes from
    plan: dict[str, Any] = {}
    for name in zoo.eval_sets:
        has_meta = f"meta_err_{name}" in members.columns and members[f"meta_err_{name}"].notna().all()
        if e["source"] != "compute" and has_meta:
            plan[name] = "metadata"
            continue
        if e["source"] == "metadata":
            plan[name] = None
            continue
        src = "HANS" if name.startswith("HANS") else name
        data = zoo.eval_data(name, c)
        if data is None and e["source"] == "compute":
            if isinstance(zoo, ImageZoo) and IMAGE_EVAL_SETS.get(name):
                raise _missing(IMAGE_EVAL_SETS[name][0], f"evaluation set {name}")
            if isinstance(zoo, BertMnli):
                zoo._nli_file(src, c, required=True)
            raise ValueError(f"{zoo_name}: no data for evaluation set {name!r} (no manifest; set errors.source to "
                             "'auto' or 'metadata', or give errors.roots)")
        plan[name] = data
        if data is None:
            log.warning("%s: no metadata and no data for evaluation set %s; its error column stays NaN", zoo_name, name)

    memo: dict = {}

    def points():
        if "points" not in memo:
            memo["points"] = zoo.sharpness_points(c)
        return memo["points"]

    def eval_tensors(data: EvalData):
        if data.name not in memo:
            memo[data.name] = data.load()
        return memo[data.name]

    pkey = zoo.points_key(c) if grid else None
    rows = []
    it = members.iterrows()
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(list(it), desc=f"{zoo_name}", leave=False)
    for _, r in it:
        i = int(r.member)
        mkey = dict(zoo=zoo_name, id=str(r["id"]), checkpoint=_file_key(paths[i]))
        holder: dict = {}

        def model():
            if "m" not in holder:
                holder["m"] = zoo.load_model(r, c).to(dev).eval()
            return holder["m"]

        out = {"member": i, "id": r["id"], **{h: r[h] for h in zoo.hparams if h in r.index}}
        src = []
        for name in zoo.eval_sets:
            how = plan[name]
            if how == "metadata":
                out[f"err_{name}"] = float(r[f"meta_err_{name}"])
                src.append(f"{name}=metadata")
            elif how is None:
                out[f"err_{name}"] = float("nan")
                src.append(f"{name}=missing")
            else:
                params = dict(model=mkey, data=how.key, arch=c.get("arch"))
                out[f"err_{name}"] = float(cache.get_or_compute(
                    "ch5_pretrained_error", params,
                    lambda how=how: zoo.error(model(), how, eval_tensors(how), c, dev), version=PRETRAINED_ERROR_VERSION))
                src.append(f"{name}=computed")
        out["errors_from"] = ",".join(src)
        for d, rho in grid:
            dd = get_definition(d)
            params = dict(model=mkey, arch=c.get("arch"), points=pkey, definition=dd.name, rho=float(rho),
                          m=int(p["m"]), steps=int(s["steps"]) if dd.kind == "worst" else None,
                          n_samples=int(s["n_samples"]) if dd.kind == "avg" else None,
                          logit_norm=s.get("logit_norm") if dd.logit_norm else None,
                          mode=s.get("mode", "faithful") if dd.kind == "worst" else None,
                          init=s.get("init") if dd.kind == "worst" else None, seed=int(s["seed"]))
            res = cache.get_or_compute(
                "ch5_pretrained_sharpness", params,
                lambda d=d, rho=rho: _measure_entry(model(), (points()[0], zoo.model_targets(model(), points()[1])),
                                                    d, rho, s, int(p["m"]), dev),
                version=PRETRAINED_SHARPNESS_VERSION)
            out[f"{d}@{rho:g}"] = float(res["value"])
        rows.append(out)
        holder.clear()
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    return pd.DataFrame(rows)


TAU_VS_PAPER_COLUMNS = ["definition", "rho", "eval_set", "tau_paper", "tau_ours", "n_models", "sign_agrees"]


def tau_vs_paper(frame: pd.DataFrame, zoo_name: str, min_models: int = 3) -> pd.DataFrame:
    """Our Kendall τ (Eq. 4, τ-a) between ``err_<set>`` and each sharpness column beside the paper's
    Table 1/2 value for the same definition, ρ and evaluation set; ``sign_agrees`` is None where
    either τ is missing (column absent, fewer than ``min_models`` models with both numbers)."""
    from repro.sharpness.kendall import kendall_tau

    get_zoo(zoo_name)
    paper = _ref.paper_taus(zoo_name)
    rows = []
    for r in paper.itertuples():
        d = r.definition
        rho = float(r.rho)
        col, tcol = f"{d}@{rho:g}", f"err_{r.eval_set}"
        tau, n = float("nan"), 0
        if col in frame.columns and tcol in frame.columns:
            sub = frame[[tcol, col]].apply(pd.to_numeric, errors="coerce").dropna()
            n = len(sub)
            if n >= max(int(min_models), 2):
                tau = kendall_tau(sub[tcol], sub[col])
        tp = float(r.tau)
        rows.append(dict(definition=d, rho=rho, eval_set=r.eval_set, tau_paper=tp, tau_ours=tau, n_models=n,
                         sign_agrees=bool(np.sign(tp) == np.sign(tau)) if math.isfinite(tau) else None))
    return pd.DataFrame(rows, columns=TAU_VS_PAPER_COLUMNS)


def run_zoos(cfg: dict, device=None, progress: bool = True) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """Every zoo of ``cfg["zoos"]`` (the profile's ``pretrained_zoos`` section): ``{name: (frame, τ vs
    paper)}`` from :func:`pretrained_zoo_frame` and :func:`tau_vs_paper`, in the profile's order."""
    names = list(cfg.get("zoos") or [])
    if not names:
        raise ValueError(f"pretrained_zoos.zoos is empty; choose from {list_zoos()}")
    out = {}
    for name in names:
        frame = pretrained_zoo_frame(name, cfg, device=device, progress=progress)
        out[name] = (frame, tau_vs_paper(frame, name))
    return out


def tau_summary(tau: pd.DataFrame, zoo_name: str) -> dict:
    """Scalars for the chapter's claim table from one :func:`tau_vs_paper` frame: how many of our τ
    are outside the noise band (|τ| > 2σ for their number of models, σ from
    :func:`repro.studies.ch5_sharpness.experiment.tau_noise_level`) and the share of those whose sign
    agrees with the paper, and the main measure (adaptive worst-case ℓ∞ with LN at the middle radius of
    Table 1/2, ID set) ours vs paper."""
    from repro.studies.ch5_sharpness.experiment import decided_sign

    ok = tau[np.isfinite(tau.tau_ours.astype(float)) & np.isfinite(tau.tau_paper.astype(float))] if len(tau) else tau
    dec = [decided_sign(t, n) for t, n in zip(ok.tau_ours, ok.n_models)] if len(ok) else []
    agree = [int(d == np.sign(p)) for d, p in zip(dec, ok.tau_paper if len(ok) else []) if d != 0]
    rho = PAPER_RHO[zoo_name]["adaptive_worst_linf_ln"][1]
    ident = get_zoo(zoo_name).eval_sets[0]
    main = tau[(tau.definition == "adaptive_worst_linf_ln") & np.isclose(tau.rho, rho) & (tau.eval_set == ident)]
    return dict(zoo=zoo_name, title=get_zoo(zoo_name).title, n_signs=int(len(ok)), n_decided=len(agree),
                sign_agree=float(np.mean(agree)) if agree else float("nan"), main_rho=float(rho), main_set=ident,
                main_tau=float(main.tau_ours.iloc[0]) if len(main) else float("nan"),
                main_tau_paper=float(main.tau_paper.iloc[0]) if len(main) else float("nan"),
                n_models=int(tau.n_models.max()) if len(tau) else 0)
