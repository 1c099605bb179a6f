"""OOD detection (chapters 3-4).

- :mod:`repro.ood.detectors`: post-hoc scoring functions (a registry; arrays in, scores out;
  no knowledge of datasets).
- :mod:`repro.ood.metrics`: FPR@95%TPR, AUROC, AUPR (one module used everywhere).
- :mod:`repro.ood.evaluate`: datasets, per-class evaluation, unit tests, contamination study
  (no knowledge of how a score is computed).
"""
