"""Chapter-7 unlearning data-parallel over 2 CPU processes (gloo): FSDP2 and DDP steps equal the
single-process JensUn run on the global batch (JensUn averages over samples, so the mean of the two
half-batch gradients is the global-batch gradient)."""
from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as tmp

from repro.studies.ch7_jensun import distributed as U

WORLD = 2


def _args(out, strategy="fsdp", extra=()):
    return U.build_parser().parse_args(["--profile", "smoke", "--method", "jensun", "--strategy", strategy,
                                        "--device", "cpu", "--out", str(out), *extra])


def _worker(r: int, d: str, cache: str):
    torch.set_num_threads(1)
    os.environ["REPRO_CACHE"] = cache
    for strategy in U.STRATEGIES:
        dist.init_process_group("gloo", init_method=f"file://{d}/init_{strategy}", rank=r, world_size=WORLD)
        os.environ.update(RANK=str(r), WORLD_SIZE=str(WORLD), LOCAL_RANK=str(r))
        # FSDP with activation checkpointing: recomputing activations must not change the step
        extra = ["--grad-checkpointing"] if strategy == "fsdp" else []
        m = U.train(_args(f"{d}/run_{strategy}", strategy, extra))  # destroys the group at the end
        torch.save({"state_dict": m["state_dict"], "tokens": m["tokens_this_rank"], "world_size": m["world_size"],
                    "final_loss": m["final_loss"]}, f"{d}/{strategy}_{r}.pt")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("udist")
    cache = str(d / "cache")
    old = os.environ.get("REPRO_CACHE")
    os.environ["REPRO_CACHE"] = cache
    try:
        torch.set_num_threads(1)
        ref = U.train(_args(d / "single"))  # no WORLD_SIZE: one process, the whole global batch
        tmp.spawn(_worker, args=(str(d), cache), nprocs=WORLD, join=True)
    finally:
        if old is None:
            os.environ.pop("REPRO_CACHE", None)
        else:
            os.environ["REPRO_CACHE"] = old
    out = {(s, r): torch.load(d / f"{s}_{r}.pt") for s in U.STRATEGIES for r in range(WORLD)}
    return ref, out, d


def test_single_process_is_the_notebook_run(runs):
    ref, _, d = runs
    assert ref["world_size"] == 1 and (d / "single" / "metrics.json").exists()
    assert set(ref["metrics"]) >= {"J_W", "standard"}


@pytest.mark.parametrize("strategy", U.STRATEGIES)
def test_two_ranks_equal_single_process_global_batch(runs, strategy):
    ref, out, d = runs
    a, b = out[(strategy, 0)], out[(strategy, 1)]
    assert a["world_size"] == 2
    # each rank saw only its half of every batch: together exactly the single process's tokens
    assert 0 < a["tokens"] < ref["tokens_this_rank"] and a["tokens"] + b["tokens"] == ref["tokens_this_rank"]
    assert a["final_loss"] == b["final_loss"]  # the logged loss is all-reduced
    assert a["state_dict"].keys() == ref["state_dict"].keys()
    from repro.core.config import chapter_config

    lr = chapter_config("ch7", "smoke")["methods"]["jensun"]["lr"]
    # AdamW turns rounding-level gradients (rows the batches barely touch: rare tokens, near-dead MLP units) into
    # steps of up to lr, so the summation order of an all-reduce may move a few elements: allow <= 0.5 % of all
    # elements past the tight tolerance, each by far less than one step (a wrong average, e.g. a sum over ranks,
    # moves nearly every element by about a step)
    n_bad = n_all = 0
    worst = 0.0
    for k, v in ref["state_dict"].items():
        diff = (a["state_dict"][k] - v).abs()
        n_bad += int((diff > 2e-6 + 1e-4 * v.abs()).sum())
        n_all += diff.numel()
        worst = max(worst, float(diff.max()))
    assert n_bad <= 0.005 * n_all and worst <= 0.05 * lr, (n_bad, n_all, worst, lr)
    if strategy == "ddp":  # replicas are identical; FSDP gathers the full weights on rank 0 only
        for k, v in a["state_dict"].items():
            torch.testing.assert_close(b["state_dict"][k], v, rtol=0, atol=0)
    else:
        assert b["state_dict"] == {}
    assert (d / f"run_{strategy}" / "metrics.json").exists()


def test_unlearning_moved_the_weights(runs):
    # guards the comparison above against a run that did nothing
    from repro.core.config import chapter_config
    from repro.studies.ch7_jensun import experiment as X

    ref, _, d = runs
    os.environ["REPRO_CACHE"] = str(d / "cache")
    try:
        world = X.build_world(chapter_config("ch7", "smoke"), seed=0, device="cpu")
    finally:
        os.environ.pop("REPRO_CACHE", None)
    base = world.base.state_dict()
    assert max(float((ref["state_dict"][k] - base[k]).abs().max()) for k in base) > 1e-4


def test_slices_and_errors():
    from repro.unlearning.data import Encoded

    enc = Encoded(torch.arange(12).view(6, 2), torch.ones(6, 2, dtype=torch.long), torch.arange(12).view(6, 2))
    s0, s1 = U._Slice(enc, 0, 2), U._Slice(enc, 1, 2)
    assert len(s0) == 6
    idx = torch.tensor([5, 0, 3, 2])
    assert s0.take(idx).input_ids[:, 0].tolist() == [10, 6] and s1.take(idx).input_ids[:, 0].tolist() == [0, 4]
    with pytest.raises(ValueError, match="divisible"):
        s0.take(torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="strategy"):
        U.wrap(torch.nn.Linear(2, 2), None, "zero3")
