"""The ch6 sweep (``repro sweep ch6``): the stages of :func:`repro.studies.ch6_samon.experiment.plan_specs`
(the plan the notebook runs through :func:`~repro.studies.ch6_samon.experiment.run_plan`), one
``run_result`` per job, filling the ``ch6_train`` and ``ch6_run`` cache entries the notebook reads
(``tests/test_launch_chapters.py``)."""
from __future__ import annotations

from repro.launch.runner import Job, memo, results_if_done


def _job(profile: str, seed: int, spec: dict) -> Job:
    s = spec
    label = (f"ch6 {s['method']} {s.get('variant', '')} {s.get('params', '')} rho={s.get('rho', 0)} seed={s['seed']}"
             + (" fix-norm" if s.get("fix_norm") else "")
             if s["method"] == "sam" else f"ch6 sgd seed={s['seed']}" + (" fix-norm" if s.get("fix_norm") else ""))
    return Job("repro.studies.ch6_samon.jobs:train_run", {"profile": profile, "seed": seed, "spec": spec},
               "sweep_ch6_run", label=label)


def build(profile: str, seed: int) -> list[Job]:
    """The stages of :func:`repro.studies.ch6_samon.experiment.plan_specs`, one ``train_run`` per job.

    Stage 1: the ρ grid (every seed) of every variant and parameter selection, plus SGD on every seed.
    The later stages need the ρ selected on stage 1 (:func:`repro.studies.ch6_samon.experiment.select_rho`),
    so they are built once stage 1 is cached. ``repro sweep`` runs the stages one after another.
    """
    import pandas as pd

    from repro.core.config import chapter_config
    from repro.studies.ch6_samon import experiment as ex

    cfg = chapter_config("ch6", profile)
    first = ex.plan_specs(cfg)
    grid = [_job(profile, seed, ex.spec_dict(s)) for s in first["grid"]]
    jobs = grid + [_job(profile, seed, ex.spec_dict(s)) for s in first["sgd"]]
    res = results_if_done(grid)
    if res is None:
        return jobs
    frame = pd.DataFrame([dict(method="sam", variant=s.variant, mode=s.mode, rho=s.rho, val_acc=100 * r["val_acc"])
                          for s, r in zip(first["grid"], res)])
    later = ex.plan_specs(cfg, ex.select_rho(frame))
    seen = {j.key for j in jobs}
    for s in later["main"] + later["extra"]:
        j = _job(profile, seed, ex.spec_dict(s))
        if j.key not in seen:  # the selected-ρ runs are grid runs already
            seen.add(j.key)
            jobs.append(j)
    return jobs


def _data(profile: str):
    from repro.studies.ch6_samon import experiment as ex

    def make(cfg):
        if profile == "full":
            from repro.data.cifar import make_data_cifar

            return cfg, make_data_cifar(cfg)
        return cfg, ex.make_data(cfg["world"])

    return memo("ch6", profile, 0, "", make)


def train_run(profile: str, seed: int, spec: dict, device: str = "auto") -> dict:
    """One ch6 training run via :func:`repro.studies.ch6_samon.train.run_result` on the notebook's data."""
    from repro.core.config import device as pick
    from repro.studies.ch6_samon import experiment as ex

    cfg, data = _data(profile)
    d = {k: v for k, v in data.items() if k != "num_classes"}
    r = ex.run_result(d, cfg["model"], data["num_classes"], cfg["train"], ex.RunSpec(**spec), device=pick(device))
    return {"val_acc": float(r["val_acc"]), "test_acc": float(r["test_acc"]), "train_time": float(r["train_time"])}
