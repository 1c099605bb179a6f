"""Related OOD methods run in the chapter 3-4 harness (the appendix notebook
``notebooks/appendix_related_ood.ipynb``):

* :mod:`.l2_training` -- ℓ2-normalised training (Haas et al., TMLR 2024) and its ``feature_norm`` detector;
* :mod:`.unleashing` -- Unleashing Mask (Zhu et al., ICML 2023): checkpoint trajectory and UM fine-tuning;
* :mod:`.setar` -- SeTAR (Li et al., NeurIPS 2024): selective low-rank approximation with greedy search;
The appendix's studies (training the zoo with these methods, claims, figures) live in
:mod:`repro.studies.appendix_related` and :mod:`repro.plots.related`.

Importing this package registers the ``feature_norm`` detector in :mod:`repro.ood.detectors`.
"""
from repro.ood.related import l2_training  # noqa: F401  (l2_training registers "feature_norm")
from repro.ood.related import setar
from repro.ood.related import unleashing
from repro.ood.related.l2_training import FeatureNorm, L2NormalizedNet
from repro.ood.related.setar import apply_setar, low_rank_approx, reduced_rank, setar_search
from repro.ood.related.unleashing import estimate_loss_constraint, train_with_checkpoints, unleashing_mask_finetune

__all__ = ["FeatureNorm", "L2NormalizedNet", "apply_setar", "low_rank_approx", "reduced_rank",
           "setar_search", "estimate_loss_constraint", "train_with_checkpoints", "unleashing_mask_finetune"]
