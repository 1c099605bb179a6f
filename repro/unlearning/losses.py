"""Unlearning losses: one registry, one signature (dissertation Sec. 8.5, Eq. 1-9, Appendix E).

Every loss is a small class over the shared trainer step: ``loss(model, ref, forget, forget_target,
retain) -> (total, logs)`` where the batches are :class:`repro.unlearning.data.Encoded` and ``ref``
is the frozen base model (or ``None`` when ``needs_ref`` is False). The general objective is
Eq. 1 / Eq. 2.5: ``λ_F · L_F + λ_R · L_R``.

Registered names: ``jensun`` (Eq. 4-6; variants ``paper_eq4`` | ``code_v1`` | ``code_v2``, notes
Sec. 1.9), ``jensun_kl`` (the D_KL ablation, E.2), ``ga``, ``graddiff``, ``npo`` (β = 0.1), ``simnpo``
(β = 4.5), ``dpo`` (refusal preferred), ``rmu`` (layer, steering coefficient), ``npo_sam`` (NPO,
trained with :class:`repro.sam.SAM` by the trainer).
"""
from __future__ import annotations

import abc
import math
from typing import Callable

import torch
import torch.nn.functional as F

from repro.core.registry import Registry
from repro.unlearning.data import Encoded
from repro.unlearning.divergences import jsd, jsd_to_onehot, kl, kl_onehot

#: name -> loss class; ``LOSSES.get("npo", beta=0.1)`` builds one (keywords checked)
LOSSES = Registry("unlearning loss")


def register(name: str) -> Callable[[type], type]:
    return LOSSES.register(name)


def get(name: str, **kw) -> "UnlearningLoss":
    """Instantiate a registered loss, e.g. ``get('jensun', lambda_r=0.5, variant='paper_eq4')``."""
    return LOSSES.get(name, **kw)


def list_losses() -> list[str]:
    return LOSSES.list(sorted=True)


def _positive(name: str, v) -> float:
    """beta-like coefficients divide the loss (2 / beta): 0 used to raise ZeroDivisionError mid-run."""
    if isinstance(v, bool) or not float(v) > 0 or not math.isfinite(float(v)):
        raise ValueError(f"{name} must be a positive finite number, got {v!r}")
    return float(v)


# --------------------------------------------------------------------------- helpers
def shifted(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Align logits at position t with the label at t+1; return (logits, labels, mask)."""
    lg = logits[:, :-1]
    lb = labels[:, 1:]
    mask = lb != -100
    return lg, lb.clamp_min(0), mask


def seq_logprob(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample Σ_t log p(y_t | x, y_<t) over answer tokens, and the answer lengths |y|."""
    lg, lb, mask = shifted(logits, labels)
    lp = torch.log_softmax(lg.float(), -1).gather(-1, lb.unsqueeze(-1)).squeeze(-1)
    return (lp * mask).sum(1), mask.sum(1)


def nll(model, batch: Encoded) -> torch.Tensor:
    """Retain NLL (Sec. 8.5 (App. E.3)): mean over samples of the per-sample sum of −log p over answer tokens."""
    lp, _ = seq_logprob(model(**batch.as_kwargs()).logits, batch.labels)
    return -lp.mean()


def joint_logits(model, a: Encoded, b: Encoded) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits of two right-padded batches from a single forward pass (rows padded to a common length)."""
    T = max(a.input_ids.shape[1], b.input_ids.shape[1])
    pad = lambda t, v: F.pad(t, (0, T - t.shape[1]), value=v)
    ids = torch.cat([pad(a.input_ids, 0), pad(b.input_ids, 0)])
    mask = torch.cat([pad(a.attention_mask, 0), pad(b.attention_mask, 0)])
    logits = model(input_ids=ids, attention_mask=mask).logits
    return logits[: len(a.input_ids), : a.input_ids.shape[1]], logits[len(a.input_ids):, : b.input_ids.shape[1]]


class UnlearningLoss(abc.ABC):
    """Base: ``lambda_f`` · forget term + ``lambda_r`` · retain term (Eq. 1); each loss defines its forget term."""

    name = "base"
    needs_ref = False
    uses_sam = False

    def __init__(self, lambda_f: float = 1.0, lambda_r: float = 1.0):
        for k, v in dict(lambda_f=lambda_f, lambda_r=lambda_r).items():
            if not float(v) >= 0 or not math.isfinite(float(v)):
                raise ValueError(f"{k} must be a non-negative number, got {v!r}")
        self.lambda_f, self.lambda_r = float(lambda_f), float(lambda_r)

    @abc.abstractmethod
    def forget_term(self, model, ref, forget: Encoded, forget_target: Encoded) -> torch.Tensor:
        """The loss on the forget set (to be minimised)."""

    def retain_term(self, model, ref, retain: Encoded) -> torch.Tensor:
        return nll(model, retain)

    def __call__(self, model, ref, forget: Encoded, forget_target: Encoded, retain: Encoded):
        lf = self.forget_term(model, ref, forget, forget_target)
        lr = self.retain_term(model, ref, retain) if self.lambda_r > 0 else torch.zeros((), device=lf.device)
        total = self.lambda_f * lf + self.lambda_r * lr
        return total, {"loss": float(total.detach()), "forget_loss": float(lf.detach()), "retain_loss": float(lr.detach())}

    def params(self) -> dict:
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}


# --------------------------------------------------------------------------- JensUn
@register("jensun")
class JensUn(UnlearningLoss):
    """JensUn (Eq. 4-6 / Eq. 7.1-7.3): forget = Σ_t JSD(p_θ(·|x, y^target_<t) ‖ δ_{y^target_t}) per
    sample, teacher-forced on the fixed target string; retain = Σ_t JSD(p_θ ‖ p_θref) over the
    retain answer tokens; both averaged over samples. λ_F = λ_R = 0.5 (Table 4).

    ``variant`` selects the released code's forms (the ch. 7 implementation notes): ``code_v1`` (first commit:
    multi-hot over all target ids at *every* position of the forget QA sequence, retain JSD over
    all positions) and ``code_v2`` (HEAD: answer positions of the forget QA sequence, one-hot
    cycling through the target tokens, token means)."""

    needs_ref = True
    VARIANTS = ("paper_eq4", "code_v1", "code_v2")

    def __init__(self, lambda_f: float = 0.5, lambda_r: float = 0.5, variant: str = "paper_eq4"):
        super().__init__(lambda_f, lambda_r)
        if variant not in self.VARIANTS:
            raise ValueError(f"unknown JensUn variant {variant!r}; allowed: {', '.join(self.VARIANTS)}")
        self.variant = variant
        self._target_ids: list[int] | None = None

    def set_target(self, ids: list[int]) -> None:
        self._target_ids = list(ids)

    def __call__(self, model, ref, forget, forget_target, retain):
        if self.variant != "paper_eq4" or self.lambda_r == 0:
            return super().__call__(model, ref, forget, forget_target, retain)
        # one forward of the trained model over forget-target and retain rows together (same
        # result as two calls, fewer kernel launches); the frozen model only sees the retain rows
        fl, rl = joint_logits(model, forget_target, retain)
        # divergences only at answer positions (the vocabulary-wide work is the costly part)
        lg, lb, mask = shifted(fl, forget_target.labels)
        lf = jsd_to_onehot(lg[mask], lb[mask]).sum() / len(mask)
        with torch.no_grad():
            ref_logits = ref(**retain.as_kwargs()).logits
        lg, _, mask = shifted(rl, retain.labels)
        lr = jsd(lg[mask], ref_logits[:, :-1][mask]).sum() / len(mask)
        total = self.lambda_f * lf + self.lambda_r * lr
        return total, {"loss": float(total.detach()), "forget_loss": float(lf.detach()), "retain_loss": float(lr.detach())}

    def forget_term(self, model, ref, forget, forget_target):
        if self.variant == "paper_eq4":
            lg, lb, mask = shifted(model(**forget_target.as_kwargs()).logits, forget_target.labels)
            return (jsd_to_onehot(lg, lb) * mask).sum(1).mean()
        if self._target_ids is None:
            raise RuntimeError("code variants need the target ids; the trainer calls set_target()")
        logits = model(**forget.as_kwargs()).logits.float()
        if self.variant == "code_v1":
            lq = torch.log_softmax(logits, -1)
            peaked = torch.zeros_like(lq)
            peaked[..., self._target_ids] = 1.0      # unnormalised multi-hot, as released
            lm = torch.log(0.5 * (lq.exp() + peaked)).clamp_min(-1e4)
            j = 0.5 * (lq.exp() * (lq - lm)).sum(-1) + 0.5 * (peaked * (torch.log(peaked.clamp_min(1e-30)) - lm)).sum(-1)
            return j.mean()
        lg, lb, mask = shifted(logits, forget.labels)
        pos = mask.long().cumsum(1) - 1
        tid = torch.tensor(self._target_ids, device=lg.device)
        cyc = tid[pos.clamp_min(0) % len(tid)]
        return (jsd_to_onehot(lg, cyc) * mask).sum() / mask.sum().clamp_min(1)

    def retain_term(self, model, ref, retain):
        logits = model(**retain.as_kwargs()).logits
        with torch.no_grad():
            ref_logits = ref(**retain.as_kwargs()).logits
        if self.variant == "code_v1":
            return jsd(logits, ref_logits).mean()
        lg, _, mask = shifted(logits, retain.labels)
        rl = ref_logits[:, :-1]
        j = jsd(lg, rl) * mask
        if self.variant == "code_v2":
            return j.sum() / mask.sum().clamp_min(1)
        return j.sum(1).mean()


@register("jensun_kl")
class JensUnKL(UnlearningLoss):
    """The D_KL ablation (Appendix E.2, Table 16): forget = Σ_t KL(δ_target ‖ p_θ) (cross-entropy
    to the target), retain = Σ_t KL(p_θref ‖ p_θ); everything else as JensUn."""

    needs_ref = True

    def __init__(self, lambda_f: float = 0.5, lambda_r: float = 0.5):
        super().__init__(lambda_f, lambda_r)

    def forget_term(self, model, ref, forget, forget_target):
        lg, lb, mask = shifted(model(**forget_target.as_kwargs()).logits, forget_target.labels)
        return (kl_onehot(lg, lb) * mask).sum(1).mean()

    def retain_term(self, model, ref, retain):
        logits = model(**retain.as_kwargs()).logits
        with torch.no_grad():
            ref_logits = ref(**retain.as_kwargs()).logits
        lg, _, mask = shifted(logits, retain.labels)
        return (kl(ref_logits[:, :-1], lg) * mask).sum(1).mean()


# --------------------------------------------------------------------------- baselines
@register("ga")
class GradientAscent(UnlearningLoss):
    """GA (Sec. 8.5 (App. E.3)): minimise (1/N_F) Σ Σ_t log p_θ(y_t | x, y_<t); no retain term."""

    def __init__(self, lambda_f: float = 1.0, lambda_r: float = 0.0):
        super().__init__(lambda_f, lambda_r)

    def forget_term(self, model, ref, forget, forget_target):
        lp, _ = seq_logprob(model(**forget.as_kwargs()).logits, forget.labels)
        return lp.mean()


@register("graddiff")
class GradDiff(GradientAscent):
    """GradDiff (Eq. 2 forget term + retain NLL, Sec. 8.5 (Sec. 3), Sec. 8.5 (App. E.3)); λ_F = λ_R = 0.5 (Table 4)."""

    def __init__(self, lambda_f: float = 0.5, lambda_r: float = 0.5):
        UnlearningLoss.__init__(self, lambda_f, lambda_r)


@register("npo")
class NPO(UnlearningLoss):
    """NPO (Sec. 8.5 (App. E.3)): −(2/β) log σ(−β log(π_θ(y|x)/π_ref(y|x))), log π summed over answer
    tokens; retain NLL; β = 0.1, λ_F = λ_R = 1 (Table 4, OpenUnlearning config)."""

    needs_ref = True

    def __init__(self, lambda_f: float = 1.0, lambda_r: float = 1.0, beta: float = 0.1):
        super().__init__(lambda_f, lambda_r)
        self.beta = _positive("beta", beta)

    def forget_term(self, model, ref, forget, forget_target):
        lp, _ = seq_logprob(model(**forget.as_kwargs()).logits, forget.labels)
        with torch.no_grad():
            lr, _ = seq_logprob(ref(**forget.as_kwargs()).logits, forget.labels)
        return (-2.0 / self.beta * F.logsigmoid(-self.beta * (lp - lr))).mean()


@register("npo_sam")
class NPOSAM(NPO):
    """NPO trained with SAM (Fan et al. 2025; the relearning baseline of Table 3, Sec. 8.5 (App. B.5)): SAM
    coefficient ρ = 0.01, retain coefficient 0.1. The trainer wraps AdamW with ``repro.sam.SAM``."""

    uses_sam = True

    def __init__(self, lambda_f: float = 1.0, lambda_r: float = 0.1, beta: float = 0.1, rho: float = 0.01):
        super().__init__(lambda_f, lambda_r, beta)
        self.rho = _positive("rho", rho)


@register("simnpo")
class SimNPO(UnlearningLoss):
    """SimNPO (Sec. 8.5 (App. E.3), with the γ typo corrected, the ch. 7 implementation notes): −(2/β) log σ(−(β/|y|) log π_θ(y|x) − δ);
    no reference model; retain NLL. β = 4.5, δ = 0, forget coefficient 0.125, retain 1.0 (config)."""

    def __init__(self, lambda_f: float = 0.125, lambda_r: float = 1.0, beta: float = 4.5, delta: float = 0.0):
        super().__init__(lambda_f, lambda_r)
        self.beta, self.delta = _positive("beta", beta), float(delta)

    def forget_term(self, model, ref, forget, forget_target):
        lp, n = seq_logprob(model(**forget.as_kwargs()).logits, forget.labels)
        return (-2.0 / self.beta * F.logsigmoid(-self.beta / n.clamp_min(1) * lp - self.delta)).mean()


@register("dpo")
class DPO(UnlearningLoss):
    """DPO with the refusal as the preferred answer and the true answer as the rejected one
    (OpenUnlearning's DPO, the ch. 7 implementation notes): −(2/β) log σ(β[(log π_θ − log π_ref)(y_w) − (log π_θ − log π_ref)(y_l)]);
    retain NLL; β = 0.1, λ_F = λ_R = 1 (Table 4)."""

    needs_ref = True

    def __init__(self, lambda_f: float = 1.0, lambda_r: float = 1.0, beta: float = 0.1):
        super().__init__(lambda_f, lambda_r)
        self.beta = _positive("beta", beta)

    def forget_term(self, model, ref, forget, forget_target):
        lw, _ = seq_logprob(model(**forget_target.as_kwargs()).logits, forget_target.labels)
        ll, _ = seq_logprob(model(**forget.as_kwargs()).logits, forget.labels)
        with torch.no_grad():
            rw, _ = seq_logprob(ref(**forget_target.as_kwargs()).logits, forget_target.labels)
            rl, _ = seq_logprob(ref(**forget.as_kwargs()).logits, forget.labels)
        return (-2.0 / self.beta * F.logsigmoid(self.beta * ((lw - rw) - (ll - rl)))).mean()


@register("rmu")
class RMU(UnlearningLoss):
    """RMU (Li et al. 2024; config of the ch. 7 implementation notes): push the layer-``layer`` activations on forget
    tokens toward ``steering_coeff`` · u (a fixed random unit vector) by masked MSE, and keep the
    retain activations at the reference model's (masked MSE). Layer and coefficient are
    model-specific (layer 7 / 2 for Llama-3.2-3B); the tiny model uses its own values."""

    needs_ref = True

    def __init__(self, lambda_f: float = 1.0, lambda_r: float = 1.0, layer: int = 1, steering_coeff: float = 5.0,
                 seed: int = 0):
        super().__init__(lambda_f, lambda_r)
        if int(layer) < 0:
            raise ValueError(f"layer must be >= 0, got {layer!r}")
        self.layer, self.steering_coeff, self.seed = int(layer), float(steering_coeff), int(seed)
        self._u: torch.Tensor | None = None

    def _hidden(self, model, batch: Encoded) -> torch.Tensor:
        out = model(**batch.as_kwargs(), output_hidden_states=True)
        hs = out.hidden_states
        if not 0 <= self.layer < len(hs) - 1:
            raise ValueError(f"RMU layer {self.layer} out of range; the model has {len(hs) - 1} layers")
        return hs[self.layer + 1]

    def forget_term(self, model, ref, forget, forget_target):
        h = self._hidden(model, forget).float()
        if self._u is None or self._u.shape[-1] != h.shape[-1]:
            g = torch.Generator().manual_seed(self.seed)
            u = torch.rand(h.shape[-1], generator=g)
            self._u = (u / u.norm()).to(h.device)
        mask = forget.attention_mask.unsqueeze(-1).float()
        err = ((h - self.steering_coeff * self._u) ** 2 * mask).sum() / (mask.sum() * h.shape[-1])
        return err

    def retain_term(self, model, ref, retain):
        h = self._hidden(model, retain).float()
        with torch.no_grad():
            hr = self._hidden(ref, retain).float()
        mask = retain.attention_mask.unsqueeze(-1).float()
        return ((h - hr) ** 2 * mask).sum() / (mask.sum() * h.shape[-1])
