"""SAM / SAM-ON training under DDP, launched by torchrun (paper-scale chapter-6 runs).

    torchrun --nproc_per_node=8 -m repro.train_ddp --data imagenet --model resnet50 \\
        --epochs 100 --batch-size 128 --lr 0.1 --sam-params only_norm --rho 1.0 --out runs/r50_samon
    torchrun --nproc_per_node=2 -m repro.train_ddp --data generated --model resnet_t --epochs 1   # CPU, gloo

``--data``: ``generated`` (the ch6 world of ``repro/profiles/ch6.yaml``, no files needed),
``cifar10`` / ``cifar100`` (python batches via ``repro.data.manifests``), the name of an
``imagefolder`` manifest (``repro data list``; ``imagenet1k`` with ``train/`` and ``val/``), or the
path of any folder with ``train/<class>/*`` and ``val/<class>/*``. ``--batch-size`` is **per
replica**; with ``--sam-mode local`` (default) it is also SAM's m (see :mod:`repro.train.distributed`).
Rank 0 writes ``<out>/final.pt`` (state dict + model spec) and ``<out>/metrics.json``.

Generated and CIFAR data are held in memory as uint8 tensors. ImageFolder data (ImageNet) is
streamed from disk by ``torchvision.datasets.ImageFolder`` in ``--workers`` loader processes, with
the usual ImageNet training transform (RandomResizedCrop + horizontal flip at ``--resolution``)
and the evaluation transform (resize to ``resolution / 0.875``, centre crop) for ``val/``; images
reach the model as uint8 and are normalised on the device, as for the other data.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from repro.train import distributed as D


def load_data(name: str, profile: str = "cpu", resolution: int = 224) -> dict:
    """``x_train, y_train, x_test, y_test`` (uint8 tensors) or, for ImageFolder data, ``train`` / ``test``
    datasets of (uint8 image, label); plus ``num_classes``. See the module docstring for ``name``."""
    if name == "generated":
        from repro.core.config import chapter_config
        from repro.studies.ch6_samon.experiment import make_data

        return make_data(chapter_config("ch6", profile)["world"])
    if name in ("cifar10", "cifar100"):
        from repro.data.cifar import load_cifar

        return load_cifar(name)
    if Path(name).expanduser().is_dir():
        root = Path(name).expanduser()
    else:
        from repro.data import manifests

        if name not in manifests.list_names():
            raise ValueError(f"--data {name!r} is neither generated, cifar10, cifar100, a manifest "
                             f"({', '.join(manifests.list_names())}) nor an existing folder with train/ and val/")
        root = manifests.require(name)
    return imagefolder_data(root, resolution)


def imagefolder_data(root, resolution: int = 224) -> dict:
    """Streaming ``train`` / ``test`` datasets over ``root/train/<class>/*`` and ``root/val/<class>/*``."""
    from torchvision import datasets, transforms as T

    root = Path(root)
    for sub in ("train", "val"):
        if not (root / sub).is_dir():
            raise FileNotFoundError(f"{root / sub} does not exist; expected {root}/train/<class>/<images> and "
                                    f"{root}/val/<class>/<images> (ImageFolder layout)")
    train = datasets.ImageFolder(root / "train", transform=T.Compose([
        T.RandomResizedCrop(resolution), T.RandomHorizontalFlip(), T.PILToTensor()]))
    test = datasets.ImageFolder(root / "val", transform=T.Compose([
        T.Resize(int(round(resolution / 0.875)), interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(resolution),
        T.PILToTensor()]))
    if test.classes != train.classes:
        raise ValueError(f"{root}/val has other class folders than {root}/train ({len(test.classes)} vs "
                         f"{len(train.classes)}); both must hold the same classes")
    return dict(train=train, test=test, num_classes=len(train.classes))


@torch.no_grad()
def _evaluate_loader(model: nn.Module, loader, device) -> float:
    from repro.models import preprocess

    correct = total = 0
    for xb, yb in loader:
        pred = model(preprocess(xb.to(device))).argmax(1).cpu()
        correct += int((pred == yb).sum())
        total += len(yb)
    return correct / max(total, 1)


def _augment(x: torch.Tensor) -> torch.Tensor:
    """Random crop (4 px pad, reflect) + horizontal flip, per sample, on a float batch."""
    n, _, h, w = x.shape
    p = nn.functional.pad(x, (4, 4, 4, 4), mode="reflect")
    i = torch.randint(0, 9, (n,))
    j = torch.randint(0, 9, (n,))
    out = torch.stack([p[k, :, i[k]:i[k] + h, j[k]:j[k] + w] for k in range(n)])
    flip = torch.rand(n) < 0.5
    out[flip] = out[flip].flip(-1)
    return out


def train(args) -> dict:
    from repro.models import create_model, model_spec, preprocess
    from repro.sam import SAM

    info = D.init_from_env(device=args.device)
    try:
        D.seed_all(args.seed, per_rank=False)
        data = load_data(args.data, args.profile, args.resolution)
        inner = create_model(args.model, data["num_classes"])
        model = D.wrap_ddp(inner, info, sync_bn=args.sync_bn)
        inner = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
        D.seed_all(args.seed, per_rank=True)  # different augmentation per replica
        ds = data["train"] if "train" in data else TensorDataset(data["x_train"], data["y_train"])
        sampler = D.distributed_sampler(ds, shuffle=True, seed=args.seed, drop_last=True)
        loader = DataLoader(ds, batch_size=args.batch_size, sampler=sampler, drop_last=True,
                            num_workers=args.workers, pin_memory=info.device.type == "cuda",
                            persistent_workers=args.workers > 0)
        steps = args.epochs * len(loader)
        if steps == 0:
            raise ValueError(f"no full batch per replica: {len(ds)} images / {info.world_size} replicas < "
                             f"--batch-size {args.batch_size}")
        base = torch.optim.SGD(inner.parameters(), lr=args.lr, momentum=0.9, weight_decay=args.weight_decay)
        opt = SAM(inner, base, rho=args.rho, variant=args.variant, params=args.sam_params) if args.rho > 0 else None
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(base, T_max=steps)
        crit = nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
        t0, losses = time.perf_counter(), []
        model.train()
        for epoch in range(args.epochs):
            sampler.set_epoch(epoch)
            for xb, yb in loader:
                x = preprocess(xb.to(info.device))
                x = _augment(x) if args.augment else x
                y = yb.to(info.device)
                if opt is not None:
                    loss = D.ddp_sam_step(model, opt, crit, x, y, mode=args.sam_mode)
                else:
                    base.zero_grad(set_to_none=True)
                    loss = crit(model(x), y)
                    loss.backward()
                    base.step()
                sched.step()
                losses.append(float(D.all_reduce_mean(loss.detach())))
            if info.is_main:
                print(f"[train_ddp] epoch {epoch + 1}/{args.epochs} loss {sum(losses[-len(loader):]) / len(loader):.4f}",
                      flush=True)
        wall = time.perf_counter() - t0
        metrics = dict(world_size=info.world_size, backend=info.backend, steps=steps, wall_s=wall,
                       final_loss=losses[-1], args=vars(args))
        if info.is_main:
            from repro.train.loop import evaluate

            inner.eval()
            if "test" in data:
                tl = DataLoader(data["test"], batch_size=args.batch_size, num_workers=args.workers)
                metrics["test_acc"] = _evaluate_loader(inner, tl, info.device)
            else:
                metrics["test_acc"] = evaluate(inner, data["x_test"], data["y_test"], device=info.device)["accuracy"]
            out = Path(args.out)
            out.mkdir(parents=True, exist_ok=True)
            torch.save({"state_dict": {k: v.cpu() for k, v in inner.state_dict().items()},
                        "model_spec": model_spec(args.model, data["num_classes"])}, out / "final.pt")
            (out / "metrics.json").write_text(json.dumps(metrics, indent=1, default=str))
            print(f"[train_ddp] done: test acc {metrics['test_acc']:.4f}, {wall:.1f}s, wrote {out}", flush=True)
        return metrics
    finally:
        D.cleanup()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="torchrun -m repro.train_ddp", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="generated",
                   help="generated | cifar10 | cifar100 | <imagefolder manifest, e.g. imagenet1k> | <folder with train/ val/>")
    p.add_argument("--profile", default="cpu", help="profile of the generated world (smoke | cpu)")
    p.add_argument("--resolution", type=int, default=224, help="image size for imagefolder data")
    p.add_argument("--model", default="resnet_t", help="repro.models name or any timm model name")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=64, help="per replica (= m in --sam-mode local)")
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--augment", action="store_true",
                   help="CIFAR-style 4-px pad-crop + flip on the device (ImageFolder data is already augmented)")
    p.add_argument("--rho", type=float, default=0.05, help="0 = plain SGD")
    p.add_argument("--variant", default="sam", help="sam | elementwise_linf | layerwise_l2 | ... (repro.sam.variants)")
    p.add_argument("--sam-params", default="all", help="all | only_norm (SAM-ON) | no_norm | ...")
    p.add_argument("--sam-mode", default="local", choices=D.SAM_MODES)
    p.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm (BN statistics over the global batch)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader processes (ImageNet: 8-12 per GPU)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="results/full/ch6/ddp")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.batch_size < 1 or args.epochs < 1 or args.rho < 0:
        raise SystemExit("--batch-size and --epochs must be >= 1 and --rho >= 0")
    train(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
