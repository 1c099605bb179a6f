"""AugReg ViT checkpoints (Steiner et al., "How to train your ViT"): the JAX/Flax ``.npz`` files
and the ``index.csv`` that lists them (the ImageNet zoos of Table 1 in Sec. 8.3, App. C and E)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from torch import nn


def load_augreg_npz(path, arch: str = "vit_base_patch16_224", num_classes: int = 1000, **kwargs) -> nn.Module:
    """An AugReg JAX/Flax ``.npz`` fine-tuning checkpoint as a timm ViT (timm's npz loader,
    ``VisionTransformer.load_pretrained`` -> ``_load_weights``), in eval mode."""
    import timm

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"AugReg checkpoint {path} does not exist")
    model = timm.create_model(arch, pretrained=False, num_classes=num_classes, **kwargs)
    model.load_pretrained(str(path))
    return model.eval()


#: augmentation names of the AugReg index in increasing strength (sorting key of the zoo members)
AUGREG_AUG_ORDER = ("none", "light0", "light1", "medium0", "medium1", "medium2", "strong0", "strong1", "strong2")


def read_augreg_index(path) -> pd.DataFrame:
    """The AugReg ``index.csv`` (columns name, ds, lr, aug, wd, do, sd, …, adapt_ds, adapt_lr,
    adapt_steps, adapt_resolution, adapt_final_val, adapt_final_test, filename, adapt_filename)."""
    df = pd.read_csv(path)
    need = {"name", "ds", "aug", "wd", "do", "sd", "adapt_ds", "adapt_lr", "adapt_resolution", "adapt_final_test",
            "adapt_filename"}
    miss = need - set(df.columns)
    if miss:
        raise ValueError(f"{path} is not the AugReg index.csv: missing column(s) {sorted(miss)}")
    return df
