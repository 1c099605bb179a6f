"""Training one chapter-3/4 zoo member: the computation behind the ``zoo_model`` cache entries.

Kept apart from :mod:`repro.studies.ch3_ninco.zoo` (entries, pretrained loading, feature access) so that the
code fingerprint of a trained model (:mod:`repro.core.fingerprint`) covers what can change its weights -- this
module, the architectures (:mod:`repro.models`) and the training loop (:mod:`repro.train.loop`) -- and not the
OOD detectors or the feature extraction, whose edits must not retrain (and re-release) the zoo.
"""
from __future__ import annotations

import torch

from repro.models import build_from_spec
from repro.train.loop import evaluate, train_classifier

#: the ZooEntry fields that are arguments of :func:`repro.train.loop.train_classifier`
RECIPE_KEYS = ("optimizer", "lr", "epochs", "weight_decay", "augment", "label_smoothing", "mixup_alpha",
               "batch_size", "warmup_epochs")


def train_entry(spec: dict, recipe: dict, train_x, train_y, test_x, test_y, *, seed: int, device=None,
                progress: bool = True, desc: str = "train") -> dict:
    """Build ``spec``, train it with ``recipe`` on (``train_x``, ``train_y``) and record its accuracy on the test
    images and on the clean (un-augmented) training images: the convergence criterion, since the history's
    accuracy is measured on augmented batches."""
    torch.manual_seed(int(seed))
    model = build_from_spec(spec)
    hist = train_classifier(model, train_x, train_y, seed=int(seed), device=device, progress=progress, desc=desc,
                            **recipe)["history"]
    acc = evaluate(model, test_x, test_y, device=device)["accuracy"]
    train_acc = evaluate(model, train_x, train_y, device=device)["accuracy"]
    sd = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return {"state_dict": sd, "spec": spec, "test_acc": float(acc), "train_acc": float(train_acc), "history": hist}
