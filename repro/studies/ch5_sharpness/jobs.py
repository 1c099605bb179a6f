"""The ch5 sweep (``repro sweep ch5``): zoo training, then sharpness and ablations per kept model.

Each job rebuilds its inputs from the profile exactly as the notebook does and calls the study's own
cached function, so the cache entries the notebook reads are what the sweep fills
(``tests/test_launch_chapters.py``).
"""
from __future__ import annotations

from repro.launch.runner import Job, memo, results_if_done


def build(profile: str, seed: int) -> list[Job]:
    """Stage 1: one training job per zoo model. Stage 2, once stage 1 is cached, chosen by the functions
    the notebook calls (:func:`repro.studies.ch5_sharpness.experiment.keep_mask`,
    :func:`~repro.studies.ch5_sharpness.experiment.ablation_plan`): one sharpness job per kept model
    (with the original-vs-augmented points of Fig. 29 for the ResNet zoo), one ablation job per model
    of the ablation plan.  Every zoo of :func:`~repro.studies.ch5_sharpness.experiment.zoo_keys` gets
    these stages; the ViT zoo (Table 4) has no ablations, as in the notebook."""
    from repro.core.config import chapter_config
    from repro.studies.ch5_sharpness import experiment as zoo

    cfg = chapter_config("ch5", profile)
    jobs = []
    for key in zoo.zoo_keys(cfg):
        zcfg = cfg if key == "zoo" else zoo.zoo_study_config(cfg, key)
        jobs += _zoo_jobs(zcfg, profile, seed, key, with_ablation=key == "zoo")
    return jobs


def _zoo_jobs(cfg: dict, profile: str, seed: int, zoo_key: str, with_ablation: bool) -> list[Job]:
    import pandas as pd

    from repro.studies.ch5_sharpness import experiment as zoo

    n = int(cfg["zoo"]["n_models"])
    extra = {} if zoo_key == "zoo" else {"zoo_key": zoo_key}  # keeps the ResNet jobs' cache keys unchanged
    tag = "" if zoo_key == "zoo" else " ViT"
    stage1 = [Job("repro.studies.ch5_sharpness.jobs:zoo_model", {"profile": profile, "seed": seed, "index": i, **extra},
                  "sweep_ch5_zoo", label=f"ch5{tag} zoo {i} (train)") for i in range(n)]
    res = results_if_done(stage1)
    if res is None:
        return stage1
    res = pd.DataFrame(res)
    kept = [int(i) for i in res.index[zoo.keep_mask(res, cfg["train_err_max"])]]
    chosen = zoo.ablation_plan(cfg, zoo.rho_grid(cfg), res)["models"] if with_ablation else []

    def job(fn: str, name: str, i: int, what: str) -> Job:
        return Job(f"repro.studies.ch5_sharpness.jobs:{fn}", {"profile": profile, "seed": seed, "index": i, **extra},
                   name, label=f"ch5{tag} {what} {i}")

    return (stage1 + [job("sharpness_model", "sweep_ch5_sharpness", i, "sharpness") for i in kept]
            + [job("ablation_model", "sweep_ch5_ablation", i, "ablation (steps, m)") for i in chosen])


def _inputs(profile: str, seed: int, zoo_key: str = "zoo"):
    from repro.studies.ch5_sharpness import experiment as zoo

    def make(cfg):
        cfg = zoo.zoo_study_config(cfg, zoo_key) if zoo_key != "zoo" else cfg
        return cfg, zoo.prepare_data(cfg), zoo.zoo_hparams(cfg, seed)

    return memo("ch5", profile, seed, zoo_key, make)


def _entry(profile: str, seed: int, index: int, device: str, zoo_key: str = "zoo"):
    from repro.core.config import device as pick
    from repro.studies.ch5_sharpness import experiment as zoo

    cfg, data, hps = _inputs(profile, seed, zoo_key)
    dev = pick(device)
    return cfg, data, dev, zoo.train_sharpness_zoo_model(hps[index], data, dict(cfg["train"]), cfg["zoo"]["arch"],
                                               data["num_classes"], dev, cfg["zoo"].get("arch_kwargs"))


def zoo_model(profile: str, seed: int, index: int, device: str = "auto", zoo_key: str = "zoo") -> dict:
    """Train ch5 zoo model ``index`` (App. H) via :func:`repro.studies.ch5_sharpness.experiment.train_sharpness_zoo_model`, the call
    the notebook's ``zoo.train_zoo`` makes for that model (``zoo_key="zoo_vit"``: the ViT zoo)."""
    _, _, _, e = _entry(profile, seed, index, device, zoo_key)
    return {"index": index, "diverged": bool(e["diverged"]), "train_err": float(e["train_err"]),
            "test_err": float(e["test_err"]), "shift_err": float(e["shift_err"])}


def sharpness_model(profile: str, seed: int, index: int, device: str = "auto", zoo_key: str = "zoo") -> dict:
    """Sharpness of ch5 zoo model ``index`` on the whole (definition, ρ) grid (Table 3 analogue; Table 4
    for ``zoo_key="zoo_vit"``) via :func:`repro.studies.ch5_sharpness.experiment.sharpness_frame` on ``[entry]``, one
    process (the sweep parallelises); for the ResNet zoo also on augmented points
    (:func:`~repro.studies.ch5_sharpness.experiment.augmentation_frame`, Fig. 29)."""
    from repro.studies.ch5_sharpness import experiment as zoo

    cfg, data, dev, e = _entry(profile, seed, index, device, zoo_key)
    grid = zoo.rho_grid(cfg)
    df = zoo.sharpness_frame([e], data, cfg, grid, device=dev, seed=seed, progress=False, jobs=1)
    out = {"index": index, **{c: float(df[c].iloc[0]) for c in df.columns if "@" in c}}
    if zoo_key == "zoo":
        aug = zoo.augmentation_frame([e], data, cfg, grid, [0], device=dev, seed=seed)
        out["augmented"] = aug.augmented.tolist()
    return out


def ablation_model(profile: str, seed: int, index: int, device: str = "auto") -> dict:
    """APGD-steps and m ablations (Figs. 30-31) of ch5 zoo model ``index`` via
    :func:`repro.studies.ch5_sharpness.experiment.ablation_frame` on ``[entry]``, at the definition and ρ of
    :func:`~repro.studies.ch5_sharpness.experiment.ablation_plan` (the notebook's)."""
    import pandas as pd

    from repro.studies.ch5_sharpness import experiment as zoo

    cfg, data, dev, e = _entry(profile, seed, index, device)
    plan = zoo.ablation_plan(cfg, zoo.rho_grid(cfg), pd.DataFrame([dict(diverged=e["diverged"], train_err=e["train_err"])]))
    steps, ms = zoo.ablation_frame([e], data, cfg, plan["definition"], plan["rho"], device=dev, seed=seed)
    return {"index": index, "steps": steps.sharpness.tolist(), "m": ms.sharpness.tolist()}
