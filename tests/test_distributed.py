"""SAM under DDP on CPU (gloo, 2 processes via torch.multiprocessing.spawn).

sync : the 2-replica step == single-process SAM step on the global batch;
local: the 2-replica step == two independent single-process ascents (one per half batch) followed by
       the averaged descent gradient (m-sharpness with m = per-replica batch).
"""
from __future__ import annotations

import copy
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as tmp
from torch import nn

from repro.train import distributed as D
from repro.sam import SAM

WORLD, N, DIM, C, RHO, STEPS = 2, 16, 6, 3, 0.3, 2
TOL = dict(rtol=0, atol=1e-12)  # float64 throughout; only the all-reduce summation order differs


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(DIM, 12), nn.LayerNorm(12), nn.GELU(), nn.Linear(12, C)).double()


def make_data(step: int):
    g = torch.Generator().manual_seed(100 + step)
    return torch.randn(N, DIM, generator=g, dtype=torch.float64), torch.randint(0, C, (N,), generator=g)


def make_opt(model):
    base = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    return SAM(model, base, rho=RHO, params="all")


def shard(t, r):
    return t.chunk(WORLD)[r]


def _worker(r: int, init_file: str, out_dir: str):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=r, world_size=WORLD)
    try:
        for mode in D.SAM_MODES:
            inner = make_model()
            model = nn.parallel.DistributedDataParallel(inner)
            opt = make_opt(inner)
            for s in range(STEPS):
                x, y = make_data(s)
                D.ddp_sam_step(model, opt, nn.functional.cross_entropy, shard(x, r), shard(y, r), mode=mode)
            torch.save(inner.state_dict(), os.path.join(out_dir, f"{mode}_{r}.pt"))
        # the torchrun entry point on generated data, inside the same gloo group (as torchrun would set it up)
        os.environ.update(RANK=str(r), WORLD_SIZE=str(WORLD), LOCAL_RANK=str(r), MASTER_ADDR="localhost",
                          MASTER_PORT="0")
        from repro.studies.ch6_samon import ddp as train_ddp

        args = train_ddp.build_parser().parse_args(
            ["--data", "generated", "--profile", "smoke", "--model", "resnet_t", "--epochs", "1", "--batch-size",
             "16", "--rho", "0.5", "--sam-params", "only_norm", "--device", "cpu", "--out", os.path.join(out_dir, "run")])
        m = train_ddp.train(args)
        torch.save(m, os.path.join(out_dir, f"train_{r}.pt"))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def reference_sync():
    model = make_model()
    opt = make_opt(model)
    for s in range(STEPS):
        x, y = make_data(s)

        def closure():
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            return loss
        opt.step(closure)
    return model.state_dict()


def reference_local():
    model = make_model()
    opt = make_opt(model)
    for s in range(STEPS):
        x, y = make_data(s)
        descent = []
        for r in range(WORLD):  # an independent single-process ascent on each replica's half
            m = copy.deepcopy(model)
            o = SAM(m, torch.optim.SGD(m.parameters(), lr=0.0), rho=RHO)
            nn.functional.cross_entropy(m(shard(x, r)), shard(y, r)).backward()
            o.first_step(zero_grad=True)
            nn.functional.cross_entropy(m(shard(x, r)), shard(y, r)).backward()
            descent.append([p.grad.clone() for p in m.parameters()])
        for p, *gs in zip(model.parameters(), *descent):
            p.grad = sum(gs) / WORLD
        opt.base_optimizer.step()
        opt.zero_grad()
    return model.state_dict()


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory):
    d = tmp_path_factory.mktemp("ddp")
    tmp.spawn(_worker, args=(str(d / "init"), str(d)), nprocs=WORLD, join=True)
    out = {(mode, r): torch.load(d / f"{mode}_{r}.pt") for mode in D.SAM_MODES for r in range(WORLD)}
    out["train"] = [torch.load(d / f"train_{r}.pt", weights_only=False) for r in range(WORLD)]
    out["run_dir"] = d / "run"
    return out


def _close(a, b):
    for k in a:
        torch.testing.assert_close(a[k], b[k], **TOL)


def test_replicas_stay_identical(ddp_results):
    for mode in D.SAM_MODES:
        _close(ddp_results[(mode, 0)], ddp_results[(mode, 1)])


def test_sync_equals_single_process_global_batch(ddp_results):
    _close(ddp_results[("sync", 0)], reference_sync())


def test_local_equals_independent_ascents_averaged_descent(ddp_results):
    _close(ddp_results[("local", 0)], reference_local())


def test_train_ddp_entry_point(ddp_results):
    m0, m1 = ddp_results["train"]
    assert m0["world_size"] == 2 and m0["backend"] == "gloo" and m0["steps"] >= 1
    assert m0["final_loss"] == m1["final_loss"]  # the logged loss is all-reduced
    assert 0.0 <= m0["test_acc"] <= 1.0 and "test_acc" not in m1  # only rank 0 evaluates and writes
    assert (ddp_results["run_dir"] / "final.pt").exists() and (ddp_results["run_dir"] / "metrics.json").exists()


def test_modes_differ(ddp_results):
    # guards against a test that cannot fail: per-replica and global perturbations give different steps
    a, b = ddp_results[("local", 0)], ddp_results[("sync", 0)]
    assert max(float((a[k] - b[k]).abs().max()) for k in a) > 1e-6


def test_single_process_sync_is_plain_sam():
    model, ref = make_model(), reference_sync()
    opt = make_opt(model)
    for s in range(STEPS):
        x, y = make_data(s)
        D.ddp_sam_step(model, opt, nn.functional.cross_entropy, x, y, mode="sync")
    _close(model.state_dict(), ref)


def test_bad_mode_and_env():
    model = make_model()
    with pytest.raises(ValueError, match="mode"):
        D.ddp_sam_step(model, make_opt(model), nn.functional.cross_entropy, *make_data(0), mode="global")
    info = D.init_from_env(device="cpu")
    assert info.world_size == 1 and info.rank == 0 and not info.distributed


def test_train_ddp_streams_an_imagefolder(tmp_path):
    """The ImageNet path of repro.studies.ch6_samon.ddp on a tiny local ImageFolder stand-in (train/ and val/)."""
    import json

    import numpy as np
    from PIL import Image

    from repro.studies.ch6_samon import ddp as train_ddp

    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("val", 3)):
        for c, name in enumerate(("n01", "n02")):
            d = tmp_path / "inet" / split / name
            d.mkdir(parents=True)
            for i in range(n):
                arr = rng.integers(0, 256, size=(30 + 7 * i, 40, 3), dtype=np.uint8)
                arr[..., c] = 255  # a learnable colour cue per class
                Image.fromarray(arr).save(d / f"{i}.png")
    data = train_ddp.load_data(str(tmp_path / "inet"), resolution=24)
    assert data["num_classes"] == 2 and len(data["train"]) == 16 and len(data["test"]) == 6
    x, y = data["train"][0]
    assert x.dtype == torch.uint8 and tuple(x.shape) == (3, 24, 24)
    out = tmp_path / "run"
    args = train_ddp.build_parser().parse_args(
        ["--data", str(tmp_path / "inet"), "--resolution", "24", "--model", "resnet_t", "--epochs", "1",
         "--batch-size", "4", "--rho", "0.05", "--sam-params", "only_norm", "--device", "cpu", "--out", str(out)])
    m = train_ddp.train(args)
    assert m["world_size"] == 1 and m["steps"] == 4 and 0.0 <= m["test_acc"] <= 1.0
    assert json.loads((out / "metrics.json").read_text())["steps"] == 4
    (tmp_path / "bad").mkdir()
    with pytest.raises(FileNotFoundError, match="train"):
        train_ddp.load_data(str(tmp_path / "bad"))
    with pytest.raises(ValueError, match="neither"):
        train_ddp.load_data("no_such_data")


def _one_process_group(tmp_path):
    """What torchrun --nproc_per_node=1 sets in the child's environment."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return {"WORLD_SIZE": "1", "RANK": "0", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}


def test_torchrun_with_one_process_still_builds_the_process_group(tmp_path, monkeypatch):
    """One GPU must exercise the NCCL/DDP path (issue 18): under torchrun a single process gets a
    process group and a DDP-wrapped model, not the plain single-process shortcut."""
    import torch.distributed as dist
    from torch import nn

    from repro.train import distributed as D

    for k, v in _one_process_group(tmp_path).items():
        monkeypatch.setenv(k, v)
    info = D.init_from_env(device="cpu")
    try:
        assert info.backend == "gloo" and info.distributed and info.world_size == 1
        assert isinstance(D.wrap_ddp(nn.Linear(3, 2), info), nn.parallel.DistributedDataParallel)
    finally:
        dist.destroy_process_group()
    for k in ("WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(k)
    plain = D.init_from_env(device="cpu")
    assert plain.backend is None and not plain.distributed
