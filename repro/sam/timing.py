"""Step time and memory of SGD vs SAM vs SAM-ON (paper Sec. 4.3, Fig. 3; Sec. 8.4 (Sec. 4.3)).

``step_costs`` times full optimizer steps of one model on one batch for several configurations, in
one process, interleaved (round-robin over configurations, median over repeats), so the ratios are
robust to background load. Memory: ``mem_bytes`` is the CUDA peak allocation per step on GPUs and,
on CPU, the largest number of bytes autograd saves for backward in either pass (unique storages,
counted with ``torch.autograd.graph.saved_tensors_hooks``); ``ascent_mem_bytes`` is that count for
the ascent pass alone, the part SAM-ON's runtime mode changes. The descent pass is a full
forward-backward in every SAM configuration, so SAM-ON does not lower the peak.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from repro.sam.optimizer import SAM

__all__ = ["step_costs", "STANDARD_CONFIGS"]

# name -> SAM kwargs (None = plain SGD)
STANDARD_CONFIGS = {
    "SGD": None,
    "SAM-all": dict(params="all"),
    "SAM-ON": dict(params="only_norm", runtime_mode=False),
    "SAM-ON (runtime mode)": dict(params="only_norm", runtime_mode=True),
    "SAM-ON B2+B3 (runtime mode)": dict(params="blocks:layer2+layer3+norm", runtime_mode=True),
    "SAM-ON B3 (runtime mode)": dict(params="blocks:layer3+norm", runtime_mode=True),
}


class _SavedBytes:
    def __init__(self):
        self.seen, self.total = set(), 0

    def pack(self, t):
        try:
            key = (t.untyped_storage().data_ptr(), t.device)
            if key not in self.seen:
                self.seen.add(key)
                self.total += t.untyped_storage().nbytes()
        except Exception:  # noqa: BLE001 - opaque tensors are simply not counted
            pass
        return t

    def unpack(self, t):
        return t


def step_costs(make_model: Callable[[], nn.Module], x: torch.Tensor, y: torch.Tensor, configs: Optional[dict] = None,
               *, rho: float = 0.1, repeats: int = 5, warmup: int = 2, device=None) -> dict:
    """``{config: dict(sec_per_step, mem_bytes, ascent_mem_bytes, sec_per_repeat)}`` for SGD and the SAM
    configurations on one batch; ``sec_per_step`` is the median of ``sec_per_repeat``."""
    configs = STANDARD_CONFIGS if configs is None else configs
    dev = torch.device(device) if device is not None else x.device
    x, y = x.to(dev), y.to(dev)
    setups = {}
    for name, kw in configs.items():
        torch.manual_seed(0)
        model = make_model().to(dev).train()
        base = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
        opt = base if kw is None else SAM(model, base, rho=rho, **kw)
        setups[name] = (model, opt)

    def one_step(name):
        model, opt = setups[name]
        counters = []

        def closure():
            counter = _SavedBytes()  # one count per pass: storages freed after pass 1 may be reused
            counters.append(counter)
            opt.zero_grad(set_to_none=True)
            with torch.autograd.graph.saved_tensors_hooks(counter.pack, counter.unpack):
                loss = F.cross_entropy(model(x), y)
            loss.backward()
            return loss

        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
            torch.cuda.reset_peak_memory_stats(dev)
        t0 = time.perf_counter()
        opt.step(closure)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        dt = time.perf_counter() - t0
        saved = max(c.total for c in counters)
        mem = torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else saved
        return dt, mem, counters[0].total

    times = {n: [] for n in configs}
    mems = {n: 0 for n in configs}
    ascent = {n: 0 for n in configs}
    for r in range(warmup + repeats):
        for n in configs:
            dt, mem, asc = one_step(n)
            if r >= warmup:
                times[n].append(dt)
                mems[n] = max(mems[n], mem)
                ascent[n] = max(ascent[n], asc)
    # sec_per_repeat keeps every timed step: the configurations are interleaved, so repeat r of each is one paired
    # sample (what a noise-aware comparison of two configurations needs)
    return {n: dict(sec_per_step=statistics.median(times[n]), mem_bytes=float(mems[n]),
                    ascent_mem_bytes=float(ascent[n]), sec_per_repeat=list(times[n])) for n in configs}
