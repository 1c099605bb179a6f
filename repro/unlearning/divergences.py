"""Per-token divergences of JensUn and its KL ablation (dissertation Eq. 3-5, Appendix E.2-E.4).

All functions take *logits* (the model's raw outputs ``u``; ``q = softmax(u)``) and work in log
space, so a target probability of 1e-30 does not produce NaNs.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LOG2 = math.log(2.0)


def jsd_to_onehot(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """JSD(q ‖ δ_k) per position (Eq. 3 with P = softmax(logits), Q = one-hot at ``target``).

    With M = (q + δ_k)/2 the divergence depends on q only through q_k:
    JSD = ½[(1 − q_k) log 2 + q_k log(2 q_k/(1 + q_k)) + log(2/(1 + q_k))], which lies in
    [0, log 2] (the per-token bound of Sec. 8.5 (Sec. 3.1)) and equals log 2 exactly when q_k = 0.
    Shapes: logits [..., V], target [...] (int64) -> [...]."""
    logq_k = torch.log_softmax(logits.float(), dim=-1).gather(-1, target.unsqueeze(-1)).squeeze(-1)
    q_k = logq_k.exp()
    log1p_q = torch.log1p(q_k)
    # q_k log(2 q_k / (1+q_k)); the limit at q_k -> 0 is 0, which log-space gives without 0*inf
    term_k = q_k * (LOG2 + logq_k - log1p_q)
    return 0.5 * ((1.0 - q_k) * LOG2 + term_k + (LOG2 - log1p_q))


def jsd(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """JSD(p ‖ q) per position for two logit tensors [..., V] (Eq. 3; the retain term Eq. 5)."""
    lp = torch.log_softmax(logits_p.float(), dim=-1)
    lq = torch.log_softmax(logits_q.float(), dim=-1)
    lm = torch.logaddexp(lp, lq) - LOG2
    return 0.5 * ((lp.exp() * (lp - lm)).sum(-1) + (lq.exp() * (lq - lm)).sum(-1))


def kl(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """KL(p ‖ q) per position for two logit tensors [..., V] (the D_KL retain term, E.2)."""
    lp = torch.log_softmax(logits_p.float(), dim=-1)
    lq = torch.log_softmax(logits_q.float(), dim=-1)
    return (lp.exp() * (lp - lq)).sum(-1)


def kl_onehot(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """KL(δ_k ‖ q) = −log q_k: cross-entropy to the target token (the D_KL forget term, E.2)."""
    return F.cross_entropy(logits.float().flatten(0, -2), target.flatten(), reduction="none").view(target.shape)


def jsd_onehot_grad_closed_form(logits: torch.Tensor, k: int) -> torch.Tensor:
    """∂JS(e_k ‖ q)/∂u_i = q_i[½ log(q_i/m_i) − ½ KL(q ‖ m)], m = (e_k + q)/2 (Sec. 8.5 (App. E.4)). For tests."""
    q = torch.softmax(logits, -1)
    p = torch.zeros_like(q)
    p[..., k] = 1.0
    m = 0.5 * (p + q)
    klqm = (q * (q.log() - m.log())).sum(-1, keepdim=True)
    return q * (0.5 * (q.log() - m.log()) - 0.5 * klqm)


def kl_onehot_grad_closed_form(logits: torch.Tensor, k: int) -> torch.Tensor:
    """∂KL(e_k ‖ q)/∂u_i = q_i − p_i (Sec. 8.5 (App. E.4)). For tests."""
    q = torch.softmax(logits, -1)
    p = torch.zeros_like(q)
    p[..., k] = 1.0
    return q - p
