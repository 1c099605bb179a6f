"""Feature extraction throughput: repro.ood.features.extract_uncached vs a bare ``model(x)`` loop on the
same batches (same run, same device). Target (issue 4): ratio >= 0.9."""
from __future__ import annotations

import time

import torch


def main(n: int = 2048, batch_size: int = 256, arch: str = "resnet_t", reps: int = 3) -> list:
    from repro.core.config import device as pick_device
    from repro.ood.features import extract_uncached
    from repro.models import create_model, preprocess

    dev = pick_device("auto")
    torch.manual_seed(0)
    model = create_model(arch, 10).eval().to(dev)
    x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8)

    def bare():
        with torch.inference_mode():
            for i in range(0, n, batch_size):
                model(preprocess(x[i:i + batch_size].to(dev)))
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def ours():
        extract_uncached(model, x, batch_size=batch_size, device=dev)

    bare()  # warm-up (allocator, kernels)
    tb, to = float("inf"), float("inf")
    for _ in range(reps):  # interleaved, best of reps: robust to load from other processes
        t = time.perf_counter(); bare(); tb = min(tb, time.perf_counter() - t)
        t = time.perf_counter(); ours(); to = min(to, time.perf_counter() - t)
    ratio = tb / to  # = (ours images/s) / (bare images/s)
    rows = [
        {"benchmark": f"features_{arch}_{dev.type}", "metric": "images_per_s", "value": n / to,
         "reference": f"bare model(x) loop {n / tb:.0f} img/s", "ratio": ratio, "target": "ratio >= 0.9",
         "passed": bool(ratio >= 0.9)},
    ]
    for r in rows:
        print(r)
    return rows


if __name__ == "__main__":
    main()
