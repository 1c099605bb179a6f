"""The ch3/ch4 sweep (``repro sweep ch3``): one job per model of the zoo ch3 and ch4 share.

Built from :func:`repro.studies.ch3_ninco.experiment.plan`, the plan the notebook trains with
:func:`repro.studies.ch3_ninco.experiment.train_zoo`; each job fills the ``zoo_model`` cache entry the
notebook reads (``tests/test_launch_chapters.py``).
"""
from __future__ import annotations

from repro.launch.runner import Job


def _plan(profile: str, seed: int):
    from repro.core.config import chapter_config
    from repro.studies.ch3_ninco.experiment import plan

    if profile == "full":
        # the full profile trains nothing (pretrained checkpoints); its loop is feature extraction per
        # checkpoint on ImageNet/NINCO, which the chapter does not expose as a job yet
        raise ValueError("ch3/ch4 have no full-profile sweep yet: their full profile needs per-checkpoint feature "
                         "extraction on ImageNet/NINCO, which is not a job yet; use --profile smoke or cpu")
    return plan(chapter_config("ch3", profile), profile, seed)


def build(profile: str, seed: int) -> list[Job]:
    """One job per zoo entry of the plan (``repro/profiles/ch3.yaml``, the zoo ch3 and ch4 share)."""
    p = _plan(profile, seed)
    return [Job("repro.studies.ch3_ninco.jobs:zoo_model", {"profile": profile, "seed": seed, "index": i},
                "sweep_ch3_zoo", label=f"ch3 zoo {i}: {e.name}") for i, e in enumerate(p.entries)]


def zoo_model(profile: str, seed: int, index: int, device: str = "auto") -> dict:
    """Train zoo entry ``index`` of the plan via :func:`repro.studies.ch3_ninco.experiment.train_zoo`."""
    from repro.core.config import device as pick
    from repro.studies.ch3_ninco.experiment import train_zoo

    z = train_zoo(_plan(profile, seed), device=pick(device), progress=False, index=index)[0]
    return {"name": z.name, "train_acc": float(z.train_acc), "test_acc": float(z.test_acc)}
