"""Chapter-7 unlearning of an LLM on several GPUs, launched by torchrun: FSDP (default) or DDP.

    # Llama-3.2-3B-Instruct, JensUn, 2 x A100 40G as in the paper (App. B.2, Table 4: LKF runs on 2 GPUs)
    torchrun --nproc_per_node=2 -m repro.unlearn_dist --profile full --method jensun \\
        --strategy fsdp --grad-checkpointing --out results/full/ch7/jensun_fsdp
    # CPU check of the same code path (gloo, the smoke world's tiny Llama)
    torchrun --nproc_per_node=2 -m repro.unlearn_dist --profile smoke --method jensun --device cpu --out /tmp/u

It is the notebook's :func:`repro.studies.ch7_jensun.experiment.run_unlearning` (same world, same loss, same
:func:`repro.unlearning.trainer.unlearn` loop and hyper-parameters from ``repro/profiles/ch7.yaml``)
with the model data-parallel over the ranks:

* every rank draws the same global batch indices (same generator seed) and takes its slice
  ``idx[rank::world_size]`` (:func:`shard_sets`); the profile's ``unlearn.batch_size`` is the
  **global** batch and must divide by the number of ranks;
* ``--strategy fsdp`` shards parameters, gradients and AdamW state over the ranks (FSDP2,
  ``torch.distributed.fsdp.fully_shard`` per transformer block, then the whole model): full fine-tuning
  of a 3B model does not fit one 40 GB GPU with AdamW replicated; the frozen reference model is
  sharded too. ``--strategy ddp`` replicates the model (small models; losses that hook into inner
  layers, like RMU, need FSDP because DDP hides the model behind ``.module``);
* ``--grad-checkpointing`` recomputes activations in backward (the Hugging Face model's
  ``activation_checkpointing_enable()``, ``gradient_checkpointing_enable()`` before transformers 5).

Gradients are averaged over ranks, so for losses that are means over *samples* (JensUn, Eq. 4/5:
``sum / batch``) a step equals the single-process step on the global batch; losses averaged over
*tokens* differ by the token-count weighting of the slices (as in any data-parallel LLM trainer).
Rank 0 gathers the full weights, evaluates them with
:func:`repro.studies.ch7_jensun.experiment.evaluate_model` and writes ``<out>/metrics.json`` (and
``<out>/final.pt`` with ``--save-model``).
"""
from __future__ import annotations

import argparse
import copy
import json
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.distributed as dist

from repro.train import distributed as D

STRATEGIES = ("fsdp", "ddp")


class _Slice:
    """An :class:`repro.unlearning.data.Encoded` seen by one rank: full length, rank's part of each batch."""

    def __init__(self, enc, rank: int, world_size: int):
        self.enc, self.rank, self.world_size = enc, rank, world_size

    def __len__(self) -> int:
        return len(self.enc)  # the index stream (epochs, permutations) is the global one on every rank

    def take(self, idx: torch.Tensor, device=None):
        if len(idx) % self.world_size:
            raise ValueError(f"a batch of {len(idx)} does not split over {self.world_size} ranks; make "
                             "unlearn.batch_size (and the forget-set size) divisible by the number of GPUs")
        return self.enc.take(idx[self.rank::self.world_size], device)


def shard_sets(sets, rank: int, world_size: int):
    """``sets`` whose ``take`` returns this rank's slice of every global batch (see the module docstring)."""
    if world_size == 1:
        return sets
    return replace(sets, forget=_Slice(sets.forget, rank, world_size),
                   forget_target=_Slice(sets.forget_target, rank, world_size),
                   retain=_Slice(sets.retain, rank, world_size))


def _blocks(model: torch.nn.Module) -> list[torch.nn.Module]:
    """Transformer blocks to shard one by one (``model.model.layers`` in HF Llama/Phi-3)."""
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None) if inner is not None else None
    return list(layers) if layers is not None else []


def wrap(model: torch.nn.Module, info: D.DistInfo, strategy: str = "fsdp") -> torch.nn.Module:
    """FSDP2 (``fully_shard``) or DDP over the process group; unchanged without one."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    model = model.to(info.device)
    if not info.distributed:
        return model
    if strategy == "ddp":
        ids = [info.local_rank] if info.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
    from torch.distributed.fsdp import fully_shard

    for b in _blocks(model):
        fully_shard(b)
    fully_shard(model)
    return model


def full_state_dict(model: torch.nn.Module) -> dict:
    """The unsharded weights on CPU (every rank must call it under FSDP; only rank 0 receives them)."""
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        model = model.module
    from torch.distributed.fsdp import FSDPModule

    if isinstance(model, FSDPModule):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        # gathered on rank 0 only (the other ranks get {}): a 3B model would not fit every rank's RAM twice
        return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def train(args) -> dict:
    """Build the chapter-7 world, unlearn with ``args.method`` data-parallel, evaluate on rank 0."""
    from repro.core.config import chapter_config
    from repro.studies.ch7_jensun import experiment as X
    from repro.unlearning import losses as L
    from repro.unlearning.data import make_unlearn_sets
    from repro.unlearning.trainer import frozen_copy, unlearn

    info = D.init_from_env(device=args.device)
    try:
        cfg = chapter_config("ch7", args.profile)
        # rank 0 builds (and caches) the base model first; the others then read it from the cache
        if info.rank != 0:
            _barrier()
        world = X.build_world(cfg, seed=args.seed, device=info.device)
        if info.rank == 0:
            _barrier()
        hp = X.default_hparams(world, args.method)
        lk = L.get(hp["loss"], **dict(hp.get("kwargs", {}))).params()
        ucfg = cfg["unlearn"]
        steps = args.steps or ucfg["steps"]
        lr = args.lr if args.lr is not None else hp["lr"]
        bs = int(ucfg["batch_size"])
        if bs % info.world_size:
            raise ValueError(f"unlearn.batch_size={bs} (global) does not split over {info.world_size} ranks")
        if args.strategy == "ddp" and hp["loss"] == "rmu" and info.distributed:
            raise ValueError("RMU reads inner-layer activations, which DDP hides behind .module; use --strategy fsdp")
        sets = make_unlearn_sets(world.tokenizer, X.forget_retain_pairs(world, "forget", True),
                                 X.forget_retain_pairs(world, "retain", True), target=args.target)
        loss = L.get(hp["loss"], **lk)
        model = copy.deepcopy(world.base)
        if args.grad_checkpointing:
            # transformers >= 5 names it activation_checkpointing_enable (the old name warns)
            enable = getattr(model, "activation_checkpointing_enable", None) or getattr(
                model, "gradient_checkpointing_enable", None)
            if enable is None:
                raise ValueError(f"{type(model).__name__} has no activation/gradient checkpointing; drop --grad-checkpointing")
            enable()
        ref = None
        if loss.needs_ref:
            ref = frozen_copy(world.base)
            if info.distributed and args.strategy == "fsdp":
                ref = wrap(ref, info, "fsdp")
        model = wrap(model, info, args.strategy)
        t0 = time.perf_counter()
        out = unlearn(model, loss, shard_sets(sets, info.rank, info.world_size), steps=steps, lr=lr, batch_size=bs,
                      warmup=ucfg.get("warmup", 10), seed=args.seed, ref=ref, device=info.device)
        wall = time.perf_counter() - t0
        sd = full_state_dict(model)
        losses = torch.tensor([h["loss"] for h in out["history"] if "loss" in h] or [float("nan")],
                              dtype=torch.float64)
        metrics = dict(method=args.method, strategy=args.strategy, world_size=info.world_size,
                       backend=info.backend, steps=steps, lr=lr, global_batch=bs, wall_s=wall,
                       tokens_this_rank=int(out["tokens"]),
                       final_loss=float(D.all_reduce_mean(losses[-1:].to(info.device)).item()))
        if info.is_main:
            final = copy.deepcopy(world.base)
            final.load_state_dict(sd)
            final.to(info.device).eval()
            metrics["metrics"] = {k: float(v) for k, v in X.evaluate_model(world, final).items()
                                  if isinstance(v, (int, float))}
            o = Path(args.out)
            o.mkdir(parents=True, exist_ok=True)
            (o / "metrics.json").write_text(json.dumps(metrics, indent=1))
            if args.save_model:
                torch.save(sd, o / "final.pt")
            print(f"[unlearn_dist] {args.method} ({args.strategy}, {info.world_size} ranks): J_W "
                  f"{metrics['metrics'].get('J_W', float('nan')):.1f}, {wall:.1f}s, wrote {o}", flush=True)
        metrics["state_dict"] = sd
        return metrics
    finally:
        D.cleanup()


def _barrier() -> None:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="torchrun -m repro.unlearn_dist", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="full", help="profile of repro/profiles/ch7.yaml (smoke | cpu | full)")
    p.add_argument("--method", default="jensun", help="a key of the profile's methods (jensun, npo, graddiff, ...)")
    p.add_argument("--strategy", default="fsdp", choices=STRATEGIES)
    p.add_argument("--grad-checkpointing", action="store_true")
    p.add_argument("--steps", type=int, default=None, help="default: the profile's unlearn.steps")
    p.add_argument("--lr", type=float, default=None, help="default: the method's lr in the profile")
    p.add_argument("--target", default="No idea", help="JensUn's fixed target (Fig. 14)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-model", action="store_true", help="also write <out>/final.pt (the full state dict)")
    p.add_argument("--out", default="results/full/ch7/unlearn_dist")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    train(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
