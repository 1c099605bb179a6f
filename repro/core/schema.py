"""Allowed keys of every chapter's profile sections (``repro/profiles/<chapter>.yaml``).

A misspelled profile key used to be accepted silently, and the code's ``cfg.get(key, default)`` then
ran with the default: ``paper_tabel: T4`` in ch5's ``zoo_vit`` compared the ViT zoo with the ResNet
table, a misspelled ch7 ``answer_tokens`` generated 5 tokens instead of the paper's 50 (App. B.2), a
misspelled ch6 ``blocks``/``sparse`` made claim rows vanish. :func:`repro.core.config.chapter_config`
therefore validates every profile (smoke, cpu and full) of a chapter against :data:`SCHEMAS` when it
is loaded, and a bad key fails with one line naming the file, profile, section, key and the allowed
keys.

The schema was derived by reading every profile and every ``cfg[...]`` / ``cfg.get(...)`` in
``repro/studies/*`` and the notebooks (plus the keyword arguments a section is passed to, e.g. a
``train`` section goes to :func:`repro.train.loop.train_classifier` as ``**kwargs``). Chapter code may
validate values further (ranges, registry names, required keys); this module only knows names.

**Adding a profile key:** add it to the chapter's entry in :data:`SCHEMAS` below (the error message
says where), next to the code that reads it. ``tests/test_core_schema.py`` loads every packaged
profile and checks the chapter validators agree.

Node kinds: ``ANY`` (a value whose inner keys are not checked here: a scalar, a list, or a mapping the
code validates itself, e.g. detector hyperparameters by the detector registry), a ``dict`` of allowed
key -> node, :class:`Items` (a list whose mapping items follow a node; plain strings pass),
:class:`Named` (a mapping with free keys, e.g. a method name, whose values follow a node).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ANY = None


@dataclass(frozen=True)
class Items:
    """A list whose mapping items follow ``node`` (string items, e.g. a zoo entry given by name, pass)."""

    node: Any


@dataclass(frozen=True)
class Named:
    """A mapping with free keys (names chosen by the profile) whose values follow ``node``."""

    node: Any


def keys(*names: str, **nested) -> dict:
    """Allowed keys: ``names`` take any value, ``nested`` map a key to its node."""
    return {**{n: ANY for n in names}, **nested}


# --------------------------------------------------------------------------- shared pieces
#: repro.data.world.make_world keyword arguments
WORLD = keys("seed", "resolution", "n_train_per_class", "n_val_per_class", "n_test_per_class", "n_classes",
             "n_ood_classes", "ood_scale", "n_near_per_class", "n_far_per_class", "n_popular", "clutter",
             "occlusion_p", "noise", "colour_spread")
#: repro.train.loop.train_classifier keyword arguments a profile may set
TRAIN = keys("epochs", "lr", "batch_size", "weight_decay", "momentum", "optimizer", "schedule", "warmup_epochs",
             "augment", "mixup_alpha", "label_smoothing")
#: repro.studies.ch3_ninco.zoo.ZooEntry fields (a zoo entry: architecture + training recipe)
ZOO_ENTRY = keys("name", "arch", "optimizer", "lr", "epochs", "weight_decay", "augment", "label_smoothing",
                 "mixup_alpha", "batch_size", "warmup_epochs", "pretrained", "checkpoint", "model_kwargs")
#: repro.studies.ch3_ninco.experiment.BENCHMARK_KEYS (the full ImageNet/NINCO benchmark)
BENCHMARK = keys("resolution", "crop_pct", "n_train_per_class", "n_val_per_class", "n_test_per_class",
                 "ninco_max_per_class", "popular", "openood", "workers", "imagenet_manifest", "ninco_manifest",
                 "openood_manifest")
#: detector registry name -> hyperparameters (validated by the registry's keyword check)
DETECTORS = Named(ANY)

# ch5: repro.studies.ch5_sharpness.pretrained.DEFAULTS, shared and per zoo
_PRETRAINED_ZOO = keys("members", "grid", "max_length", "arch", "resolution", "min_index_accuracy",
                       points=keys("n", "m", "selection", "root", "workers"),
                       sharpness=keys("steps", "n_samples", "seed", "mode", "init", "logit_norm", "batched_noise",
                                      "chunk"),
                       errors=keys("source", "batch_size", "workers", "max_per_class", "roots"))
PRETRAINED_ZOO_NAMES = ("augreg_in1k", "augreg_in21k", "clip_soups", "bert_mnli")
_CH5_ZOO = keys("arch", "arch_kwargs", "lr_range", "n_models", "sam_rhos", "paper_table", "train_err_max",
                train=TRAIN, sharpness=keys("m", "n_points", "n_samples", "rho_index", "steps"))

SCHEMAS: dict[str, dict] = {
    "ch3": keys("torch_threads", world=WORLD, benchmark=BENCHMARK, zoo=Items(ZOO_ENTRY), unit_tests=keys("n"),
                detectors=DETECTORS, contamination=keys("ps", "reps", "pool_n", "pool_p")),
    "ch4": keys("torch_threads", "ood_sets", "unit_test_fail_fpr", "ssd_plus_clusters", "n_qq_random",
                "gaussian_samples_per_class", "norm_scaling_alphas", "diagnostic_models",
                detectors=DETECTORS, benchmark=BENCHMARK, zoo=Items(ZOO_ENTRY)),
    "ch5": keys("threads", "jobs", "train_err_max",
                world=keys("n_train_per_class", "n_test_per_class", "resolution", "seed"),
                data=keys("source", "n_train", "n_test", "root"),
                shift=keys("source", "names", "severity", "root", "max_images"),
                train=TRAIN, zoo=_CH5_ZOO, zoo_vit=_CH5_ZOO,
                sharpness=keys("m", "n_points", "n_samples", "rho_index", "steps"),
                ablation=keys("m", "n_models", "steps"),
                asymptotics=keys("n_samples", "steps"),
                dln=keys("d", "max_steps", "n", "n_networks", "target_loss"),
                invariance=keys("n_samples", "steps"),
                pretrained_zoos={**_PRETRAINED_ZOO, "zoos": ANY, **{z: _PRETRAINED_ZOO for z in PRETRAINED_ZOO_NAMES}}),
    # repro.studies.ch6_samon.experiment.CONFIG_KEYS
    "ch6": keys("dataset", "val_size", "model", "seeds", "variants", "blocks", "sparse", "no_norm", "fix_norm", "jobs",
                world=WORLD, train=TRAIN,
                rho_grid=Named(keys("all", "only_norm", "no_norm")),
                sparse_levels=keys("random_mask", "ssam_d", "ssam_f"),
                imagenet=Named(keys("batch_size", "epochs", "cooldown_epochs", "warmup_epochs", "img_size", "lr",
                                    "m_sharpness", "optimizer", "schedule", "weight_decay", rho=Named(ANY))),
                sharpness=keys("definition", "rhos", "n_points", "m", "steps"),
                feature_rank=keys("module", "n_points"),
                bench=keys("batch_size", "resolution", "repeats", "warmup")),
    # repro.studies.ch7_jensun.experiment.SECTION_KEYS
    "ch7": keys("torch_threads", "dynamics_every", "model_alternatives", "judge", "table1_seeds",
                corpus=keys("n_forget_topics", "n_retain_topics", "n_relearn_topics", "n_generic_topics",
                            "entities_per_topic", "n_train_paraphrases", "n_eval_paraphrases",
                            "n_retain_eval_paraphrases", "n_unknowable", "n_mmlu", "n_describe"),
                model=keys("d_model", "n_layers", "n_heads", "d_ff", "max_len", "hf_id", "revision", "dtype",
                           "gradient_checkpointing"),
                pretrain=keys("steps", "batch_size", "lr", "warmup", "templates_per_fact", "n_multi",
                              exposure=keys("law", "s", "mean")),
                unlearn=keys("steps", "batch_size", "warmup", "master_weights"),
                relearn=keys("steps", "batch_size", "lr", "separate_runs", "curve_steps", "master_weights"),
                eval=keys("n_icr", "n_describe", "describe_tokens", "answer_tokens"),
                sweeps=keys("targets", "relearn_methods", "relearn_multiples", lambda_r=Named(ANY), lr=Named(ANY)),
                methods=Named(keys("lr", "loss", "kwargs")),
                data=keys("source", "manifest", "subdir", "n_mmlu")),
    "appendix": keys("torch_threads", "ood_sets", detectors=DETECTORS,
                     l2=keys("scale", models=Items(ZOO_ENTRY)),
                     setar=keys("candidates", "lam", "top_k", "pattern", models=Items(ZOO_ENTRY)),
                     unleashing=keys("curve_detectors", "every", "keep", "level", "level_samples", "n_masks", "n_boot",
                                     model=ZOO_ENTRY, finetune=TRAIN)),
}


class ProfileKeyError(ValueError):
    """A profile section holds a key its chapter does not read."""


def _where(path: list[str]) -> str:
    return "the chapter's top level" if not path else "section '" + ".".join(path) + "'"


def _check(node: Any, value: Any, path: list[str], prefix: str) -> None:
    if node is ANY:
        return
    if isinstance(node, Items):
        if isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, dict):
                    _check(node.node, item, path + [f"[{item.get('name', i)}]"], prefix)
        return
    if isinstance(node, Named):
        if isinstance(value, dict):
            for k, v in value.items():
                _check(node.node, v, path + [str(k)], prefix)
        return
    if not isinstance(value, dict):
        return  # a scalar where a section is expected is the reading code's to reject
    for k, v in value.items():
        if k not in node:
            raise ProfileKeyError(
                f"{prefix}: unknown key {k!r} in {_where(path)}; allowed: {', '.join(sorted(map(str, node)))} "
                "(a typo? a new key must also be added to the chapter's schema in repro/core/schema.py)")
        _check(node[k], v, path + [str(k)], prefix)


def validate(chapter: str, profile: str, cfg: dict, source: str = "") -> dict:
    """Check one profile section of ``chapter`` against :data:`SCHEMAS`; returns ``cfg``.

    Raises :class:`ProfileKeyError` (a ``ValueError``) naming the file/profile, the section, the bad key
    and the allowed keys. A chapter without a schema (a site's own chapter file) is not checked."""
    schema = SCHEMAS.get(chapter)
    if schema is None:
        return cfg
    if not isinstance(cfg, dict):
        raise ProfileKeyError(f"{source or chapter} [{profile}]: a profile section must be a mapping of keys, "
                              f"got {type(cfg).__name__}")
    _check(schema, cfg, [], f"{source or chapter} [{profile}]")
    return cfg
