"""The ch7 sweep (``repro sweep ch7``): every unlearning/relearning run of the notebook, one job each,
filling the ``ch7_unlearn``/``ch7_relearn`` cache entries the notebook reads
(``tests/test_launch_chapters.py``)."""
from __future__ import annotations

from typing import Optional

from repro.launch.runner import Job, memo


def build(profile: str, seed: int) -> list[Job]:
    """Every unlearning/relearning run of the ch7 notebook, one job each, from the chapter's own
    plan :func:`repro.studies.ch7_jensun.experiment.run_plan` (Table 1, Figure 12, Tables 9-10,
    Figure 16, Figure 14, and one relearning job per ``sweeps.relearn_methods`` for Table 3)."""
    from repro.core.config import chapter_config
    from repro.studies.ch7_jensun.experiment import run_plan

    cfg = chapter_config("ch7", profile)
    jobs = []
    for p in run_plan(cfg):
        if p.kind == "unlearn":
            jobs.append(Job("repro.studies.ch7_jensun.jobs:unlearning_run",
                            {"profile": profile, "seed": seed, "method": p.method, "options": p.options},
                            "sweep_ch7_unlearn", label=p.label))
        else:
            jobs.append(Job("repro.studies.ch7_jensun.jobs:relearning_run",
                            {"profile": profile, "seed": seed, "method": p.method,
                             "multiples": list(p.options["multiples"])},
                            "sweep_ch7_relearn", label=f"ch7 relearn {p.method} x{list(p.options['multiples'])}"))
    return jobs


def _world(profile: str, seed: int, device: str):
    from repro.core.config import device as pick
    from repro.studies.ch7_jensun import experiment as X

    # run_unlearning/run_relearning deep-copy world.base, so one world serves every job of a process
    return memo("ch7", profile, seed, device, lambda cfg: X.build_world(cfg, seed=seed, device=pick(device)))


def unlearning_run(profile: str, seed: int, method: str, options: Optional[dict] = None,
                   device: str = "auto") -> dict:
    """One ch7 unlearning run: :func:`repro.studies.ch7_jensun.experiment.run_unlearning` with ``options``
    (its keyword arguments: ``lr``, ``loss_kwargs``, ``target``, ``paraphrases``, ``dynamics_every``)."""
    from repro.studies.ch7_jensun import experiment as X

    world = _world(profile, seed, device)
    r = X.run_unlearning(world, method, seed=seed, **(options or {}))
    return {"method": method, "metrics": {k: float(v) for k, v in r["metrics"].items()
                                          if isinstance(v, (int, float))}}


def relearning_run(profile: str, seed: int, method: str, multiples: list, device: str = "auto") -> dict:
    """Unlearn k x longer and relearn (Table 3 analogue) via :func:`repro.studies.ch7_jensun.experiment.run_relearning`."""
    from repro.studies.ch7_jensun import experiment as X

    world = _world(profile, seed, device)
    rows = X.run_relearning(world, method, multiples=tuple(multiples), seed=seed)
    return {"method": method, "rows": [{k: (float(v) if isinstance(v, (int, float)) else v) for k, v in r.items()}
                                       for r in rows]}
