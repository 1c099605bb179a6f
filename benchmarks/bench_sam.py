"""SAM-ON's computational savings (dissertation Sec. 8.4: the SAM-ON paper's §4.3 and Fig. 3): step-time ratios of one model
on one batch, all configurations measured interleaved in this run (repro.sam.timing.step_costs).

Targets: SAM / SGD close to the physical limit 2 (two forward-backward passes; target <= 2.2),
SAM-ON in runtime mode / SAM-all <= 0.85, SAM-ON restricted to the last block (B3) / SAM-all <= 0.7
(the paper: B3 cuts SAM's *additional* cost by more than 50 %). Memory is reported for each
configuration (CUDA peak allocation; on CPU the bytes autograd saves for backward, summed over both passes).

    .venv/bin/python benchmarks/bench_sam.py [--model wrn10_1 --batch 128 --res 32 --repeats 5]
"""
from __future__ import annotations

import argparse

import torch


def rows_from_costs(costs: dict, tag: str, cuda: bool = False) -> list[dict]:
    """Benchmark rows (ratios against SAM-all / SGD, with the targets above) from
    :func:`repro.sam.timing.step_costs`' output; also used by ``benchmarks/gpu_check.py``."""
    sgd, sam = costs["SGD"]["sec_per_step"], costs["SAM-all"]["sec_per_step"]
    rows = []

    def row(metric, value, ref_name, ref, target, ok):
        rows.append(dict(benchmark=f"sam step time ({tag})", metric=metric, value=float(value), reference=ref_name,
                         ratio=float(value / ref), target=target, passed=bool(ok)))

    row("SAM-all / SGD step time", sam, "SGD step", sgd, "<= 2.2 (two passes)", sam / sgd <= 2.2)
    on_rt = costs["SAM-ON (runtime mode)"]["sec_per_step"]
    row("SAM-ON runtime mode / SAM-all step time", on_rt, "SAM-all step", sam, "<= 0.85", on_rt / sam <= 0.85)
    on = costs["SAM-ON"]["sec_per_step"]
    row("SAM-ON plain mode / SAM-all step time", on, "SAM-all step", sam, "~1 (no saving without runtime mode)",
        on / sam <= 1.1)
    b3 = costs["SAM-ON B3 (runtime mode)"]["sec_per_step"]
    row("SAM-ON B3 / SAM-all step time", b3, "SAM-all step", sam, "<= 0.7", b3 / sam <= 0.7)
    b23 = costs["SAM-ON B2+B3 (runtime mode)"]["sec_per_step"]
    row("SAM-ON B2+B3 / SAM-all step time", b23, "SAM-all step", sam, "< 1", b23 / sam < 1.0)
    mem_ref = costs["SAM-all"]["mem_bytes"]
    asc_ref = costs["SAM-all"]["ascent_mem_bytes"]
    what = "peak CUDA memory" if cuda else "autograd saved bytes (max over passes)"
    for name, c in costs.items():
        if name == "SAM-all":
            continue
        rows.append(dict(benchmark=f"sam memory ({tag})", metric=f"{name} {what} / SAM-all ({c['mem_bytes'] / 2**20:.1f} MiB)",
                         value=c["mem_bytes"] / 2**20, reference=f"SAM-all {mem_ref / 2**20:.1f} MiB",
                         ratio=c["mem_bytes"] / max(mem_ref, 1.0), target="report", passed=True))
    for name in ("SAM-ON (runtime mode)", "SAM-ON B3 (runtime mode)"):
        c = costs[name]["ascent_mem_bytes"]
        rows.append(dict(benchmark=f"sam memory ({tag})", metric=f"{name} ascent-pass saved bytes / SAM-all ({c / 2**20:.1f} MiB)",
                         value=c / 2**20, reference=f"SAM-all {asc_ref / 2**20:.1f} MiB", ratio=c / max(asc_ref, 1.0),
                         target="< 1 (weight grads skipped)", passed=c < asc_ref))
    return rows


def main(model: str = "wrn10_1", batch: int = 128, res: int = 32, repeats: int = 5, classes: int = 100) -> list[dict]:
    from repro.core.config import device
    from repro.models import create_model
    from repro.sam.timing import step_costs

    dev = device("auto")
    if dev.type == "cuda" and model == "wrn10_1":
        model = "wrn28_10"  # the paper's model when a GPU is there
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, res, res, generator=g)
    y = torch.randint(0, classes, (batch,), generator=g)
    costs = step_costs(lambda: create_model(model, classes), x, y, repeats=repeats, device=dev)
    rows = rows_from_costs(costs, f"{model}, batch {batch}, {res}px, {dev.type}", cuda=dev.type == "cuda")
    for r in rows:
        print(f"{r['metric']:<55} ratio {r['ratio']:.3f}  target {r['target']:<35} {'ok' if r['passed'] else 'MISSED'}")
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="wrn10_1")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--res", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    main(a.model, a.batch, a.res, a.repeats)
