"""SAM, ASAM, Fisher-SAM and SAM-ON (chapter 6 / paper Sec. 8.4, Müller et al. NeurIPS 2023).

- :class:`SAM`: one optimizer wrapper for every perturbation model and parameter selection;
- :mod:`.variants`: perturbation models of Table 9 (``register``/``get``/``list_variants``);
- :mod:`.selection`: which parameters are perturbed (``all``, ``only_norm`` = SAM-ON, ``no_norm``,
  ``blocks``, ``random_mask``, ``ssam_f``, ``ssam_d``);
- :mod:`.ablations`: fix-norm, only-norm training, weight-decay scope;
- :func:`make_sam`: the ``make_optimizer`` hook for :func:`repro.train.loop.train_classifier`.
"""
from __future__ import annotations

from typing import Callable

from repro.sam import ablations, selection, variants
from repro.sam.optimizer import SAM
from repro.sam.selection import norm_fraction, norm_parameter_names, norm_parameters
from repro.sam.variants import list_variants

__all__ = ["SAM", "make_sam", "variants", "selection", "ablations", "norm_fraction", "norm_parameters",
           "norm_parameter_names", "list_variants"]


def make_sam(rho: float, variant: str = "sam", params="all", *, wd_scope: str = "all", **kw) -> Callable:
    """``make_optimizer(model, base)`` hook wrapping the trainer's base optimizer in :class:`SAM`.

    ``wd_scope`` rebuilds the base optimizer with weight decay on ``"all"`` / ``"all_but_norm"`` /
    ``"none"`` (App. B.9). Extra keyword arguments go to :class:`SAM`.
    """
    def make_optimizer(model, base):
        if wd_scope != "all":
            base = ablations.rebuild_with_weight_decay_scope(model, base, wd_scope)
        return SAM(model, base, rho=rho, variant=variant, params=params, **kw)

    return make_optimizer


def wd_scope_hook(wd_scope: str) -> Callable:
    """``make_optimizer`` hook for plain SGD/AdamW with a weight-decay scope (no SAM)."""
    def make_optimizer(model, base):
        return ablations.rebuild_with_weight_decay_scope(model, base, wd_scope)

    return make_optimizer
