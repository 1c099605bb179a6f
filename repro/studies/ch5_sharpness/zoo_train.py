"""Training one chapter-5 zoo member (App. H of Sec. 8.3): the computation behind the ``ch5_zoo_model``
cache entries, which the cpu profile releases (``releases/ch5/cpu``).

Kept apart from :mod:`repro.studies.ch5_sharpness.experiment` (sampling, sharpness, τ tables, ablations) so that
the code fingerprint of a trained model (:mod:`repro.core.fingerprint`) covers what can change its weights -- this
module, the architectures (:mod:`repro.models`), the training loop (:mod:`repro.train.loop`) and SAM
(:mod:`repro.sam`) -- and not the sharpness measures or the τ statistics, whose edits must not retrain (and
re-release) the zoo.
"""
from __future__ import annotations

import time
from dataclasses import asdict

import torch

from repro.core import cache

#: bump to invalidate every trained zoo model on purpose (a change of the training code does it by itself)
ZOO_VERSION = "1"


def error_rate(model, x, y, device=None) -> float:
    """Top-1 error of ``model`` on clean (un-augmented) images (App. H's train-error filter and test errors)."""
    from repro.train.loop import evaluate
    return 1.0 - float(evaluate(model, x, y, device=device)["accuracy"])


def train_sharpness_zoo_model(hp, data: dict, train_cfg: dict, arch: str = "resnet_t", num_classes: int = 10,
                              device=None, arch_kwargs: dict | None = None) -> dict:
    """Train (cached) one zoo model with the hyperparameters ``hp`` (an
    :class:`~repro.studies.ch5_sharpness.experiment.HParams`: LR, augmentation, mixup α = 0.5, SAM ρ, seed);
    returns state_dict, spec, hparams, history, the clean train / test / shifted-test errors and the wall
    time. A run that diverges (non-finite loss) is kept with NaN errors, so the filter drops it visibly.
    ``arch_kwargs``: keyword arguments of the registered model (e.g. ``img_size`` of a ViT)."""
    from repro.models import build_from_spec, model_spec
    from repro.train.loop import train_classifier

    spec = model_spec(arch, num_classes, **(arch_kwargs or {}))
    params = dict(hp=asdict(hp), train_cfg=train_cfg, spec=spec, data=data["fingerprint"])

    def fn():
        torch.manual_seed(hp.seed)
        model = build_from_spec(spec)
        make_opt = None
        if hp.sam_rho > 0:
            from repro.sam import make_sam
            make_opt = make_sam(hp.sam_rho)
        t0 = time.perf_counter()
        try:
            hist = train_classifier(model, data["x_train"], data["y_train"], lr=hp.lr, augment=hp.augment,
                                    mixup_alpha=0.5 if hp.mixup else 0.0, make_optimizer=make_opt, seed=hp.seed,
                                    device=device, progress=False, **train_cfg)["history"]
            diverged = False
        except FloatingPointError:
            hist, diverged = [], True
        wall = time.perf_counter() - t0
        model.eval()
        if diverged:
            errs = dict(train_err=float("nan"), test_err=float("nan"), shift_err=float("nan"))
        else:
            errs = dict(train_err=error_rate(model, data["x_train"], data["y_train"], device),
                        test_err=error_rate(model, data["x_test"], data["y_test"], device),
                        shift_err=error_rate(model, data["x_shift"], data["y_shift"], device))
        return dict(state_dict={k: v.cpu() for k, v in model.state_dict().items()}, spec=spec,
                    hparams=asdict(hp), history=hist, diverged=diverged, wall_s=wall, **errs)

    return cache.get_or_compute("ch5_zoo_model", params, fn, version=ZOO_VERSION)
