"""DDP helpers for ``torchrun`` and SAM under data parallelism (m-sharpness semantics).

Launch: ``torchrun --nproc_per_node=8 -m repro.train_ddp ...`` sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``; :func:`init_from_env` reads them (and runs as a
single process when they are absent), picks NCCL on CUDA and gloo on CPU.

SAM under DDP (:func:`ddp_sam_step`) -- which gradient is all-reduced in the ascent step:

``mode="local"`` (default)
    Each replica computes the ascent gradient on **its own** mini-batch with all-reduce switched
    off (``model.no_sync()``), perturbs its own copy ``w + eps_r``, and only the descent gradients
    ``grad L_r(w + eps_r)`` are all-reduced (averaged) for the base optimizer step. This is
    m-sharpness with m = per-replica batch size (dissertation §3 / App. A.3, ch. 6; Foret et al.
    2021 §4 and Andriushchenko & Flammarion 2022): the original SAM code (JAX, ``pmap``) and
    the common PyTorch SAM implementations compute the perturbation per device, and the paper's
    SAM-ON runs inherit that. It is the default because it reproduces those runs, is what the
    reported rho values were tuned for (a smaller m gives a stronger regulariser at the same rho),
    and saves one all-reduce per step.
``mode="sync"``
    The ascent gradient is all-reduced before the perturbation, so every replica uses the same
    ``eps`` from the global-batch gradient: the step equals the single-process SAM step on the
    global batch (m = global batch). Use it to compare runs with different numbers of GPUs at a
    fixed m.

Both modes leave the replicas bit-identical after the step (same averaged descent gradient, same
exact restore of ``w``). Equality with the single-process step in ``sync`` mode needs layers whose
forward does not depend on the batch split: BatchNorm computes statistics per replica (convert with
``torch.nn.SyncBatchNorm.convert_sync_batchnorm`` for exact equality), LayerNorm models match as is.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.distributed as dist
from torch import nn

from repro.core.config import seed_everything

SAM_MODES = ("local", "sync")


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: Optional[str]

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        # a process group exists whenever torchrun launched us, also with one process: that single
        # process still runs DDP/FSDP over NCCL/gloo, so `torchrun --nproc_per_node=1` exercises the path
        return self.backend is not None or self.world_size > 1


def init_from_env(backend: Optional[str] = None, device: str = "auto") -> DistInfo:
    """Initialise the default process group from torchrun's environment variables.

    Without torchrun's variables (plain ``python -m``) this is a single process and nothing is initialised;
    under torchrun the group is initialised even for one process (``--nproc_per_node=1``), so one GPU
    exercises the same NCCL / DDP / FSDP code as eight.
    ``backend`` defaults to ``nccl`` when CUDA is used, else ``gloo``.
    """
    ws = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device in ("auto", "cuda") and torch.cuda.is_available()
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' requested but CUDA is not available; use device='cpu' (gloo backend)")
    if use_cuda:
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = torch.device("cpu")
    launched = "WORLD_SIZE" in os.environ and "MASTER_ADDR" in os.environ and "MASTER_PORT" in os.environ
    if (ws > 1 or launched) and not dist.is_initialized():
        for var in ("MASTER_ADDR", "MASTER_PORT"):
            if var not in os.environ:
                raise RuntimeError(f"WORLD_SIZE={ws} but {var} is not set; launch with torchrun "
                                   "(torchrun --nproc_per_node=N -m repro.train_ddp ...)")
        backend = backend or ("nccl" if use_cuda else "gloo")
        dist.init_process_group(backend=backend, rank=rank, world_size=ws)
    return DistInfo(rank, ws, local, dev, dist.get_backend() if dist.is_initialized() else None)


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def seed_all(seed: int, per_rank: bool = True) -> int:
    """Seed this process; ``per_rank`` adds the rank so augmentation/dropout differ across replicas.

    Build the model *before* (or with ``per_rank=False``): DDP broadcasts rank 0's parameters at
    construction anyway, so the initial weights are identical either way. Returns the seed used.
    """
    s = int(seed) + (rank() if per_rank else 0)
    seed_everything(s)
    return s


def distributed_sampler(dataset, *, shuffle: bool = True, seed: int = 0, drop_last: bool = True):
    """``DistributedSampler`` over this process group (call ``sampler.set_epoch(e)`` every epoch).

    ``drop_last=True`` by default so every replica sees the same number of equal-size batches -- the
    condition under which the averaged per-replica means equal the global-batch mean.
    """
    from torch.utils.data import DistributedSampler

    return DistributedSampler(dataset, num_replicas=world_size(), rank=rank(), shuffle=shuffle, seed=seed,
                              drop_last=drop_last)


def wrap_ddp(model: nn.Module, info: DistInfo, sync_bn: bool = False) -> nn.Module:
    """Move to the device and wrap in DDP when distributed (returns the model unchanged otherwise)."""
    model = model.to(info.device)
    if not info.distributed:
        return model
    if sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ids = [info.local_rank] if info.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def all_reduce_mean(t: torch.Tensor) -> torch.Tensor:
    if dist.is_initialized() and dist.get_world_size() > 1:
        t = t.clone()
        dist.all_reduce(t)
        t /= dist.get_world_size()
    return t


def ddp_sam_step(model: nn.Module, sam, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 x: torch.Tensor, y: torch.Tensor, mode: str = "local") -> torch.Tensor:
    """One SAM step of a (possibly DDP-wrapped) ``model`` on this replica's batch ``(x, y)``.

    ``sam`` is a :class:`repro.sam.SAM` built on the *inner* module (``model.module``) and its base
    optimizer. ``loss_fn`` must return the batch mean. ``mode``: ``"local"`` (default, per-replica
    perturbation = m-sharpness with m = local batch) or ``"sync"`` (perturbation from the all-reduced
    gradient = single-process SAM on the global batch); see the module docstring.

    Returns this replica's loss at the unperturbed weights (detached).
    """
    if mode not in SAM_MODES:
        raise ValueError(f"mode must be one of {SAM_MODES}, got {mode!r}")
    is_ddp = isinstance(model, nn.parallel.DistributedDataParallel)
    # DDP all-reduces in backward unless inside no_sync(); "local" keeps the ascent gradient per replica.
    ctx = model.no_sync() if (is_ddp and mode == "local") else _null()
    with torch.enable_grad():
        sam.zero_grad(set_to_none=True)
        with ctx, sam.ascent_pass():
            loss = loss_fn(model(x), y)
            loss.backward()
        if not is_ddp and mode == "sync" and world_size() > 1:
            # plain module in a process group: average the ascent gradient by hand
            for p in sam.model.parameters():
                if p.grad is not None:
                    dist.all_reduce(p.grad)
                    p.grad /= world_size()
        sam.first_step(zero_grad=True)
        try:
            loss_fn(model(x), y).backward()  # DDP averages these descent gradients across replicas
        except Exception:
            sam._restore_on_error()
            raise
        if not is_ddp and world_size() > 1:
            for p in sam.model.parameters():
                if p.grad is not None:
                    dist.all_reduce(p.grad)
                    p.grad /= world_size()
    sam.second_step(zero_grad=True)
    return loss.detach()


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
