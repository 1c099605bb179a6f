"""One SAM optimizer for SAM, ASAM, Fisher-SAM and SAM-ON (paper Sec. 3, App. A.3, App. C Eq. 10-11).

Two-pass update for a mini-batch (Sec. 2.3, Sec. 8.4 (Sec. 3.2), Sec. 8.4 (App. A.3)):

1. ascent: gradient g at w; eps from the variant (Eq. 5) restricted to the selected parameters,
   the ℓ2 norm taken over the selected set only (so ||T^{-1} eps|| = rho there, zero elsewhere);
2. descent: gradient at w + eps, then w is restored *exactly* (copied back, not eps subtracted) and
   the base optimizer (SGD/AdamW/Lion/...) steps **all** parameters with that gradient.

Usage with a closure (what :func:`repro.train.loop.train_classifier` does)::

    base = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    opt = SAM(model, base, rho=0.5, variant="sam", params="only_norm")
    opt.step(closure)      # closure zeroes grads, runs forward+backward, returns the loss

Explicit two-step API, with AMP and gradient clipping::

    scaler = torch.amp.GradScaler()
    with opt.ascent_pass():                      # only needed for runtime_mode=True
        with torch.autocast("cuda"):
            loss = crit(model(x), y)
        scaler.scale(loss).backward()
    opt.first_step(zero_grad=True, scaler=scaler)   # unscales, skips the ascent on inf/NaN
    with torch.autocast("cuda"):
        crit(model(x), y).backward() if scaler is None else scaler.scale(crit(model(x), y)).backward()
    opt.second_step(zero_grad=True, scaler=scaler)  # restores w, unscale_, clip, scaler.step(base)
    scaler.update()                                 # the caller updates the scale, once per step

BatchNorm running statistics are frozen between ``first_step`` and ``second_step`` (the perturbed
pass must not update them a second time; ``bn_second_pass="update"`` keeps the SAM-ON code's
behaviour of updating them twice, the ch. 6 implementation notes).

``runtime_mode=True`` (paper Sec. 4.3, Sec. 8.4 (Sec. 4.3)): during the ascent pass every parameter that is not
perturbed has ``requires_grad=False``, so autograd skips its weight gradient (and stops below the
first perturbed layer for block-restricted SAM-ON). The update is identical to the plain mode.
"""
from __future__ import annotations

import contextlib
import math
from typing import Callable, Optional, Union

import torch
from torch import nn

from repro.sam import selection as _sel
from repro.sam import variants as _var

__all__ = ["SAM"]


def _acc(t: torch.Tensor) -> torch.Tensor:
    """Accumulate norms in at least float32 (fp16/bf16 grads under AMP), keeping float64 as is."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


class SAM(torch.optim.Optimizer):
    """Sharpness-aware wrapper around ``base_optimizer`` (which must own all of ``model``'s trainable params).

    Args:
        model: the network (needed to find normalization layers by module type and BN buffers).
        base_optimizer: a constructed optimizer; its ``param_groups`` are shared (LR schedulers work).
        rho: radius of the ascent step (> 0). SAM-ON needs a larger rho than SAM-all (Table 7).
        variant: ``"sam"``, ``"elementwise_l2"``, ``"elementwise_l2_orig"``, ``"elementwise_linf"``,
            ``"layerwise_l2"``, ``"fisher"`` or a :class:`repro.sam.variants.Variant`.
        params: which parameters are perturbed: ``"all"``, ``"only_norm"`` (SAM-ON), ``"no_norm"``,
            ``"random_mask"``, ``"ssam_f"``, ``"ssam_d"``, ``"blocks:layer2+layer3"``, a
            :class:`~repro.sam.selection.Selection`, or a callable ``model -> iterable of parameters``.
        eta: η of the variant (Table 9); ``None`` = the variant's default.
        normalize_bias: ``None`` = the variant's default (False only for ``elementwise_l2_orig``).
        runtime_mode: disable gradients of non-perturbed parameters in the ascent pass (Sec. 4.3).
        bn_second_pass: ``"freeze"`` (default) or ``"update"`` for BN running stats in pass 2.
        max_grad_norm: clip the descent gradient to this global ℓ2 norm before the base step.
        check_finite: raise ``FloatingPointError`` naming the step on NaN/inf gradients (without a scaler).
    """

    def __init__(
        self,
        model: nn.Module,
        base_optimizer: torch.optim.Optimizer,
        *,
        rho: float,
        variant: Union[str, _var.Variant] = "sam",
        params: Union[str, _sel.Selection, Callable] = "all",
        eta: Optional[float] = None,
        normalize_bias: Optional[bool] = None,
        runtime_mode: bool = False,
        bn_second_pass: str = "freeze",
        max_grad_norm: Optional[float] = None,
        check_finite: bool = True,
    ):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        if not isinstance(base_optimizer, torch.optim.Optimizer):
            raise TypeError("base_optimizer must be a constructed torch.optim.Optimizer, e.g. "
                            f"torch.optim.SGD(model.parameters(), lr=0.1); got {type(base_optimizer).__name__}")
        if isinstance(base_optimizer, SAM):
            raise TypeError("base_optimizer is already a SAM optimizer; wrap the plain optimizer once")
        if not isinstance(rho, (int, float)) or isinstance(rho, bool) or not math.isfinite(rho) or rho <= 0:
            raise ValueError(f"rho must be a positive finite number, got {rho!r}")
        if bn_second_pass not in ("freeze", "update"):
            raise ValueError(f"bn_second_pass must be 'freeze' or 'update', got {bn_second_pass!r}")
        if max_grad_norm is not None and not (max_grad_norm > 0):
            raise ValueError(f"max_grad_norm must be positive or None, got {max_grad_norm!r}")
        self.model = model
        self.base_optimizer = base_optimizer
        self.variant = _var.get(variant)
        # one policy for hyperparameters without effect: a clear error naming them
        if eta is not None and not self.variant.uses_eta:
            raise ValueError(f"eta has no effect for SAM variant {self.variant.name!r} (T_w does not use η); "
                             "leave eta=None or pick an ASAM/Fisher variant")
        if normalize_bias is not None and not self.variant.bias_option:
            raise ValueError(f"normalize_bias has no effect for SAM variant {self.variant.name!r} (its T_w treats "
                             "biases like weights); leave normalize_bias=None")
        self.eta = self.variant.default_eta if eta is None else float(eta)
        if not math.isfinite(self.eta) or self.eta < 0:
            raise ValueError(f"eta must be a finite number >= 0, got {eta!r}")
        self.normalize_bias = self.variant.normalize_bias if normalize_bias is None else bool(normalize_bias)
        self.selection = _sel.resolve(params)
        self.entries = self.selection.build(model)
        if not self.entries:
            raise ValueError(f"params={params!r} selected no parameter to perturb")
        owned = {id(p) for g in base_optimizer.param_groups for p in g["params"]}
        missing = [e.name for e in self.entries if id(e.param) not in owned and e.param.requires_grad]
        if missing:
            raise ValueError(f"base_optimizer does not own the perturbed parameters {missing[:5]}...; build it "
                             "from model.parameters()")
        self.rho = float(rho)
        self.runtime_mode = bool(runtime_mode)
        self.bn_second_pass = bn_second_pass
        self.max_grad_norm = max_grad_norm
        self.check_finite = bool(check_finite)
        self.step_count = 0
        self.skipped_ascents = 0
        self.last_eps_norm = float("nan")
        self._old: dict[int, torch.Tensor] = {}
        self._perturbed = False
        self._bn_saved: list = []
        self._perturbed_ids = {id(e.param) for e in self.entries}
        # Share the base optimizer's groups and state so LR schedulers and the trainer see one object.
        super().__init__([p for g in base_optimizer.param_groups for p in g["params"]], dict(rho=self.rho))
        self.param_groups = base_optimizer.param_groups
        self.state = base_optimizer.state
        self.defaults.update(base_optimizer.defaults)

    # ------------------------------------------------------------------ bookkeeping
    def __repr__(self) -> str:
        n = sum(e.param.numel() if e.mask is None else int(e.mask.sum()) for e in self.entries)
        return (f"SAM(variant={self.variant.name}, params={self.selection!r}, rho={self.rho}, eta={self.eta}, "
                f"perturbed={n} entries, base={type(self.base_optimizer).__name__})")

    def n_perturbed(self) -> int:
        """Number of perturbed scalar parameters (after masks)."""
        return int(sum(e.param.numel() if e.mask is None else int(e.mask.sum()) for e in self.entries))

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.base_optimizer.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:
        sd = self.base_optimizer.state_dict()
        sd["sam"] = {"step_count": self.step_count, "rho": self.rho, "variant": self.variant.name,
                     "skipped_ascents": self.skipped_ascents}
        return sd

    def load_state_dict(self, state_dict: dict) -> None:
        sd = dict(state_dict)
        sam = sd.pop("sam", {})
        self.base_optimizer.load_state_dict(sd)
        self.state = self.base_optimizer.state
        self.param_groups = self.base_optimizer.param_groups
        self.step_count = int(sam.get("step_count", 0))
        self.skipped_ascents = int(sam.get("skipped_ascents", 0))

    # ------------------------------------------------------------------ contexts
    @contextlib.contextmanager
    def ascent_pass(self):
        """Wrap the *first* forward+backward: in runtime mode, non-perturbed params need no grad."""
        if not self.runtime_mode:
            yield
            return
        changed = []
        for p in self.model.parameters():
            if p.requires_grad and id(p) not in self._perturbed_ids:
                p.requires_grad_(False)
                changed.append(p)
        try:
            yield
        finally:
            for p in changed:
                p.requires_grad_(True)

    def _freeze_bn(self) -> None:
        if self.bn_second_pass != "freeze" or self._bn_saved:
            return
        for m in self.model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats and m.training:
                nbt = None if m.num_batches_tracked is None else m.num_batches_tracked.clone()
                self._bn_saved.append((m, m.momentum, nbt))
                # momentum 0 leaves running_mean/var unchanged; num_batches_tracked is restored below.
                m.momentum = 0.0

    def _unfreeze_bn(self) -> None:
        for m, mom, nbt in self._bn_saved:
            m.momentum = mom
            if nbt is not None:
                m.num_batches_tracked.copy_(nbt)
        self._bn_saved = []

    # ------------------------------------------------------------------ the two steps
    def _grads_finite(self, tensors) -> bool:
        if not tensors:
            return True
        return bool(torch.isfinite(torch.stack([t.float().norm() for t in tensors]).sum()))

    @torch.no_grad()
    def perturbation(self, inv_scale: float = 1.0) -> list[Optional[torch.Tensor]]:
        """eps for every entry (Eq. 5 with T_w restricted to the selection); ``None`` where grad is None."""
        v = self.variant
        Ts, gs = [], []
        for e in self.entries:
            g = e.param.grad
            if g is None:
                Ts.append(None)
                gs.append(None)
                continue
            g = g.detach() * inv_scale if inv_scale != 1.0 else g.detach()
            T = v.T(e.param, g, e.is_bias, self.eta, self.normalize_bias)
            if not torch.is_tensor(T):
                T = torch.full_like(g, float(T)) if e.mask is not None else T
            if e.mask is not None:
                T = T * e.mask
            Ts.append(T)
            gs.append(g)
        eps: list[Optional[torch.Tensor]] = []
        if v.p == 2:
            sq = [_acc((T * g) if torch.is_tensor(T) else (g * T)).pow(2).sum() for T, g in zip(Ts, gs) if g is not None]
            norm = torch.stack(sq).sum().sqrt() if sq else torch.zeros(())
            scale = self.rho / norm.clamp_min(1e-12)
            for T, g in zip(Ts, gs):
                eps.append(None if g is None else (g * (T * T if torch.is_tensor(T) else T * T) * scale).to(g.dtype))
        else:
            for T, g in zip(Ts, gs):
                eps.append(None if g is None else self.rho * T * torch.sign(g))
        return eps

    @torch.no_grad()
    def first_step(self, zero_grad: bool = True, scaler=None) -> None:
        """Ascent: w <- w + eps (old values kept for an exact restore); freezes BN running stats."""
        if self._perturbed:
            raise RuntimeError("first_step called twice without second_step; call second_step after the "
                               "perturbed forward/backward pass")
        inv_scale = 1.0
        grads = [e.param.grad for e in self.entries if e.param.grad is not None]
        if scaler is not None and scaler.is_enabled():
            inv_scale = 1.0 / float(scaler.get_scale())
        finite = self._grads_finite(grads)
        if not grads:
            raise RuntimeError("no gradient on any perturbed parameter: run forward+backward before first_step "
                               "(inside opt.ascent_pass() when runtime_mode=True)")
        if not finite:
            if scaler is None and self.check_finite:
                bad = [e.name for e in self.entries if e.param.grad is not None
                       and not torch.isfinite(e.param.grad).all()]
                raise FloatingPointError(f"non-finite gradient at SAM step {self.step_count} (ascent pass) in "
                                         f"{bad[:5]}; lower the learning rate or rho, or use a GradScaler with AMP")
            # AMP overflow: no perturbation this step; scaler.step will skip the update.
            self.skipped_ascents += 1
        else:
            self.selection.update(self.entries, self.step_count)
            eps = self.perturbation(inv_scale)
            sq = 0.0
            for e, d in zip(self.entries, eps):
                if d is None:
                    continue
                self._old[id(e.param)] = e.param.detach().clone()
                e.param.add_(d)
                sq += float(d.float().pow(2).sum())
            self.last_eps_norm = math.sqrt(sq)
        self._perturbed = True
        self._freeze_bn()
        if zero_grad:
            self.zero_grad(set_to_none=True)

    @torch.no_grad()
    def second_step(self, zero_grad: bool = True, scaler=None) -> None:
        """Descent: restore w exactly, then the base optimizer steps all params with the perturbed-point grads."""
        if not self._perturbed:
            raise RuntimeError("second_step called without first_step")
        for e in self.entries:
            old = self._old.get(id(e.param))
            if old is not None:
                e.param.copy_(old)
        self._old = {}
        self._perturbed = False
        self._unfreeze_bn()
        use_scaler = scaler is not None and scaler.is_enabled()
        if use_scaler and self.max_grad_norm is not None:
            scaler.unscale_(self.base_optimizer)
        params = [p for g in self.param_groups for p in g["params"] if p.grad is not None]
        if self.check_finite and not use_scaler and not self._grads_finite([p.grad for p in params]):
            raise FloatingPointError(f"non-finite gradient at SAM step {self.step_count} (descent pass at the "
                                     "perturbed point); lower rho or the learning rate")
        if self.max_grad_norm is not None and params:
            torch.nn.utils.clip_grad_norm_(params, self.max_grad_norm)
        if use_scaler:
            scaler.step(self.base_optimizer)
        else:
            self.base_optimizer.step()
        self.step_count += 1
        if zero_grad:
            self.zero_grad(set_to_none=True)

    def step(self, closure: Optional[Callable[[], torch.Tensor]] = None):
        """Full SAM step; ``closure`` must zero grads, run forward+backward and return the loss.

        Returns the loss of the first (unperturbed) pass.
        """
        if closure is None:
            raise ValueError("SAM.step needs a closure (zero grads, forward, backward, return loss); "
                             "or call first_step()/second_step() around your own passes")
        with torch.enable_grad():
            with self.ascent_pass():
                loss = closure()
            self.first_step(zero_grad=True)
            try:
                closure()
            except Exception:
                self._restore_on_error()
                raise
        self.second_step(zero_grad=False)
        return loss

    @torch.no_grad()
    def _restore_on_error(self) -> None:
        for e in self.entries:
            old = self._old.get(id(e.param))
            if old is not None:
                e.param.copy_(old)
        self._old = {}
        self._perturbed = False
        self._unfreeze_bn()
